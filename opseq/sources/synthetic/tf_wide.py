"""TensorFlow side of the wide vocabulary: ``keras.ops`` calls and one layer around ``tf`` calls.

Ops that Keras 3 exposes are functions of ``(keras, inputs, attrs)`` in `KERAS_FUNCTIONS`, as in
`opseq.sources.synthetic.tf_model`. The others call TensorFlow directly (``tf.bitwise``,
``tf.math.floordiv``, ``tf.unique``, ``tf.image.resize``, ...), which a functional Keras model
only allows inside a layer: `TF_CALLS` holds them as functions of ``(tf, inputs, attrs)`` and
`tf_op_layer` wraps one in a `TFOp` layer that knows its output type from the graph. A `TFOp`
returns floats in its compute dtype (float32, or float64 in the float64 twin, which clones layers
with a float64 policy): ``tf.image.resize`` and ``tf.math.truediv`` of integers return float32
and float64 whatever the model computes in. Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from opseq.sources.synthetic.builder import SyntheticNode
from opseq.sources.synthetic.ops.wide_index_ops import gather_elements_index, scatter_index

__all__ = ["KERAS_FUNCTIONS", "TF_CALLS", "tf_op_layer"]


def _constant(tf, x, values):
    return tf.constant(values, dtype=x.dtype)


def _by_constant(function: str, key: str):
    def apply(tf, x, a):
        fn = tf
        for part in function.split("."):
            fn = getattr(fn, part)
        return fn(x[0], _constant(tf, x[0], a[key]))

    return apply


def _truediv(tf, x, a):
    return tf.math.truediv(x[0], _constant(tf, x[0], a["divisor"]))


def _arg(function: str):
    def apply(tf, x, a):
        index = getattr(tf.math, function)(x[0], axis=a["axis"], output_type=tf.int64)
        return tf.expand_dims(index, a["axis"]) if a["keepdims"] else index

    return apply


def _scatter(tf, x, a):
    data, updates = x
    shape = tuple(data.shape)
    index = scatter_index(shape, a)
    positions = np.stack(np.indices(index.shape), axis=-1).reshape(-1, len(shape))
    targets = positions.copy()
    targets[:, a["axis"]] = index.reshape(-1)
    values = tf.gather_nd(updates, positions)
    write = tf.tensor_scatter_nd_add if a["reduction"] == "add" else tf.tensor_scatter_nd_update
    return write(data, targets, values)


def _topk(output: str):
    """``tf.math.top_k`` works on the last axis and only largest: transpose, and negate."""

    def apply(tf, x, a):
        rank, axis = len(x[0].shape), a["axis"]
        perm = [*(i for i in range(rank) if i != axis), axis]
        moved = tf.transpose(x[0], perm)
        found = tf.math.top_k(moved if a["largest"] else -moved, k=a["k"], sorted=True)
        if output == "values":
            out = found.values if a["largest"] else -found.values
        else:
            out = tf.cast(found.indices, tf.int64)
        return tf.transpose(out, np.argsort(perm).tolist())

    return apply


def _unique_inverse(tf, x, a):
    _, index = tf.unique(tf.reshape(x[0], [-1]), out_idx=tf.int64)
    return tf.reshape(index, tf.shape(x[0]))


def _unique_counts(tf, x, a):
    _, index, counts = tf.unique_with_counts(tf.reshape(x[0], [-1]), out_idx=tf.int64)
    return tf.reshape(tf.gather(counts, index), tf.shape(x[0]))


def _cumsum(tf, x, a):
    return tf.math.cumsum(x[0], axis=a["axis"], exclusive=a["exclusive"], reverse=a["reverse"])


_REDUCERS = {"sum": "reduce_sum", "mean": "reduce_mean", "max": "reduce_max", "min": "reduce_min"}


def _reduce(tf, x, a):
    fn = getattr(tf.math, _REDUCERS[a["kind"]])
    return fn(x[0], axis=list(a["axes"]), keepdims=a["keepdims"])


def _reduce_axis_empty(tf, x, a):
    return getattr(tf.math, _REDUCERS[a["kind"]])(x[0], axis=[], keepdims=a["keepdims"])


def _resize_v1(tf, x, a):
    fn = {
        "bilinear": tf.compat.v1.image.resize_bilinear,
        "nearest": tf.compat.v1.image.resize_nearest_neighbor,
        "bicubic": tf.compat.v1.image.resize_bicubic,
    }[a["method"]]
    return fn(
        x[0], list(a["size"]), align_corners=a["align_corners"], half_pixel_centers=a["half_pixel"]
    )


TF_CALLS: dict[str, Any] = {
    "DivTrue": _truediv,
    "DivFloor": _by_constant("math.floordiv", "divisor"),
    "DivTrunc": _by_constant("truncatediv", "divisor"),
    "Remainder": _by_constant("math.floormod", "divisor"),
    "Fmod": _by_constant("truncatemod", "divisor"),
    "BitShiftLeft": _by_constant("bitwise.left_shift", "shift"),
    "BitShiftRight": _by_constant("bitwise.right_shift", "shift"),
    "BitwiseAnd": lambda tf, x, a: tf.bitwise.bitwise_and(x[0], x[1]),
    "BitwiseOr": lambda tf, x, a: tf.bitwise.bitwise_or(x[0], x[1]),
    "BitwiseXor": lambda tf, x, a: tf.bitwise.bitwise_xor(x[0], x[1]),
    "BitwiseNot": lambda tf, x, a: tf.bitwise.invert(x[0]),
    "WhereInt": lambda tf, x, a: tf.where(x[0], x[1], x[2]),
    "ClampInt": lambda tf, x, a: tf.clip_by_value(
        x[0], _constant(tf, x[0], a["min"]), _constant(tf, x[0], a["max"])
    ),
    "MaxInt": lambda tf, x, a: tf.math.maximum(x[0], x[1]),
    "MinInt": lambda tf, x, a: tf.math.minimum(x[0], x[1]),
    "MatMulInt": lambda tf, x, a: tf.linalg.matmul(x[0], x[1]),
    "Sign": lambda tf, x, a: tf.math.sign(x[0]),
    "ArgMaxTies": _arg("argmax"),
    "ArgMinTies": _arg("argmin"),
    "ScatterElements": _scatter,
    "CumSumVariant": _cumsum,
    "TopKValues": _topk("values"),
    "TopKIndices": _topk("indices"),
    "UniqueInverse": _unique_inverse,
    "UniqueCounts": _unique_counts,
    "ReduceAxes": _reduce,
    "ReduceProd": lambda tf, x, a: tf.math.reduce_prod(
        x[0], axis=a["axes"][0], keepdims=a["keepdims"]
    ),
    "ReduceAxisEmpty": _reduce_axis_empty,
    "IsNaN": lambda tf, x, a: tf.math.is_nan(x[0]),
    "IsInf": lambda tf, x, a: tf.math.is_inf(x[0]),
    "Reciprocal": lambda tf, x, a: tf.math.reciprocal(x[0]),
    "ResizeMethods": lambda tf, x, a: tf.image.resize(
        x[0], list(a["size"]), method=a["method"], antialias=a["antialias"]
    ),
    "ResizeV1": _resize_v1,
}
"""The wide ops written with TensorFlow calls (run inside a `TFOp` layer), by name."""


def _pad(mode: str):
    def apply(k, x, a):
        rank = len(x[0].shape)
        widths = [(0, 0)] * (rank - len(a["pads"])) + [tuple(p) for p in a["pads"]]
        return k.ops.pad(x[0], widths, mode=mode)

    return apply


KERAS_FUNCTIONS: dict[str, Any] = {
    "CastWide": lambda k, x, a: k.ops.cast(x[0], a["to"]),
    "GatherNegative": lambda k, x, a: k.ops.take(x[0], np.array(a["indices"]), axis=a["axis"]),
    "GatherElements": lambda k, x, a: k.ops.take_along_axis(
        x[0], gather_elements_index(tuple(x[0].shape), a), axis=a["axis"]
    ),
    "Einsum": lambda k, x, a: k.ops.einsum(a["equation"], x[0], x[1]),
    "EinsumUnary": lambda k, x, a: k.ops.einsum(a["equation"], x[0]),
    "PadReflect": _pad("reflect"),
    "PadSymmetric": _pad("symmetric"),
    "RoundDecimals": lambda k, x, a: k.ops.round(x[0], decimals=a["decimals"]),
    "HardSwish": lambda k, x, a: k.ops.hard_swish(x[0]),
    "Mish": lambda k, x, a: k.layers.Activation("mish")(x[0]),
    "ResizingLayer": lambda k, x, a: k.layers.Resizing(
        *a["size"],
        interpolation=a["interpolation"],
        crop_to_aspect_ratio=a["crop_to_aspect_ratio"],
    )(x[0]),
}
"""The wide ops written with ``keras.ops`` (or a Keras layer), by name."""


def tf_op_layer(node: SyntheticNode):
    """Return a `TFOp` layer computing `node` (an op of `TF_CALLS`)."""
    return _tf_op_class()(
        op=node.op,
        attrs=node.attrs,
        out_shape=node.output.shape,
        out_dtype=node.output.dtype,
        name=f"{node.op.lower()}_{node.name}",
    )


@functools.cache
def _tf_op_class():
    import keras
    import tensorflow as tf

    class TFOp(keras.layers.Layer):
        """One op of `TF_CALLS`, with the static output type of its graph node."""

        def __init__(self, *, op, attrs, out_shape, out_dtype, **kwargs) -> None:
            super().__init__(**kwargs)
            self.op, self.attrs = op, dict(attrs)
            self.out_shape, self.out_dtype = tuple(out_shape), out_dtype

        def call(self, *inputs):
            result = TF_CALLS[self.op](tf, list(inputs), self.attrs)
            return tf.cast(result, self._dtype()) if self.out_dtype == "float32" else result

        def compute_output_spec(self, *inputs):
            return keras.KerasTensor(self.out_shape, dtype=self._dtype())

        def get_config(self):
            return {
                **super().get_config(),
                "op": self.op,
                "attrs": self.attrs,
                "out_shape": self.out_shape,
                "out_dtype": self.out_dtype,
            }

        def _dtype(self) -> str:
            return self.compute_dtype if self.out_dtype == "float32" else self.out_dtype

    return TFOp
