"""PyTorch functions of the wide vocabulary's ops: ``(torch, inputs, attrs) -> tensor``.

Constants (divisors, shifts, index tensors) are made in the input's dtype, so the float64 twin
computes with float64 constants and integer tensors stay integer. They are copies
(``torch.tensor``, not ``torch.from_numpy``) owning their memory, since an exported graph keeps
them as constants. Integer sums and products pass ``dtype`` because PyTorch would otherwise widen
int32 to int64. Importing this module does not import torch.
"""

from __future__ import annotations

from typing import Any

from opseq.sources.synthetic.ops.wide_index_ops import gather_elements_index, scatter_index

__all__ = ["WIDE_FUNCTIONS"]


def _constant(t, x, values):
    return t.tensor(values, dtype=x.dtype)


def _divide(rounding_mode: str | None):
    def apply(t, x, a):
        return t.div(x[0], _constant(t, x[0], a["divisor"]), rounding_mode=rounding_mode)

    return apply


def _by_constant(function: str, key: str):
    def apply(t, x, a):
        return getattr(t, function)(x[0], _constant(t, x[0], a[key]))

    return apply


def _integer_dtype(t, x):
    """The `dtype` argument that keeps an integer reduction in the input's dtype."""
    return x.dtype if not x.dtype.is_floating_point else None


def _cumsum(t, x, a):
    x, axis = x[0], a["axis"]
    kept = {"dtype": x.dtype}
    if a["reverse"]:
        out = t.flip(t.cumsum(t.flip(x, dims=(axis,)), dim=axis, **kept), dims=(axis,))
    else:
        out = t.cumsum(x, dim=axis, **kept)
    return out - x if a["exclusive"] else out


def _gather_negative(t, x, a):
    index = (slice(None),) * a["axis"] + (t.tensor(a["indices"]),)
    return x[0][index]


def _gather_elements(t, x, a):
    index = t.tensor(gather_elements_index(tuple(x[0].shape), a))
    return t.gather(x[0], a["axis"], index)


def _scatter(t, x, a):
    index = t.tensor(scatter_index(tuple(x[0].shape), a))
    if a["reduction"] == "add":
        return x[0].scatter_add(a["axis"], index, x[1])
    return x[0].scatter(a["axis"], index, x[1])


def _topk(output: int):
    def apply(t, x, a):
        return t.topk(x[0], a["k"], dim=a["axis"], largest=a["largest"], sorted=True)[output]

    return apply


def _unique_inverse(t, x, a):
    return t.unique(x[0], sorted=True, return_inverse=True)[1]


def _unique_counts(t, x, a):
    _, inverse, counts = t.unique(x[0], sorted=True, return_inverse=True, return_counts=True)
    return counts[inverse]


_REDUCERS = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin"}


def _reduce_axes(t, x, a):
    extra = {"dtype": _integer_dtype(t, x[0])} if a["kind"] == "sum" else {}
    fn = getattr(t, _REDUCERS[a["kind"]])
    return fn(x[0], dim=tuple(a["axes"]), keepdim=a["keepdims"], **extra)


def _reduce_prod(t, x, a):
    dtype = _integer_dtype(t, x[0])
    return t.prod(x[0], dim=a["axes"][0], keepdim=a["keepdims"], dtype=dtype)


def _reduce_dim_empty(t, x, a):
    extra = {"dtype": _integer_dtype(t, x[0])} if a["kind"] == "sum" else {}
    return getattr(t, _REDUCERS[a["kind"]])(x[0], dim=(), keepdim=True, **extra)


def _pad_mode(t, x, a):
    flat = [p for before_after in reversed(a["pads"]) for p in before_after]
    return t.nn.functional.pad(x[0], flat, mode=a["mode"])


def _interpolate(t, x, a):
    return t.nn.functional.interpolate(
        x[0],
        size=a["size"],
        scale_factor=a["scale"],
        mode=a["mode"],
        align_corners=a["align_corners"],
        antialias=a["antialias"],
    )


WIDE_FUNCTIONS: dict[str, Any] = {
    "DivTrue": _divide(None),
    "DivFloor": _divide("floor"),
    "DivTrunc": _divide("trunc"),
    "Remainder": _by_constant("remainder", "divisor"),
    "Fmod": _by_constant("fmod", "divisor"),
    "BitShiftLeft": _by_constant("bitwise_left_shift", "shift"),
    "BitShiftRight": _by_constant("bitwise_right_shift", "shift"),
    "BitwiseAnd": lambda t, x, a: t.bitwise_and(x[0], x[1]),
    "BitwiseOr": lambda t, x, a: t.bitwise_or(x[0], x[1]),
    "BitwiseXor": lambda t, x, a: t.bitwise_xor(x[0], x[1]),
    "BitwiseNot": lambda t, x, a: t.bitwise_not(x[0]),
    "CastWide": lambda t, x, a: x[0].to(getattr(t, a["to"])),
    "WhereInt": lambda t, x, a: t.where(x[0], x[1], x[2]),
    "ClampInt": lambda t, x, a: t.clamp(x[0], a["min"], a["max"]),
    "MaxInt": lambda t, x, a: t.maximum(x[0], x[1]),
    "MinInt": lambda t, x, a: t.minimum(x[0], x[1]),
    "MatMulInt": lambda t, x, a: t.matmul(x[0], x[1]),
    "Sign": lambda t, x, a: t.sign(x[0]),
    "ArgMaxTies": lambda t, x, a: t.argmax(x[0], dim=a["axis"], keepdim=a["keepdims"]),
    "ArgMinTies": lambda t, x, a: t.argmin(x[0], dim=a["axis"], keepdim=a["keepdims"]),
    "Fmax": lambda t, x, a: t.fmax(x[0], x[1]),
    "Fmin": lambda t, x, a: t.fmin(x[0], x[1]),
    "GatherNegative": _gather_negative,
    "GatherElements": _gather_elements,
    "ScatterElements": _scatter,
    "CumSumVariant": _cumsum,
    "TopKValues": _topk(0),
    "TopKIndices": _topk(1),
    "UniqueInverse": _unique_inverse,
    "UniqueCounts": _unique_counts,
    "Einsum": lambda t, x, a: t.einsum(a["equation"], x[0], x[1]),
    "EinsumUnary": lambda t, x, a: t.einsum(a["equation"], x[0]),
    "PadReflect": _pad_mode,
    "PadReplicate": _pad_mode,
    "PadCircular": _pad_mode,
    "ReduceAxes": _reduce_axes,
    "ReduceProd": _reduce_prod,
    "ReduceDimEmpty": _reduce_dim_empty,
    "RoundDecimals": lambda t, x, a: t.round(x[0], decimals=a["decimals"]),
    "IsNaN": lambda t, x, a: t.isnan(x[0]),
    "IsInf": lambda t, x, a: t.isinf(x[0]),
    "Reciprocal": lambda t, x, a: t.reciprocal(x[0]),
    "HardSwish": lambda t, x, a: t.nn.functional.hardswish(x[0]),
    "Mish": lambda t, x, a: t.nn.functional.mish(x[0]),
    "InterpolateModes": _interpolate,
}
"""The wide ops PyTorch implements, by name."""
