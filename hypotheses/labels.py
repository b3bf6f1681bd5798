"""Labels under a rule, recomputed from the measurements a corpus stores (DESIGN.md: Tolerance).

Three kinds of rule (`opseq.tolerance`), all judged from stored numbers:

- `CalibratedRule`, the default: a model is a *behavioural inconsistency* when its float64-
  calibrated verdict is ``semantic``; ``unstable`` models (the framework's own float32 disagrees
  with float64) are left out, as are rows without calibrated measurements;
- `Tolerance`: the fixed rules of earlier studies, output by output, exactly as the harness
  labelled (`opseq.tolerance.is_mismatch`), so a report at the recorded tolerance reproduces the
  recorded outcomes;
- `AllClose`: the element-wise rules whose excess the harness stores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from opseq.difftest.calibration import Calibration
from opseq.difftest.compare import OutputComparison
from opseq.tolerance import AllClose, CalibratedRule, Tolerance, Verdict, is_mismatch

__all__ = [
    "SWEEP_RULES",
    "SWEEP_TOLERANCES",
    "Labels",
    "Rule",
    "Tolerance",
    "describe_rule",
    "describe_tolerance",
    "label_mismatches",
    "label_rows",
    "rule_from_dict",
    "rule_to_dict",
    "rule_kind",
]

Rule = Tolerance | AllClose | CalibratedRule

#: The absolute tolerances of the sweep: the study's 1e-7 up to 1e-2 (NNSmith uses 1e-3), plus
#: a relative rule: at least 1e-5 absolute *and* 1e-3 relative (torch.testing's float32 scale).
SWEEP_TOLERANCES: tuple[Tolerance, ...] = (
    *(Tolerance(atol=10.0**-k) for k in range(7, 1, -1)),
    Tolerance(atol=1e-5, rtol=1e-3),
)

#: The whole sweep: the calibrated rule at its default and at other headrooms and consistency
#: requirements, the fixed rules, and the element-wise rules.
SWEEP_RULES: tuple[Rule, ...] = (
    CalibratedRule(),
    CalibratedRule(headroom=16.0),
    CalibratedRule(headroom=256.0),
    CalibratedRule(min_sets=1),
    CalibratedRule(min_sets=5),
    *SWEEP_TOLERANCES,
    AllClose(atol=1e-5, rtol=1.3e-6),
    AllClose(atol=1e-4, rtol=1e-4),
    AllClose(atol=1e-3, rtol=1e-3),
)

_NO_CALIBRATION = "no float64-calibrated measurements recorded"


@dataclass(frozen=True, slots=True, kw_only=True)
class Labels:
    """The label of every row under one rule, and which rows the rule cannot label.

    Attributes:
        rule: The rule.
        mismatch: True = inconsistent (semantic, or mismatching under a fixed rule).
        usable: False for rows the rule leaves out (``unstable``, or not calibrated).
        left_out: Rows left out, by reason.
        verdicts: Under a `CalibratedRule`, the count of each verdict; else empty.
    """

    rule: Rule
    mismatch: np.ndarray
    usable: np.ndarray
    left_out: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)


def label_rows(
    outputs: Sequence[Sequence[OutputComparison]],
    calibrations: Sequence[Calibration | None],
    rule: Rule,
) -> Labels:
    """Label every row under `rule` from its stored measurements.

    Args:
        outputs: Per row, the comparison of each output (framework vs ONNX Runtime).
        calibrations: Per row, the calibrated measurements or None (may be empty: none at all).
        rule: The rule.

    Returns:
        The labels.
    """
    count = len(outputs)
    if not isinstance(rule, CalibratedRule):
        mismatch = (
            label_mismatches(outputs, rule)
            if isinstance(rule, Tolerance)
            else np.fromiter((rule.is_mismatch(c) for c in outputs), dtype=bool, count=count)
        )
        return Labels(rule=rule, mismatch=mismatch, usable=np.ones(count, dtype=bool))
    verdicts = [
        None if i >= len(calibrations) or calibrations[i] is None
        else rule.judge(calibrations[i].errors).verdict
        for i in range(count)
    ]  # fmt: skip
    mismatch = np.array([v is Verdict.SEMANTIC for v in verdicts], dtype=bool)
    usable = np.array([v is not None and v is not Verdict.UNSTABLE for v in verdicts], dtype=bool)
    left_out = Counter(
        _NO_CALIBRATION if v is None else "unstable (float32 and float64 of the source disagree)"
        for v in verdicts
        if v is None or v is Verdict.UNSTABLE
    )
    counted = Counter(v.value for v in verdicts if v is not None)
    return Labels(
        rule=rule,
        mismatch=mismatch,
        usable=usable,
        left_out=dict(left_out),
        verdicts={v.value: counted.get(v.value, 0) for v in Verdict},
    )


def label_mismatches(
    outputs: Sequence[Sequence[OutputComparison]], tolerance: Tolerance
) -> np.ndarray:
    """Label each conversion test: True when its outputs mismatch under the fixed `tolerance`.

    Args:
        outputs: Per test, the comparison of each output.
        tolerance: The rule.

    Returns:
        A boolean array, one entry per test.
    """
    return np.fromiter(
        (is_mismatch(comparisons, tolerance) for comparisons in outputs),
        dtype=bool,
        count=len(outputs),
    )


def describe_rule(rule: Rule) -> str:
    """A short name of a rule.

    Examples:
        >>> describe_rule(CalibratedRule())
        'calibrated (headroom 64, 3 sets)'
        >>> describe_rule(AllClose(atol=1e-3, rtol=1e-3))
        'allclose 0.001/0.001'
        >>> describe_rule(Tolerance(atol=1e-7))
        'abs >= 1e-07'
    """
    if isinstance(rule, CalibratedRule):
        return f"calibrated (headroom {rule.headroom:g}, {rule.min_sets} sets)"
    if isinstance(rule, AllClose):
        return f"allclose {rule.atol:g}/{rule.rtol:g}"
    return describe_tolerance(rule)


def describe_tolerance(tolerance: Tolerance) -> str:
    """A short name of a fixed rule.

    Examples:
        >>> describe_tolerance(Tolerance(atol=1e-7))
        'abs >= 1e-07'
        >>> describe_tolerance(Tolerance(atol=1e-5, rtol=1e-3))
        'abs >= 1e-05 and rel >= 0.001'
    """
    text = f"abs >= {tolerance.atol:g}"
    return text if tolerance.rtol is None else f"{text} and rel >= {tolerance.rtol:g}"


def rule_kind(rule: Rule) -> str:
    """``calibrated``, ``fixed`` or ``allclose``."""
    if isinstance(rule, CalibratedRule):
        return "calibrated"
    return "allclose" if isinstance(rule, AllClose) else "fixed"


def rule_to_dict(rule: Rule) -> dict:
    """The rule's parameters with its kind (`rule_from_dict` reads it back)."""
    return {"kind": rule_kind(rule), **rule.to_dict()}


def rule_from_dict(data: dict) -> Rule:
    """Invert `rule_to_dict`."""
    kind = data.get("kind", "fixed")
    values = {k: v for k, v in data.items() if k != "kind"}
    if kind == "calibrated":
        return CalibratedRule.from_dict(values)
    if kind == "allclose":
        return AllClose(atol=values["allclose_atol"], rtol=values["allclose_rtol"])
    return Tolerance.from_dict(values)
