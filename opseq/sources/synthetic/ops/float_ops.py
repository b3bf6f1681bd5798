"""Version 1 elementwise ops, reductions and linear algebra (float-dominated).

Part of the frozen version 1 vocabulary: the order of `declare_float_ops` is part of every
``synthetic-torch``/``synthetic-tf`` case id, so ops are never reordered, removed or changed.
"""

from __future__ import annotations

from opseq.sources.synthetic.ops.types import (
    BOOL,
    BOTH,
    FLOAT,
    INT,
    OpSpec,
    TensorType,
    broadcast_shapes,
    draw_axis,
    pick,
    same_type,
)

__all__ = ["declare_float_ops"]

_CHANNELS = (4, 8, 16)


# ---------------------------------------------------------------------------- elementwise


def _unary(name, *, nonneg="never", needs_nonneg=False, attrs=None, frameworks=BOTH) -> OpSpec:
    """A float -> float elementwise op; `nonneg` is "never", "always" or "preserve"."""

    def sample(rng, ts):
        if ts[0].dtype != FLOAT or (needs_nonneg and not ts[0].nonneg):
            return None
        return attrs(rng) if attrs else {}

    def infer(ts, a):
        flag = {"never": False, "always": True, "preserve": ts[0].nonneg}[nonneg]
        if name == "Clip":
            flag = a["min"] >= 0 or ts[0].nonneg
        return same_type(ts, a, nonneg=flag)

    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


def _binary(name, *, out=FLOAT, dtype=FLOAT, nonneg="never") -> OpSpec:
    """A broadcasting binary op on two `dtype` tensors; `nonneg`: never/preserve/any/first."""

    def sample(rng, ts):
        ok = all(t.dtype == dtype for t in ts) and broadcast_shapes(ts[0].shape, ts[1].shape)
        if name == "Pow" and not ts[0].nonneg:
            return None
        return {} if ok else None

    def infer(ts, a):
        flags = [t.nonneg for t in ts]
        flag = {"never": False, "preserve": all(flags), "any": any(flags), "first": flags[0]}
        return TensorType(
            shape=broadcast_shapes(ts[0].shape, ts[1].shape),
            dtype=out,
            nonneg=out == BOOL or flag[nonneg],
        )

    return OpSpec(name=name, arity=2, sample=sample, infer=infer)


def _where_sample(rng, ts):
    cond, x, y = ts
    if cond.dtype != BOOL or x.dtype != FLOAT or y.dtype != FLOAT:
        return None
    return {} if broadcast_shapes(cond.shape, x.shape, y.shape) else None


def _where_infer(ts, a):
    shape = broadcast_shapes(*(t.shape for t in ts))
    return TensorType(shape=shape, nonneg=ts[1].nonneg and ts[2].nonneg)


def _masked_fill_sample(rng, ts):
    x, mask = ts
    ok = x.dtype == FLOAT and mask.dtype == BOOL
    if not ok or broadcast_shapes(x.shape, mask.shape) != x.shape:
        return None
    return {"value": pick(rng, (0.0, -1.0, 1.0))}


def _cast_sample(rng, ts):
    return {"to": pick(rng, [d for d in (FLOAT, INT, BOOL) if d != ts[0].dtype])}


def _cast_infer(ts, a):
    return TensorType(shape=ts[0].shape, dtype=a["to"], nonneg=a["to"] != FLOAT or ts[0].nonneg)


def _not_sample(rng, ts):
    return {} if ts[0].dtype == BOOL else None


# ------------------------------------------------------------------------- reductions


def _reduce(name, *, index=False) -> OpSpec:
    def sample(rng, ts):
        t = ts[0]
        axis = draw_axis(rng, t)
        if t.dtype != FLOAT or t.rank < 2 or axis is None:
            return None
        return {"axis": axis, "keepdims": bool(rng.integers(2))}

    def infer(ts, a):
        shape = list(ts[0].shape)
        if a["keepdims"]:
            shape[a["axis"]] = 1
        else:
            del shape[a["axis"]]
        dtype = INT if index else FLOAT
        return TensorType(shape=tuple(shape), dtype=dtype, nonneg=index or ts[0].nonneg)

    return OpSpec(name=name, arity=1, sample=sample, infer=infer)


def _axis_op(name, *, nonneg="preserve", dtypes=(FLOAT,)) -> OpSpec:
    """An op with one ``axis`` attribute that keeps the shape (softmax, cumsum, flip)."""

    def sample(rng, ts):
        t, axis = ts[0], draw_axis(rng, ts[0])
        return {"axis": axis} if t.dtype in dtypes and axis is not None else None

    def infer(ts, a):
        flag = {"always": True, "never": False, "preserve": ts[0].nonneg}[nonneg]
        return same_type(ts, a, nonneg=flag)

    return OpSpec(name=name, arity=1, sample=sample, infer=infer)


# ------------------------------------------------------------------------ linear algebra


