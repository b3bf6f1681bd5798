"""Reduction end to end on a planted inconsistency: Sigmoid exported as Tanh.

The corpus is written the way a campaign worker writes it (`run_case`), with the planted
converter; the reductions and replays run in isolated workers, which import the converter by
its ``package.module:attribute`` name.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opseq.cli import main
from opseq.reduce.corpus_reduction import CASES_FILE, reduce_corpus
from opseq.reduce.finding import Finding, read_finding
from opseq.reduce.shrink import Budget
from tests.reduce.planted import (
    HONEST,
    ONE_OP_NAME,
    PLANTED,
    SOURCE_NAME,
    mark_semantic,
    write_corpus,
)

pytestmark = [pytest.mark.torch, pytest.mark.slow]

CASES = [
    (SOURCE_NAME, "twelve"),
    (SOURCE_NAME, "other"),
    (SOURCE_NAME, "clean"),
    (ONE_OP_NAME, "sigmoid@float32#0"),
    (ONE_OP_NAME, "sigmoid@float32#1"),
]


def row_id(source, case):
    return f"{source}/{case}/{PLANTED}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("corpus")
    rows = write_corpus(directory, CASES)
    assert [r.extra["verdict"] for r in rows] == [
        "semantic",
        "semantic",
        "ok",
        "semantic",
        "semantic",
    ]
    mark_semantic(directory, row_id(SOURCE_NAME, "clean"))  # as if an earlier run had found one
    return directory


@pytest.fixture(scope="module")
def reduced(corpus):
    return reduce_corpus(corpus, budget=Budget(max_tests=50, deadline_s=300), workers=2)


def by_ops(report):
    return {f.signature.labels: f for f in report.findings}


def test_reduce_shrinks_twelve_nodes_to_the_planted_sigmoid(reduced):
    sigmoid = by_ops(reduced)[("Sigmoid",)]
    graph = sigmoid.recipe.graph
    assert [n.op for n in graph.nodes] == ["Sigmoid"]
    assert graph.inputs[0][0] == "x0" and graph.inputs[0][1].shape == (1, 4, 8, 8)
    assert graph.outputs == ("n3",)
    assert sigmoid.blame == "converter"
    assert sigmoid.reduction["nodes_before"] == 12 and sigmoid.reduction["nodes_after"] == 1
    assert sigmoid.reduction["stopped"] == "fixpoint"
    assert sigmoid.reduction["tests"] <= 10


def test_reduce_dedups_two_cases_with_one_minimal_signature(reduced):
    sigmoid = by_ops(reduced)[("Sigmoid",)]
    assert sigmoid.count == 2
    assert sigmoid.cases == (row_id(SOURCE_NAME, "twelve"), row_id(SOURCE_NAME, "other"))
    assert sigmoid.signature.input_dtypes == ("float32",)
    one_op = by_ops(reduced)[("sigmoid@float32",)]
    assert one_op.count == 2 and one_op.recipe.kind == "source-case"
    assert "not reduced" in one_op.reduction["note"]
    assert len(reduced.findings) == 2


def test_reduce_reports_and_keeps_a_case_that_does_not_reproduce(reduced):
    clean = next(r for r in reduced.reproducers if r.case == "clean")
    assert clean.status == "not-reproduced"
    assert clean.reason == "does not reproduce: the replay's verdict is ok"
    recorded = [
        json.loads(line) for line in (reduced.out_dir / CASES_FILE).read_text().splitlines()
    ]
    assert {e["row_id"]: e["status"] for e in recorded}[row_id(SOURCE_NAME, "clean")] == (
        "not-reproduced"
    )
    assert len(recorded) == 5


def test_finding_bundle_round_trips_and_holds_a_runnable_model(reduced):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    sigmoid = by_ops(reduced)[("Sigmoid",)]
    directory = reduced.out_dir / sigmoid.slug
    data = json.loads((directory / "finding.json").read_text())
    assert Finding.from_dict(data) == read_finding(directory) == sigmoid
    assert data["oracle"]["converter"] == PLANTED and data["oracle"]["n_inputs"] == 4
    assert {"torch", "onnx", "onnxruntime"} <= set(data["versions"])
    assert data["numbers"]["verdict"] == "semantic"
    assert data["numbers"]["outputs"][0]["verdict"] == "semantic"
    assert data["documented"] is None and data["note"] == ""
    model = onnx.load(directory / "model.onnx")
    assert [n.op_type for n in model.graph.node] == ["Tanh"]  # the planted bug, weights kept
    feed = numpy_helper.to_array(onnx.load_tensor(directory / "test_data_set_0" / "input_0.pb"))
    expected = numpy_helper.to_array(
        onnx.load_tensor(directory / "test_data_set_0" / "output_0.pb")
    )
    session = ort.InferenceSession(str(directory / "model.onnx"))
    (actual,) = session.run(None, {session.get_inputs()[0].name: feed})
    assert abs(actual - expected).max() == pytest.approx(data["reproduce"]["max_abs_diff"])
    assert (directory / "model.pt2").exists()


def test_reproduce_scripts_ran_and_reproduce(reduced):
    for finding in reduced.findings:
        assert finding.script_check["exit_code"] == 1, finding.script_check
        assert finding.script_check["line"].endswith(": reproduces")


def test_reproduce_script_whose_framework_fails_exits_2_with_one_line(reduced, tmp_path):
    import shutil

    sigmoid = by_ops(reduced)[("Sigmoid",)]
    copy = tmp_path / "copy"
    shutil.copytree(reduced.out_dir / sigmoid.slug, copy)
    (copy / "model.pt2").write_bytes(b"not a model")
    done = subprocess.run(
        [sys.executable, "reproduce.py"], cwd=copy, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("reproduce.py:")]
    assert len(errors) == 1
    assert errors[0].startswith("reproduce.py: error: framework (torch) failed: ")


def test_replay_reproduces_then_stops_with_the_honest_converter(reduced, tmp_path, capsys):
    assert main(["findings", "replay", str(reduced.out_dir), "--workers", "2"]) == 0
    assert capsys.readouterr().out.count("reproduces ") == 2
    report = tmp_path / "replay.json"
    swap = f"{PLANTED}={HONEST}"
    args = ["findings", "replay", str(reduced.out_dir), "--converter", swap, "--workers", "2"]
    assert main([*args, "--format", "json", "-o", str(report)]) == 1
    fixed = json.loads(report.read_text())
    assert [v["status"] for v in fixed] == ["stopped", "stopped"]
    assert all(v["verdict"] in ("ok", "numerical") for v in fixed)
    assert fixed[0]["versions_then"]["torch"] == fixed[0]["versions_now"]["torch"]
    assert fixed[0]["reason"] == f"the verdict is now {fixed[0]['verdict']} with {HONEST}"


def test_cli_findings_bad_input_and_show(reduced, capsys):
    assert main(["findings", "replay", str(reduced.out_dir / "nowhere")]) == 2
    assert "not a findings directory" in capsys.readouterr().err
    assert main(["findings", "replay", str(reduced.out_dir), "--converter", "nonsense"]) == 2
    assert "expected OLD=NEW" in capsys.readouterr().err
    assert main(["findings", "show", str(reduced.out_dir)]) == 0
    out = capsys.readouterr().out
    assert "Sigmoid" in out and "sigmoid@float32" in out and "reproduces" in out


def test_cli_reduce_one_case_and_bad_input(corpus, tmp_path, capsys):
    out = tmp_path / "findings"
    case = row_id(ONE_OP_NAME, "sigmoid@float32#1")
    code = main(["reduce", str(corpus), "--case", case, "--out", str(out), "--quiet",
                 "--no-script-check"])  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0
    assert text.splitlines()[0].split()[:2] == ["finding", "converter"]
    assert "sigmoid@float32" in text and f"findings in {out}" in text
    assert main(["reduce", str(tmp_path / "nothing")]) == 2
    assert "no such manifest" in capsys.readouterr().err
    assert main(["reduce", str(corpus), "--case", "no/such/row"]) == 2
    assert "no row 'no/such/row'" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(["reduce", str(corpus), "--case", case, "--out", str(blocked / "x")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_a_converter_that_crashes_ends_only_its_own_case(corpus, tmp_path):
    import shutil

    copy = tmp_path / "corpus"
    copy.mkdir()
    shutil.copy(corpus / "manifest.jsonl", copy / "manifest.jsonl")
    crashing = row_id(ONE_OP_NAME, "sigmoid@float32#0")
    mark_semantic(copy, crashing, converter="tests.reduce.planted:ABORTS")
    report = reduce_corpus(
        copy,
        row_ids=[crashing, row_id(ONE_OP_NAME, "sigmoid@float32#1")],
        workers=1,
        check_scripts=False,
    )
    crashed, survivor = report.reproducers
    assert crashed.status == "failed" and "crash" in crashed.reason
    assert "SIGABRT" in crashed.reason
    assert survivor.status == "own" and len(report.findings) == 1
