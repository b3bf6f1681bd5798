"""The differential-testing oracle: convert one case, run both sides, compare, and attribute blame.

`run_difftest` goes through the stages in order and stops at the first that fails; a failure of
the system under test (converter, ONNX Runtime, the framework model) is recorded as a
`StageFailure` on the result, never raised. Only a bug in opseq (or a `MemoryError`, left for the
worker to handle) propagates.

Stages and outcomes:

1. convert: ``converter.convert`` raises -> ``convert_fail``.
2. load: ONNX Runtime refuses the model -> ``load_fail``.
3. run: ONNX Runtime, then the framework, on the ``n_inputs`` input sets; either raising ->
   ``run_fail`` (a framework failure says so: ``"framework (torch) failed: ..."``).
4. compare: raw differences per output, merged over the input sets; then the label. With a
   `CalibratedRule` (the default) the source model also runs in float64 and the case gets a
   verdict (`opseq.difftest.calibration`): ``mismatch`` means ``semantic``, and blame is
   attributed under the same rule. With ``rule=None`` the fixed `Tolerance` labels
   ``ok``/``mismatch`` by `is_mismatch`, with the blame below.

Blame under the fixed rule, for mismatches only (see `Blame` and `decide_blame`): ONNX Runtime is
re-run without graph optimisations, and, unless that already agrees with the framework, the model
is run in the ONNX reference evaluator (skipped, with the reason recorded, if the evaluator
raises). Both re-run only the input set on which the framework and ONNX Runtime disagree most
(``blame_evidence["input_set"]``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import onnx

from opseq.difftest.blame import BLAME_PAIRS, decide_blame, fixed_rule_blame
from opseq.difftest.calibration import Calibration, calibrate
from opseq.difftest.compare import (
    OutputComparison,
    compare_outputs,
    from_json_float,
    merge_comparisons,
    to_json_float,
)
from opseq.difftest.convert import Converter, default_opset
from opseq.difftest.execute import (
    create_session,
    median_latency_ms,
    run_framework,
    run_onnxruntime,
)
from opseq.errors import ConfigError
from opseq.outcomes import Blame, Outcome, Stage
from opseq.sources.base import ModelCase, case_inputs, check_strategy
from opseq.tolerance import CalibratedRule, Tolerance, Verdict, is_mismatch

__all__ = ["BLAME_PAIRS", "DiffTestResult", "StageFailure", "decide_blame", "run_difftest"]

SCHEMA_VERSION = 1
MESSAGE_LIMIT = 500
TRACEBACK_LIMIT = 20_000

_T = TypeVar("_T")
Outputs = list[list[np.ndarray]]


@dataclass(frozen=True, slots=True, kw_only=True)
class StageFailure:
    """An exception at one stage of a conversion test.

    Attributes:
        stage: Where it happened.
        message: ``"<ExceptionType>: <first line of the message>"``, at most 500 characters,
            possibly prefixed with who failed (``"framework (torch) failed: "``).
        traceback: The formatted traceback; only its last 20,000 characters are kept.
    """

    stage: Stage
    message: str
    traceback: str

    @classmethod
    def from_exception(cls, stage: Stage, exc: BaseException, *, prefix: str = "") -> StageFailure:
        """Describe `exc`, raised at `stage`."""
        message = (prefix + _exception_line(exc))[:MESSAGE_LIMIT]
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if len(trace) > TRACEBACK_LIMIT:
            trace = "...[truncated]\n" + trace[-TRACEBACK_LIMIT:]
        return cls(stage=stage, message=message, traceback=trace)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {"stage": self.stage.value, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageFailure:
        """Build a failure from `to_dict` output."""
        return cls(stage=Stage(data["stage"]), message=data["message"], traceback=data["traceback"])


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffTestResult:
    """The outcome of one conversion test, with every measurement behind it.

    Attributes:
        outcome: ok, mismatch, or the stage that failed (or timeout/crash, set by a worker).
        blame: Who a mismatch is attributed to; None unless the outcome is a mismatch and
            blame was attributed.
        failure: The exception that ended the test, for failure outcomes.
        comparisons: Framework (expected) vs ONNX Runtime (actual), one per output, merged over
            the input sets.
        max_abs_diff: Maximum over `comparisons` (``inf`` on a shape disagreement); None when
            nothing was compared.
        max_rel_diff: Likewise for the relative difference.
        tolerance: The fixed rule; it labelled ok/mismatch when `calibration` is None.
        verdict: The calibrated verdict (None under the fixed rule, or for failures).
        calibration: Everything the calibrated verdict rests on (None likewise).
        opset: The default-domain opset the converted model really imports (may differ from the
            one asked for).
        producer_name: ``producer_name`` of the converted model.
        onnx_size: Serialised size of the converted model, in bytes.
        latency_framework_ms: Median latency of the framework on the first input set.
        latency_onnxruntime_ms: Median latency of ONNX Runtime (optimised, single-threaded).
        seed: Seed of the input sets.
        n_inputs: Number of input sets.
        input_strategy: How the input sets were drawn (`opseq.sources.base.INPUT_STRATEGIES`).
        versions: Package versions: onnx, onnxruntime and the converter's.
        durations: Seconds spent per stage: ``convert``, ``load``, ``run``, ``compare``,
            and ``blame``, ``latency`` when they ran.
        blame_evidence: Empty unless blame was attributed; then ``max_abs_diff`` and
            ``mismatch`` map each key of `BLAME_PAIRS` (e.g. ``framework_vs_noopt``) to the
            max abs difference and mismatch flag of that pair, or None when not run, and
            ``skipped`` maps ``noopt``/``reference`` to why it did not run.
        quality: The case's ``quality`` measurement of the converted model (trained sources),
            or ``{"error": ...}`` when it failed; None when the case has none or the test
            failed earlier.
        model: The converted model; not serialised by `to_dict`.
    """

    outcome: Outcome
    blame: Blame | None = None
    failure: StageFailure | None = None
    comparisons: tuple[OutputComparison, ...] = ()
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)
    verdict: Verdict | None = None
    calibration: Calibration | None = None
    opset: int | None = None
    producer_name: str | None = None
    onnx_size: int | None = None
    latency_framework_ms: float | None = None
    latency_onnxruntime_ms: float | None = None
    seed: int = 0
    n_inputs: int = 0
    input_strategy: str = "normal"
    versions: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    blame_evidence: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, Any] | None = None
    model: onnx.ModelProto | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict without the model (non-finite floats as strings)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "outcome": self.outcome.value,
            "blame": None if self.blame is None else self.blame.value,
            "failure": None if self.failure is None else self.failure.to_dict(),
            "comparisons": [c.to_dict() for c in self.comparisons],
            "max_abs_diff": to_json_float(self.max_abs_diff),
            "max_rel_diff": to_json_float(self.max_rel_diff),
            "tolerance": self.tolerance.to_dict(),
            "verdict": None if self.verdict is None else self.verdict.value,
            "oracle": None if self.calibration is None else self.calibration.to_dict(),
            "opset": self.opset,
            "producer_name": self.producer_name,
            "onnx_size": self.onnx_size,
            "latency_framework_ms": to_json_float(self.latency_framework_ms),
            "latency_onnxruntime_ms": to_json_float(self.latency_onnxruntime_ms),
            "seed": self.seed,
            "n_inputs": self.n_inputs,
            "input_strategy": self.input_strategy,
            "versions": dict(self.versions),
            "durations": dict(self.durations),
            "blame_evidence": self.blame_evidence,
            "quality": self.quality,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffTestResult:
        """Build a result from `to_dict` output (without the model)."""
        return cls(
            outcome=Outcome(data["outcome"]),
            blame=None if data.get("blame") is None else Blame(data["blame"]),
            failure=None
            if data.get("failure") is None
            else StageFailure.from_dict(data["failure"]),
            comparisons=tuple(OutputComparison.from_dict(c) for c in data.get("comparisons", ())),
            max_abs_diff=from_json_float(data.get("max_abs_diff")),
            max_rel_diff=from_json_float(data.get("max_rel_diff")),
            tolerance=Tolerance.from_dict(data.get("tolerance", {})),
            verdict=None if data.get("verdict") is None else Verdict(data["verdict"]),
            calibration=None
            if data.get("oracle") is None
            else Calibration.from_dict(data["oracle"]),
            opset=data.get("opset"),
            producer_name=data.get("producer_name"),
            onnx_size=data.get("onnx_size"),
            latency_framework_ms=from_json_float(data.get("latency_framework_ms")),
            latency_onnxruntime_ms=from_json_float(data.get("latency_onnxruntime_ms")),
            seed=int(data.get("seed", 0)),
            n_inputs=int(data.get("n_inputs", 0)),
            input_strategy=str(data.get("input_strategy", "normal")),
            versions=dict(data.get("versions", {})),
            durations=dict(data.get("durations", {})),
            blame_evidence=dict(data.get("blame_evidence", {})),
            quality=data.get("quality") if isinstance(data.get("quality"), dict) else None,
        )


def run_difftest(
    case: ModelCase,
    converter: Converter,
    *,
    opset: int = 17,
    n_inputs: int = 10,
    seed: int = 0,
    tolerance: Tolerance = Tolerance(),  # noqa: B008 -- frozen, so a shared default is safe
    rule: CalibratedRule | None = CalibratedRule(),  # noqa: B008 -- frozen likewise
    attribute_blame: bool = True,
    latency_repeats: int = 5,
    input_strategy: str = "normal",
) -> DiffTestResult:
    """Convert `case` with `converter` and test the ONNX model against the framework.

    Args:
        case: The framework model and its inputs.
        converter: The converter under test.
        opset: The default-domain opset to ask the converter for.
        n_inputs: How many random input sets to compare on (at least 1).
        seed: Seed of the input sets (`opseq.sources.base.case_inputs`).
        tolerance: The fixed rule; it labels ok/mismatch only when `rule` is None, and its raw
            measurements are kept either way.
        rule: The float64-calibrated rule that labels mismatch = semantic; None for the fixed
            rule alone (no float64 run).
        attribute_blame: Re-run a mismatching model other ways to attribute blame.
        latency_repeats: Timed runs of the first input set, per side; 0 skips timing.
        input_strategy: How to draw the input sets (`opseq.sources.base.case_inputs`).

    Returns:
        The result; failures of the converter, ONNX Runtime or the framework are outcomes.

    Raises:
        ConfigError: If `n_inputs` is below 1 or `input_strategy` is unknown.
    """
    if n_inputs < 1:
        raise ConfigError(f"n_inputs must be >= 1, got {n_inputs}")
    check_strategy(input_strategy)
    durations: dict[str, float] = {}
    common: dict[str, Any] = {
        "tolerance": tolerance,
        "seed": seed,
        "n_inputs": n_inputs,
        "input_strategy": input_strategy,
        "versions": _versions(converter),
        "durations": durations,
    }
    model, error = _attempt(durations, "convert", lambda: converter.convert(case, opset=opset))
    if error is not None:
        return _failed(
            Outcome.CONVERT_FAIL, StageFailure.from_exception(Stage.CONVERT, error), common
        )
    common.update(_model_facts(model))
    session, error = _attempt(durations, "load", lambda: create_session(model))
    if error is not None:
        return _failed(Outcome.LOAD_FAIL, StageFailure.from_exception(Stage.LOAD, error), common)
    feeds = case_inputs(case, count=n_inputs, seed=seed, strategy=input_strategy)
    outputs, failure = _run_both(case, session, feeds, durations)
    if failure is not None:
        return _failed(Outcome.RUN_FAIL, failure, common)
    expected, actual = outputs
    names = [o.name for o in session.get_outputs()]
    result = _judge(
        model,
        feeds,
        expected,
        actual,
        names=names,
        tolerance=tolerance,
        attribute_blame=attribute_blame and rule is None,
        durations=durations,
    )
    if rule is not None:
        calibration = calibrate(
            case,
            model,
            feeds,
            expected,
            actual,
            names=names,
            rule=rule,
            attribute_blame=attribute_blame,
            durations=durations,
        )
        semantic = calibration.verdict.verdict is Verdict.SEMANTIC
        result.update(
            outcome=Outcome.MISMATCH if semantic else Outcome.OK,
            blame=calibration.blame,
            blame_evidence={},
            verdict=calibration.verdict.verdict,
            calibration=calibration,
        )
    latencies = _latencies(case, session, feeds[:1], latency_repeats, durations)
    quality = _quality(case, model, durations)
    return DiffTestResult(**result, **latencies, quality=quality, **common)


def _quality(case: ModelCase, model: onnx.ModelProto, durations) -> dict[str, Any] | None:
    """The case's own measurement of the converted model; a failure of it is recorded."""
    if case.quality is None:
        return None
    value, error = _attempt(durations, "quality", lambda: case.quality(model))
    if error is not None:
        return {"error": _exception_line(error)[:MESSAGE_LIMIT]}
    return value


