"""A real inconsistency, found by reducing synthetic-torch/n030-s000001 of the shipped corpus.

Round and Triu put zeros in numerator and denominator, Div makes NaN of 0/0, and ArgMax over a
row holding NaN gives another index in ONNX Runtime than in torch (torch takes NaN as the
maximum). The reducer shrank the 30-node case to these 4 nodes in 13 tests; here the minimal
graph is judged with the real TorchScript exporter, and its reproduce.py converts it again from
model.pt2 and must exit 1.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from opseq.difftest.convert import TorchScriptConverter
from opseq.reduce.bundle import stage_reproducer
from opseq.reduce.evidence import finding_blame
from opseq.reduce.recipe import case_from_graph, graph_from_dict
from opseq.reduce.replay import OracleSpec, judge
from opseq.tolerance import Verdict

pytestmark = [pytest.mark.torch, pytest.mark.slow]


def _type(shape, dtype="float32"):
    return {"shape": list(shape), "dtype": dtype, "nonneg": dtype == "int64"}


def _node(name, op, inputs, output, **attrs):
    return {"name": name, "op": op, "inputs": inputs, "attrs": attrs, "output": output}


ROW = (1, 3, 8, 12)
ARGMAX_OF_NAN = graph_from_dict(
    {
        "framework": "torch",
        "seed": 1,
        "inputs": [{"name": "x0", "type": _type(ROW)}],
        "nodes": [
            _node("n0", "Round", ["x0"], _type(ROW)),
            _node("n3", "Triu", ["x0"], _type(ROW), diagonal=0),
            _node("n4", "Div", ["n3", "n0"], _type(ROW)),
            _node("n6", "ArgMax", ["n4"], _type((1, 3, 8, 1), "int64"), axis=3, keepdims=True),
        ],
        "outputs": ["n6"],
    }
)
SPEC = OracleSpec(converter="torch.onnx-torchscript", opset=17, n_inputs=10, seed=0)


def test_argmax_over_nan_reproduces_through_a_fresh_export(tmp_path):
    case = case_from_graph(ARGMAX_OF_NAN, weight_seed=1835504127, case_id="n030-s000001")
    result = judge(case, SPEC, converter=TorchScriptConverter(), attribute_blame=True)
    assert result.verdict is Verdict.SEMANTIC
    assert finding_blame(result.calibration) == "runtime"
    files = stage_reproducer(
        tmp_path,
        case=case,
        result=result,
        converter=SPEC.converter,
        opset=SPEC.opset,
        seed=SPEC.seed,
        n_inputs=SPEC.n_inputs,
        input_strategy="normal",
        title="ArgMax over NaN",
    )
    assert files.framework_file == "model.pt2" and files.max_abs_diff >= 1
    script = (tmp_path / "reproduce.py").read_text()
    assert "EXPORTER = 'torchscript'" in script
    assert "import opseq" not in script and "from opseq" not in script
    done = subprocess.run(
        [sys.executable, "reproduce.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.strip().endswith(": reproduces")
