"""Version 1 shape ops: reshapes, permutations, slices, gathers, pads, tiles.

Part of the frozen version 1 vocabulary (see `opseq.sources.synthetic.ops.float_ops`).
"""

from __future__ import annotations

from dataclasses import replace

from opseq.sources.synthetic.ops.types import (
    BOTH,
    FLOAT,
    OpSpec,
    TensorType,
    pick,
    same_type,
)

__all__ = ["declare_shape_ops", "factor_shape"]


def factor_shape(rng, numel: int, rank: int) -> tuple[int, ...]:
    """Draw a shape of `rank` dimensions holding `numel` elements."""
    dims, rest = [], numel
    for _ in range(rank - 1):
        divisors = [d for d in range(1, min(rest, 64) + 1) if rest % d == 0]
        dims.append(pick(rng, divisors))
        rest //= dims[-1]
    dims.append(rest)
    return tuple(int(d) for d in rng.permutation(dims))


def _reshape_sample(rng, ts):
    t = ts[0]
    shape = factor_shape(rng, t.numel, int(rng.integers(1, 5)))
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
    return {"axis": pick(rng, ones)} if ones and ts[0].rank >= 2 else None


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
    shape = tuple(int(pick(rng, (1, 2, 3))) if d == 1 else d for d in t.shape)
    return None if shape == t.shape else {"shape": shape}


def _concat_sample(rng, ts):
    a, b = ts
    if a.dtype != b.dtype or a.rank != b.rank:
        return None
    axes = [
        i for i in range(a.rank) if all(a.shape[j] == b.shape[j] for j in range(a.rank) if j != i)
    ]
    return {"axis": pick(rng, axes)} if axes else None


def _concat_infer(ts, a):
    shape = list(ts[0].shape)
    shape[a["axis"]] += ts[1].shape[a["axis"]]
    return TensorType(shape=tuple(shape), dtype=ts[0].dtype, nonneg=ts[0].nonneg and ts[1].nonneg)


def _slice_sample(rng, ts):
    axes = [i for i, d in enumerate(ts[0].shape) if d >= 2]
    if not axes:
        return None
    axis = pick(rng, axes)
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
    axis = pick(rng, axes)
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
    return {"pads": pads, "value": pick(rng, (0.0, 1.0, -1.0))}


def pad_infer(ts, a):
    """``pads`` are (before, after) pairs for the last ``len(pads)`` dims, in dimension order."""
    shape = list(ts[0].shape)
    offset = len(shape) - len(a["pads"])
    for i, (before, after) in enumerate(a["pads"]):
        shape[offset + i] += before + after
    return TensorType(shape=tuple(shape), nonneg=ts[0].nonneg and a.get("value", 0.0) >= 0)


def _tri_sample(rng, ts):
    t = ts[0]
    return {"diagonal": pick(rng, (-1, 0, 1))} if t.dtype == FLOAT and t.rank >= 2 else None


def _tile_sample(rng, ts):
    t = ts[0]
    reps = tuple(int(pick(rng, (1, 2))) for _ in t.shape)
    return {"reps": reps} if any(r > 1 for r in reps) else None


def _tile_infer(ts, a):
    return replace(ts[0], shape=tuple(d * r for d, r in zip(ts[0].shape, a["reps"], strict=True)))


def _shape_op(name, sample, infer, frameworks=BOTH) -> OpSpec:
    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


def declare_shape_ops() -> list[OpSpec]:
    """Return the version 1 shape ops, in their order."""
    return [
        _shape_op("Reshape", _reshape_sample, _shape_infer("shape")),
        _shape_op("Flatten", _flatten_sample, _shape_infer("shape")),
        _shape_op("Transpose", _transpose_sample, _transpose_infer),
        _shape_op("Squeeze", _squeeze_sample, _squeeze_infer),
        _shape_op("Unsqueeze", _unsqueeze_sample, _unsqueeze_infer),
        _shape_op("Expand", _expand_sample, _shape_infer("shape")),
        OpSpec(name="Concat", arity=2, sample=_concat_sample, infer=_concat_infer),
        _shape_op("Slice", _slice_sample, _slice_infer),
        _shape_op("Gather", _gather_sample, _gather_infer),
        _shape_op("Pad", _pad_sample, pad_infer),
        _shape_op("Tril", _tri_sample, same_type),
        _shape_op("Triu", _tri_sample, same_type),
        _shape_op("Tile", _tile_sample, _tile_infer),
    ]
