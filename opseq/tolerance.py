"""Behavioural tolerance: when does a converted model compute something else, not just round else.

Three rules label stored measurements; none of them re-runs anything.

- `CalibratedRule`, the default: the source model also runs in float64, and ONNX is judged
  against how far the framework's *own* float32 result is from float64 on the same inputs.
  Per output and input set (measurements from `opseq.difftest.measure`, in units of float32
  rounding steps):

  1. ``semantic`` if ONNX cannot be compared with the framework (an output missing, another shape
     or dtype);
  2. ``unstable`` if the framework's float32 already disagrees with float64: NaN/Inf at other
     positions, other integer or bool values, or an error beyond ``unstable_units``; the inputs
     are ill-conditioned for the model and say nothing about the conversion;
  3. ``semantic`` if ONNX disagrees with the framework in NaN/Inf pattern or integer/bool values
     (where float64 agrees with the framework);
  4. else, with ``b = max(framework error, floor_units)``: ``ok`` if the ONNX error is at most
     ``b`` (as accurate as the framework), ``numerical`` if at most ``headroom * b`` (less
     accurate, within what reordering float32 arithmetic does), ``semantic`` beyond.

  A case is ``semantic`` when at least ``min_sets`` of its K input sets are (one-off
  disagreements at ties and discontinuities go both ways, so one set proves nothing); else
  ``unstable`` when fewer than ``min_sets`` sets were stable enough to judge; else ``numerical``
  if any set is, else ``ok``. Without a float64 reference, ONNX is judged against the framework's
  float32 with the fixed bound ``fallback_units`` (no ``unstable`` is possible), and the case
  says so.
- `Tolerance`: the fixed rules of earlier studies: max abs diff >= ``atol`` (and max rel diff >=
  ``rtol``), taken over the whole output; 1e-7 is the study's rule, 1e-3 NNSmith's.
- `AllClose`: element-wise ``|a - e| <= atol + rtol * |e|`` (numpy's and torch's ``allclose``),
  for the rules in `ALLCLOSE_RULES` whose excess every comparison stores.

Blame under the calibrated rule (`calibrated_blame`): each ONNX evaluator is judged against
float64 the same way; the optimiser is blamed when only optimised ONNX Runtime is semantic, the
runtime when both ONNX Runtime variants are and the reference evaluator is not, the converter
when every evaluator is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from opseq.errors import ConfigError
from opseq.outcomes import Blame

if TYPE_CHECKING:  # the measurements depend on these rules' keys, not the other way round
    from opseq.difftest.compare import OutputComparison
    from opseq.difftest.measure import OutputErrors

__all__ = [
    "ALLCLOSE_RULES",
    "STUDY_TOLERANCE",
    "AllClose",
    "CalibratedRule",
    "CaseVerdict",
    "Tolerance",
    "Verdict",
    "allclose_key",
    "calibrated_blame",
    "is_mismatch",
]

#: Element-wise (atol, rtol) rules whose excess every comparison stores: torch.testing's float32
#: default, numpy's default, and two looser ones (NNSmith compares at 1e-3).
ALLCLOSE_RULES: tuple[tuple[float, float], ...] = (
    (1e-5, 1.3e-6),
    (1e-8, 1e-5),
    (1e-4, 1e-4),
    (1e-3, 1e-3),
)


def allclose_key(atol: float, rtol: float) -> str:
    """The key of an element-wise rule in `OutputComparison.allclose`.

    Examples:
        >>> allclose_key(1e-3, 1e-3)
        '0.001/0.001'
    """
    return f"{atol:g}/{rtol:g}"


class Verdict(str, Enum):
    """What a conversion test's differences amount to (module docstring)."""

    OK = "ok"
    NUMERICAL = "numerical"
    SEMANTIC = "semantic"
    UNSTABLE = "unstable"


