"""Compare the outputs of two ways of running a model: raw differences, measured and stored.

Raw differences are always measured and stored (`OutputComparison`); whether they amount to a
*mismatch* is a separate decision under a rule of `opseq.tolerance`, so thresholds can be
re-applied later without re-running anything.

Conventions:

- Differences are computed in float64 (complex128 for complex outputs); bool and integer outputs
  are compared as numbers, so their absolute difference is a float.
- The relative difference at a position is ``|actual - expected| / max(|expected|, tiny)`` with
  ``tiny`` the smallest normal float64, so an expected zero makes any difference huge.
- NaN and infinite values are compared as *patterns* (same positions; for infinities the same
  sign) and are excluded from the numeric differences, which are taken where both sides are finite.
- When the shapes disagree nothing can be compared position by position: the numeric differences
  are ``inf`` and the NaN/Inf flags are ``False``.
- An output that only one side produced is compared against nothing: its missing side has shape
  ``()`` and dtype ``"missing"``, ``shape_match`` and ``dtype_match`` are ``False`` and the
  differences are ``inf``. So a differing output count always labels a mismatch.
- ``allclose`` stores, for each element-wise rule of `ALLCLOSE_RULES`, the largest
  ``|actual - expected| / (atol + rtol * |expected|)`` over elements finite on both sides: the
  rule passes when it is at most 1. ``to_dict`` writes it as a list in the order of the rules.
- Differences are kept to 7 significant digits (float32's precision), so labelling a stored
  comparison again gives the label it was given when it was measured.
- In ``to_dict``, non-finite floats are written as the strings ``"inf"``, ``"-inf"`` and ``"nan"``
  (JSON has no literal for them); ``from_dict`` reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opseq.tolerance import ALLCLOSE_RULES, allclose_key

__all__ = [
    "MISSING_DTYPE",
    "OutputComparison",
    "compare_outputs",
    "from_json_float",
    "merge_comparisons",
    "to_json_float",
]

MISSING_DTYPE = "missing"

_TINY = np.finfo(np.float64).tiny
_INF = math.inf


def to_json_float(value: float | None) -> float | str | None:
    """Return `value` JSON-safe: non-finite floats become ``"inf"``, ``"-inf"`` or ``"nan"``.

    Examples:
        >>> to_json_float(0.5), to_json_float(float("inf")), to_json_float(None)
        (0.5, 'inf', None)
    """
    if value is None:
        return None
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def from_json_float(value: float | str | None) -> float | None:
    """Invert `to_json_float`.

    Examples:
        >>> from_json_float("-inf"), from_json_float(2)
        (-inf, 2.0)
    """
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputComparison:
    """Raw differences between the expected and actual values of one output.

    After `merge_comparisons` the maxima, flags and `mean_abs_diff` cover all input sets.
    """

    name: str
    max_abs_diff: float
    max_rel_diff: float
    mean_abs_diff: float
    nan_mismatch: bool
    inf_mismatch: bool
    shape_match: bool
    dtype_match: bool
    expected_shape: tuple[int, ...]
    actual_shape: tuple[int, ...]
    expected_dtype: str
    actual_dtype: str
    allclose: Mapping[str, float] = field(default_factory=dict)

    @property
    def structure_match(self) -> bool:
        """Whether shapes, dtypes and NaN/Inf patterns all agree."""
        return (
            self.shape_match
            and self.dtype_match
            and not self.nan_mismatch
            and not self.inf_mismatch
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (non-finite floats as strings, see the module docstring)."""
        return {
            "name": self.name,
            "max_abs_diff": to_json_float(self.max_abs_diff),
            "max_rel_diff": to_json_float(self.max_rel_diff),
            "mean_abs_diff": to_json_float(self.mean_abs_diff),
            "nan_mismatch": self.nan_mismatch,
            "inf_mismatch": self.inf_mismatch,
            "shape_match": self.shape_match,
            "dtype_match": self.dtype_match,
            "expected_shape": list(self.expected_shape),
            "actual_shape": list(self.actual_shape),
            "expected_dtype": self.expected_dtype,
            "actual_dtype": self.actual_dtype,
            # In the order of ALLCLOSE_RULES: keys would be most of the manifest's bytes.
            "allclose": [
                to_json_float(self.allclose.get(allclose_key(*r))) for r in ALLCLOSE_RULES
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputComparison:
        """Build a comparison from `to_dict` output."""
        floats = {
            k: from_json_float(data[k]) for k in ("max_abs_diff", "max_rel_diff", "mean_abs_diff")
        }
        return cls(
            name=data["name"],
            **floats,
            nan_mismatch=bool(data["nan_mismatch"]),
            inf_mismatch=bool(data["inf_mismatch"]),
            shape_match=bool(data["shape_match"]),
            dtype_match=bool(data["dtype_match"]),
            expected_shape=tuple(data["expected_shape"]),
            actual_shape=tuple(data["actual_shape"]),
            expected_dtype=data["expected_dtype"],
            actual_dtype=data["actual_dtype"],
            allclose=_read_allclose(data.get("allclose")),
        )


def _read_allclose(recorded: Any) -> dict[str, float]:
    if isinstance(recorded, Mapping):
        return {k: from_json_float(v) for k, v in recorded.items()}
    if isinstance(recorded, list) and len(recorded) == len(ALLCLOSE_RULES):
        return {
            allclose_key(*rule): from_json_float(v)
            for rule, v in zip(ALLCLOSE_RULES, recorded, strict=True)
            if v is not None
        }
    return {}


def compare_outputs(
    expected: Sequence[np.ndarray], actual: Sequence[np.ndarray], *, names: Sequence[str]
) -> tuple[OutputComparison, ...]:
    """Compare two lists of outputs of one input set, position by position.

    Args:
        expected: The reference outputs (usually the framework's), flattened in order.
        actual: The outputs under test (usually ONNX Runtime's).
        names: Output names, by position; positions beyond them are named ``output_<i>``.

    Returns:
        One comparison per position, ``max(len(expected), len(actual))`` in all; a position only
        one side has is a missing output (module docstring).

    Examples:
        >>> (c,) = compare_outputs([np.array([1.0, 2.0])], [np.array([1.0, 2.5])], names=["y"])
        >>> c.max_abs_diff, c.max_rel_diff, c.mean_abs_diff
        (0.5, 0.25, 0.25)
    """
    count = max(len(expected), len(actual))
    return tuple(
        _compare_one(
            names[i] if i < len(names) else f"output_{i}",
            np.asarray(expected[i]) if i < len(expected) else None,
            np.asarray(actual[i]) if i < len(actual) else None,
        )
        for i in range(count)
    )


def merge_comparisons(
    per_input: Sequence[Sequence[OutputComparison]],
) -> tuple[OutputComparison, ...]:
    """Merge the comparisons of several input sets into one per output.

    Maxima are maxima over the input sets, ``mean_abs_diff`` is the mean of the per-set means
    (with static shapes, the mean over all elements), the mismatch flags are true if any set
    has them and the match flags only if every set does. Shapes and dtypes are taken from the
    first input set whose structure disagrees, else from the first. An output missing from some
    input sets (ragged output counts) counts as missing there.

    Args:
        per_input: ``per_input[k]`` is `compare_outputs` of input set ``k``.

    Returns:
        One merged comparison per output position; empty when `per_input` is empty.
    """
    count = max((len(c) for c in per_input), default=0)
    merged = []
    for i in range(count):
        column = [c[i] if i < len(c) else _missing_column(per_input, i) for c in per_input]
        merged.append(_merge_column(column))
    return tuple(merged)


def _compare_one(name: str, expected: np.ndarray | None, actual: np.ndarray | None):
    if expected is None or actual is None:
        return _missing(name, expected, actual)
    shape_match = expected.shape == actual.shape
    dtype_match = expected.dtype == actual.dtype
    if not shape_match:
        return _structural(name, expected, actual, dtype_match=dtype_match)
    if not (_is_numeric(expected) and _is_numeric(actual)):
        equal = bool(np.array_equal(expected, actual))
        diff = 0.0 if equal else _INF
        excess = dict.fromkeys((allclose_key(*rule) for rule in ALLCLOSE_RULES), diff)
        return _record(
            name, expected, actual, (diff, diff, diff, False, False, excess), dtype_match
        )
    return _record(name, expected, actual, _numeric_diffs(expected, actual), dtype_match)


def _numeric_diffs(expected: np.ndarray, actual: np.ndarray):
    e, a = _as_float(expected), _as_float(actual)
    nan_mismatch = bool(np.any(np.isnan(e) != np.isnan(a)))
    inf_mismatch = bool(
        np.any(np.isposinf(e.real) != np.isposinf(a.real))
        or np.any(np.isneginf(e.real) != np.isneginf(a.real))
        or np.any(np.isinf(e.imag) != np.isinf(a.imag))
    )
    finite = np.isfinite(e) & np.isfinite(a)
    e, a = e[finite], a[finite]
    if e.size == 0:
        excess = dict.fromkeys((allclose_key(*rule) for rule in ALLCLOSE_RULES), 0.0)
        return 0.0, 0.0, 0.0, nan_mismatch, inf_mismatch, excess
    with np.errstate(over="ignore"):  # a huge difference over a tiny value is rightly inf
        abs_diff = np.abs(a - e)
        rel_diff = abs_diff / np.maximum(np.abs(e), _TINY)
        magnitude = np.abs(e)
        excess = {
            allclose_key(atol, rtol): float((abs_diff / (atol + rtol * magnitude)).max())
            for atol, rtol in ALLCLOSE_RULES
        }
    return (
        float(abs_diff.max()),
        float(rel_diff.max()),
        float(abs_diff.mean()),
        nan_mismatch,
        inf_mismatch,
        excess,
    )


def _is_numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "biufc"


def _as_float(array: np.ndarray) -> np.ndarray:
    return array.astype(np.complex128 if array.dtype.kind == "c" else np.float64)


def _record(name, expected, actual, diffs, dtype_match) -> OutputComparison:
    max_abs, max_rel, mean_abs, nan_mismatch, inf_mismatch, excess = diffs
    return OutputComparison(
        name=name,
        max_abs_diff=_digits(max_abs),
        max_rel_diff=_digits(max_rel),
        mean_abs_diff=_digits(mean_abs),
        nan_mismatch=nan_mismatch,
        inf_mismatch=inf_mismatch,
        shape_match=True,
        dtype_match=dtype_match,
        expected_shape=tuple(int(d) for d in expected.shape),
        actual_shape=tuple(int(d) for d in actual.shape),
        expected_dtype=str(expected.dtype),
        actual_dtype=str(actual.dtype),
        allclose={key: _digits(value) for key, value in excess.items()},
    )


def _digits(value: float) -> float:
    """Seven significant digits, float32's precision: what is stored is what is labelled."""
    return float(f"{value:.7g}") if math.isfinite(value) else value


def _structural(name, expected, actual, *, dtype_match: bool) -> OutputComparison:
    return OutputComparison(
        name=name,
        max_abs_diff=_INF,
        max_rel_diff=_INF,
        mean_abs_diff=_INF,
        nan_mismatch=False,
        inf_mismatch=False,
        shape_match=False,
        dtype_match=dtype_match,
        expected_shape=_shape_of(expected),
        actual_shape=_shape_of(actual),
        expected_dtype=_dtype_of(expected),
        actual_dtype=_dtype_of(actual),
        allclose=dict.fromkeys((allclose_key(*rule) for rule in ALLCLOSE_RULES), _INF),
    )


def _missing(name: str, expected: np.ndarray | None, actual: np.ndarray | None):
    return _structural(name, expected, actual, dtype_match=False)


def _shape_of(array: np.ndarray | None) -> tuple[int, ...]:
    return () if array is None else tuple(int(d) for d in array.shape)


def _dtype_of(array: np.ndarray | None) -> str:
    return MISSING_DTYPE if array is None else str(array.dtype)


def _missing_column(per_input: Sequence[Sequence[OutputComparison]], i: int) -> OutputComparison:
    name = next(c[i].name for c in per_input if i < len(c))
    return _missing(name, None, None)


def _merge_column(column: Sequence[OutputComparison]) -> OutputComparison:
    shape_source = next((c for c in column if not c.structure_match), column[0])
    return OutputComparison(
        name=column[0].name,
        max_abs_diff=max(c.max_abs_diff for c in column),
        max_rel_diff=max(c.max_rel_diff for c in column),
        mean_abs_diff=float(np.mean([c.mean_abs_diff for c in column])),
        nan_mismatch=any(c.nan_mismatch for c in column),
        inf_mismatch=any(c.inf_mismatch for c in column),
        shape_match=all(c.shape_match for c in column),
        dtype_match=all(c.dtype_match for c in column),
        expected_shape=shape_source.expected_shape,
        actual_shape=shape_source.actual_shape,
        expected_dtype=shape_source.expected_dtype,
        actual_dtype=shape_source.actual_dtype,
        allclose={
            key: max(c.allclose.get(key, 0.0) for c in column)
            for key in dict.fromkeys(k for c in column for k in c.allclose)
        },
    )
