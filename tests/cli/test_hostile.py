"""`opseq analyze` (and every reader of models) against hostile input: one line, right exit code,
and the good models of a batch always reported."""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
from pathlib import Path

import pytest

from opseq.cli import build_parser, main
from opseq.ngrams import to_decimal
from tests import hostile, models
from tests.cli.errors import assert_one_error_line
from tests.hypotheses.tiny_corpus import write_tiny_corpus

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())
    return path


def hostile_batch(directory: Path) -> dict[str, Path]:
    """Good models around every hostile case that must fail; returns the failing ones by name."""
    write(directory / "a_good.onnx", models.chain())
    bad = {
        "self_identity": write(directory / "b.onnx", hostile.identity_reads_own_output()),
        "doubling": write(directory / "c.onnx", hostile.doubling_functions(40)),
        "dense": write(directory / "d.onnx", hostile.dense_layers()),
        "nested": write(directory / "e.onnx", hostile.nested_if(40)),
        "recursive": write(directory / "f.onnx", hostile.recursive_function()),
        "garbage": write(directory / "g.onnx", b"\x00\xff" * 50),
    }
    (directory / "h.onnx").symlink_to("/dev/zero")
    bad["zero"] = directory / "h.onnx"
    os.mkfifo(directory / "i.onnx")
    bad["fifo"] = directory / "i.onnx"
    with (directory / "j.onnx").open("wb") as f:
        f.truncate(3 << 30)
    bad["huge"] = directory / "j.onnx"
    write(directory / "k_utf8.onnx", hostile.invalid_utf8("op_type"))
    write(directory / "l_fanout.onnx", hostile.wide_fanout_path_count(7200))
    write(directory / "z_good.onnx", models.diamond())
    return bad


@pytest.mark.parametrize("fmt", ["json", "jsonl", "text"])
def test_batch_with_hostile_models_reports_every_good_one(capsys, tmp_path, fmt):
    bad = hostile_batch(tmp_path / "batch")
    output = tmp_path / f"report.{fmt}"
    code, out, err = run(capsys, "analyze", tmp_path / "batch", "--format", fmt, "-o", output, "-q")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == len(bad) and "Traceback" not in err
    assert all(line.startswith("opseq: error: ") for line in lines)
    text = output.read_text()
    good = ("a_good.onnx", "k_utf8.onnx", "l_fanout.onnx", "z_good.onnx")
    if fmt == "json":
        document = json.loads(text)
        assert [Path(m["path"]).name for m in document["models"]] == list(good)
        assert len(document["failures"]) == len(bad)
        assert not any(f["internal"] for f in document["failures"])
        fanout = document["models"][2]
        assert fanout["path_count"] == to_decimal(4**7200)  # 4,335 digits, exact
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        assert [Path(r["path"]).name for r in rows] == list(good)
    else:
        assert "6.791e+4334 (4,335 digits) input->output paths" in text
        assert "corpus: 4 models analysed, 9 failed" in text
    assert not list(tmp_path.glob(".report.*"))  # written whole, then renamed


@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("self_identity", ("cycle through ignored node main/1",)),
        ("doubling", ("inlining its local functions", "--max-nodes")),
        ("dense", ("n-gram windows", "--max-ngrams")),
        ("nested", ("subgraphs nested 32 or more deep", "--max-nesting")),
        ("recursive", ("call each other recursively",)),
        ("garbage", ("not an ONNX model",)),
        ("zero", ("is a character device, not a regular file",)),
        ("fifo", ("is a FIFO (named pipe), not a regular file",)),
        ("huge", ("3.0 GiB, more than the 2 GiB protobuf can parse",)),
    ],
)
def test_each_hostile_case_alone_is_exit_2_with_one_line(capsys, tmp_path, name, fragments):
    path = hostile_batch(tmp_path)[name]
    code, out, err = run(capsys, "analyze", path, "--format", "json")
    assert code == 2
    assert_one_error_line(err, path.name, *fragments)
    assert json.loads(out)["failures"][0]["error"] in err


def test_memory_limit_is_one_line_not_an_internal_error(capsys, save):
    path = save(hostile.dense_layers())
    code, _, err = run(capsys, "analyze", path, "--max-ngrams", "100000000", "--max-memory", "64M")
    assert code == 2
    assert_one_error_line(err, "out of memory", "--max-memory")


def test_limits_can_be_raised(capsys, save):
    path = save(hostile.nested_if(20))
    assert run(capsys, "analyze", path)[0] == 2
    code, out, _ = run(capsys, "analyze", path, "--max-nesting", "20")
    assert code == 0 and "40 subgraphs" in out


@pytest.mark.parametrize("field", hostile.INVALID_UTF8_FIELDS)
def test_invalid_utf8_is_exit_0_in_every_format(capsys, save, field):
    path = save(hostile.invalid_utf8(field))
    for fmt in ("json", "jsonl", "text"):
        code, out, err = run(capsys, "analyze", path, "--format", fmt)
        assert code == 0 and err == ""
        assert "b'" not in out


