"""The five architectures of the ``trained`` source, the same five in PyTorch and in Keras 3.

Each network ends in logits (no softmax: a differential test compares logits, where converters'
differences are not squashed), and each takes the layout `opseq.sources.trained.datasets.layout`
gives it, so the convolutions see images on digits and 1-D signals on the tabular datasets (the
features in dataset order, one channel): the same network, with ``Conv1d`` for ``Conv2d``, rather
than a skipped cell of the grid. The recurrent network reads digits row by row (8 steps of 8
features) and a tabular row feature by feature (steps of one value).

| id | layers | layout |
|---|---|---|
| ``mlp`` | dense 64, ReLU, dense 32, ReLU, dense | flat |
| ``lenet5`` | conv 6, ReLU, avg-pool, conv 16, ReLU, avg-pool, dense 120, 84, classes | conv |
| ``vgg`` | [conv 16, conv 16, max-pool], [conv 32, conv 32, max-pool], dense 64, dense | conv |
| ``resnet`` | conv 16 + BN stem, 2 residual blocks (conv-BN-ReLU-conv-BN, skip), GAP, dense | conv|
| ``gru`` | GRU 32 over the steps, last state, dense | sequence |

Convolutions are 3-wide with "same" padding; pools halve (flooring), so 13 wine features become
6, then 3. Batch normalisations use momentum 0.9 in both frameworks (torch's ``momentum=0.1``),
because Keras's default 0.99 leaves the moving statistics near their initial values after the few
hundred steps a small dataset gives. Torch modules are defined on first use, so importing this
module imports no framework.
"""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace
from typing import Any

__all__ = ["ARCHITECTURES", "LAYOUTS", "build_keras", "build_torch"]

LAYOUTS = {"mlp": "flat", "lenet5": "conv", "vgg": "conv", "resnet": "conv", "gru": "sequence"}
"""Architecture id -> the layout kind it takes (`opseq.sources.trained.datasets.layout`)."""

ARCHITECTURES = tuple(LAYOUTS)
"""Architecture ids in a fixed order."""

_HIDDEN = 32
_BN_MOMENTUM = 0.9  # Keras's convention; torch's momentum is 1 minus it


def build_torch(arch: str, sample_shape: tuple[int, ...], classes: int) -> Any:
    """Build a torch network (random weights from torch's global seed) in training mode.

    Args:
        arch: One of `ARCHITECTURES`.
        sample_shape: One sample's shape, channels first (from ``layout``).
        classes: Output logits.

    Returns:
        The ``torch.nn.Module``; its forward takes ``(batch, *sample_shape)`` float32.

    Raises:
        KeyError: If `arch` is unknown.
    """
    nets = _torch_nets()
    kind = LAYOUTS[arch]
    if kind == "flat":
        return nets.MLP(sample_shape[0], classes)
    if kind == "sequence":
        return nets.GRUNet(sample_shape[-1], classes)
    dims, spatial = len(sample_shape) - 1, sample_shape[1:]
    cls = {"lenet5": nets.LeNet5, "vgg": nets.VGG, "resnet": nets.ResNet}[arch]
    return cls(dims, spatial, classes)