def _exception_line(exc: BaseException) -> str:
    """The first line of ``Type: message``."""
    lines = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _attempt(
    durations: dict[str, float], key: str, call: Callable[[], _T]
) -> tuple[_T | None, Exception | None]:
    """Call `call`, adding its wall time to ``durations[key]``; return (value, exception)."""
    start = time.perf_counter()
    try:
        return call(), None
    except MemoryError:
        raise
    except Exception as exc:  # a failure of the system under test is a result
        return None, exc
    finally:
        durations[key] = durations.get(key, 0.0) + time.perf_counter() - start


def _run_both(case, session, feeds, durations):
    actual, error = _attempt(durations, "run", lambda: run_onnxruntime(session, feeds))
    if error is not None:
        return None, StageFailure.from_exception(Stage.RUN, error)
    expected, error = _attempt(durations, "run", lambda: run_framework(case, feeds))
    if error is not None:
        prefix = f"framework ({case.framework.value}) failed: "
        return None, StageFailure.from_exception(Stage.RUN, error, prefix=prefix)
    return (expected, actual), None


def _judge(model, feeds, expected, actual, *, names, tolerance, attribute_blame, durations):
    start = time.perf_counter()
    per_input = [compare_outputs(e, a, names=names) for e, a in zip(expected, actual, strict=True)]
    comparisons = merge_comparisons(per_input)
    mismatch = is_mismatch(comparisons, tolerance)
    durations["compare"] = time.perf_counter() - start
    blame, evidence = None, {}
    if mismatch and attribute_blame:
        # Blame re-runs the model (the reference evaluator is slow numpy) on one input set: the
        # one where the framework and ONNX Runtime disagree most.
        worst = max(
            range(len(per_input)), key=lambda i: _worst_disagreement(per_input[i], tolerance)
        )
        start = time.perf_counter()
        blame, evidence = fixed_rule_blame(
            model,
            feeds[worst : worst + 1],
            expected[worst : worst + 1],
            actual[worst : worst + 1],
            names,
            tolerance,
        )
        evidence["input_set"] = worst
        durations["blame"] = time.perf_counter() - start
    return {
        "outcome": Outcome.MISMATCH if mismatch else Outcome.OK,
        "blame": blame,
        "blame_evidence": evidence,
        "comparisons": comparisons,
        "max_abs_diff": _overall_max(comparisons, "max_abs_diff"),
        "max_rel_diff": _overall_max(comparisons, "max_rel_diff"),
    }


