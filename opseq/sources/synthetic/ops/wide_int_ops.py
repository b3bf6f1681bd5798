"""Wide vocabulary: integer arithmetic, bitwise ops, casts and integer variants of float ops.

Divisors, shift amounts and clamp bounds are constants in the attributes (a tuple broadcast
along the last axis, or of length 1), never tensors of the graph: an integer division by zero,
or of the most negative integer by -1, traps in C and would crash a run instead of testing it.
"""

from __future__ import annotations

from opseq.sources.synthetic.ops.types import (
    BOOL,
    BOTH,
    FLOAT,
    INT,
    INT32,
    INTS,
    OpSpec,
    TensorType,
    broadcast_shapes,
    draw_axis,
    pick,
    same_type,
)

__all__ = ["declare_wide_int_ops"]

_INT_DIVISORS = (-5, -3, -2, 2, 3, 4, 7)
_FLOAT_DIVISORS = (-2.5, -2.0, -0.5, 0.5, 1.5, 3.0)
_CLAMPS = ((-3, 3), (0, 5), (-8, 0), (-1, 1), (2, 9))
_CAST_DTYPES = (FLOAT, INT32, INT, BOOL)


def _constant(rng, t: TensorType, values) -> tuple:
    """A constant operand: one value, or one per element of the last axis."""
    count = 1 if rng.integers(2) == 0 else t.shape[-1]
    return tuple(pick(rng, values) for _ in range(count))


def _divide(name, *, dtypes, out=None, nonneg, calls) -> OpSpec:
    """Division-like op by a constant divisor; `nonneg(x_nonneg, divisors) -> bool`."""

    def sample(rng, ts):
        t = ts[0]
        if t.dtype not in dtypes:
            return None
        values = _FLOAT_DIVISORS if t.dtype == FLOAT else _INT_DIVISORS
        return {"divisor": _constant(rng, t, values)}

    def infer(ts, a):
        flag = nonneg(ts[0].nonneg, a["divisor"])
        return same_type(ts, a, dtype=out, nonneg=flag)

    return OpSpec(name=name, arity=1, sample=sample, infer=infer, calls=calls)


def _positive(divisors) -> bool:
    return all(d > 0 for d in divisors)


def _shift(name, *, calls) -> OpSpec:
    def sample(rng, ts):
        t = ts[0]
        return {"shift": _constant(rng, t, range(5))} if t.dtype in INTS else None

    def infer(ts, a):
        return same_type(ts, a, nonneg=name == "BitShiftRight" and ts[0].nonneg)

    return OpSpec(name=name, arity=1, sample=sample, infer=infer, calls=calls)


def _int_binary(name, *, nonneg, calls, frameworks=BOTH) -> OpSpec:
    """A broadcasting binary op on two integer tensors of one dtype; `nonneg`: any/all/never."""

    def sample(rng, ts):
        a, b = ts
        ok = a.dtype in INTS and a.dtype == b.dtype and broadcast_shapes(a.shape, b.shape)
        return {} if ok else None

    def infer(ts, a):
        flags = [t.nonneg for t in ts]
        flag = {"any": any(flags), "all": all(flags), "never": False}[nonneg]
        shape = broadcast_shapes(ts[0].shape, ts[1].shape)
        return TensorType(shape=shape, dtype=ts[0].dtype, nonneg=flag)

    return OpSpec(
        name=name, arity=2, frameworks=frameworks, sample=sample, infer=infer, calls=calls
    )


def _bitwise_not_sample(rng, ts):
    return {} if ts[0].dtype in INTS else None


def _cast_sample(rng, ts):
    if ts[0].dtype not in _CAST_DTYPES:
        return None
    return {"to": pick(rng, [d for d in _CAST_DTYPES if d != ts[0].dtype])}


def _cast_infer(ts, a):
    source, to = ts[0].dtype, a["to"]
    # Out-of-range floats and narrowed int64 wrap around, so only exact casts keep the sign.
    exact = source in INTS and (to == FLOAT or (source, to) == (INT32, INT))
    flag = to == BOOL or source == BOOL or (exact and ts[0].nonneg)
    return TensorType(shape=ts[0].shape, dtype=to, nonneg=flag)


def _where_int_sample(rng, ts):
    cond, x, y = ts
    if cond.dtype != BOOL or x.dtype not in INTS or y.dtype != x.dtype:
        return None
    return {} if broadcast_shapes(cond.shape, x.shape, y.shape) else None


def _where_int_infer(ts, a):
    shape = broadcast_shapes(*(t.shape for t in ts))
    return TensorType(shape=shape, dtype=ts[1].dtype, nonneg=ts[1].nonneg and ts[2].nonneg)


def _clamp_sample(rng, ts):
    if ts[0].dtype not in INTS:
        return None
    low, high = pick(rng, _CLAMPS)
    return {"min": low, "max": high}


def _matmul_int_sample(rng, ts):
    a, b = ts
    if a.dtype not in INTS or b.dtype != a.dtype or a.rank < 2 or b.rank < 2:
        return None
    ok = a.shape[-1] == b.shape[-2] and broadcast_shapes(a.shape[:-2], b.shape[:-2]) is not None
    return {} if ok else None


def _matmul_int_infer(ts, a):
    x, y = ts
    batch = broadcast_shapes(x.shape[:-2], y.shape[:-2])
    shape = (*batch, x.shape[-2], y.shape[-1])
    return TensorType(shape=shape, dtype=x.dtype, nonneg=x.nonneg and y.nonneg)


