"""``reproduce.py`` for Keras findings: load the model, convert with tf2onnx, compare.

The synthetic materialiser's own layers (``Add``, ``ArgReduce``, ``DepthToSpace``,
``SpaceToDepth``: `opseq.sources.synthetic.tf_model`) are not importable without opseq, so the
script defines them itself, taking each layer's arguments from a table keyed by layer name that
is written into the script (their Keras configs do not hold them), loads ``model.keras`` and
converts it with ``tf2onnx.convert.from_keras``, as the oracle did. A model with other layers
of opseq's (the wide vocabulary's ``TFOp``, which calls TensorFlow through opseq's own table)
is exported as a TensorFlow SavedModel instead (``saved_model/``): the script runs its serving
function and converts that with ``tf2onnx.convert.from_function``. The rest is as for torch
(`opseq.reduce.scripts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opseq.reduce.scripts import BUILTIN_EXPORTERS, COMMON_SCRIPT, script_header

__all__ = ["keras_script"]

_KERAS = '''\


INPUTS = {inputs!r}
MODEL_FILE = {model_file!r}
CUSTOM_LAYERS = {custom!r}


def custom_objects(keras, tf):
    """The synthetic materialiser's own layers, their arguments looked up by layer name."""

    def arguments(config):
        return CUSTOM_LAYERS.get(config.get("name"), {{}})

    class DepthToSpace(keras.layers.Layer):
        def __init__(self, block=2, **kwargs):
            super().__init__(**kwargs)
            self.block = block

        @classmethod
        def from_config(cls, config):
            return cls(**{{**config, **arguments(config)}})

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
            return cls(**{{**config, **arguments(config)}})

        def call(self, x):
            index = getattr(tf.math, self.function)(x, axis=self.axis, output_type=tf.int64)
            return tf.expand_dims(index, self.axis) if self.keepdims else index

    return {{"DepthToSpace": DepthToSpace, "SpaceToDepth": SpaceToDepth, "Add": Add,
            "ArgReduce": ArgReduce}}


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
        fail(f"conversion ({{EXPORTER}})", e)
    try:
        actual = run_onnxruntime(model_bytes, inputs)
    except Exception as e:
        fail("onnxruntime", e)
    report(expected, actual)


if __name__ == "__main__":
    main()
'''


def keras_script(
    *,
    title: str,
    converter: str,
    opset: int,
    bound: float,
    inputs: Sequence[tuple[str, Sequence[int], str]],
    model_file: str,
    custom_layers: Mapping[str, Mapping[str, object]],
) -> str:
    """The ``reproduce.py`` of a Keras finding.

    Args:
        title: The docstring's first line.
        converter: The converter name (``tf2onnx``, or another: the stored model).
        opset: The opset to convert at.
        bound: Exit 1 above this difference.
        inputs: ``(name, shape, dtype)`` of each input, in order.
        model_file: ``model.keras``, or ``saved_model`` (module docstring).
        custom_layers: Per layer name, the arguments of the materialiser's own layers.

    Returns:
        The script's text.
    """
    exporter = BUILTIN_EXPORTERS.get(converter, "stored")
    if exporter == "stored":
        how = f"takes model.onnx as {converter} converted it"
    elif model_file == "saved_model":
        how = (
            f"converts its exported graph again with tf2onnx.convert.from_function at opset "
            f"{opset} (its layers need opseq to be rebuilt as Keras layers)"
        )
    else:
        how = f"converts it again with tf2onnx.convert.from_keras at opset {opset}"
    header = script_header(
        title,
        [
            f"Loads {model_file}, runs it on test_data_set_0's inputs, {how}, runs the ONNX",
            "model in ONNX Runtime and prints the largest difference. Exit 1: it exceeds",
            f"{bound!r}: the inconsistency reproduces; 0: it does not; 2: a step failed.",
        ],
    )
    common = COMMON_SCRIPT.format(opset=opset, exporter=exporter, bound=bound)
    spec = [(name, list(shape), dtype) for name, shape, dtype in inputs]
    custom = {k: dict(v) for k, v in custom_layers.items()}
    body = _KERAS.format(inputs=spec, model_file=model_file, custom=custom)
    return header + common + body