def _matmul_sample(rng, ts):
    a, b = ts
    if a.dtype != FLOAT or b.dtype != FLOAT or a.rank < 2 or b.rank < 2:
        return None
    ok = a.shape[-1] == b.shape[-2] and broadcast_shapes(a.shape[:-2], b.shape[:-2]) is not None
    return {} if ok else None


def _matmul_infer(ts, a):
    x, y = ts
    return TensorType(
        shape=(*broadcast_shapes(x.shape[:-2], y.shape[:-2]), x.shape[-2], y.shape[-1])
    )


def _linear_sample(rng, ts):
    t = ts[0]
    if t.dtype != FLOAT or t.rank < 2 or t.shape[-1] > 256:
        return None
    return {"in_features": t.shape[-1], "out_features": pick(rng, _CHANNELS)}


def _linear_infer(ts, a):
    return TensorType(shape=(*ts[0].shape[:-1], a["out_features"]))


def _norm_sample(rng, ts):
    t = ts[0]
    return {} if t.dtype == FLOAT and 2 <= t.rank <= 4 else None


# ------------------------------------------------------------------------ declarations


def declare_float_ops() -> list[OpSpec]:
    """Return the version 1 elementwise, reduction and linear-algebra ops, in their order."""
    leaky = {"alpha": (0.01, 0.1, 0.2)}
    clip = ((-1.0, 1.0), (0.0, 6.0), (0.0, 1.0), (-0.5, 0.5))
    unary = [
        _unary("Abs", nonneg="always"),
        _unary("Neg"),
        _unary("Sin"),
        _unary("Cos"),
        _unary("Tan"),
        _unary("Atan", nonneg="preserve"),
        _unary("Exp", nonneg="always"),
        _unary("Log", needs_nonneg=True),
        _unary("Sqrt", nonneg="always", needs_nonneg=True),
        _unary("Floor", nonneg="preserve"),
        _unary("Ceil", nonneg="preserve"),
        _unary("Round", nonneg="preserve"),
        _unary("Sigmoid", nonneg="always"),
        _unary("Tanh", nonneg="preserve"),
        _unary("Relu", nonneg="always"),
        _unary("LeakyRelu", nonneg="preserve", attrs=lambda r: {"alpha": pick(r, leaky["alpha"])}),
        _unary("Gelu", nonneg="preserve", attrs=lambda r: {"approximate": bool(r.integers(2))}),
        _unary("Erf", nonneg="preserve"),
        _unary("Softplus", nonneg="always"),
        _unary("Clip", attrs=lambda r: dict(zip(("min", "max"), pick(r, clip), strict=True))),
        _unary("Elu", nonneg="preserve"),
        _unary("Square", nonneg="always"),
        _unary("Softsign", nonneg="preserve"),
        _unary("HardSigmoid", nonneg="always"),
        OpSpec(name="LogicalNot", arity=1, sample=_not_sample, infer=same_type),
        OpSpec(name="Cast", arity=1, sample=_cast_sample, infer=_cast_infer),
    ]
    binary = [
        _binary("Add", nonneg="preserve"),
        _binary("Sub"),
        _binary("Mul", nonneg="preserve"),
        _binary("Div", nonneg="preserve"),
        _binary("Pow", nonneg="first"),
        _binary("Max", nonneg="any"),
        _binary("Min", nonneg="preserve"),
        _binary("Greater", out=BOOL),
        _binary("Less", out=BOOL),
        _binary("Equal", out=BOOL),
        _binary("LogicalAnd", out=BOOL, dtype=BOOL),
        _binary("LogicalOr", out=BOOL, dtype=BOOL),
        _binary("LogicalXor", out=BOOL, dtype=BOOL),
        OpSpec(name="Where", arity=3, sample=_where_sample, infer=_where_infer),
        OpSpec(
            name="MaskedFill",
            arity=2,
            sample=_masked_fill_sample,
            infer=lambda ts, a: same_type(ts, a, nonneg=ts[0].nonneg and a["value"] >= 0),
        ),
    ]
    reductions = [
        _reduce("ReduceSum"),
        _reduce("ReduceMean"),
        _reduce("ReduceMax"),
        _reduce("ReduceMin"),
        _reduce("ArgMax", index=True),
        _reduce("ArgMin", index=True),
        _axis_op("Softmax", nonneg="always"),
        _axis_op("LogSoftmax", nonneg="never"),
        _axis_op("CumSum"),
        _axis_op("Flip", dtypes=(FLOAT, INT, BOOL)),
    ]
    linear = [
        OpSpec(name="MatMul", arity=2, sample=_matmul_sample, infer=_matmul_infer),
        OpSpec(name="Linear", arity=1, sample=_linear_sample, infer=_linear_infer, weights=True),
        OpSpec(name="LayerNorm", arity=1, sample=_norm_sample, infer=same_type, weights=True),
    ]
    return [*unary, *binary, *reductions, *linear]
