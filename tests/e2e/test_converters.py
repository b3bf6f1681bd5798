"""End to end: tiny models through the real converters, ONNX Runtime, and opseq's analysis.

A residual block relu(conv2(relu(conv1(x))) + x) has 2 input->output paths (through the convs and
through the skip) whatever the converter; the tests check that opseq sees exactly that structure in
what torch.onnx (both exporters) and tf2onnx really produce, that the converted model runs in ONNX
Runtime, and that stripping the weights leaves the analysis unchanged.
"""

from __future__ import annotations

import io
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from opseq.analysis import analyze_model
from opseq.cli import main
from opseq.strip import strip_weights

pytestmark = pytest.mark.slow

RESIDUAL_BIGRAMS = {("Conv", "Relu"), ("Relu", "Conv"), ("Conv", "Add"), ("Add", "Relu")}


def _torch_residual_block():
    torch = pytest.importorskip("torch")

    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv2(torch.relu(self.conv1(x))) + x)

    torch.manual_seed(0)
    return Block().eval(), torch.randn(1, 4, 8, 8)


def _export_torch(dynamo: bool) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    import torch

    block, x = _torch_residual_block()
    with torch.no_grad():
        expected = block(x).numpy()
        if dynamo:
            proto = torch.onnx.export(
                block, (x,), dynamo=True, opset_version=17, verbose=False
            ).model_proto
        else:
            buffer = io.BytesIO()
            torch.onnx.export(block, (x,), buffer, dynamo=False, opset_version=17)
            proto = onnx.load_from_string(buffer.getvalue())
    return proto, x.numpy(), expected


def _export_tf2onnx() -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    tf2onnx = pytest.importorskip("tf2onnx")
    keras.utils.set_random_seed(0)
    x_in = keras.Input((8, 8, 4), name="x")
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x_in)
    hidden = keras.layers.Conv2D(4, 3, padding="same")(hidden)
    model = keras.Model(x_in, keras.layers.ReLU()(keras.layers.Add()([hidden, x_in])))
    signature = (tf.TensorSpec((1, 8, 8, 4), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    x = np.random.default_rng(0).standard_normal((1, 8, 8, 4), dtype=np.float32)
    return proto, x, model(x).numpy()


def _run_onnxruntime(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {session.get_inputs()[0].name: x})
    return output


@pytest.mark.torch
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_torch_onnx_residual_block_structure_exact(tmp_path, dynamo):
    proto, x, expected = _export_torch(dynamo)
    np.testing.assert_allclose(_run_onnxruntime(proto, x), expected, atol=1e-4)
    path = tmp_path / "block.onnx"
    onnx.save(proto, path)
    analysis = analyze_model(path, n=(2, 5))
    assert analysis.op_histogram == {"Conv": 2, "Relu": 2, "Add": 1}
    assert analysis.path_count == 2
    assert set(analysis.ngrams.of_length(2)) == RESIDUAL_BIGRAMS
    assert analysis.ngrams.of_length(5) == {("Conv", "Relu", "Conv", "Add", "Relu"): 1}
    assert analysis.info.producer_name == "pytorch"
    stripped = analyze_model(strip_weights(proto).SerializeToString(), n=(2, 5))
    assert stripped.ngrams == analysis.ngrams and stripped.path_count == 2


@pytest.mark.tf
def test_tf2onnx_residual_block_structure_exact(tmp_path):
    proto, x, expected = _export_tf2onnx()
    np.testing.assert_allclose(_run_onnxruntime(proto, x), expected, atol=1e-4)
    path = tmp_path / "block.onnx"
    onnx.save(proto, path)
    analysis = analyze_model(path, n=(2, 2))
    # tf2onnx wraps the NHWC Keras graph in Transposes to and from ONNX's NCHW.
    assert analysis.op_histogram == {"Transpose": 2, "Conv": 2, "Relu": 2, "Add": 1}
    assert analysis.path_count == 2
    assert set(analysis.ngrams.of_length(2)) == RESIDUAL_BIGRAMS | {
        ("Transpose", "Conv"),
        ("Transpose", "Add"),
        ("Relu", "Transpose"),
    }
    assert analysis.info.producer_name == "tf2onnx"


@pytest.mark.torch
def test_cli_analyze_on_real_export_exit_0(tmp_path, capsys):
    proto, _, _ = _export_torch(dynamo=True)
    path = tmp_path / "block.onnx"
    onnx.save(proto, path)
    assert main(["analyze", str(path), "--n", "5"]) == 0
    out = capsys.readouterr().out
    assert "2 input->output paths" in out
    assert "1  Conv > Relu > Conv > Add > Relu" in out
