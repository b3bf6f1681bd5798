"""Measure outputs against a float64 reference: normalised errors, ulps, patterns, values.

For one output and one input set there are up to three arrays: the reference (the source model
run in float64), the framework's own float32 result, and the result under test (an ONNX
evaluator). `measure_output` records how far the framework and the result under test are from the
reference, in one unit, so that the rule in `opseq.tolerance` can ask whether ONNX deviates more
than the framework's own float32 does.

The unit. For an element with reference value ``r_i`` the unit is
``eps * (|r_i| + s)``, where ``eps`` is the machine epsilon of the framework's dtype (2**-23 for
float32) and ``s`` the root mean square of the reference's finite values. An error of ``n`` units
is ``n`` float32 rounding steps relative to the element (``|r_i|``) or, for elements near zero,
to the output's scale (``s``): float32 arithmetic loses accuracy relative to the magnitudes it
adds up, not to the small results of cancellation. The normalised error of an array is the
maximum over elements finite on both sides; when the reference is all zero, the unit is the
smallest normal float32, so any non-zero error is enormous.

Without a float64 reference (a model that cannot run in float64), the framework's float32 result
takes the reference's place and the framework's own error is unknown (None).

Errors are kept to 4 significant digits (a verdict compares them with bounds, not digits); the
verdict is judged on the rounded numbers, which are what a manifest stores, so judging a stored
row again gives the same verdict. `errors_to_columns` and `errors_from_columns` store the errors
of one output over the input sets column by column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "OutputErrors",
    "errors_from_columns",
    "errors_to_columns",
    "measure_output",
    "normalised_error",
    "per_set_errors",
    "ulp_distances",
    "ulp_quantiles",
]

_TINY32 = float(np.finfo(np.float32).tiny)
_QUANTILES = (0.5, 0.9, 0.99, 1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputErrors:
    """How one output of one input set compares with the reference and the framework.

    Attributes:
        kind: ``float`` (floating or complex), ``integer``, ``bool`` or ``other`` (strings ...).
        structure: Why the result under test cannot be compared with the framework's element by
            element: ``"missing"`` (one side has no such output), ``"shape"`` or ``"dtype"``;
            None when it can.
        reference_disagrees: How the float64 reference disagrees with the framework's float32:
            ``"nonfinite"`` (NaN/Inf at other positions), ``"values"`` (integer or bool values),
            ``"shape"``; None when it agrees, or there is no reference.
        onnx_disagrees: The same, between the result under test and the framework's float32.
        framework_error: The framework's float32 normalised error against the reference, in
            units (module docstring); None without a reference, 0 for non-float outputs.
        onnx_error: The normalised error of the result under test against the reference (or
            against the framework's float32 when there is no reference).
        scale: The ``s`` of the unit: the root mean square of the reference.
    """

    kind: str
    structure: str | None = None
    reference_disagrees: str | None = None
    onnx_disagrees: str | None = None
    framework_error: float | None = 0.0
    onnx_error: float = 0.0
    scale: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (non-finite floats as strings)."""
        return {
            "kind": self.kind,
            "structure": self.structure,
            "reference_disagrees": self.reference_disagrees,
            "onnx_disagrees": self.onnx_disagrees,
            "framework_error": _json(self.framework_error),
            "onnx_error": _json(self.onnx_error),
            "scale": _json(self.scale),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutputErrors:
        """Build errors from `to_dict` output."""
        framework = data.get("framework_error")
        return cls(
            kind=str(data["kind"]),
            structure=data.get("structure"),
            reference_disagrees=data.get("reference_disagrees"),
            onnx_disagrees=data.get("onnx_disagrees"),
            framework_error=None if framework is None else float(framework),
            onnx_error=float(data.get("onnx_error", 0.0)),
            scale=float(data.get("scale", 0.0)),
        )


def measure_output(
    framework: np.ndarray | None,
    onnx: np.ndarray | None,
    reference: np.ndarray | None = None,
) -> OutputErrors:
    """Compare one output of the result under test with the framework's and the reference's.

    Args:
        framework: The framework's float32 output (None if it produced none at this position).
        onnx: The output under test (None if it produced none).
        reference: The same output of the source model run in float64, or None.

    Returns:
        The errors.

    Examples:
        >>> r = np.array([1.0, 2.0])
        >>> f = np.array([1.0, 2.0 + 2**-22], dtype=np.float32)
        >>> x = np.array([1.0 + 2**-20, 2.0], dtype=np.float32)
        >>> e = measure_output(f, x, r)
        >>> round(e.framework_error, 3), round(e.onnx_error, 3)
        (0.558, 3.099)
    """
    if framework is None or onnx is None:
        return OutputErrors(kind="other", structure="missing", onnx_error=np.inf)
    framework, onnx = np.asarray(framework), np.asarray(onnx)
    kind = _kind(framework)
    structure = _structure(framework, onnx)
    if structure is not None:
        return OutputErrors(kind=kind, structure=structure, onnx_error=np.inf)
    reference = None if reference is None else np.asarray(reference)
    if reference is not None and reference.shape != framework.shape:
        return OutputErrors(kind=kind, reference_disagrees="shape")
    if kind != "float":
        return _exact(kind, framework, onnx, reference)
    return _floating(framework, onnx, reference)


def normalised_error(actual: np.ndarray, reference: np.ndarray, *, eps: float) -> float:
    """Max over elements finite on both sides of ``|a - r| / (eps * (|r| + rms(r)))``.

    Examples:
        >>> normalised_error(np.array([1.0, 0.0]), np.array([1.0, 0.0]), eps=2**-23)
        0.0
        >>> normalised_error(np.array([1e-30]), np.array([0.0]), eps=2**-23) > 1e7
        True
    """
    unit = _units(reference, eps)
    finite = np.isfinite(actual) & np.isfinite(reference)
    if not finite.any():
        return 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        errors = np.abs(actual[finite] - reference[finite]) / unit[finite]
    return float(errors.max())


def ulp_distances(actual: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Float32 ulps between `actual` and `reference` (rounded to float32), where both are finite.

    Examples:
        >>> ulp_distances(np.float32([1.0, -0.0]), np.array([np.nextafter(np.float32(1), 2), 0.0]))
        array([1, 0])
    """
    a = np.asarray(actual, dtype=np.float32).ravel()
    r = np.asarray(reference).astype(np.float32).ravel()
    finite = np.isfinite(a) & np.isfinite(r)
    return np.abs(_ordered(a[finite]) - _ordered(r[finite]))


def ulp_quantiles(distances: np.ndarray) -> dict[str, float] | None:
    """The 50/90/99/100% quantiles of ulp distances (None for no finite elements)."""
    if distances.size == 0:
        return None
    values = np.quantile(distances, _QUANTILES, method="higher")
    return {f"q{round(q * 100)}": float(v) for q, v in zip(_QUANTILES, values, strict=True)}


def _kind(array: np.ndarray) -> str:
    return {"f": "float", "c": "float", "i": "integer", "u": "integer", "b": "bool"}.get(
        array.dtype.kind, "other"
    )


def _structure(framework: np.ndarray, onnx: np.ndarray) -> str | None:
    if framework.shape != onnx.shape:
        return "shape"
    if framework.dtype != onnx.dtype:
        return "dtype"
    return None


def _exact(kind: str, framework, onnx, reference) -> OutputErrors:
    reference_disagrees = None
    if reference is not None and not np.array_equal(reference, framework):
        reference_disagrees = "values"
    differ = not np.array_equal(onnx, framework)
    fraction = _digits(float(np.mean(onnx != framework))) if differ and onnx.size else 0.0
    return OutputErrors(
        kind=kind,
        reference_disagrees=reference_disagrees,
        onnx_disagrees="values" if differ else None,
        onnx_error=fraction,
    )


def _floating(framework, onnx, reference) -> OutputErrors:
    eps = float(np.finfo(framework.dtype).eps)
    f, x = _as_float(framework), _as_float(onnx)
    r = f if reference is None else _as_float(reference)
    with np.errstate(invalid="ignore"):
        scale = _rms(r)
    return OutputErrors(
        kind="float",
        reference_disagrees=None if reference is None or _same_pattern(r, f) else "nonfinite",
        onnx_disagrees=None if _same_pattern(x, f) else "nonfinite",
        framework_error=None if reference is None else _digits(normalised_error(f, r, eps=eps)),
        onnx_error=_digits(normalised_error(x, r, eps=eps)),
        scale=_digits(scale),
    )


def _digits(value: float) -> float:
    """`value` to 4 significant digits (what is stored is what is judged)."""
    return float(f"{value:.4g}") if np.isfinite(value) else float(value)


_FLOAT_COLUMNS = ("framework_error", "onnx_error", "scale")
_FLAG_COLUMNS = ("structure", "reference_disagrees", "onnx_disagrees")


def errors_to_columns(per_set: Sequence[OutputErrors]) -> dict[str, Any]:
    """Store one output's errors over the input sets as columns; all-empty columns are left out.

    Examples:
        >>> e = [OutputErrors(kind="float", onnx_error=1.5), OutputErrors(kind="float")]
        >>> errors_to_columns(e)
        {'kind': 'float', 'sets': 2, 'framework_error': [0.0, 0.0], 'onnx_error': [1.5, 0.0]}
        >>> errors_from_columns(errors_to_columns(e)) == e
        True
    """
    kinds = [e.kind for e in per_set]
    columns: dict[str, Any] = {
        "kind": kinds[0] if len(set(kinds)) == 1 else kinds,
        "sets": len(per_set),
    }
    for name in _FLOAT_COLUMNS:
        values = [getattr(e, name) for e in per_set]
        if any(v is None for v in values) and name == "framework_error":
            columns[name] = None  # no float64 reference
        elif any(values) or name == "framework_error":
            columns[name] = [_json(v) for v in values]
    for name in _FLAG_COLUMNS:
        values = [getattr(e, name) for e in per_set]
        if any(values):
            columns[name] = values
    return columns


def errors_from_columns(columns: Mapping[str, Any]) -> list[OutputErrors]:
    """Invert `errors_to_columns`."""
    kinds = columns["kind"]
    sets = int(columns["sets"])
    framework = columns.get("framework_error")

    def column(name: str, k: int, default):
        values = columns.get(name)
        return default if values is None else values[k]

    return [
        OutputErrors(
            kind=kinds[k] if isinstance(kinds, list) else kinds,
            structure=column("structure", k, None),
            reference_disagrees=column("reference_disagrees", k, None),
            onnx_disagrees=column("onnx_disagrees", k, None),
            framework_error=None if framework is None else float(framework[k]),
            onnx_error=float(column("onnx_error", k, 0.0)),
            scale=float(column("scale", k, 0.0)),
        )
        for k in range(sets)
    ]


def _as_float(array: np.ndarray) -> np.ndarray:
    return array.astype(np.complex128 if array.dtype.kind == "c" else np.float64)


def _rms(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.sqrt(np.mean(np.abs(finite) ** 2))) if finite.size else 0.0


def _units(reference: np.ndarray, eps: float) -> np.ndarray:
    magnitude = np.abs(reference)
    with np.errstate(invalid="ignore"):
        unit = eps * (magnitude + _rms(reference))
    return np.where(unit > 0, unit, _TINY32)


def _same_pattern(a: np.ndarray, b: np.ndarray) -> bool:
    """Same NaN positions, and the same infinities (with sign), in real and imaginary parts."""
    if np.iscomplexobj(a) or np.iscomplexobj(b):
        return _same_pattern(np.real(a), np.real(b)) and _same_pattern(np.imag(a), np.imag(b))
    return bool(
        np.array_equal(np.isnan(a), np.isnan(b))
        and np.array_equal(np.isposinf(a), np.isposinf(b))
        and np.array_equal(np.isneginf(a), np.isneginf(b))
    )


def _ordered(values: np.ndarray) -> np.ndarray:
    """Map float32 bit patterns to integers that are monotonic in the float order."""
    bits = values.view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _json(value: float | None) -> float | str | None:
    if value is None:
        return None
    if np.isfinite(value):
        return float(value)
    return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")


def per_set_errors(
    framework: Sequence[np.ndarray],
    onnx: Sequence[np.ndarray],
    reference: Sequence[np.ndarray] | None,
) -> tuple[OutputErrors, ...]:
    """`measure_output` for every output position of one input set (missing positions included)."""
    count = max(len(framework), len(onnx))
    return tuple(
        measure_output(
            framework[i] if i < len(framework) else None,
            onnx[i] if i < len(onnx) else None,
            None if reference is None or i >= len(reference) else reference[i],
        )
        for i in range(count)
    )
