"""Materialise a `SyntheticGraph` as a functional Keras model (Keras 3, TensorFlow backend).

Weightless ops are ``keras.ops`` calls on symbolic tensors (`_FUNCTIONS`, functions of
``(keras, inputs, attrs)``; the wide vocabulary's ops are in `opseq.sources.synthetic.tf_wide`,
some as layers around TensorFlow calls); ops with weights are Keras layers (`_LAYERS`) with seeded
initialisers; ``DepthToSpace``/``SpaceToDepth`` are small layers around ``tf.nn``, and so is
``Add``: ``keras.ops.add`` (TensorFlow backend) turns ``add((1, 8), (1, 1, 1, 8))`` into a
``bias_add`` with the wrong shape (1, 8), so ``Add`` is a layer around ``tf.add``. No ``Lambda``
layers and no ``Sequential`` (tf2onnx fails on Keras 3 Sequential models). ``keras.ops.argmax``
and ``argmin`` return int32 and, on the TensorFlow backend, lower to a ``tf.bitcast`` that tf2onnx
cannot convert (the first corpus campaign: 530 of 816 models never loaded in ONNX Runtime), so
``ArgMax``/``ArgMin`` are layers around ``tf.math.argmax``/``argmin`` with int64 output, as TF
code writes them; the keras.ops failure is kept as an expected failure in the tests.
Importing this module does not import TensorFlow.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np

from opseq._optional import import_optional
from opseq.sources.synthetic.builder import SyntheticGraph
from opseq.sources.synthetic.tf_wide import KERAS_FUNCTIONS, TF_CALLS, tf_op_layer

__all__ = ["to_keras_model"]


def _pad(k, x, a):
    rank = len(x[0].shape)
    widths = [(0, 0)] * (rank - len(a["pads"])) + [tuple(p) for p in a["pads"]]
    return k.ops.pad(x[0], widths, constant_values=a["value"])


def _slice(k, x, a):
    shape = list(x[0].shape)
    start = [0] * len(shape)
    start[a["axis"]] = a["start"]
    shape[a["axis"]] = a["stop"] - a["start"]
    return k.ops.slice(x[0], start, shape)


def _window_pool(cls: str):
    def apply(k, x, a):
        return getattr(k.layers, cls)(pool_size=a["kernel"], strides=a["stride"])(x[0])

    return apply


def _arg(fn: str):
    def apply(k, x, a):
        return _tf_layers().ArgReduce(fn, axis=a["axis"], keepdims=a["keepdims"])(x[0])

    return apply


def _resize(mode: str):
    def apply(k, x, a):
        return k.ops.image.resize(x[0], a["size"], interpolation=mode)

    return apply


_FUNCTIONS: dict[str, Any] = {
    "Abs": lambda k, x, a: k.ops.abs(x[0]),
    "Neg": lambda k, x, a: k.ops.negative(x[0]),
    "Sin": lambda k, x, a: k.ops.sin(x[0]),
    "Cos": lambda k, x, a: k.ops.cos(x[0]),
    "Tan": lambda k, x, a: k.ops.tan(x[0]),
    "Atan": lambda k, x, a: k.ops.arctan(x[0]),
    "Exp": lambda k, x, a: k.ops.exp(x[0]),
    "Log": lambda k, x, a: k.ops.log(x[0]),
    "Sqrt": lambda k, x, a: k.ops.sqrt(x[0]),
    "Floor": lambda k, x, a: k.ops.floor(x[0]),
    "Ceil": lambda k, x, a: k.ops.ceil(x[0]),
    "Round": lambda k, x, a: k.ops.round(x[0]),
    "Sigmoid": lambda k, x, a: k.ops.sigmoid(x[0]),
    "Tanh": lambda k, x, a: k.ops.tanh(x[0]),
    "Relu": lambda k, x, a: k.ops.relu(x[0]),
    "LeakyRelu": lambda k, x, a: k.ops.leaky_relu(x[0], negative_slope=a["alpha"]),
    "Gelu": lambda k, x, a: k.ops.gelu(x[0], approximate=a["approximate"]),
    "Erf": lambda k, x, a: k.ops.erf(x[0]),
    "Softplus": lambda k, x, a: k.ops.softplus(x[0]),
    "Clip": lambda k, x, a: k.ops.clip(x[0], a["min"], a["max"]),
    "Elu": lambda k, x, a: k.ops.elu(x[0]),
    "Square": lambda k, x, a: k.ops.square(x[0]),
    "Softsign": lambda k, x, a: k.activations.softsign(x[0]),
    "HardSigmoid": lambda k, x, a: k.ops.hard_sigmoid(x[0]),
    "LogicalNot": lambda k, x, a: k.ops.logical_not(x[0]),
    "Cast": lambda k, x, a: k.ops.cast(x[0], a["to"]),
    "Add": lambda k, x, a: _tf_layers().Add()(x[0], x[1]),
    "Sub": lambda k, x, a: k.ops.subtract(x[0], x[1]),
    "Mul": lambda k, x, a: k.ops.multiply(x[0], x[1]),
    "Div": lambda k, x, a: k.ops.divide(x[0], x[1]),
    "Pow": lambda k, x, a: k.ops.power(x[0], x[1]),
    "Max": lambda k, x, a: k.ops.maximum(x[0], x[1]),
    "Min": lambda k, x, a: k.ops.minimum(x[0], x[1]),
    "Greater": lambda k, x, a: k.ops.greater(x[0], x[1]),
    "Less": lambda k, x, a: k.ops.less(x[0], x[1]),
    "Equal": lambda k, x, a: k.ops.equal(x[0], x[1]),
    "LogicalAnd": lambda k, x, a: k.ops.logical_and(x[0], x[1]),
    "LogicalOr": lambda k, x, a: k.ops.logical_or(x[0], x[1]),
    "LogicalXor": lambda k, x, a: k.ops.logical_xor(x[0], x[1]),
    "Where": lambda k, x, a: k.ops.where(x[0], x[1], x[2]),
    "MaskedFill": lambda k, x, a: k.ops.where(x[1], a["value"], x[0]),
    "ReduceSum": lambda k, x, a: k.ops.sum(x[0], axis=a["axis"], keepdims=a["keepdims"]),
    "ReduceMean": lambda k, x, a: k.ops.mean(x[0], axis=a["axis"], keepdims=a["keepdims"]),
    "ReduceMax": lambda k, x, a: k.ops.max(x[0], axis=a["axis"], keepdims=a["keepdims"]),
    "ReduceMin": lambda k, x, a: k.ops.min(x[0], axis=a["axis"], keepdims=a["keepdims"]),
    "ArgMax": _arg("argmax"),
    "ArgMin": _arg("argmin"),
    "Softmax": lambda k, x, a: k.ops.softmax(x[0], axis=a["axis"]),
    "LogSoftmax": lambda k, x, a: k.ops.log_softmax(x[0], axis=a["axis"]),
    "CumSum": lambda k, x, a: k.ops.cumsum(x[0], axis=a["axis"]),
    "Flip": lambda k, x, a: k.ops.flip(x[0], axis=a["axis"]),
    "MatMul": lambda k, x, a: k.ops.matmul(x[0], x[1]),
    "Reshape": lambda k, x, a: k.ops.reshape(x[0], a["shape"]),
    "Flatten": lambda k, x, a: k.layers.Flatten()(x[0]),
    "Transpose": lambda k, x, a: k.ops.transpose(x[0], a["perm"]),
    "Squeeze": lambda k, x, a: k.ops.squeeze(x[0], axis=a["axis"]),
    "Unsqueeze": lambda k, x, a: k.ops.expand_dims(x[0], a["axis"]),
    "Expand": lambda k, x, a: k.ops.broadcast_to(x[0], a["shape"]),
    "Concat": lambda k, x, a: k.ops.concatenate([x[0], x[1]], axis=a["axis"]),
    "Slice": _slice,
    "Gather": lambda k, x, a: k.ops.take(x[0], np.array(a["indices"]), axis=a["axis"]),
    "Pad": _pad,
    "Tril": lambda k, x, a: k.ops.tril(x[0], a["diagonal"]),
    "Triu": lambda k, x, a: k.ops.triu(x[0], a["diagonal"]),
    "Tile": lambda k, x, a: k.ops.tile(x[0], a["reps"]),
    "MaxPooling1D": _window_pool("MaxPooling1D"),
    "MaxPooling2D": _window_pool("MaxPooling2D"),
    "AveragePooling2D": _window_pool("AveragePooling2D"),
    "GlobalAveragePooling2D": lambda k, x, a: k.layers.GlobalAveragePooling2D(keepdims=True)(x[0]),
    "ResizeNearest": _resize("nearest"),
    "ResizeBilinear": _resize("bilinear"),
    "DepthToSpace": lambda k, x, a: _tf_layers().DepthToSpace(a["block"])(x[0]),
    "SpaceToDepth": lambda k, x, a: _tf_layers().SpaceToDepth(a["block"])(x[0]),
    **KERAS_FUNCTIONS,
}


def _conv(cls: str):
    def make(k, a, init):
        return getattr(k.layers, cls)(
            a["out_channels"],
            a["kernel"],
            strides=a["stride"],
            padding=a["padding"],
            kernel_initializer=init("kernel"),
            bias_initializer=init("bias"),
        )

    return make


_LAYERS: dict[str, Any] = {
    "Linear": lambda k, a, init: k.layers.Dense(
        a["out_features"], kernel_initializer=init("kernel"), bias_initializer=init("bias")
    ),
    "Conv1D": _conv("Conv1D"),
    "Conv2D": _conv("Conv2D"),
    "Conv2DTranspose": _conv("Conv2DTranspose"),
    "BatchNormalization": lambda k, a, init: k.layers.BatchNormalization(axis=-1),
    "LayerNorm": lambda k, a, init: k.layers.LayerNormalization(axis=-1),
    "PReLU": lambda k, a, init: k.layers.PReLU(
        alpha_initializer=init("alpha"), shared_axes=list(range(1, a["rank"] - 1)) or None
    ),
}


def to_keras_model(graph: SyntheticGraph, seed: int):
    """Return `graph` as a functional ``keras.Model`` with static shapes (batch included).

    Args:
        graph: A graph built for ``"tensorflow"``.
        seed: Seed of the weight initialisers and normalisation statistics.

    Returns:
        The model; called with the list of inputs in order, it returns the list of outputs.

    Raises:
        ValueError: If an op of `graph` has no Keras implementation here.
    """
    keras = import_optional("keras", extra="tensorflow")
    known = _FUNCTIONS.keys() | _LAYERS.keys() | TF_CALLS.keys()
    missing = sorted({op for op in graph.ops if op not in known})
    if missing:
        raise ValueError(f"no Keras implementation of: {', '.join(missing)}")
    rng = np.random.default_rng(seed)

    def init(kind: str):
        sub = int(rng.integers(2**31))
        if kind == "kernel":
            return keras.initializers.GlorotUniform(seed=sub)
        if kind == "alpha":
            return keras.initializers.RandomUniform(0.0, 0.5, seed=sub)
        return keras.initializers.RandomUniform(-0.1, 0.1, seed=sub)

    env = {
        name: keras.Input(shape=t.shape[1:], batch_size=t.shape[0], name=name, dtype=t.dtype)
        for name, t in graph.inputs
    }
    inputs = list(env.values())
    for node in graph.nodes:
        args = [env[ref] for ref in node.inputs]
        if node.op in _LAYERS:
            attrs = dict(node.attrs, rank=len(args[0].shape))
            layer = _LAYERS[node.op](keras, attrs, init)
            env[node.name] = layer(*args)
            if node.op in ("BatchNormalization", "LayerNorm"):
                _randomise_norm(layer, rng)
        elif node.op in TF_CALLS:
            env[node.name] = tf_op_layer(node)(*args)
        else:
            env[node.name] = _FUNCTIONS[node.op](keras, args, node.attrs)
    outputs = [env[name] for name in graph.outputs]
    return keras.Model(inputs=inputs, outputs=outputs, name=f"synthetic_{graph.seed}")


def _randomise_norm(layer, rng: np.random.Generator) -> None:
    """Give a normalisation layer random affine parameters (and moving statistics)."""
    weights = layer.get_weights()
    size = weights[0].shape
    values = [rng.uniform(0.5, 1.5, size), rng.normal(0.0, 0.2, size)]
    if len(weights) == 4:
        values += [rng.normal(0.0, 0.5, size), rng.uniform(0.5, 2.0, size)]
    layer.set_weights([v.astype(np.float32) for v in values])


@functools.cache
def _tf_layers():
    import keras
    import tensorflow as tf

    class DepthToSpace(keras.layers.Layer):
        """``tf.nn.depth_to_space`` (NHWC)."""

        def __init__(self, block: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.block = block

        def call(self, x):
            return tf.nn.depth_to_space(x, self.block)

        def compute_output_shape(self, shape):
            n, h, w, c = shape
            return (n, h * self.block, w * self.block, c // self.block**2)

    class SpaceToDepth(DepthToSpace):
        """``tf.nn.space_to_depth`` (NHWC)."""

        def call(self, x):
            return tf.nn.space_to_depth(x, self.block)

        def compute_output_shape(self, shape):
            n, h, w, c = shape
            return (n, h // self.block, w // self.block, c * self.block**2)

    class Add(keras.layers.Layer):
        """``tf.add``: ``keras.ops.add`` mistakes a higher-rank second operand for a bias."""

        def call(self, x, y):
            return tf.add(x, y)

    class ArgReduce(keras.layers.Layer):
        """``tf.math.argmax``/``argmin`` with int64 indices, optionally keeping the axis."""

        def __init__(self, function: str, *, axis: int, keepdims: bool, **kwargs) -> None:
            super().__init__(**kwargs)
            self.function, self.axis, self.keepdims = function, axis, keepdims

        def call(self, x):
            index = getattr(tf.math, self.function)(x, axis=self.axis, output_type=tf.int64)
            return tf.expand_dims(index, self.axis) if self.keepdims else index

        def compute_output_spec(self, x):
            shape = list(x.shape)
            axis = self.axis % len(shape)
            if self.keepdims:
                shape[axis] = 1
            else:
                del shape[axis]
            return keras.KerasTensor(tuple(shape), dtype="int64")

    return SimpleNamespace(
        DepthToSpace=DepthToSpace, SpaceToDepth=SpaceToDepth, Add=Add, ArgReduce=ArgReduce
    )
