"""finding.json, the ledger table, blame and the script guards, without running a converter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opseq.difftest.calibration import Calibration
from opseq.difftest.measure import OutputErrors
from opseq.errors import ConfigError
from opseq.outcomes import Blame
from opseq.reduce.bundle import array_difference
from opseq.reduce.evidence import check_script, finding_blame
from opseq.reduce.finding import Finding, FindingRefused, Reproducer, read_finding, write_finding
from opseq.reduce.ledger import findings_table, read_ledger, replay
from opseq.reduce.recipe import SYNTHETIC_GRAPH, Recipe
from opseq.reduce.replay import OracleSpec
from opseq.reduce.scripts import bound_for, safe_call
from opseq.reduce.signature import graph_signature
from opseq.sources.base import InputSpec
from opseq.tolerance import CalibratedRule
from tests.reduce.graphs import F
from tests.reduce.test_signature_recipe import sigmoid_graph

SPEC = OracleSpec(converter="torch.onnx-torchscript", opset=17, n_inputs=4, seed=0)


def reproducer(row_id, staged, converter="torch.onnx-torchscript", nodes=1):
    graph = sigmoid_graph(F)
    return Reproducer(
        row_id=row_id,
        status="reduced",
        source="synthetic-torch",
        case=row_id,
        converter=converter,
        signature=graph_signature(graph, converter),
        recipe=Recipe(
            kind=SYNTHETIC_GRAPH,
            source="synthetic-torch",
            case=row_id,
            seed=0,
            graph=graph,
            weight_seed=7,
            input_specs=(InputSpec(name="x0", shape=F.shape),),
        ),
        oracle=SPEC,
        numbers={"verdict": "semantic", "max_abs_diff": 1.0},
        blame="converter",
        reduction={"tests": 6, "nodes_after": nodes},
        versions={"torch": "2.13.0"},
        staged=str(staged),
        files={"bound": 0.5, "framework_file": "model.pt2"},
    )


@pytest.fixture
def staged(tmp_path):
    directory = tmp_path / "staged"
    directory.mkdir()
    (directory / "reproduce.py").write_text("import sys\nsys.exit(1)\n")
    return directory


def test_write_finding_groups_cases_and_round_trips(tmp_path, staged):
    out = tmp_path / "findings"
    out.mkdir()
    finding = write_finding(out, [reproducer("a", staged), reproducer("b", staged)], check=False)
    assert finding.count == 2 and finding.cases == ("a", "b")
    directory = out / finding.slug
    assert (directory / "reproduce.py").exists()
    data = json.loads((directory / "finding.json").read_text())
    assert data["schema_version"] == 1 and data["documented"] is None and data["note"] == ""
    assert data["signature"]["ops"] == [{"op": "Sigmoid", "attrs": {}}]
    assert data["recipe"]["graph"]["nodes"][0]["op"] == "Sigmoid"
    assert Finding.from_dict(data) == finding == read_finding(directory)
    assert Finding.from_dict(json.loads(json.dumps(finding.to_dict()))).to_dict() == data


def test_write_finding_again_adds_cases_and_keeps_the_human_fields(tmp_path, staged):
    out = tmp_path / "findings"
    out.mkdir()
    finding = write_finding(out, [reproducer("a", staged)], check=False)
    path = out / finding.slug / "finding.json"
    data = json.loads(path.read_text())
    data.update(documented="https://github.com/onnx/onnx/issues/1", note="known")
    path.write_text(json.dumps(data))
    again = write_finding(out, [reproducer("b", staged)], check=False)
    assert again.cases == ("a", "b") and again.documented.endswith("/1") and again.note == "known"


def test_write_finding_refuses_a_directory_that_is_not_a_finding(tmp_path, staged):
    out = tmp_path / "findings"
    target = out / reproducer("a", staged).signature.slug()
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FindingRefused, match="is not a finding"):
        write_finding(out, [reproducer("a", staged)], check=False)
    assert (target / "notes.txt").read_text() == "mine"


def test_findings_table_lists_counts_and_converters_sharing_a_behaviour(tmp_path, staged):
    out = tmp_path / "findings"
    out.mkdir()
    write_finding(out, [reproducer("a", staged), reproducer("b", staged)], check=False)
    write_finding(out, [reproducer("c", staged, converter="torch.onnx-dynamo")], check=False)
    (out / "broken").mkdir()
    (out / "broken" / "finding.json").write_text("{")
    table = findings_table(out)
    lines = table.splitlines()
    assert lines[0].split() == ["finding", "converter", "ops", "cases", "blame", "script"]
    assert any("torch.onnx-torchscript" in line and " 2 " in line for line in lines)
    assert "the same behaviour through several converters:" in table
    assert "Sigmoid [float32]:" in table
    assert "unreadable: broken:" in table
    assert [e.finding is None for e in read_ledger(out)] == [True, False, False]


def test_replay_of_an_unreadable_finding_says_so_and_a_non_directory_is_refused(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "finding.json").write_text("[]")
    (verdict,) = replay(tmp_path)
    assert verdict.status == "cannot-replay" and "not an opseq finding" in verdict.reason
    with pytest.raises(ConfigError, match="not a findings directory"):
        replay(tmp_path / "nowhere")


def calibration(blame):
    errors = OutputErrors(kind="float", framework_error=1.0, onnx_error=900.0)
    rule = CalibratedRule(min_sets=1)
    return Calibration(
        rule=rule, verdict=rule.judge([[errors]]), errors=((errors,),), names=("y",), blame=blame
    )


def test_finding_blame_is_the_oracles():
    assert finding_blame(calibration(Blame.RUNTIME)) == "runtime"
    assert finding_blame(calibration(None)) == "unknown" == finding_blame(None)


def test_safe_call_accepts_calls_on_inputs_only():
    assert safe_call("torch.cat([x0, x1], dim=-1)", ["x0", "x1"]) is not None
    assert safe_call("torch.div(x0, x1, rounding_mode='floor')", ["x0", "x1"]) is not None
    assert safe_call("x0.__class__", ["x0"]) is None
    assert safe_call("open('/etc/passwd')", ["x0"]) is None
    assert safe_call("torch.relu(x0)\nimport os", ["x0"]) is None
    assert safe_call("x0 + x1", ["x0", "x1"]) is None  # not a call


def test_array_difference_and_bound():
    assert array_difference(np.zeros(3), np.zeros((1, 3))) == float("inf")
    assert array_difference(np.array([np.inf]), np.array([-np.inf])) == float("inf")
    assert array_difference(np.array([1, 2]), np.array([1, 4])) == 2.0
    assert bound_for(None) == bound_for(float("nan")) > 1e300


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("print('max difference 1 over 1 outputs, bound 0.5: reproduces'); sys.exit(1)",
         "reproduces", 1),
        ("print('max difference 0 over 1 outputs, bound 0.5: does not reproduce')",
         "does not reproduce", 0),
        ("print('reproduce.py: error: framework (torch) failed: E: x', file=sys.stderr); "
         "sys.exit(2)", "fails", 2),
        ("import os; os.abort()", "crashed", -6),
    ],
)  # fmt: skip
def test_check_script_says_how_the_script_ended(tmp_path, body, status, code):
    (tmp_path / "reproduce.py").write_text(f"import sys\n{body}\n")
    check = check_script(tmp_path)
    assert check["status"] == status and check["exit_code"] == code
    if code == 2:
        assert check["line"] == "reproduce.py: error: framework (torch) failed: E: x"


def test_check_script_times_out(tmp_path):
    (tmp_path / "reproduce.py").write_text("import time\ntime.sleep(30)\n")
    check = check_script(tmp_path, timeout_s=0.5)
    assert check == {**check, "exit_code": None, "status": "timed out"}


def test_oracle_spec_reads_a_rows_oracle():
    from opseq.corpus import ManifestRow

    row = ManifestRow.from_dict(
        {
            "id": "s/c/k",
            "outcome": "mismatch",
            "converter": "torch.onnx-dynamo",
            "source": "s",
            "case": "c",
            "seed": 3,
            "n_inputs": 5,
            "opset_requested": 17,
            "opset": 18,
            "input_strategy": "edge",
            "rule": {"headroom": 16, "min_sets": 2},
        }
    )
    spec = OracleSpec.from_row(row)
    assert (spec.opset, spec.n_inputs, spec.seed, spec.input_strategy) == (17, 5, 3, "edge")
    assert spec.rule == CalibratedRule(headroom=16, min_sets=2) and spec.note is None
    assert OracleSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    fixed = OracleSpec.from_row(ManifestRow.from_dict({**row.to_dict(), "rule": None}))
    assert fixed.rule == CalibratedRule() and "fixed rule" in fixed.note
    with pytest.raises(ConfigError, match="has no case, seed"):
        OracleSpec.from_row(ManifestRow.from_dict({"id": "x", "outcome": "ok", "converter": "c",
                                                   "source": "s"}))  # fmt: skip


def test_resolve_converter_names_registered_and_plugin_converters():
    from opseq.reduce.replay import resolve_converter

    assert resolve_converter("torch.onnx-torchscript").name == "torch.onnx-torchscript"
    assert resolve_converter("tests.reduce.planted:SIGMOID_TO_TANH").name == "planted-sigmoid-tanh"
    with pytest.raises(ConfigError, match="is not a converter"):
        resolve_converter("os:path")
    with pytest.raises(ConfigError, match="cannot load converter"):
        resolve_converter("tests.reduce.planted:NOTHING")
    with pytest.raises(ConfigError, match="unknown converter"):
        resolve_converter("onnxmltools")
