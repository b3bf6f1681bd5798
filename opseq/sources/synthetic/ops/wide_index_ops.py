"""Wide vocabulary: gathers with negative indices, scatters, scans, top-k and unique.

Index tensors are constants, valid by construction: a small tuple in the attributes
(``GatherNegative``), or drawn from an ``index_seed`` attribute by `gather_elements_index` and
`scatter_index` (the materialisers call the same functions, so the graph's repr stays small).
Scatter indices are distinct along the scattered axis, so no element is written twice and the
result does not depend on the order of writes.
"""

from __future__ import annotations

import numpy as np

from opseq.sources.synthetic.ops.types import (
    FLOAT,
    INT,
    INTS,
    OpSpec,
    TensorType,
    draw_axis,
    pick,
    same_type,
)

__all__ = ["declare_wide_index_ops", "gather_elements_index", "scatter_index"]

_NUMERIC = (FLOAT, *INTS)


def _index_shape(shape: tuple[int, ...], axis: int, count: int) -> tuple[int, ...]:
    out = list(shape)
    out[axis] = count
    return tuple(out)


def gather_elements_index(shape: tuple[int, ...], attrs: dict) -> np.ndarray:
    """The int64 index tensor of a ``GatherElements`` node on an input of `shape`."""
    rng = np.random.default_rng(attrs["index_seed"])
    index_shape = _index_shape(shape, attrs["axis"], attrs["count"])
    return rng.integers(0, shape[attrs["axis"]], index_shape).astype(np.int64)


def scatter_index(shape: tuple[int, ...], attrs: dict) -> np.ndarray:
    """The int64 index tensor of a ``ScatterElements`` node: distinct along its axis."""
    rng = np.random.default_rng(attrs["index_seed"])
    order = np.argsort(rng.random(shape), axis=attrs["axis"], kind="stable")
    return np.take(order, np.arange(attrs["count"]), axis=attrs["axis"]).astype(np.int64)


def _gather_negative_sample(rng, ts):
    t = ts[0]
    axis = draw_axis(rng, t)
    if axis is None:
        return None
    size = t.shape[axis]
    count = int(rng.integers(1, size + 1))
    indices = [int(i) for i in rng.integers(-size, size, count)]
    indices[int(rng.integers(count))] = -int(rng.integers(1, size + 1))  # at least one
    return {"axis": axis, "indices": tuple(indices)}


def _gather_negative_infer(ts, a):
    shape = _index_shape(ts[0].shape, a["axis"], len(a["indices"]))
    return TensorType(shape=shape, dtype=ts[0].dtype, nonneg=ts[0].nonneg)


def _counted_axis_sample(rng, ts):
    """An axis of size >= 2, a count along it, and the seed of a constant index tensor."""
    t = ts[0]
    axis = draw_axis(rng, t)
    if axis is None or t.dtype not in _NUMERIC:
        return None
    count = int(rng.integers(1, t.shape[axis] + 1))
    return {"axis": axis, "count": count, "index_seed": int(rng.integers(2**31))}


def _counted_infer(ts, a):
    shape = _index_shape(ts[0].shape, a["axis"], a["count"])
    return TensorType(shape=shape, dtype=ts[0].dtype, nonneg=ts[0].nonneg)


def _scatter_sample(rng, ts):
    x, updates = ts
    if x.dtype != updates.dtype or x.shape != updates.shape:
        return None
    attrs = _counted_axis_sample(rng, (x,))
    return None if attrs is None else {**attrs, "reduction": pick(rng, ("none", "add"))}


def _scatter_infer(ts, a):
    return same_type(ts, a, nonneg=ts[0].nonneg and ts[1].nonneg)


def _cumsum_sample(rng, ts):
    t = ts[0]
    axis = draw_axis(rng, t)
    if axis is None or t.dtype not in _NUMERIC:
        return None
    exclusive, reverse = pick(rng, ((True, False), (False, True), (True, True)))
    return {"axis": axis, "exclusive": exclusive, "reverse": reverse}


def _topk_sample(rng, ts):
    t = ts[0]
    axis = draw_axis(rng, t)
    if axis is None or t.dtype not in _NUMERIC:
        return None
    k = int(rng.integers(1, t.shape[axis] + 1))
    return {"axis": axis, "k": k, "largest": bool(rng.integers(2))}


def _topk_infer(indices: bool):
    def infer(ts, a):
        shape = _index_shape(ts[0].shape, a["axis"], a["k"])
        if indices:
            return TensorType(shape=shape, dtype=INT, nonneg=True)
        return TensorType(shape=shape, dtype=ts[0].dtype, nonneg=ts[0].nonneg)

    return infer


def _unique_sample(rng, ts):
    return {} if ts[0].dtype in _NUMERIC else None


def _unique_infer(ts, a):
    return TensorType(shape=ts[0].shape, dtype=INT, nonneg=True)


def _calls(torch_call: str, tf_call: str) -> dict[str, str]:
    return {"torch": torch_call, "tensorflow": tf_call}


def declare_wide_index_ops() -> list[OpSpec]:
    """Return the index ops of the wide vocabulary, in their order."""
    return [
        OpSpec(
            name="GatherNegative",
            arity=1,
            sample=_gather_negative_sample,
            infer=_gather_negative_infer,
            calls=_calls("x[..., idx] (advanced indexing)", "keras.ops.take(x, idx, axis)"),
        ),
        OpSpec(
            name="GatherElements",
            arity=1,
            sample=_counted_axis_sample,
            infer=_counted_infer,
            calls=_calls("torch.gather(x, dim, idx)", "keras.ops.take_along_axis(x, idx, axis)"),
        ),
        OpSpec(
            name="ScatterElements",
            arity=2,
            sample=_scatter_sample,
            infer=_scatter_infer,
            calls=_calls(
                "x.scatter(dim, idx, u) / x.scatter_add(dim, idx, u)",
                "tf.tensor_scatter_nd_update / tf.tensor_scatter_nd_add",
            ),
        ),
        OpSpec(
            name="CumSumVariant",
            arity=1,
            sample=_cumsum_sample,
            infer=same_type,
            calls=_calls(
                "torch.cumsum with flips (reverse) and minus x (exclusive)",
                "tf.math.cumsum(x, axis, exclusive, reverse)",
            ),
        ),
        OpSpec(
            name="TopKValues",
            arity=1,
            sample=_topk_sample,
            infer=_topk_infer(indices=False),
            calls=_calls("torch.topk(x, k, dim, largest)[0]", "tf.math.top_k(x, k).values"),
        ),
        OpSpec(
            name="TopKIndices",
            arity=1,
            sample=_topk_sample,
            infer=_topk_infer(indices=True),
            calls=_calls("torch.topk(x, k, dim, largest)[1]", "tf.math.top_k(x, k).indices"),
        ),
        OpSpec(
            name="UniqueInverse",
            arity=1,
            sample=_unique_sample,
            infer=_unique_infer,
            calls=_calls(
                "torch.unique(x, sorted=True, return_inverse=True)[1]",
                "tf.unique(flat x).idx (first-occurrence order)",
            ),
        ),
        OpSpec(
            name="UniqueCounts",
            arity=1,
            sample=_unique_sample,
            infer=_unique_infer,
            calls=_calls(
                "torch.unique(x, return_inverse=True, return_counts=True): counts[inverse]",
                "tf.unique_with_counts(flat x): gather(count, idx)",
            ),
        ),
    ]
