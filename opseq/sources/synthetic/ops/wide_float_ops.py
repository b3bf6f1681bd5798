"""Wide vocabulary: op variants on floats (and numbers): einsum, pad modes, reductions, unaries.

Reductions over empty axes mean different things in the two frameworks: ``torch.sum(x,
dim=())`` reduces every axis, ``tf.reduce_sum(x, axis=[])`` none, so each is declared for its
own framework (``ReduceDimEmpty``, ``ReduceAxisEmpty``); ONNX says which one a converted
``ReduceSum`` with empty axes means through ``noop_with_empty_axes``.
"""

from __future__ import annotations

from opseq.sources.synthetic.ops.shape_ops import pad_infer
from opseq.sources.synthetic.ops.types import (
    BOOL,
    BOTH,
    FLOAT,
    INTS,
    TF_ONLY,
    TORCH_ONLY,
    OpSpec,
    TensorType,
    broadcast_shapes,
    draw_axis,
    pick,
    same_type,
)

__all__ = ["declare_wide_float_ops", "einsum_shape"]

_NUMERIC = (FLOAT, *INTS)
_EINSUM_BINARY = ("bij,bjk->bik", "bhqd,bhkd->bhqk", "bi,bi->b", "ij,jk->ik")
_EINSUM_UNARY = ("ij->ji", "bij->bji", "bij->bj", "bii->bi")
_REDUCTIONS = ("sum", "mean", "max", "min")


def einsum_shape(equation: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[int, ...] | None:
    """The output shape of an explicit einsum `equation` (no ellipsis), or None if invalid.

    Examples:
        >>> einsum_shape("bij,bjk->bik", ((2, 3, 4), (2, 4, 5)))
        (2, 3, 5)
        >>> einsum_shape("bi,bi->b", ((2, 3), (2, 4))) is None
        True
    """
    operands, out = equation.split("->")
    terms = operands.split(",")
    if len(terms) != len(shapes):
        return None
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes, strict=True):
        if len(term) != len(shape):
            return None
        for letter, size in zip(term, shape, strict=True):
            if sizes.setdefault(letter, size) != size:
                return None
    return tuple(sizes[letter] for letter in out)


def _einsum(name, equations) -> OpSpec:
    arity = equations[0].split("->")[0].count(",") + 1

    def sample(rng, ts):
        if any(t.dtype != FLOAT for t in ts):
            return None
        shapes = tuple(t.shape for t in ts)
        valid = [e for e in equations if einsum_shape(e, shapes) is not None]
        return {"equation": pick(rng, valid)} if valid else None

    def infer(ts, a):
        shape = einsum_shape(a["equation"], tuple(t.shape for t in ts))
        summed = len(shape) < ts[0].rank or arity > 1
        return TensorType(shape=shape, nonneg=all(t.nonneg for t in ts) and not summed)

    calls = {"torch": "torch.einsum(equation, *xs)", "tensorflow": "keras.ops.einsum"}
    return OpSpec(name=name, arity=arity, sample=sample, infer=infer, calls=calls)


def _pad_mode(name, mode, frameworks, calls) -> OpSpec:
    """Non-constant padding of the last 1..3 dims (of a rank-(d+1) or rank-(d+2) tensor)."""

    def sample(rng, ts):
        t = ts[0]
        dims = int(rng.integers(1, 4))
        if t.dtype != FLOAT or t.rank not in (dims + 1, dims + 2):
            return None
        limits = [min(2, size - 1) for size in t.shape[-dims:]]
        pads = tuple((int(rng.integers(m + 1)), int(rng.integers(m + 1))) for m in limits)
        return {"pads": pads, "mode": mode} if any(sum(p) for p in pads) else None

    return OpSpec(
        name=name, arity=1, frameworks=frameworks, sample=sample, infer=pad_infer, calls=calls
    )


def _reduced(shape, axes, keepdims) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _reduce_kind(rng, t: TensorType) -> str | None:
    if t.dtype not in _NUMERIC:
        return None
    return pick(rng, _REDUCTIONS if t.dtype == FLOAT else _REDUCTIONS[:1] + _REDUCTIONS[2:])


def _reduce_axes_sample(rng, ts):
    t = ts[0]
    kind = _reduce_kind(rng, t)
    if kind is None or t.rank < 2:
        return None
    count = int(rng.integers(2, t.rank + 1))
    axes = tuple(sorted(int(a) for a in rng.choice(t.rank, size=count, replace=False)))
    return {"kind": kind, "axes": axes, "keepdims": bool(rng.integers(2))}


def _reduce_axes_infer(ts, a):
    shape = _reduced(ts[0].shape, a["axes"], a["keepdims"])
    return TensorType(shape=shape, dtype=ts[0].dtype, nonneg=ts[0].nonneg)


def _reduce_prod_sample(rng, ts):
    t = ts[0]
    axis = draw_axis(rng, t)
    if t.dtype not in _NUMERIC or axis is None:
        return None
    return {"axes": (axis,), "keepdims": bool(rng.integers(2))}