@functools.cache
def _torch_nets() -> SimpleNamespace:
    """Define the torch network classes (imports torch)."""
    import torch
    from torch import nn

    def conv(dims: int, cin: int, cout: int) -> nn.Module:
        return (nn.Conv1d if dims == 1 else nn.Conv2d)(cin, cout, 3, padding=1)

    def pool(dims: int, average: bool) -> nn.Module:
        if average:
            return nn.AvgPool1d(2) if dims == 1 else nn.AvgPool2d(2)
        return nn.MaxPool1d(2) if dims == 1 else nn.MaxPool2d(2)

    def norm(dims: int, channels: int) -> nn.Module:
        cls = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        return cls(channels, momentum=1 - _BN_MOMENTUM)

    def pooled(spatial: tuple[int, ...], times: int) -> int:
        size = 1
        for side in spatial:
            for _ in range(times):
                side //= 2
            size *= side
        return size

    class MLP(nn.Module):
        def __init__(self, features: int, classes: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Linear(features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(),
                nn.Linear(32, classes),
            )  # fmt: skip

        def forward(self, x):
            return self.body(x)

    class LeNet5(nn.Module):
        def __init__(self, dims: int, spatial: tuple[int, ...], classes: int) -> None:
            super().__init__()
            self.features = nn.Sequential(
                conv(dims, 1, 6), nn.ReLU(), pool(dims, True),
                conv(dims, 6, 16), nn.ReLU(), pool(dims, True), nn.Flatten(),
            )  # fmt: skip
            self.head = nn.Sequential(
                nn.Linear(16 * pooled(spatial, 2), 120), nn.ReLU(), nn.Linear(120, 84),
                nn.ReLU(), nn.Linear(84, classes),
            )  # fmt: skip

        def forward(self, x):
            return self.head(self.features(x))

    class VGG(nn.Module):
        def __init__(self, dims: int, spatial: tuple[int, ...], classes: int) -> None:
            super().__init__()
            self.features = nn.Sequential(
                conv(dims, 1, 16), nn.ReLU(), conv(dims, 16, 16), nn.ReLU(), pool(dims, False),
                conv(dims, 16, 32), nn.ReLU(), conv(dims, 32, 32), nn.ReLU(), pool(dims, False),
                nn.Flatten(),
            )  # fmt: skip
            self.head = nn.Sequential(
                nn.Linear(32 * pooled(spatial, 2), 64), nn.ReLU(), nn.Linear(64, classes)
            )

        def forward(self, x):
            return self.head(self.features(x))

    class Residual(nn.Module):
        def __init__(self, dims: int, channels: int) -> None:
            super().__init__()
            self.body = nn.Sequential(
                conv(dims, channels, channels), norm(dims, channels), nn.ReLU(),
                conv(dims, channels, channels), norm(dims, channels),
            )  # fmt: skip
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(x + self.body(x))

    class ResNet(nn.Module):
        def __init__(self, dims: int, spatial: tuple[int, ...], classes: int) -> None:
            super().__init__()
            del spatial  # global average pooling makes the head independent of it
            self.stem = nn.Sequential(conv(dims, 1, 16), norm(dims, 16), nn.ReLU())
            self.blocks = nn.Sequential(Residual(dims, 16), Residual(dims, 16))
            self.dims = dims
            self.out = nn.Linear(16, classes)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.out(torch.flatten(x, 2).mean(dim=2))

    class GRUNet(nn.Module):
        def __init__(self, step_features: int, classes: int) -> None:
            super().__init__()
            self.gru = nn.GRU(step_features, _HIDDEN, batch_first=True)
            self.out = nn.Linear(_HIDDEN, classes)

        def forward(self, x):
            states, _ = self.gru(x)
            return self.out(states[:, -1])

    return SimpleNamespace(MLP=MLP, LeNet5=LeNet5, VGG=VGG, ResNet=ResNet, GRUNet=GRUNet)


def build_keras(arch: str, sample_shape: tuple[int, ...], classes: int) -> Any:
    """Build a Keras 3 functional model (random weights from Keras's global seed).

    Args:
        arch: One of `ARCHITECTURES`.
        sample_shape: One sample's shape, channels last (from ``layout``).
        classes: Output logits.

    Returns:
        The ``keras.Model``, with one input named ``x``.

    Raises:
        KeyError: If `arch` is unknown.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from opseq._optional import import_optional

    keras = import_optional("keras", extra="tensorflow")
    layers = keras.layers
    kind = LAYOUTS[arch]
    inputs = keras.Input(shape=sample_shape, name="x")
    dims = len(sample_shape) - 1

    def conv(x, channels: int):
        cls = layers.Conv1D if dims == 1 else layers.Conv2D
        return cls(channels, 3, padding="same")(x)

    def pool(x, average: bool):
        if average:
            return (layers.AveragePooling1D if dims == 1 else layers.AveragePooling2D)(2)(x)
        return (layers.MaxPooling1D if dims == 1 else layers.MaxPooling2D)(2)(x)

    def norm(x):
        return layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=1e-5)(x)

    relu = layers.ReLU
    if kind == "flat":
        x = layers.Dense(64, activation="relu")(inputs)
        x = layers.Dense(32, activation="relu")(x)
    elif kind == "sequence":
        x = layers.GRU(_HIDDEN)(inputs)
    elif arch == "lenet5":
        x = pool(relu()(conv(inputs, 6)), True)
        x = layers.Flatten()(pool(relu()(conv(x, 16)), True))
        x = layers.Dense(84, activation="relu")(layers.Dense(120, activation="relu")(x))
    elif arch == "vgg":
        x = inputs
        for channels in (16, 32):
            x = pool(relu()(conv(relu()(conv(x, channels)), channels)), False)
        x = layers.Dense(64, activation="relu")(layers.Flatten()(x))
    elif arch == "resnet":
        x = relu()(norm(conv(inputs, 16)))
        for _ in range(2):
            body = norm(conv(relu()(norm(conv(x, 16))), 16))
            x = relu()(layers.Add()([x, body]))
        pooling = layers.GlobalAveragePooling1D if dims == 1 else layers.GlobalAveragePooling2D
        x = pooling()(x)
    else:
        raise KeyError(arch)
    outputs = layers.Dense(classes)(x)
    return keras.Model(inputs, outputs, name=arch)