_SEVERITY = {Verdict.OK: 0, Verdict.NUMERICAL: 1, Verdict.UNSTABLE: 2, Verdict.SEMANTIC: 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class Tolerance:
    """A fixed rule over whole outputs; the differences themselves are kept.

    An output mismatches when its max absolute difference is at least `atol` and, if `rtol` is
    set, its max relative difference is also at least `rtol` (the two maxima may come from
    different elements: see `AllClose` for the element-wise rule).

    Attributes:
        atol: Absolute threshold; a difference equal to it is a mismatch.
        rtol: Optional relative threshold, required in addition to `atol`.
    """

    atol: float = 1e-7
    rtol: float | None = None

    def __post_init__(self) -> None:
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ConfigError(f"tolerance {name} must be a number >= 0, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {"atol": self.atol, "rtol": self.rtol}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tolerance:
        """Build a tolerance from `to_dict` output.

        Raises:
            ConfigError: If a threshold is negative or not a number.
        """
        rtol = data.get("rtol")
        return cls(atol=float(data.get("atol", 1e-7)), rtol=None if rtol is None else float(rtol))


#: The study's rule (Jajal et al., after PyTorch's exporter check): max abs diff >= 1e-7.
STUDY_TOLERANCE = Tolerance(atol=1e-7)


def is_mismatch(comparisons: Sequence[OutputComparison], tolerance: Tolerance) -> bool:
    """Tell whether the outputs disagree under the fixed rule `tolerance`.

    True when any output has a shape, dtype or NaN/Inf pattern disagreement (which includes an
    output only one side produced), or a max absolute difference ``>= tolerance.atol`` (and, when
    ``tolerance.rtol`` is set, a max relative difference ``>= tolerance.rtol`` as well).

    Examples:
        >>> import numpy as np
        >>> from opseq.difftest.compare import compare_outputs
        >>> (c,) = compare_outputs([np.zeros(2)], [np.array([0.0, 1e-7])], names=["y"])
        >>> is_mismatch([c], Tolerance(atol=1e-7)), is_mismatch([c], Tolerance(atol=1e-3))
        (True, False)
    """
    return any(_mismatches(c, tolerance) for c in comparisons)


def _mismatches(comparison: OutputComparison, tolerance: Tolerance) -> bool:
    if not comparison.structure_match:
        return True
    if not comparison.max_abs_diff >= tolerance.atol:
        return False
    return tolerance.rtol is None or comparison.max_rel_diff >= tolerance.rtol


@dataclass(frozen=True, slots=True, kw_only=True)
class AllClose:
    """The element-wise rule ``|actual - expected| <= atol + rtol * |expected|``.

    Only the rules of `ALLCLOSE_RULES` can be judged from stored comparisons.
    """

    atol: float
    rtol: float

    def __post_init__(self) -> None:
        if (self.atol, self.rtol) not in ALLCLOSE_RULES:
            known = ", ".join(f"{a:g}/{r:g}" for a, r in ALLCLOSE_RULES)
            raise ConfigError(
                f"allclose {self.atol:g}/{self.rtol:g} is not stored; stored rules: {known}"
            )

    def is_mismatch(self, comparisons: Sequence[OutputComparison]) -> bool:
        """Whether any element of any output is beyond the rule (or the structure disagrees)."""
        key = allclose_key(self.atol, self.rtol)
        return any(not c.structure_match or c.allclose.get(key, 0.0) > 1.0 for c in comparisons)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {"allclose_atol": self.atol, "allclose_rtol": self.rtol}


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseVerdict:
    """The calibrated verdict of one conversion test, with what it rests on.

    Attributes:
        verdict: The verdict.
        reference: ``"float64"``, or ``"framework-float32"`` when float64 was unavailable.
        sets: The number of input sets judged (K).
        semantic_sets: Input sets judged semantic.
        unstable_sets: Input sets judged unstable.
        required_headroom: The smallest headroom under which the case would not be semantic
            (the ``min_sets``-th largest of the per-set ratios of ONNX error to its bound among
            stable sets; ``inf`` for a structural or pattern disagreement in enough sets).
        per_set: The verdict of each input set.
    """

    verdict: Verdict
    reference: str
    sets: int
    semantic_sets: int
    unstable_sets: int
    required_headroom: float
    per_set: tuple[Verdict, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "verdict": self.verdict.value,
            "reference": self.reference,
            "sets": self.sets,
            "semantic_sets": self.semantic_sets,
            "unstable_sets": self.unstable_sets,
            "required_headroom": _json(self.required_headroom),
            "per_set": [v.value for v in self.per_set],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibratedRule:
    """The float64-calibrated rule (module docstring); defaults measured in README's Tolerance.

    Attributes:
        headroom: How many times the framework's own float32 error ONNX may deviate by and still
            be ``numerical``.
        floor_units: The smallest error bound, in units: the framework's error may be 0 by luck.
        unstable_units: A framework float32 error beyond this (in units) makes a set unstable.
        min_sets: Semantic input sets needed for a semantic case (capped at K).
        fallback_units: Without float64, ONNX within this many units of the framework's float32
            is ``numerical``; beyond is ``semantic``.
    """

    headroom: float = 64.0
    floor_units: float = 4.0
    unstable_units: float = 2.0**13
    min_sets: int = 3
    fallback_units: float = 2.0**13

    def __post_init__(self) -> None:
        if not self.headroom >= 1:
            raise ConfigError(f"headroom must be >= 1, got {self.headroom!r}")
        if self.min_sets < 1:
            raise ConfigError(f"min_sets must be >= 1, got {self.min_sets!r}")
        for name in ("floor_units", "unstable_units", "fallback_units"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "headroom": self.headroom,
            "floor_units": self.floor_units,
            "unstable_units": self.unstable_units,
            "min_sets": self.min_sets,
            "fallback_units": self.fallback_units,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibratedRule:
        """Build a rule from `to_dict` output (missing keys take the defaults)."""
        defaults = cls()
        return cls(**{k: type(getattr(defaults, k))(data.get(k, getattr(defaults, k)))
                      for k in defaults.to_dict()})  # fmt: skip

    def judge_output(self, errors: OutputErrors) -> tuple[Verdict, float]:
        """The verdict of one output in one input set, and its ONNX error over its bound."""
        if errors.structure is not None:
            return Verdict.SEMANTIC, float("inf")
        if errors.framework_error is None:
            return self._judge_without_reference(errors)
        if errors.reference_disagrees is not None or errors.framework_error > self.unstable_units:
            return Verdict.UNSTABLE, 0.0
        if errors.onnx_disagrees is not None:
            return Verdict.SEMANTIC, float("inf")
        if errors.kind != "float":
            return Verdict.OK, 0.0
        bound = max(errors.framework_error, self.floor_units)
        ratio = errors.onnx_error / bound
        if ratio <= 1:
            return Verdict.OK, ratio
        return (Verdict.NUMERICAL if ratio <= self.headroom else Verdict.SEMANTIC), ratio

    def _judge_without_reference(self, errors: OutputErrors) -> tuple[Verdict, float]:
        if errors.onnx_disagrees is not None:
            return Verdict.SEMANTIC, float("inf")
        ratio = errors.onnx_error / self.fallback_units
        if errors.onnx_error <= self.floor_units:
            return Verdict.OK, ratio
        return (Verdict.NUMERICAL if ratio <= 1 else Verdict.SEMANTIC), ratio

    def judge_set(self, errors: Sequence[OutputErrors]) -> tuple[Verdict, float]:
        """The verdict of one input set: its most severe output (semantic > unstable > ...)."""
        judged = [self.judge_output(e) for e in errors] or [(Verdict.OK, 0.0)]
        verdict = max((v for v, _ in judged), key=_SEVERITY.__getitem__)
        ratio = max((r for v, r in judged if v is not Verdict.UNSTABLE), default=0.0)
        return verdict, ratio

    def judge(self, sets: Sequence[Sequence[OutputErrors]]) -> CaseVerdict:
        """The verdict of a case from the errors of each input set (module docstring).

        Examples:
            >>> from opseq.difftest.measure import OutputErrors
            >>> ok = OutputErrors(kind="float", framework_error=3.0, onnx_error=2.0)
            >>> off = OutputErrors(kind="float", framework_error=3.0, onnx_error=900.0)
            >>> rule = CalibratedRule(headroom=64, min_sets=3)
            >>> rule.judge([[off], [off], [ok]] + [[ok]] * 7).verdict.value
            'numerical'
            >>> rule.judge([[off]] * 3 + [[ok]] * 7).verdict.value
            'semantic'
        """
        judged = [self.judge_set(errors) for errors in sets]
        per_set = tuple(v for v, _ in judged)
        needed = min(self.min_sets, len(sets)) if sets else 1
        semantic = per_set.count(Verdict.SEMANTIC)
        unstable = per_set.count(Verdict.UNSTABLE)
        if semantic >= needed:
            verdict = Verdict.SEMANTIC
        elif len(sets) - unstable < needed:
            verdict = Verdict.UNSTABLE
        elif any(v in (Verdict.NUMERICAL, Verdict.SEMANTIC) for v in per_set):
            verdict = Verdict.NUMERICAL
        else:
            verdict = Verdict.OK
        ratios = sorted((r for v, r in judged if v is not Verdict.UNSTABLE), reverse=True)
        required = ratios[needed - 1] if len(ratios) >= needed else 0.0
        reference = (
            "framework-float32"
            if any(e.framework_error is None for errors in sets for e in errors)
            else "float64"
        )
        return CaseVerdict(
            verdict=verdict,
            reference=reference,
            sets=len(sets),
            semantic_sets=semantic,
            unstable_sets=unstable,
            required_headroom=required,
            per_set=per_set,
        )


def calibrated_blame(
    optimised: Verdict, unoptimised: Verdict | None, reference_evaluator: Verdict | None
) -> Blame:
    """Attribute a semantic inconsistency from each ONNX evaluator's own calibrated verdict.

    Args:
        optimised: ONNX Runtime with all graph optimisations (the result that was judged).
        unoptimised: ONNX Runtime without graph optimisations, or None if it did not run.
        reference_evaluator: The ONNX reference evaluator, or None if it did not run.

    Returns:
        ``runtime-optimizer`` when only optimised ONNX Runtime is semantic; ``runtime`` when
        both ONNX Runtime variants are and the reference evaluator is not; ``converter`` when
        all three are; ``unknown`` otherwise.

    Examples:
        >>> calibrated_blame(Verdict.SEMANTIC, Verdict.SEMANTIC, Verdict.SEMANTIC).value
        'converter'
        >>> calibrated_blame(Verdict.SEMANTIC, Verdict.NUMERICAL, None).value
        'runtime-optimizer'
    """
    if optimised is not Verdict.SEMANTIC or unoptimised is None:
        return Blame.UNKNOWN
    if unoptimised in (Verdict.OK, Verdict.NUMERICAL):
        return Blame.RUNTIME_OPTIMIZER
    if unoptimised is not Verdict.SEMANTIC or reference_evaluator is None:
        return Blame.UNKNOWN
    if reference_evaluator in (Verdict.OK, Verdict.NUMERICAL):
        return Blame.RUNTIME
    return Blame.CONVERTER if reference_evaluator is Verdict.SEMANTIC else Blame.UNKNOWN


def _json(value: float) -> float | str:
    return value if value == value and abs(value) != float("inf") else str(value)