def _worst_disagreement(comparisons: Sequence[OutputComparison], tolerance: Tolerance) -> tuple:
    """Sort key: structural mismatches first, then the largest finite max abs diff."""
    largest = _overall_max(comparisons, "max_abs_diff") or 0.0
    return (is_mismatch(comparisons, tolerance), largest if largest == largest else float("inf"))


def _overall_max(comparisons: Sequence[OutputComparison], attribute: str) -> float | None:
    return max((getattr(c, attribute) for c in comparisons), default=None)


def _latencies(case, session, first, repeats: int, durations) -> dict[str, float | None]:
    if repeats < 1:
        return {"latency_framework_ms": None, "latency_onnxruntime_ms": None}
    start = time.perf_counter()
    framework_ms = _latency(lambda: run_framework(case, first), repeats)
    onnxruntime_ms = _latency(lambda: run_onnxruntime(session, first), repeats)
    durations["latency"] = time.perf_counter() - start
    return {"latency_framework_ms": framework_ms, "latency_onnxruntime_ms": onnxruntime_ms}


def _latency(call: Callable[[], object], repeats: int) -> float | None:
    """Median latency of `call`, or None if it fails (it just succeeded on the same input)."""
    value, _ = _attempt({}, "latency", lambda: median_latency_ms(call, repeats=repeats))
    return value


def _failed(outcome: Outcome, failure: StageFailure, common: dict[str, Any]) -> DiffTestResult:
    return DiffTestResult(outcome=outcome, failure=failure, **common)


def _model_facts(model: onnx.ModelProto) -> dict[str, Any]:
    return {
        "opset": default_opset(model),
        "producer_name": model.producer_name or None,
        "onnx_size": model.ByteSize(),
        "model": model,
    }


def _versions(converter: Converter) -> dict[str, str]:
    versions = {}
    for name in ("onnx", "onnxruntime"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return {**versions, **converter.versions()}
