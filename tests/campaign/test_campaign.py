"""Campaigns end to end: real torch.onnx conversions in isolated workers, through the CLI."""

from __future__ import annotations

import json

import pytest

from opseq.cli import main
from opseq.corpus import read_manifest

pytestmark = [pytest.mark.torch, pytest.mark.slow]

TINY = "tests.campaign.sources:TINY"
HOSTILE = "tests.campaign.sources:HOSTILE"


def build(out_dir, *args):
    return main(["corpus", "build", str(out_dir), "--quiet", "--inputs", "3", *map(str, args)])


def test_campaign_records_rows_and_structure_only_models(tmp_path):
    assert (
        build(tmp_path, "--source", TINY, "--converter", "torch.onnx-torchscript", "--workers", "2")
        == 0
    )
    rows = {row.extra["case"]: row for row in read_manifest(tmp_path)}
    assert set(rows) == {"mlp", "conv"}
    for case, row in rows.items():
        assert row.id == f"{TINY}/{case}/torch.onnx-torchscript"
        assert row.outcome.value in ("ok", "mismatch")
        assert row.max_abs_diff is not None and row.max_abs_diff < 1e-4
        assert row.extra["seed"] == 0 and row.extra["n_inputs"] == 3
        assert row.extra["peak_rss_mb"] > 0 and row.extra["opset"] == 17
        assert set(row.extra["durations"]) >= {"generate", "convert", "load", "run", "compare"}
        assert row.extra["input_specs"][0]["name"] == {"mlp": "x", "conv": "image"}[case]
        model = tmp_path / row.model
        assert model.exists() and b"opseq.structure_only" in model.read_bytes()


def test_campaign_rerun_skips_recorded_and_resumes_after_truncation(tmp_path, capsys):
    args = ("--source", TINY, "--converter", "torch.onnx-torchscript", "--workers", "1")
    assert build(tmp_path, *args, "--count", "1") == 0
    manifest = tmp_path / "manifest.jsonl"
    first = manifest.read_text()
    manifest.write_text(first + first[: len(first) // 2])  # a second row killed mid-write
    assert build(tmp_path, *args) == 0
    assert "1 cases already recorded" in capsys.readouterr().err
    rows = read_manifest(tmp_path)
    assert [r.extra["case"] for r in rows] == ["mlp", "conv"]
    assert manifest.read_text().startswith(first)  # the recorded row is untouched
    assert build(tmp_path, *args) == 0
    assert len(read_manifest(tmp_path)) == 2  # nothing duplicated


def test_campaign_hostile_cases_become_outcomes(tmp_path):
    code = build(
        tmp_path,
        "--source",
        HOSTILE,
        "--converter",
        "torch.onnx-torchscript",
        "--workers",
        "2",
        "--timeout",
        "20",
        "--memory-cap",
        "1500",
    )
    assert code == 0
    rows = {row.extra["case"]: row for row in read_manifest(tmp_path)}
    assert {case: row.outcome.value for case, row in rows.items()} == {
        "mlp": rows["mlp"].outcome.value,
        "abort": "crash",
        "hang": "timeout",
        "allocate": "crash",
        "raise": "generate_fail",
    }
    assert rows["mlp"].outcome.value in ("ok", "mismatch")
    assert rows["abort"].error == "worker died from SIGABRT"
    assert "20 s timeout" in rows["hang"].error
    assert "1500 MiB" in rows["allocate"].error
    assert rows["raise"].error == "RuntimeError: this architecture cannot be built"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--source", "no-such-source", "--converter", "tf2onnx"],
            "unknown source 'no-such-source'",
        ),
        (["--source", TINY, "--converter", "onnxmltools"], "unknown converter 'onnxmltools'"),
        (["--source", TINY, "--converter", "tf2onnx"], "converts tensorflow models"),
        (
            ["--source", TINY, "--converter", "torch.onnx-torchscript", "--ops", "Div*"],
            "--ops applies to synthetic sources",
        ),
        (
            ["--source", "synthetic-torch", "--converter", "torch.onnx-torchscript", "--guided"],
            "--guided needs --count",
        ),
        (
            ["--source", "synthetic-torch-wide", "--converter", "tf2onnx", "--ops", "NoSuchOp*"],
            "--ops",
        ),
        (
            ["--source", TINY, "--converter", "torch.onnx-torchscript", "--guided", "--count", "2"],
            "--guided applies to synthetic sources",
        ),
    ],
)
def test_campaign_bad_arguments_exit_2(tmp_path, capsys, args, message):
    assert build(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_campaign_records_the_input_strategy_and_replays_it(tmp_path):
    from opseq.sources.base import make_inputs

    args = ("--source", TINY, "--converter", "torch.onnx-torchscript", "--workers", "1")
    assert build(tmp_path, *args, "--count", "1", "--input-strategy", "edge") == 0
    (row,) = read_manifest(tmp_path)
    assert row.extra["input_strategy"] == "edge" and row.extra["guided"] is False
    assert row.outcome.value in ("ok", "mismatch")
    specs = [_spec(s) for s in row.extra["input_specs"]]
    sets = make_inputs(specs, count=row.extra["n_inputs"], seed=row.extra["seed"], strategy="edge")
    assert [s["x"].shape for s in sets] == [(2, 8)] * 3


def _spec(data):
    from opseq.sources.base import InputSpec

    return InputSpec(**{**data, "shape": tuple(data["shape"])})


def test_campaign_rerun_with_another_input_strategy_is_refused(tmp_path, capsys):
    args = ("--source", TINY, "--converter", "torch.onnx-torchscript", "--workers", "1")
    assert build(tmp_path, *args, "--count", "1") == 0
    capsys.readouterr()
    assert build(tmp_path, *args, "--input-strategy", "edge") == 2
    err = capsys.readouterr().err
    assert "holds this campaign with --input-strategy normal" in err
    assert len(err.strip().splitlines()) == 1
    assert len(read_manifest(tmp_path)) == 1


def test_campaign_unknown_input_strategy_exits_2(tmp_path, capsys):
    code = build(tmp_path, "--source", TINY, "--converter", "tf2onnx", "--input-strategy", "wild")
    assert code == 2
    assert "invalid choice: 'wild'" in capsys.readouterr().err


def test_campaign_framework_missing_names_extra(tmp_path, capsys, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
    )
    assert build(tmp_path, "--source", TINY, "--converter", "torch.onnx-dynamo") == 2
    assert "pip install 'opseq[torch]'" in capsys.readouterr().err


def test_campaign_unwritable_output_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert build(blocker / "corpus", "--source", TINY, "--converter", "torch.onnx-dynamo") == 2
    assert "cannot write" in capsys.readouterr().err


def test_campaign_rows_are_json_objects_per_line(tmp_path):
    assert (
        build(tmp_path, "--source", TINY, "--converter", "torch.onnx-dynamo", "--count", "1") == 0
    )
    (line,) = (tmp_path / "manifest.jsonl").read_text().splitlines()
    data = json.loads(line)
    assert data["converter"] == "torch.onnx-dynamo" and data["outcome"] in ("ok", "mismatch")