def _sign_sample(rng, ts):
    return {} if ts[0].dtype in (FLOAT, *INTS) else None


def _arg_ties_sample(rng, ts):
    t = ts[0]
    axis = draw_axis(rng, t)
    if t.dtype not in INTS or t.rank < 2 or axis is None:
        return None
    return {"axis": axis, "keepdims": bool(rng.integers(2))}


def _arg_ties_infer(ts, a):
    shape = list(ts[0].shape)
    if a["keepdims"]:
        shape[a["axis"]] = 1
    else:
        del shape[a["axis"]]
    return TensorType(shape=tuple(shape), dtype=INT, nonneg=True)


def _calls(torch_call: str, tf_call: str) -> dict[str, str]:
    return {"torch": torch_call, "tensorflow": tf_call}


def declare_wide_int_ops() -> list[OpSpec]:
    """Return the integer ops of the wide vocabulary, in their order."""
    numeric = (FLOAT, *INTS)
    return [
        _divide(
            "DivTrue",
            dtypes=INTS,
            out=FLOAT,
            nonneg=lambda x, d: x and _positive(d),
            calls=_calls("torch.div(x, d)", "tf.math.truediv(x, d) cast to float32"),
        ),
        _divide(
            "DivFloor",
            dtypes=numeric,
            nonneg=lambda x, d: x and _positive(d),
            calls=_calls("torch.div(x, d, rounding_mode='floor')", "tf.math.floordiv(x, d)"),
        ),
        _divide(
            "DivTrunc",
            dtypes=numeric,
            nonneg=lambda x, d: x and _positive(d),
            calls=_calls("torch.div(x, d, rounding_mode='trunc')", "tf.truncatediv(x, d)"),
        ),
        _divide(
            "Remainder",
            dtypes=numeric,
            nonneg=lambda x, d: _positive(d),
            calls=_calls("torch.remainder(x, d)", "tf.math.floormod(x, d)"),
        ),
        _divide(
            "Fmod",
            dtypes=numeric,
            nonneg=lambda x, d: x,
            calls=_calls("torch.fmod(x, d)", "tf.truncatemod(x, d)"),
        ),
        _shift(
            "BitShiftLeft",
            calls=_calls("torch.bitwise_left_shift(x, s)", "tf.bitwise.left_shift(x, s)"),
        ),
        _shift(
            "BitShiftRight",
            calls=_calls("torch.bitwise_right_shift(x, s)", "tf.bitwise.right_shift(x, s)"),
        ),
        _int_binary(
            "BitwiseAnd",
            nonneg="any",
            calls=_calls("torch.bitwise_and(x, y)", "tf.bitwise.bitwise_and(x, y)"),
        ),
        _int_binary(
            "BitwiseOr",
            nonneg="all",
            calls=_calls("torch.bitwise_or(x, y)", "tf.bitwise.bitwise_or(x, y)"),
        ),
        _int_binary(
            "BitwiseXor",
            nonneg="all",
            calls=_calls("torch.bitwise_xor(x, y)", "tf.bitwise.bitwise_xor(x, y)"),
        ),
        OpSpec(
            name="BitwiseNot",
            arity=1,
            sample=_bitwise_not_sample,
            infer=lambda ts, a: same_type(ts, a, nonneg=False),
            calls=_calls("torch.bitwise_not(x)", "tf.bitwise.invert(x)"),
        ),
        OpSpec(
            name="CastWide",
            arity=1,
            sample=_cast_sample,
            infer=_cast_infer,
            calls=_calls("x.to(dtype)", "keras.ops.cast(x, dtype) (tf.cast)"),
        ),
        OpSpec(
            name="WhereInt",
            arity=3,
            sample=_where_int_sample,
            infer=_where_int_infer,
            calls=_calls("torch.where(c, x, y)", "tf.where(c, x, y)"),
        ),
        OpSpec(
            name="ClampInt",
            arity=1,
            sample=_clamp_sample,
            infer=lambda ts, a: same_type(ts, a, nonneg=a["min"] >= 0 or ts[0].nonneg),
            calls=_calls("torch.clamp(x, lo, hi)", "tf.clip_by_value(x, lo, hi)"),
        ),
        _int_binary(
            "MaxInt",
            nonneg="any",
            calls=_calls("torch.maximum(x, y)", "tf.math.maximum(x, y)"),
        ),
        _int_binary(
            "MinInt",
            nonneg="all",
            calls=_calls("torch.minimum(x, y)", "tf.math.minimum(x, y)"),
        ),
        OpSpec(
            name="MatMulInt",
            arity=2,
            sample=_matmul_int_sample,
            infer=_matmul_int_infer,
            calls=_calls("torch.matmul(x, y)", "tf.linalg.matmul(x, y)"),
        ),
        OpSpec(
            name="Sign",
            arity=1,
            sample=_sign_sample,
            infer=same_type,
            calls=_calls("torch.sign(x)", "tf.math.sign(x)"),
        ),
        OpSpec(
            name="ArgMaxTies",
            arity=1,
            sample=_arg_ties_sample,
            infer=_arg_ties_infer,
            calls=_calls("torch.argmax(x, dim, keepdim)", "tf.math.argmax(x, axis, int64)"),
        ),
        OpSpec(
            name="ArgMinTies",
            arity=1,
            sample=_arg_ties_sample,
            infer=_arg_ties_infer,
            calls=_calls("torch.argmin(x, dim, keepdim)", "tf.math.argmin(x, axis, int64)"),
        ),
    ]
