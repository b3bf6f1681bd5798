#!/usr/bin/env python3
"""tf2onnx disagrees with tensorflow on Pow -> ArgMin (float32, float32)

Loads model.keras, runs it on test_data_set_0's inputs, converts it again with
tf2onnx.convert.from_keras at opset 17, runs the ONNX model in ONNX Runtime and prints the
largest difference. Exit 1: it exceeds 10.0: the inconsistency reproduces; 0: it does not; 2: a
step failed.
"""
import glob
import io
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "test_data_set_0")
OPSET = 17
EXPORTER = 'tf2onnx'
BOUND = 10.0


def fail(stage, error):
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    line = f"reproduce.py: error: {stage} failed: {type(error).__name__}: {first}"
    print(line[:500], file=sys.stderr)
    sys.exit(2)


def tensors(kind):
    import onnx
    from onnx import numpy_helper

    paths = sorted(glob.glob(os.path.join(DATA, f"{kind}_*.pb")),
                   key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    found = {}
    for path in paths:
        tensor = onnx.load_tensor(path)
        found[tensor.name] = numpy_helper.to_array(tensor)
    return found


def difference(expected, actual):
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return float("inf")
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    odd_e, odd_a = ~np.isfinite(e), ~np.isfinite(a)
    if not np.array_equal(odd_e, odd_a) or not np.array_equal(e[odd_e], a[odd_a], equal_nan=True):
        return float("inf")
    return float(np.max(np.abs(e[~odd_e] - a[~odd_a]), initial=0.0))


def run_onnxruntime(model_bytes, inputs):
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    values = list(inputs.values())
    feeds = {
        i.name: inputs[i.name] if i.name in inputs else values[k]
        for k, i in enumerate(session.get_inputs())
    }
    return session.run(None, feeds)


def report(expected, actual):
    diffs = [difference(e, a) for e, a in zip(expected, actual)]
    if len(expected) != len(actual):
        diffs.append(float("inf"))
    worst = max(diffs, default=0.0)
    verdict = "reproduces" if worst > BOUND else "does not reproduce"
    print(f"max difference {worst:.6g} over {len(expected)} outputs, "
          f"bound {BOUND:.6g}: {verdict}")
    sys.exit(1 if worst > BOUND else 0)


INPUTS = [('n12', [1, 24, 16], 'float32'), ('n20', [24, 16], 'float32')]
MODEL_FILE = 'model.keras'
CUSTOM_LAYERS = {'arg_reduce_48': {'function': 'argmin', 'axis': 1, 'keepdims': False}}


def custom_objects(keras, tf):
    """The synthetic materialiser's own layers, their arguments looked up by layer name."""

    def arguments(config):
        return CUSTOM_LAYERS.get(config.get("name"), {})

    class DepthToSpace(keras.layers.Layer):
        def __init__(self, block=2, **kwargs):
            super().__init__(**kwargs)
            self.block = block

        @classmethod
        def from_config(cls, config):
            return cls(**{**config, **arguments(config)})

        def call(self, x):
            return tf.nn.depth_to_space(x, self.block)

    class SpaceToDepth(DepthToSpace):
        def call(self, x):
            return tf.nn.space_to_depth(x, self.block)

    class Add(keras.layers.Layer):
        def call(self, x, y):
            return tf.add(x, y)

    class ArgReduce(keras.layers.Layer):
        def __init__(self, function="argmax", axis=-1, keepdims=False, **kwargs):
            super().__init__(**kwargs)
            self.function, self.axis, self.keepdims = function, axis, keepdims

        @classmethod
        def from_config(cls, config):
            return cls(**{**config, **arguments(config)})

        def call(self, x):
            index = getattr(tf.math, self.function)(x, axis=self.axis, output_type=tf.int64)
            return tf.expand_dims(index, self.axis) if self.keepdims else index

    return {"DepthToSpace": DepthToSpace, "SpaceToDepth": SpaceToDepth, "Add": Add,
            "ArgReduce": ArgReduce}


def load(keras, tf):
    """The model and a function computing its outputs (a list) from the list of inputs."""
    if MODEL_FILE == "saved_model":
        loaded = tf.saved_model.load(os.path.join(HERE, MODEL_FILE))
        return loaded, lambda values: tf.nest.flatten(loaded.serve(values))
    with keras.saving.custom_object_scope(custom_objects(keras, tf)):
        model = keras.saving.load_model(os.path.join(HERE, MODEL_FILE), compile=False)
    return model, lambda values: tf.nest.flatten(model(values, training=False))


def convert(tf, model, signature):
    import tf2onnx

    if MODEL_FILE == "saved_model":
        function = tf.function(lambda *xs: model.serve(list(xs)))
        return tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET)
    return tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)


def main():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow as tf
    except ImportError as e:
        fail("import", e)
    inputs = tensors("input")
    try:
        model, run = load(keras, tf)
        expected = [np.asarray(o) for o in run([inputs[name] for name, _, _ in INPUTS])]
    except Exception as e:
        fail("framework (keras)", e)
    try:
        if EXPORTER == "stored":
            with open(os.path.join(HERE, "model.onnx"), "rb") as stream:
                model_bytes = stream.read()
        else:
            signature = [tf.TensorSpec(shape, tf.as_dtype(dtype), name=name)
                         for name, shape, dtype in INPUTS]
            proto, _ = convert(tf, model, signature)
            model_bytes = proto.SerializeToString()
    except Exception as e:
        fail(f"conversion ({EXPORTER})", e)
    try:
        actual = run_onnxruntime(model_bytes, inputs)
    except Exception as e:
        fail("onnxruntime", e)
    report(expected, actual)


if __name__ == "__main__":
    main()