def test_output_naming_an_input_is_refused_before_anything_is_written(capsys, tmp_path, save):
    model = save(models.chain())
    original = model.read_bytes()
    linked = tmp_path / "linked.onnx"
    os.link(model, linked)
    for target in (model, linked):
        code, out, err = run(capsys, "analyze", model, "-o", target)
        assert code == 2 and out == ""
        assert_one_error_line(err, "is one of the inputs; refusing to overwrite it")
        assert model.read_bytes() == original
    code, _, err = run(capsys, "analyze", tmp_path, "-o", model)  # inside an input directory
    assert code == 2 and model.read_bytes() == original


def test_a_report_is_replaced_only_when_complete(capsys, tmp_path, save, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("previous report")

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("opseq.cli.analyze.summarize_corpus", broken)
    paths = [save(models.chain(), "a.onnx"), save(models.diamond(), "b.onnx")]
    code, _, _ = run(capsys, "analyze", *paths, "--format", "json", "-o", target)
    assert code == 3
    assert target.read_text() == "previous report"
    assert not list(tmp_path.glob(".report.json.*"))


def test_terminal_injection_from_names_and_file_names_stays_one_line(capsys, tmp_path):
    good = write(tmp_path / "ok.onnx", hostile.control_characters())
    evil_name = tmp_path / "x\nopseq: error: forged\x1b[2J.onnx"
    write(evil_name, models.undefined_tensor())
    code, out, err = run(capsys, "analyze", good, evil_name)
    assert code == 1
    assert_one_error_line(err, "\\x0aopseq: error: forged\\x1b[2J.onnx")
    for raw in ("\x1b", "\r", "\u202e"):
        assert raw not in out and raw not in err
    assert not any(line.startswith("opseq: error") for line in out.splitlines())


def test_log_records_are_one_line_each(capsys, save, monkeypatch):
    from opseq.analysis import analyze_model

    def noisy(*args, **kwargs):
        logging.getLogger("opseq.analysis").warning("op %s", "Op\nopseq: error: forged\x1b[2J")
        return analyze_model(*args, **kwargs)

    monkeypatch.setattr("opseq.cli.analyze.analyze_model", noisy)
    code, _, err = run(capsys, "analyze", save(models.chain()))
    assert code == 0
    assert err == "opseq: WARNING: op Op\\x0aopseq: error: forged\\x1b[2J\n"


def test_usage_errors_are_one_line(capsys):
    for argv in (["bogus"], [], ["analyze"], ["corpus"], ["hypotheses", "evolution"]):
        code, _, err = run(capsys, *argv)
        assert code == 2, argv
        assert_one_error_line(err, "--help")
        assert "hypotheses-evolution" not in err


def test_help_lists_no_internal_alias(capsys):
    assert run(capsys, "--help")[0] == 0
    assert "hypotheses-evolution" not in capsys.readouterr().out
    assert "hypotheses-evolution" not in str(build_parser().format_help())


def test_hypotheses_leaves_out_hostile_models_and_reports_the_rest(capsys, tmp_path):
    rows = write_tiny_corpus(tmp_path, models=40)
    write(tmp_path / rows[0]["model"], hostile.dense_layers())
    write(tmp_path / rows[1]["model"], hostile.invalid_utf8("tensor_name"))
    write(tmp_path / rows[2]["model"], b"garbage")
    manifest = tmp_path / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    escaping = json.loads(lines[3]) | {"model": "../../outside.onnx"}
    manifest.write_text("\n".join([*lines[:3], json.dumps(escaping), *lines[4:]]) + "\n")
    code, out, err = run(
        capsys, "hypotheses", tmp_path, "--format", "json", "--min-support", "3", "--no-sweep",
        "--no-prediction", "-q",
    )  # fmt: skip
    assert code == 0, err
    corpus = json.loads(out)["corpus"]
    assert corpus["excluded"]["unreadable model (LimitExceededError)"] == 1
    assert corpus["excluded"]["unreadable model (ModelLoadError)"] == 1
    assert corpus["excluded"]["model path outside the corpus"] == 1
    assert corpus["labelled"] == 40 - 3


@pytest.mark.parametrize(
    "command",
    [["analyze"], ["corpus", "build"], ["corpus", "show"], ["hypotheses"],
     ["hypotheses", "evolution"], ["verify"]],
)  # fmt: skip
def test_help_examples_name_files_that_ship(capsys, command):
    assert main([*command, "--help"]) == 0
    text = capsys.readouterr().out
    examples = re.findall(r"^\s+(opseq .+)$", text.split("Example:")[1], flags=re.MULTILINE)
    assert examples
    for example in examples:
        words = shlex.split(example)
        outputs = {words[i + 1] for i, w in enumerate(words) if w in ("-o", "--output")}
        for word in words:
            if word.startswith("corpus/") and word not in outputs:
                path = word.split(":")[0]  # a factory spec names path/file.py:attribute
                assert (REPO / path).exists(), f"{example}: {path} does not ship"
