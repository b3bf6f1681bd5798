"""Framework-independent operator specifications for the synthetic model generator.

Each op is one `OpSpec`: its name, arity, the frameworks that implement it, a ``sample`` function
that draws attributes for given input types (or returns None when the op cannot apply to them),
and an ``infer`` function that computes the type of its one output. Adding an op is one
declaration in `_declare` plus one line per framework in the materialisers.

Values: every tensor type carries a ``nonneg`` flag (its values are known to be >= 0). ``Log``
and ``Sqrt`` accept only nonnegative inputs and ``Pow`` only a nonnegative base, so a generated
model does not turn NaN wholesale; the ops stay as they are (no hidden ``Abs`` in front), and they
may still produce -inf or inf (``Log(Relu(x))``), which is realistic.

Layout: ops whose shapes depend on the channel layout are declared twice, under the framework's
own name: ``Conv2d`` (PyTorch, channels first) and ``Conv2D`` (Keras, channels last).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["OPS", "OpSpec", "TensorType", "broadcast_shapes", "vocabulary"]

FLOAT, INT, BOOL = "float32", "int64", "bool"
TORCH, TF = "torch", "tensorflow"
BOTH = frozenset({TORCH, TF})
_CHANNELS = (4, 8, 16)
_MAX_CHANNELS = 128


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorType:
    """Static shape and dtype of a tensor, and whether its values are known nonnegative."""

    shape: tuple[int, ...]
    dtype: str = FLOAT
    nonneg: bool = False

    @property
    def rank(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


Attrs = dict[str, Any]
Sampler = Callable[[np.random.Generator, tuple[TensorType, ...]], "Attrs | None"]
Inferer = Callable[[tuple[TensorType, ...], Attrs], TensorType]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpSpec:
    """One operator: constraints (``sample``) and output type (``infer``).

    ``sample(rng, input_types)`` returns the attributes of one instance, or None if the op cannot
    apply to those inputs. ``infer(input_types, attrs)`` returns the type of the op's one output.
    ``weights`` marks ops whose materialisers create parameters.
    """

    name: str
    arity: int
    frameworks: frozenset[str] = field(default=BOTH)
    sample: Sampler
    infer: Inferer
    weights: bool = False


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """Return the numpy broadcast of `shapes`, or None if they do not broadcast."""
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*((1,) * (rank - len(s)) + tuple(s) for s in shapes), strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def _same(ts, _a, *, dtype=None, nonneg=None) -> TensorType:
    t = ts[0]
    return TensorType(
        shape=t.shape, dtype=dtype or t.dtype, nonneg=t.nonneg if nonneg is None else nonneg
    )


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
        return _same(ts, a, nonneg=flag)

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
    return {"value": _pick(rng, (0.0, -1.0, 1.0))}


def _cast_sample(rng, ts):
    return {"to": _pick(rng, [d for d in (FLOAT, INT, BOOL) if d != ts[0].dtype])}


def _cast_infer(ts, a):
    return TensorType(shape=ts[0].shape, dtype=a["to"], nonneg=a["to"] != FLOAT or ts[0].nonneg)


def _not_sample(rng, ts):
    return {} if ts[0].dtype == BOOL else None


# ------------------------------------------------------------------------- reductions


def _axis(rng, t: TensorType) -> int | None:
    """Draw an axis of size >= 2 (None if there is none)."""
    axes = [i for i, d in enumerate(t.shape) if d >= 2]
    return _pick(rng, axes) if axes else None


def _reduce(name, *, index=False) -> OpSpec:
    def sample(rng, ts):
        t = ts[0]
        axis = _axis(rng, t)
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
        t, axis = ts[0], _axis(rng, ts[0])
        return {"axis": axis} if t.dtype in dtypes and axis is not None else None

    def infer(ts, a):
        flag = {"always": True, "never": False, "preserve": ts[0].nonneg}[nonneg]
        return _same(ts, a, nonneg=flag)

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
    return {"in_features": t.shape[-1], "out_features": _pick(rng, _CHANNELS)}


def _linear_infer(ts, a):
    return TensorType(shape=(*ts[0].shape[:-1], a["out_features"]))


# --------------------------------------------------------------------------- spatial ops


def _layout(t: TensorType, channels_last: bool) -> tuple[int, list[int]]:
    """Return the channel axis and the spatial axes of `t` (batch is axis 0)."""
    if channels_last:
        return t.rank - 1, list(range(1, t.rank - 1))
    return 1, list(range(2, t.rank))


def _out_len(size: int, kernel: int, stride: int, padding: Any) -> int:
    if padding == "same":
        return -(-size // stride)
    pad = 0 if padding == "valid" else int(padding)
    return (size + 2 * pad - kernel) // stride + 1


def _window(name, *, rank, channels_last, frameworks, kind) -> OpSpec:
    """Convolutions, transposed convolutions and pooling over ``rank - 2`` spatial dims."""

    def sample(rng, ts):
        t = ts[0]
        if t.dtype != FLOAT or t.rank != rank:
            return None
        channel, spatial = _layout(t, channels_last)
        kernel, stride = _pick(rng, (1, 2, 3)), _pick(rng, (1, 2))
        if kind == "pool":
            kernel = max(kernel, 2)
        if kind == "deconv":
            kernel = max(kernel, stride)
            padding = "valid" if channels_last else 0
        elif kind == "pool":
            padding = "valid" if channels_last else 0
        elif channels_last:
            padding = _pick(rng, ("valid", "same"))
        else:
            padding = _pick(rng, (0, kernel // 2))
        if min(t.shape[a] for a in spatial) < kernel or t.shape[channel] > _MAX_CHANNELS:
            return None
        attrs = {"kernel": kernel, "stride": stride, "padding": padding}
        if kind != "pool":
            attrs |= {"in_channels": t.shape[channel], "out_channels": _pick(rng, _CHANNELS)}
        return attrs

    def infer(ts, a):
        t = ts[0]
        channel, spatial = _layout(t, channels_last)
        shape = list(t.shape)
        for axis in spatial:
            if kind == "deconv":
                shape[axis] = (shape[axis] - 1) * a["stride"] + a["kernel"]
            else:
                shape[axis] = _out_len(shape[axis], a["kernel"], a["stride"], a["padding"])
        if kind != "pool":
            shape[channel] = a["out_channels"]
        return TensorType(shape=tuple(shape), nonneg=kind == "pool" and t.nonneg)

    return OpSpec(
        name=name,
        arity=1,
        frameworks=frameworks,
        sample=sample,
        infer=infer,
        weights=kind != "pool",
    )


def _global_pool(name, *, channels_last, frameworks) -> OpSpec:
    def sample(rng, ts):
        return {} if ts[0].dtype == FLOAT and ts[0].rank == 4 else None

    def infer(ts, a):
        shape = list(ts[0].shape)
        for axis in _layout(ts[0], channels_last)[1]:
            shape[axis] = 1
        return TensorType(shape=tuple(shape), nonneg=ts[0].nonneg)

    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


def _resize(name, *, mode, channels_last, frameworks) -> OpSpec:
    def sample(rng, ts):
        t = ts[0]
        if t.dtype != FLOAT or t.rank != 4:
            return None
        spatial = _layout(t, channels_last)[1]
        size = [int(rng.integers(max(1, t.shape[a] // 2), 2 * t.shape[a] + 1)) for a in spatial]
        return {"size": tuple(size), "mode": mode}

    def infer(ts, a):
        shape = list(ts[0].shape)
        for axis, size in zip(_layout(ts[0], channels_last)[1], a["size"], strict=True):
            shape[axis] = size
        return TensorType(shape=tuple(shape), nonneg=ts[0].nonneg)

    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


def _shuffle(name, *, up, channels_last, frameworks) -> OpSpec:
    """Depth to space (`up`) or space to depth with block size 2."""

    def sample(rng, ts):
        t = ts[0]
        if t.rank != 4 or t.dtype != FLOAT:
            return None
        channel, spatial = _layout(t, channels_last)
        ok = t.shape[channel] % 4 == 0 if up else all(t.shape[a] % 2 == 0 for a in spatial)
        return {"block": 2} if ok else None

    def infer(ts, a):
        shape = list(ts[0].shape)
        channel, spatial = _layout(ts[0], channels_last)
        shape[channel] = shape[channel] // 4 if up else shape[channel] * 4
        for axis in spatial:
            shape[axis] = shape[axis] * 2 if up else shape[axis] // 2
        return TensorType(shape=tuple(shape), nonneg=ts[0].nonneg)

    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


def _norm_sample(rng, ts):
    t = ts[0]
    return {} if t.dtype == FLOAT and 2 <= t.rank <= 4 else None


def _batchnorm_sample(channels_last):
    def sample(rng, ts):
        t = ts[0]
        if t.dtype != FLOAT or not 2 <= t.rank <= 4:
            return None
        return {"channels": t.shape[_layout(t, channels_last)[0]]}

    return sample


def _prelu_sample(channels_last):
    def sample(rng, ts):
        t = ts[0]
        if t.dtype != FLOAT or t.rank < 2:
            return None
        return {"channels": t.shape[_layout(t, channels_last)[0]]}

    return sample


# ---------------------------------------------------------------------------- shape ops


def _factor_shape(rng, numel: int, rank: int) -> tuple[int, ...]:
    dims, rest = [], numel
    for _ in range(rank - 1):
        divisors = [d for d in range(1, min(rest, 64) + 1) if rest % d == 0]
        dims.append(_pick(rng, divisors))
        rest //= dims[-1]
    dims.append(rest)
    return tuple(int(d) for d in rng.permutation(dims))


def _reshape_sample(rng, ts):
    t = ts[0]
    shape = _factor_shape(rng, t.numel, int(rng.integers(1, 5)))
    return None if shape == t.shape else {"shape": shape}


def _shape_infer(key):
    def infer(ts, a):
        return TensorType(shape=tuple(a[key]), dtype=ts[0].dtype, nonneg=ts[0].nonneg)

    return infer


def _flatten_sample(rng, ts):
    return {"shape": (ts[0].shape[0], ts[0].numel // ts[0].shape[0])} if ts[0].rank >= 3 else None


def _transpose_sample(rng, ts):
    t = ts[0]
    if t.rank < 2:
        return None
    perm = tuple(int(p) for p in rng.permutation(t.rank))
    return None if perm == tuple(range(t.rank)) else {"perm": perm}


def _transpose_infer(ts, a):
    return replace(ts[0], shape=tuple(ts[0].shape[p] for p in a["perm"]))


def _squeeze_sample(rng, ts):
    ones = [i for i, d in enumerate(ts[0].shape) if d == 1]
    return {"axis": _pick(rng, ones)} if ones and ts[0].rank >= 2 else None


def _squeeze_infer(ts, a):
    shape = list(ts[0].shape)
    del shape[a["axis"]]
    return replace(ts[0], shape=tuple(shape))


def _unsqueeze_sample(rng, ts):
    return {"axis": int(rng.integers(ts[0].rank + 1))} if ts[0].rank <= 4 else None


def _unsqueeze_infer(ts, a):
    shape = list(ts[0].shape)
    shape.insert(a["axis"], 1)
    return replace(ts[0], shape=tuple(shape))


def _expand_sample(rng, ts):
    t = ts[0]
    if 1 not in t.shape:
        return None
    shape = tuple(int(_pick(rng, (1, 2, 3))) if d == 1 else d for d in t.shape)
    return None if shape == t.shape else {"shape": shape}


def _concat_sample(rng, ts):
    a, b = ts
    if a.dtype != b.dtype or a.rank != b.rank:
        return None
    axes = [
        i for i in range(a.rank) if all(a.shape[j] == b.shape[j] for j in range(a.rank) if j != i)
    ]
    return {"axis": _pick(rng, axes)} if axes else None


def _concat_infer(ts, a):
    shape = list(ts[0].shape)
    shape[a["axis"]] += ts[1].shape[a["axis"]]
    return TensorType(shape=tuple(shape), dtype=ts[0].dtype, nonneg=ts[0].nonneg and ts[1].nonneg)


def _slice_sample(rng, ts):
    axes = [i for i, d in enumerate(ts[0].shape) if d >= 2]
    if not axes:
        return None
    axis = _pick(rng, axes)
    size = ts[0].shape[axis]
    start = int(rng.integers(size - 1))
    return {"axis": axis, "start": start, "stop": int(rng.integers(start + 1, size))}


def _slice_infer(ts, a):
    shape = list(ts[0].shape)
    shape[a["axis"]] = a["stop"] - a["start"]
    return replace(ts[0], shape=tuple(shape))


def _gather_sample(rng, ts):
    axes = [i for i, d in enumerate(ts[0].shape) if d >= 2]
    if not axes:
        return None
    axis = _pick(rng, axes)
    size = ts[0].shape[axis]
    count = int(rng.integers(1, size + 1))
    return {"axis": axis, "indices": tuple(int(i) for i in rng.integers(0, size, count))}


def _gather_infer(ts, a):
    shape = list(ts[0].shape)
    shape[a["axis"]] = len(a["indices"])
    return replace(ts[0], shape=tuple(shape))


def _pad_sample(rng, ts):
    t = ts[0]
    if t.dtype != FLOAT:
        return None
    dims = min(t.rank, int(rng.integers(1, 3)))
    pads = tuple((int(rng.integers(3)), int(rng.integers(3))) for _ in range(dims))
    if not any(sum(p) for p in pads):
        return None
    return {"pads": pads, "value": _pick(rng, (0.0, 1.0, -1.0))}


def _pad_infer(ts, a):
    """``pads`` are (before, after) pairs for the last ``len(pads)`` dims, in dimension order."""
    shape = list(ts[0].shape)
    offset = len(shape) - len(a["pads"])
    for i, (before, after) in enumerate(a["pads"]):
        shape[offset + i] += before + after
    return TensorType(shape=tuple(shape), nonneg=ts[0].nonneg and a["value"] >= 0)


def _tri_sample(rng, ts):
    t = ts[0]
    return {"diagonal": _pick(rng, (-1, 0, 1))} if t.dtype == FLOAT and t.rank >= 2 else None


def _tile_sample(rng, ts):
    t = ts[0]
    reps = tuple(int(_pick(rng, (1, 2))) for _ in t.shape)
    return {"reps": reps} if any(r > 1 for r in reps) else None


def _tile_infer(ts, a):
    return replace(ts[0], shape=tuple(d * r for d, r in zip(ts[0].shape, a["reps"], strict=True)))


def _shape_op(name, sample, infer, frameworks=BOTH) -> OpSpec:
    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


# ------------------------------------------------------------------------ declarations


def _declare() -> tuple[OpSpec, ...]:
    torch_only, tf_only = frozenset({TORCH}), frozenset({TF})
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
        _unary("LeakyRelu", nonneg="preserve", attrs=lambda r: {"alpha": _pick(r, leaky["alpha"])}),
        _unary("Gelu", nonneg="preserve", attrs=lambda r: {"approximate": bool(r.integers(2))}),
        _unary("Erf", nonneg="preserve"),
        _unary("Softplus", nonneg="always"),
        _unary("Clip", attrs=lambda r: dict(zip(("min", "max"), _pick(r, clip), strict=True))),
        _unary("Elu", nonneg="preserve"),
        _unary("Square", nonneg="always"),
        _unary("Softsign", nonneg="preserve"),
        _unary("HardSigmoid", nonneg="always"),
        OpSpec(name="LogicalNot", arity=1, sample=_not_sample, infer=_same),
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
            infer=lambda ts, a: _same(ts, a, nonneg=ts[0].nonneg and a["value"] >= 0),
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
        OpSpec(name="LayerNorm", arity=1, sample=_norm_sample, infer=_same, weights=True),
    ]
    shapes = [
        _shape_op("Reshape", _reshape_sample, _shape_infer("shape")),
        _shape_op("Flatten", _flatten_sample, _shape_infer("shape")),
        _shape_op("Transpose", _transpose_sample, _transpose_infer),
        _shape_op("Squeeze", _squeeze_sample, _squeeze_infer),
        _shape_op("Unsqueeze", _unsqueeze_sample, _unsqueeze_infer),
        _shape_op("Expand", _expand_sample, _shape_infer("shape")),
        OpSpec(name="Concat", arity=2, sample=_concat_sample, infer=_concat_infer),
        _shape_op("Slice", _slice_sample, _slice_infer),
        _shape_op("Gather", _gather_sample, _gather_infer),
        _shape_op("Pad", _pad_sample, _pad_infer),
        _shape_op("Tril", _tri_sample, _same),
        _shape_op("Triu", _tri_sample, _same),
        _shape_op("Tile", _tile_sample, _tile_infer),
    ]
    return (*unary, *binary, *reductions, *linear, *shapes, *_layout_ops(torch_only, tf_only))


def _layout_ops(torch_only, tf_only) -> list[OpSpec]:
    ops = []
    for fw, last, names in (
        (torch_only, False, ("Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d")),
        (tf_only, True, ("Conv1D", "Conv2D", "Conv2DTranspose", "MaxPooling1D", "MaxPooling2D")),
    ):
        conv1, conv2, deconv, pool1, pool2 = names
        ops += [
            _window(conv1, rank=3, channels_last=last, frameworks=fw, kind="conv"),
            _window(conv2, rank=4, channels_last=last, frameworks=fw, kind="conv"),
            _window(deconv, rank=4, channels_last=last, frameworks=fw, kind="deconv"),
            _window(pool1, rank=3, channels_last=last, frameworks=fw, kind="pool"),
            _window(pool2, rank=4, channels_last=last, frameworks=fw, kind="pool"),
        ]
        avg = "AvgPool2d" if not last else "AveragePooling2D"
        ops.append(_window(avg, rank=4, channels_last=last, frameworks=fw, kind="pool"))
        name = "BatchNorm" if not last else "BatchNormalization"
        ops.append(
            OpSpec(
                name=name,
                arity=1,
                frameworks=fw,
                sample=_batchnorm_sample(last),
                infer=_same,
                weights=True,
            )
        )
        ops.append(
            OpSpec(
                name="PRelu" if not last else "PReLU",
                arity=1,
                frameworks=fw,
                sample=_prelu_sample(last),
                infer=_same,
                weights=True,
            )
        )
    ops += [
        _global_pool("AdaptiveAvgPool2d", channels_last=False, frameworks=torch_only),
        _global_pool("GlobalAveragePooling2D", channels_last=True, frameworks=tf_only),
        _resize("InterpolateNearest", mode="nearest", channels_last=False, frameworks=torch_only),
        _resize("InterpolateBilinear", mode="bilinear", channels_last=False, frameworks=torch_only),
        _resize("ResizeNearest", mode="nearest", channels_last=True, frameworks=tf_only),
        _resize("ResizeBilinear", mode="bilinear", channels_last=True, frameworks=tf_only),
        _shuffle("PixelShuffle", up=True, channels_last=False, frameworks=torch_only),
        _shuffle("PixelUnshuffle", up=False, channels_last=False, frameworks=torch_only),
        _shuffle("DepthToSpace", up=True, channels_last=True, frameworks=tf_only),
        _shuffle("SpaceToDepth", up=False, channels_last=True, frameworks=tf_only),
    ]
    return ops


OPS: dict[str, OpSpec] = {spec.name: spec for spec in _declare()}
"""Every op, by name."""


def vocabulary(framework: str) -> tuple[str, ...]:
    """Return the names of the ops `framework` implements, in declaration order.

    Args:
        framework: ``"torch"`` or ``"tensorflow"``.

    Returns:
        Op names.
    """
    return tuple(name for name, spec in OPS.items() if framework in spec.frameworks)
