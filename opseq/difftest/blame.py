"""Blame under a fixed tolerance: re-run a mismatching model in other ONNX evaluators.

ONNX Runtime is re-run without graph optimisations and, unless that already agrees with the
framework, the model runs in the ONNX reference evaluator (skipped, with the reason recorded, if
it raises); `decide_blame` turns which pairs of evaluators mismatch into a `Blame`. Under the
calibrated rule, blame is decided by `opseq.difftest.calibration` instead.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence

import numpy as np

from opseq.difftest.compare import (
    OutputComparison,
    compare_outputs,
    merge_comparisons,
    to_json_float,
)
from opseq.difftest.execute import create_session, run_onnxruntime, run_reference
from opseq.outcomes import Blame
from opseq.tolerance import Tolerance, is_mismatch

__all__ = ["BLAME_PAIRS", "decide_blame", "fixed_rule_blame"]

Outputs = list[list[np.ndarray]]

# Blame evidence: pairs of evaluators compared, keyed as in `DiffTestResult.blame_evidence`.
BLAME_PAIRS: dict[str, tuple[str, str]] = {
    "framework_vs_noopt": ("framework", "noopt"),
    "framework_vs_reference": ("framework", "reference"),
    "onnxruntime_vs_noopt": ("onnxruntime", "noopt"),
    "onnxruntime_vs_reference": ("onnxruntime", "reference"),
    "noopt_vs_reference": ("noopt", "reference"),
}


def decide_blame(
    *,
    framework_vs_noopt: bool | None,
    framework_vs_reference: bool | None,
    onnxruntime_vs_noopt: bool | None,
    onnxruntime_vs_reference: bool | None,
    noopt_vs_reference: bool | None,
) -> Blame:
    """Attribute a mismatch between the framework and optimised ONNX Runtime.

    Each argument says whether that pair of evaluators mismatches under the tolerance, or is
    None when one of them did not run. ``noopt`` is ONNX Runtime without graph optimisations,
    ``reference`` the ONNX reference evaluator.

    Args:
        framework_vs_noopt: Framework vs unoptimised ONNX Runtime.
        framework_vs_reference: Framework vs the reference evaluator.
        onnxruntime_vs_noopt: Optimised vs unoptimised ONNX Runtime.
        onnxruntime_vs_reference: Optimised ONNX Runtime vs the reference evaluator.
        noopt_vs_reference: Unoptimised ONNX Runtime vs the reference evaluator.

    Returns:
        ``runtime-optimizer`` if unoptimised ONNX Runtime agrees with the framework; else
        ``runtime`` if the reference evaluator does; else ``converter`` if all three ONNX
        evaluators ran and agree with each other; else ``unknown``.

    Examples:
        >>> decide_blame(framework_vs_noopt=True, framework_vs_reference=None,
        ...              onnxruntime_vs_noopt=False, onnxruntime_vs_reference=None,
        ...              noopt_vs_reference=None).value
        'unknown'
    """
    if framework_vs_noopt is False:
        return Blame.RUNTIME_OPTIMIZER
    if framework_vs_reference is False:
        return Blame.RUNTIME
    evaluators = (onnxruntime_vs_noopt, onnxruntime_vs_reference, noopt_vs_reference)
    if all(flag is False for flag in evaluators):
        return Blame.CONVERTER
    return Blame.UNKNOWN


def fixed_rule_blame(model, feeds, expected, actual, names, tolerance: Tolerance):
    """Re-run the model without optimisations and in the reference evaluator; decide blame."""
    outputs: dict[str, Outputs] = {"framework": expected, "onnxruntime": actual}
    skipped: dict[str, str] = {}
    _run_evaluator(
        outputs,
        skipped,
        "noopt",
        "onnxruntime without optimisations",
        lambda: run_onnxruntime(create_session(model, optimize=False), feeds),
    )
    measured = _measure_pairs(outputs, names, tolerance)
    if measured["framework_vs_noopt"] is not None and not measured["framework_vs_noopt"][1]:
        skipped["reference"] = "not needed: onnxruntime without optimisations agrees"
    else:
        _run_evaluator(
            outputs,
            skipped,
            "reference",
            "reference evaluator",
            lambda: run_reference(model, feeds),
        )
        measured = _measure_pairs(outputs, names, tolerance)
    blame = decide_blame(**{k: None if v is None else v[1] for k, v in measured.items()})
    evidence = {
        "max_abs_diff": {
            k: None if v is None else to_json_float(v[0]) for k, v in measured.items()
        },
        "mismatch": {k: None if v is None else v[1] for k, v in measured.items()},
        "skipped": skipped,
    }
    return blame, evidence


def _run_evaluator(outputs, skipped, key: str, label: str, call: Callable[[], Outputs]) -> None:
    try:
        outputs[key] = call()
    except MemoryError:
        raise
    except Exception as exc:  # an evaluator that fails cannot take part in blame
        lines = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()
        skipped[key] = f"{label} failed: {lines[0] if lines else type(exc).__name__}"[:500]


def _measure_pairs(outputs, names, tolerance) -> dict[str, tuple[float | None, bool] | None]:
    measured: dict[str, tuple[float | None, bool] | None] = {}
    for key, (first, second) in BLAME_PAIRS.items():
        if first in outputs and second in outputs:
            comparisons = _compare(outputs[first], outputs[second], names)
            measured[key] = (
                _overall_max(comparisons, "max_abs_diff"),
                is_mismatch(comparisons, tolerance),
            )
        else:
            measured[key] = None
    return measured


def _compare(expected: Outputs, actual: Outputs, names: Sequence[str]):
    per_input = [compare_outputs(e, a, names=names) for e, a in zip(expected, actual, strict=True)]
    return merge_comparisons(per_input)


def _overall_max(comparisons: Sequence[OutputComparison], attribute: str) -> float | None:
    return max((getattr(c, attribute) for c in comparisons), default=None)
