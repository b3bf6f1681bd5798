"""The oracle: each outcome, and blame on planted mismatches.

Planted mismatches use a fake converter (the `Converter` protocol, implemented here) that returns a
hand-written ONNX model, so the difference is known exactly. The ONNX Runtime optimiser has no
honest, reproducible numerical bug to plant, so the runtime-optimizer and runtime branches swap
in a wrong model behind `create_session` (for the optimised session only, or for both); the pure
decision function is tested on its own as well.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from opseq.difftest import blame, calibration, oracle
from opseq.difftest.calibration import Calibration
from opseq.difftest.convert import get_converter
from opseq.difftest.oracle import (
    BLAME_PAIRS,
    DiffTestResult,
    StageFailure,
    decide_blame,
    run_difftest,
)
from opseq.errors import ConfigError
from opseq.outcomes import Blame, Outcome, Stage
from opseq.sources.base import Framework, InputSpec, ModelCase, make_inputs
from opseq.tolerance import Tolerance, Verdict

pytestmark = pytest.mark.torch

SPECS = (InputSpec(name="x", shape=(2, 3)),)


def _onnx(body: str, *, x_type: str = "float", opset: str = '"" : 17') -> onnx.ModelProto:
    return onnx.parser.parse_model(
        f"""<ir_version: 8, opset_import: [{opset}]>
        g ({x_type}[2, 3] x) => (float[2, 3] y) <float k = {{1.001}}> {{ {body} }}"""
    )


RELU = _onnx("y = Relu(x)")
RELU_SCALED = _onnx("s = Mul(x, k)\n y = Relu(s)")  # relu(1.001 x): off by 0.001 relu(x)


class FakeConverter:
    """Returns a fixed ONNX model, whatever the case."""

    name = "fake"
    framework = Framework.TORCH

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model

    def convert(self, case: ModelCase, *, opset: int) -> onnx.ModelProto:
        return self.model

    def versions(self) -> dict[str, str]:
        return {"fake": "0"}


def _case(forward, **children) -> ModelCase:
    """A torch case computing ``forward(torch, x, **children)``; children are submodules."""
    torch = pytest.importorskip("torch")

    class Module(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.children_by_name = torch.nn.ModuleDict(children)

        def forward(self, x):
            return forward(torch, x, **self.children_by_name)

    return ModelCase(case_id="case", framework=Framework.TORCH, model=Module().eval(), inputs=SPECS)


@pytest.fixture
def relu_case() -> ModelCase:
    return _case(lambda torch, x: torch.relu(x))


def _expected_planted_diff(n_inputs: int, seed: int) -> float:
    """max |relu(1.001 x) - relu(x)| over the input sets, in float32 as ONNX computes it."""
    feeds = make_inputs(SPECS, count=n_inputs, seed=seed)
    k = np.float32(1.001)
    return max(
        float(np.max(np.abs(np.maximum(f["x"] * k, 0) - np.maximum(f["x"], 0)))) for f in feeds
    )


def test_run_difftest_torchscript_exact_model_ok(relu_case):
    result = run_difftest(relu_case, get_converter("torch.onnx-torchscript"), n_inputs=3, seed=5)
    assert result.outcome is Outcome.OK and result.failure is None and result.blame is None
    assert result.max_abs_diff == 0.0 and result.max_rel_diff == 0.0  # relu is exact everywhere
    (comparison,) = result.comparisons
    assert comparison.expected_shape == (2, 3) and comparison.actual_dtype == "float32"
    assert (result.opset, result.producer_name, result.seed, result.n_inputs) == (
        17,
        "pytorch",
        5,
        3,
    )
    assert result.onnx_size == result.model.ByteSize() > 0
    assert result.latency_framework_ms > 0 and result.latency_onnxruntime_ms > 0
    assert {"onnx", "onnxruntime", "torch"} <= set(result.versions)
    assert {"convert", "load", "run", "compare", "latency"} <= set(result.durations)
    assert result.blame_evidence == {}


def test_run_difftest_dynamo_records_actual_opset():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    case = _case(lambda torch, x, linear: torch.tanh(linear(x)), linear=torch.nn.Linear(3, 3))
    result = run_difftest(
        case,
        get_converter("torch.onnx-dynamo"),
        n_inputs=2,
        tolerance=Tolerance(atol=1e-5),
        latency_repeats=0,
    )
    assert result.outcome is Outcome.OK, result.failure
    assert result.max_abs_diff < 1e-5
    assert result.opset == oracle.default_opset(result.model)
    assert result.latency_framework_ms is None and result.latency_onnxruntime_ms is None
    assert "onnxscript" in result.versions


def test_run_difftest_outcome_follows_tolerance_on_raw_numbers():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    case = _case(
        lambda torch, x, linear: linear(x).sum(dim=-1, keepdim=True).expand(2, 3),
        linear=torch.nn.Linear(3, 3),
    )
    converter = get_converter("torch.onnx-torchscript")
    loose = run_difftest(case, converter, n_inputs=4, tolerance=Tolerance(atol=1e-4), rule=None)
    assert loose.outcome is Outcome.OK and loose.max_abs_diff < 1e-5
    strict = Tolerance(atol=loose.max_abs_diff) if loose.max_abs_diff > 0 else Tolerance(atol=0.0)
    again = run_difftest(
        case, converter, n_inputs=4, tolerance=strict, rule=None, attribute_blame=False
    )
    assert again.max_abs_diff == loose.max_abs_diff  # same seed, same raw numbers
    assert again.outcome is Outcome.MISMATCH and again.blame is None  # diff == atol mismatches


def test_run_difftest_unexportable_op_convert_fail():
    case = _case(lambda torch, x: torch.linalg.svd(x)[1])
    result = run_difftest(case, get_converter("torch.onnx-torchscript"))
    assert result.outcome is Outcome.CONVERT_FAIL and result.failure.stage is Stage.CONVERT
    assert "aten::linalg_svd" in result.failure.message
    assert "Traceback" in result.failure.traceback
    assert result.model is None and result.opset is None and result.comparisons == ()
    assert "convert" in result.durations


def test_run_difftest_invalid_model_load_fail(relu_case):
    model = _onnx("y = NoSuchOp(x)")
    result = run_difftest(relu_case, FakeConverter(model))
    assert result.outcome is Outcome.LOAD_FAIL and result.failure.stage is Stage.LOAD
    assert "NoSuchOp" in result.failure.message
    assert result.model is model and result.opset == 17


def test_run_difftest_onnxruntime_error_run_fail(relu_case):
    # The model declares a double input; the case feeds float32: ORT refuses at inference.
    model = _onnx("c = Cast<to=1>(x)\n y = Relu(c)", x_type="double")
    result = run_difftest(relu_case, FakeConverter(model))
    assert result.outcome is Outcome.RUN_FAIL and result.failure.stage is Stage.RUN
    assert "framework" not in result.failure.message
    assert "double" in result.failure.message


def test_run_difftest_framework_error_run_fail_says_framework():
    def forward(torch, x):
        if torch.jit.is_tracing():  # exports fine, fails when run eagerly
            return torch.relu(x)
        raise RuntimeError("eager path is broken")

    result = run_difftest(_case(forward), get_converter("torch.onnx-torchscript"))
    assert result.outcome is Outcome.RUN_FAIL
    assert result.failure.message == "framework (torch) failed: RuntimeError: eager path is broken"


def test_run_difftest_fixed_rule_planted_converter_bug_blames_converter(relu_case):
    result = run_difftest(relu_case, FakeConverter(RELU_SCALED), n_inputs=3, seed=2, rule=None)
    assert result.outcome is Outcome.MISMATCH and result.blame is Blame.CONVERTER
    expected = _expected_planted_diff(3, 2)
    assert result.max_abs_diff == pytest.approx(expected, rel=1e-6) and expected > 1e-4
    evidence = result.blame_evidence
    assert evidence["mismatch"] == {
        "framework_vs_noopt": True,
        "framework_vs_reference": True,
        "onnxruntime_vs_noopt": False,
        "onnxruntime_vs_reference": False,
        "noopt_vs_reference": False,
    }
    assert evidence["max_abs_diff"]["onnxruntime_vs_reference"] == 0.0
    assert evidence["max_abs_diff"]["framework_vs_reference"] == pytest.approx(expected, rel=1e-6)
    assert evidence["skipped"] == {}
    assert "blame" in result.durations


def _swap_sessions(monkeypatch, *, optimized: onnx.ModelProto, unoptimized: onnx.ModelProto):
    real = oracle.create_session

    def create_session(model, *, optimize=True):
        return real(optimized if optimize else unoptimized, optimize=optimize)

    for module in (oracle, blame, calibration):
        monkeypatch.setattr(module, "create_session", create_session)


def test_run_difftest_optimised_session_wrong_blames_runtime_optimizer(monkeypatch, relu_case):
    _swap_sessions(monkeypatch, optimized=RELU_SCALED, unoptimized=RELU)
    result = run_difftest(relu_case, FakeConverter(RELU), n_inputs=2, rule=None)
    assert result.outcome is Outcome.MISMATCH and result.blame is Blame.RUNTIME_OPTIMIZER
    evidence = result.blame_evidence
    assert evidence["max_abs_diff"]["framework_vs_noopt"] == 0.0
    assert evidence["max_abs_diff"]["framework_vs_reference"] is None
    assert evidence["skipped"]["reference"].startswith("not needed")


def test_run_difftest_both_sessions_wrong_reference_right_blames_runtime(monkeypatch, relu_case):
    _swap_sessions(monkeypatch, optimized=RELU_SCALED, unoptimized=RELU_SCALED)
    result = run_difftest(relu_case, FakeConverter(RELU), n_inputs=2, rule=None)
    assert result.blame is Blame.RUNTIME
    mismatch = result.blame_evidence["mismatch"]
    assert mismatch["framework_vs_noopt"] is True and mismatch["framework_vs_reference"] is False
    assert mismatch["onnxruntime_vs_reference"] is True


def test_run_difftest_reference_cannot_run_blames_unknown_with_reason(relu_case):
    model = _onnx("y = com.microsoft.Gelu(x)", opset='"" : 17, "com.microsoft" : 1')
    result = run_difftest(relu_case, FakeConverter(model), n_inputs=2, rule=None)
    assert result.outcome is Outcome.MISMATCH and result.blame is Blame.UNKNOWN
    evidence = result.blame_evidence
    assert "reference evaluator failed" in evidence["skipped"]["reference"]
    assert "Gelu" in evidence["skipped"]["reference"]
    assert evidence["max_abs_diff"]["framework_vs_reference"] is None
    assert evidence["mismatch"]["onnxruntime_vs_noopt"] is False


def test_run_difftest_attribute_blame_false_skips_blame(relu_case):
    result = run_difftest(relu_case, FakeConverter(RELU_SCALED), attribute_blame=False)
    assert result.outcome is Outcome.MISMATCH and result.blame is None
    assert result.blame_evidence == {} and "blame" not in result.durations


def test_run_difftest_records_opset_the_converter_produced(relu_case):
    model = _onnx("y = Relu(x)", opset='"" : 18')
    result = run_difftest(relu_case, FakeConverter(model), opset=17, latency_repeats=0)
    assert result.outcome is Outcome.OK and result.opset == 18
    assert result.versions["fake"] == "0"


def test_run_difftest_no_inputs_config_error(relu_case):
    with pytest.raises(ConfigError, match="n_inputs"):
        run_difftest(relu_case, FakeConverter(RELU), n_inputs=0)


def test_difftest_result_to_dict_json_safe_round_trip(relu_case):
    result = run_difftest(relu_case, FakeConverter(RELU_SCALED), n_inputs=2)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["schema_version"] == 1 and "model" not in data
    assert (data["outcome"], data["blame"]) == ("mismatch", "converter")
    back = DiffTestResult.from_dict(data)
    assert back.model is None and back == result  # the model is not compared


def test_difftest_result_infinite_diff_serialised_as_string():
    result = DiffTestResult(outcome=Outcome.MISMATCH, max_abs_diff=float("inf"))
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["max_abs_diff"] == "inf"


def test_stage_failure_message_first_line_truncated():
    error = ValueError("x" * 600 + "\nsecond line")
    failure = StageFailure.from_exception(Stage.CONVERT, error)
    assert failure.message.startswith("ValueError: xxx") and len(failure.message) == 500
    assert StageFailure.from_dict(failure.to_dict()) == failure
    assert StageFailure.from_exception(Stage.RUN, KeyError()).message == "KeyError"


def _flags(**mismatches: bool | None) -> dict[str, bool | None]:
    return {key: mismatches.get(key) for key in BLAME_PAIRS}


@pytest.mark.parametrize(
    ("flags", "blame"),
    [
        (_flags(framework_vs_noopt=False), Blame.RUNTIME_OPTIMIZER),
        (_flags(framework_vs_noopt=True, framework_vs_reference=False), Blame.RUNTIME),
        (_flags(framework_vs_noopt=None, framework_vs_reference=False), Blame.RUNTIME),
        (
            _flags(
                framework_vs_noopt=True,
                framework_vs_reference=True,
                onnxruntime_vs_noopt=False,
                onnxruntime_vs_reference=False,
                noopt_vs_reference=False,
            ),
            Blame.CONVERTER,
        ),
        (
            _flags(
                framework_vs_noopt=True,
                framework_vs_reference=True,
                onnxruntime_vs_noopt=False,
                onnxruntime_vs_reference=True,
                noopt_vs_reference=True,
            ),
            Blame.UNKNOWN,
        ),
        (_flags(framework_vs_noopt=True, onnxruntime_vs_noopt=False), Blame.UNKNOWN),
        (_flags(), Blame.UNKNOWN),
    ],
)
def test_decide_blame_branches(flags, blame):
    assert decide_blame(**flags) is blame


# --- the calibrated rule (the default): float64 ground truth


def test_calibrated_exact_model_is_ok_against_float64(relu_case):
    result = run_difftest(relu_case, get_converter("torch.onnx-torchscript"), n_inputs=3)
    assert result.outcome is Outcome.OK and result.verdict is Verdict.OK
    calibrated = result.calibration
    assert calibrated.verdict.reference == "float64" and calibrated.reference_note is None
    assert calibrated.verdict.sets == 3 and calibrated.verdict.semantic_sets == 0
    assert "float64" in result.durations
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["verdict"] == "ok" and data["oracle"]["outputs"][0]["ulps"]["onnx"]["q100"] == 0
    assert Calibration.from_dict(data["oracle"]).verdict == calibrated.verdict


def test_calibrated_planted_bug_is_semantic_in_every_set_and_blames_the_converter(relu_case):
    result = run_difftest(relu_case, FakeConverter(RELU_SCALED), n_inputs=4, seed=2)
    assert result.outcome is Outcome.MISMATCH and result.verdict is Verdict.SEMANTIC
    assert result.blame is Blame.CONVERTER
    calibrated = result.calibration
    assert calibrated.verdict.semantic_sets == 4
    assert calibrated.blame_verdicts["unoptimised"] == "semantic"
    assert calibrated.blame_verdicts["reference_evaluator"] == "semantic"
    # relu(1.001 x) is off by about 1e-3 relative: ~8,000 float32 steps, far beyond 64 x 4
    assert calibrated.verdict.required_headroom > 1000


def test_calibrated_optimiser_bug_blames_the_optimiser(monkeypatch, relu_case):
    _swap_sessions(monkeypatch, optimized=RELU_SCALED, unoptimized=RELU)
    result = run_difftest(relu_case, FakeConverter(RELU), n_inputs=4, seed=2)
    assert result.verdict is Verdict.SEMANTIC and result.blame is Blame.RUNTIME_OPTIMIZER
    assert result.calibration.blame_verdicts["unoptimised"] == "ok"


def test_calibrated_runtime_bug_blames_the_runtime(monkeypatch, relu_case):
    _swap_sessions(monkeypatch, optimized=RELU_SCALED, unoptimized=RELU_SCALED)
    result = run_difftest(relu_case, FakeConverter(RELU), n_inputs=4, seed=2)
    assert result.verdict is Verdict.SEMANTIC and result.blame is Blame.RUNTIME
    assert result.calibration.blame_verdicts["reference_evaluator"] == "ok"


def test_reordered_float32_sums_are_numerical_at_most():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    linear = torch.nn.Linear(2048, 16)

    class Wide(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = linear

        def forward(self, x):
            return self.linear(x)

    specs = (InputSpec(name="x", shape=(8, 2048)),)
    case = ModelCase(case_id="wide", framework=Framework.TORCH, model=Wide().eval(), inputs=specs)
    result = run_difftest(case, get_converter("torch.onnx-torchscript"), n_inputs=3)
    assert result.verdict in (Verdict.OK, Verdict.NUMERICAL)
    sets = result.calibration.errors
    assert max(e.framework_error for errors in sets for e in errors) > 0  # float32 rounds
    assert result.max_abs_diff > 1e-7  # the study's rule would call it a mismatch


def test_ill_conditioned_model_is_unstable_not_semantic():
    # (x + 1e6) - 1e6: float32 keeps 1/16 of x's digits; float64 keeps them all.
    case = _case(lambda torch, x: (x + 1e6) - 1e6)
    result = run_difftest(case, get_converter("torch.onnx-torchscript"), n_inputs=3)
    assert result.verdict is Verdict.UNSTABLE and result.outcome is Outcome.OK
    assert result.calibration.verdict.unstable_sets == 3


def test_model_that_cannot_run_in_float64_falls_back_and_says_why():
    case = _case(lambda torch, x: torch.relu(x.float()))  # .float() forces float32 in the twin
    result = run_difftest(case, get_converter("torch.onnx-torchscript"), n_inputs=2)
    calibrated = result.calibration
    assert calibrated.verdict.reference == "framework-float32"
    assert "still computed in float32" in calibrated.reference_note
    assert result.verdict is Verdict.OK


def test_fixed_rule_only_skips_float64(relu_case):
    result = run_difftest(relu_case, FakeConverter(RELU_SCALED), n_inputs=2, rule=None)
    assert result.verdict is None and result.calibration is None
    assert "float64" not in result.durations
