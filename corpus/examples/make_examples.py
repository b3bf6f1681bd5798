"""Build the small example models in this directory: real architectures, structure only.

Each model is built with a fixed seed, converted at opset 17, run once in ONNX Runtime against its
framework (the maximum absolute difference is logged as a sanity check), then stripped of its
weights with `opseq.strip.strip_weights` and written next to this script:

- ``resnet_torch.onnx``: a CNN with two residual blocks (Conv-BN-ReLU, skip Add), global average
  pooling and a Linear head, 1x3x32x32; torch.onnx TorchScript exporter (the dynamo exporter
  cannot bring its ReduceMean down from opset 18 to 17 and silently keeps opset 18).
- ``keras_cnn_tf2onnx.onnx``: a Keras functional CNN (Conv2D, BatchNormalization, ReLU,
  DepthwiseConv2D, Concatenate, Add, GlobalAveragePooling2D, softmax Dense), 1x32x32x3; tf2onnx.
- ``transformer_block_torch.onnx``: one pre-LayerNorm transformer encoder block with explicit
  attention (MatMul, Softmax), d_model 32, 2 heads, GELU MLP, residuals, 1x8x32; torch.onnx dynamo.
- ``lstm_torch.onnx``: an Embedding -> LSTM -> Linear classifier over 1x8 token ids; torch.onnx
  dynamo.

In eval mode both torch exporters fold BatchNorm into the Conv before it, so the exported CNN shows
Conv -> Relu.

Run from anywhere: ``python corpus/examples/make_examples.py`` (needs torch, tensorflow, tf2onnx).
"""

from __future__ import annotations

import io
import logging
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort

from opseq.strip import strip_weights

if TYPE_CHECKING:
    import torch

HERE = Path(__file__).resolve().parent
OPSET = 17
SEED = 0
MAX_FILE_BYTES = 200_000

log = logging.getLogger("make_examples")

# A converted model, the inputs to check it on, and the framework's output for those inputs.
Conversion = tuple[onnx.ModelProto, dict[str, np.ndarray], np.ndarray]


def resnet_torch() -> Conversion:
    import torch
    from torch import nn

    class ResidualBlock(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(x + self.bn2(self.conv2(y)))

    torch.manual_seed(SEED)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        ResidualBlock(16),
        ResidualBlock(16),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    return export_torch(model, {"image": torch.randn(1, 3, 32, 32)}, dynamo=False)


def transformer_block_torch() -> Conversion:
    import torch
    from torch import nn

    class EncoderBlock(nn.Module):
        def __init__(self, d_model: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.norm1 = nn.LayerNorm(d_model)
            self.qkv = nn.Linear(d_model, 3 * d_model)
            self.proj = nn.Linear(d_model, d_model)
            self.norm2 = nn.LayerNorm(d_model)
            self.mlp = nn.Sequential(
                nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
            )

        def forward(self, x):
            batch, seq, d_model = x.shape
            head_dim = d_model // self.heads
            qkv = self.qkv(self.norm1(x)).reshape(batch, seq, 3, self.heads, head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(head_dim), dim=-1)
            attended = (weights @ v).transpose(1, 2).reshape(batch, seq, d_model)
            x = x + self.proj(attended)
            return x + self.mlp(self.norm2(x))

    torch.manual_seed(SEED)
    return export_torch(EncoderBlock(32, 2), {"x": torch.randn(1, 8, 32)}, dynamo=True)


def lstm_torch() -> Conversion:
    import torch
    from torch import nn

    class LSTMClassifier(nn.Module):
        def __init__(self, vocab: int, embed: int, hidden: int, classes: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.lstm = nn.LSTM(embed, hidden, batch_first=True)
            self.head = nn.Linear(hidden, classes)

        def forward(self, tokens):
            states, _ = self.lstm(self.embed(tokens))
            return self.head(states[:, -1])

    torch.manual_seed(SEED)
    model = LSTMClassifier(vocab=100, embed=16, hidden=32, classes=4)
    return export_torch(model, {"tokens": torch.randint(0, 100, (1, 8))}, dynamo=True)


def export_torch(
    model: torch.nn.Module, inputs: dict[str, torch.Tensor], *, dynamo: bool
) -> Conversion:
    """Export `model` in eval mode with torch.onnx, inputs named and ordered as in `inputs`."""
    import torch

    model.eval()
    args = tuple(inputs.values())
    options = {"input_names": list(inputs), "output_names": ["output"], "opset_version": OPSET}
    with torch.no_grad():
        expected = model(*args).numpy()
        if dynamo:
            program = torch.onnx.export(model, args, dynamo=True, verbose=False, **options)
            proto = program.model_proto
        else:
            buffer = io.BytesIO()
            torch.onnx.export(model, args, buffer, dynamo=False, **options)
            proto = onnx.load_from_string(buffer.getvalue())
    return proto, {name: tensor.numpy() for name, tensor in inputs.items()}, expected


def keras_cnn_tf2onnx() -> Conversion:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    import tf2onnx
    from keras import layers

    keras.utils.set_random_seed(SEED)
    image = keras.Input((32, 32, 3), name="image")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False)(image)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    depthwise = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    depthwise = layers.ReLU()(layers.BatchNormalization()(depthwise))
    pointwise = layers.Conv2D(16, 1)(x)
    merged = layers.Conv2D(16, 1)(layers.Concatenate()([depthwise, pointwise]))
    x = layers.Add()([x, merged])
    x = layers.GlobalAveragePooling2D()(x)
    probabilities = layers.Dense(10, activation="softmax")(x)
    model = keras.Model(image, probabilities)

    batch = np.random.default_rng(SEED).standard_normal((1, 32, 32, 3), dtype=np.float32)
    signature = (tf.TensorSpec((None, 32, 32, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    return proto, {"image": batch}, model(batch).numpy()


EXAMPLES: dict[str, Callable[[], Conversion]] = {
    "resnet_torch": resnet_torch,
    "keras_cnn_tf2onnx": keras_cnn_tf2onnx,
    "transformer_block_torch": transformer_block_torch,
    "lstm_torch": lstm_torch,
}


def check_in_onnxruntime(name: str, conversion: Conversion) -> None:
    """Fail unless the model is at opset `OPSET` and runs; log how far it is from the framework."""
    proto, feeds, expected = conversion
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    if opset != OPSET:
        raise RuntimeError(f"{name}: converted to opset {opset}, expected {OPSET}")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, feeds)
    diff = float(np.max(np.abs(actual - expected)))
    log.info("%s: %d nodes, max abs diff vs framework %.3g", name, len(proto.graph.node), diff)


def write_structure_only(name: str, proto: onnx.ModelProto) -> Path:
    """Save `proto` without its weights next to this script; fail if the file is too large."""
    path = HERE / f"{name}.onnx"
    onnx.save(strip_weights(proto), path)
    onnx.load(path)
    size = path.stat().st_size
    if size >= MAX_FILE_BYTES:
        raise RuntimeError(f"{path}: {size} bytes, examples must stay under {MAX_FILE_BYTES}")
    log.info("%s: wrote %s (%.1f KB)", name, path.name, size / 1e3)
    return path


def main() -> None:
    logging.basicConfig(format="%(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    for name, build in EXAMPLES.items():
        conversion = build()
        check_in_onnxruntime(name, conversion)
        write_structure_only(name, conversion[0])


if __name__ == "__main__":
    main()