def _reduce_empty_sample(*, draw_keepdims: bool):
    """``dim=()`` in PyTorch reduces every axis and keeps them (else the result has rank 0)."""

    def sample(rng, ts):
        kind = _reduce_kind(rng, ts[0])
        if kind is None:
            return None
        return {"kind": kind, "keepdims": bool(rng.integers(2)) if draw_keepdims else True}

    return sample


def _reduce_all_infer(ts, a):
    return TensorType(shape=(1,) * ts[0].rank, dtype=ts[0].dtype, nonneg=ts[0].nonneg)


def _float_unary(name, *, calls, attrs=None, out=FLOAT, nonneg="never") -> OpSpec:
    def sample(rng, ts):
        if ts[0].dtype != FLOAT:
            return None
        return attrs(rng) if attrs else {}

    def infer(ts, a):
        flag = {"never": False, "preserve": ts[0].nonneg, "always": True}[nonneg]
        return same_type(ts, a, dtype=out, nonneg=flag)

    return OpSpec(name=name, arity=1, sample=sample, infer=infer, calls=calls)


def _float_binary(name, *, nonneg, call) -> OpSpec:
    """PyTorch's NaN-ignoring maximum and minimum (TensorFlow has none)."""

    def sample(rng, ts):
        a, b = ts
        ok = a.dtype == FLOAT and b.dtype == FLOAT and broadcast_shapes(a.shape, b.shape)
        return {} if ok else None

    def infer(ts, a):
        flags = [t.nonneg for t in ts]
        flag = any(flags) if nonneg == "any" else all(flags)
        return TensorType(shape=broadcast_shapes(ts[0].shape, ts[1].shape), nonneg=flag)

    return OpSpec(
        name=name,
        arity=2,
        frameworks=TORCH_ONLY,
        sample=sample,
        infer=infer,
        calls={"torch": call},
    )


def _calls(torch_call: str | None, tf_call: str | None) -> dict[str, str]:
    pairs = (("torch", torch_call), ("tensorflow", tf_call))
    return {framework: call for framework, call in pairs if call is not None}


def declare_wide_float_ops() -> list[OpSpec]:
    """Return the float variants of the wide vocabulary, in their order."""
    pads = [
        ("PadReflect", "reflect", BOTH, _calls("F.pad(mode='reflect')", "keras.ops.pad reflect")),
        ("PadReplicate", "replicate", TORCH_ONLY, _calls("F.pad(mode='replicate')", None)),
        ("PadCircular", "circular", TORCH_ONLY, _calls("F.pad(mode='circular')", None)),
        ("PadSymmetric", "symmetric", TF_ONLY, _calls(None, "keras.ops.pad symmetric")),
    ]
    return [
        _float_binary("Fmax", nonneg="any", call="torch.fmax(x, y)"),
        _float_binary("Fmin", nonneg="all", call="torch.fmin(x, y)"),
        _einsum("Einsum", _EINSUM_BINARY),
        _einsum("EinsumUnary", _EINSUM_UNARY),
        *(_pad_mode(*pad) for pad in pads),
        OpSpec(
            name="ReduceAxes",
            arity=1,
            sample=_reduce_axes_sample,
            infer=_reduce_axes_infer,
            calls=_calls(
                "torch.sum/mean/amax/amin(x, dim=tuple, keepdim)",
                "tf.math.reduce_sum/mean/max/min(x, axis=list, keepdims)",
            ),
        ),
        OpSpec(
            name="ReduceProd",
            arity=1,
            sample=_reduce_prod_sample,
            infer=_reduce_axes_infer,
            calls=_calls("torch.prod(x, dim, keepdim)", "tf.math.reduce_prod(x, axis, keepdims)"),
        ),
        OpSpec(
            name="ReduceDimEmpty",
            arity=1,
            frameworks=TORCH_ONLY,
            sample=_reduce_empty_sample(draw_keepdims=False),
            infer=_reduce_all_infer,
            calls=_calls("torch.sum/mean/amax/amin(x, dim=(), keepdim=True)", None),
        ),
        OpSpec(
            name="ReduceAxisEmpty",
            arity=1,
            frameworks=TF_ONLY,
            sample=_reduce_empty_sample(draw_keepdims=True),
            infer=same_type,
            calls=_calls(None, "tf.math.reduce_sum/mean/max/min(x, axis=[], keepdims)"),
        ),
        _float_unary(
            "RoundDecimals",
            attrs=lambda r: {"decimals": pick(r, (1, 2, -1))},
            nonneg="preserve",
            calls=_calls("torch.round(x, decimals=d)", "keras.ops.round(x, decimals=d)"),
        ),
        _float_unary(
            "IsNaN", out=BOOL, nonneg="always", calls=_calls("torch.isnan", "tf.math.is_nan")
        ),
        _float_unary(
            "IsInf", out=BOOL, nonneg="always", calls=_calls("torch.isinf", "tf.math.is_inf")
        ),
        _float_unary(
            "Reciprocal",
            nonneg="preserve",
            calls=_calls("torch.reciprocal", "tf.math.reciprocal"),
        ),
        _float_unary("HardSwish", calls=_calls("F.hardswish", "keras.ops.hard_swish")),
        _float_unary("Mish", calls=_calls("F.mish", "keras.layers.Activation('mish')")),
    ]
