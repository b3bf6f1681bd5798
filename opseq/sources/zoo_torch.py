"""Classic PyTorch architectures written out in code, with random weights, for torch.onnx.

No torchvision: every network is defined here, small enough to read and to convert in seconds.
The module bodies are built inside `_define` on first use, so importing this module does not import
torch.

With random weights and batch normalisations at their initial statistics (mean 0, variance 1),
activations shrink layer after layer (PyTorch's default convolution init scales each layer's
variance by about 1/3) until a classifier's logits are its bias. So `build` calibrates the running
statistics as training would: one pass in training mode over a few random inputs with cumulative
averaging, the batch normalisations alone switched to training mode, after which each holds the
mean and variance of its own input.

| case | input | output |
|---|---|---|
| ``resnet18`` | image (1, 3, 224, 224) | logits (1, 1000) |
| ``mobilenet`` | image (1, 3, 64, 64) | logits (1, 10) |
| ``unet`` | image (1, 3, 64, 64) | mask logits (1, 2, 64, 64) |
| ``lstm-classifier`` | tokens (1, 16) | logits (1, 4) |
| ``gru-tagger`` | tokens (1, 16) | tag logits (1, 16, 8) |
| ``transformer-encoder`` | tokens (1, 16) | logits (1, 4) |
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from opseq._optional import import_optional
from opseq.sources.base import Framework, InputSpec, ModelCase

__all__ = ["ARCHITECTURES", "SOURCE", "TorchZoo"]

CALIBRATION_INPUTS = 4
_VOCAB = 1000
_TOKENS = InputSpec(name="tokens", shape=(1, 16), dtype="int64", low=0, high=_VOCAB)


def _image(size: int) -> InputSpec:
    return InputSpec(name="image", shape=(1, 3, size, size), dtype="float32")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Architecture:
    """A network class defined in `_define`, its constructor arguments, and its input."""

    cls: str
    config: dict[str, Any] = field(default_factory=dict)
    input: InputSpec


ARCHITECTURES: dict[str, _Architecture] = {
    "resnet18": _Architecture(cls="ResNet18", config={"classes": 1000}, input=_image(224)),
    "lstm-classifier": _Architecture(
        cls="LSTMClassifier",
        config={"vocab": _VOCAB, "embed": 64, "hidden": 128, "layers": 2, "classes": 4},
        input=_TOKENS,
    ),
    "unet": _Architecture(cls="UNet", config={"width": 16, "classes": 2}, input=_image(64)),
    "gru-tagger": _Architecture(
        cls="GRUTagger",
        config={"vocab": _VOCAB, "embed": 64, "hidden": 64, "tags": 8},
        input=_TOKENS,
    ),
    "mobilenet": _Architecture(cls="MobileNet", config={"classes": 10}, input=_image(64)),
    "transformer-encoder": _Architecture(
        cls="TransformerClassifier",
        config={"vocab": _VOCAB, "width": 64, "heads": 4, "layers": 2, "classes": 4, "length": 16},
        input=_TOKENS,
    ),
}
"""Case id -> architecture, in a fixed order (the three required classics first)."""


class TorchZoo:
    """The ``zoo-torch`` source: hand-written classic networks, random weights, batch 1."""

    name = "zoo-torch"
    framework = Framework.TORCH

    def case_ids(self, *, count: int | None = None, seed: int = 0) -> Sequence[str]:
        """Return the architecture ids in a fixed order (the seed does not change it).

        Args:
            count: Return only the first `count` ids; all of them when None.
            seed: Unused: the zoo is a fixed list.

        Returns:
            Case ids.
        """
        ids = list(ARCHITECTURES)
        return ids if count is None else ids[:count]

    def build(self, case_id: str, *, seed: int = 0) -> ModelCase:
        """Build one network in eval mode with weights initialised from `seed`.

        Args:
            case_id: One of `case_ids()`.
            seed: Seed of the weight initialisation (``torch.manual_seed``).

        Returns:
            The ``torch.nn.Module``, its one input, and metadata.

        Raises:
            KeyError: If `case_id` is not a case of this source.
        """
        arch = _lookup(case_id)
        torch = import_optional("torch", extra="torch")
        torch.manual_seed(seed)
        model = getattr(_define(), arch.cls)(**arch.config).eval()
        calibrated = _calibrate_batchnorm(torch, model, arch.input, seed=seed)
        return ModelCase(
            case_id=case_id,
            framework=self.framework,
            model=model,
            inputs=(arch.input,),
            metadata={
                "architecture": arch.cls,
                "parameters": sum(p.numel() for p in model.parameters()),
                "config": dict(arch.config),
                "batchnorm_calibration": {"layers": calibrated, "inputs": CALIBRATION_INPUTS},
            },
        )


def _calibrate_batchnorm(torch, model, spec: InputSpec, *, seed: int) -> int:
    """Set every batch normalisation's running statistics to those of its input; return how many.

    One forward pass over `CALIBRATION_INPUTS` standard-normal inputs drawn from `seed` (from a
    stream of their own, so they are not the test inputs of `make_inputs`), with only the batch
    normalisations in training mode (dropout stays off) and ``momentum=None`` (a cumulative
    average, which after one batch is the batch's statistics). Leaves `model` in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or np.dtype(spec.dtype).kind != "f":
        return 0
    shape = (CALIBRATION_INPUTS, *spec.shape[1:])
    batch = np.random.default_rng([seed, 1]).standard_normal(shape).astype(spec.dtype)
    saved = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    try:
        with torch.no_grad():
            model(torch.from_numpy(batch))
    finally:
        for norm, momentum in zip(norms, saved, strict=True):
            norm.momentum = momentum
        model.eval()
    return len(norms)


def _lookup(case_id: str) -> _Architecture:
    try:
        return ARCHITECTURES[case_id]
    except KeyError:
        raise KeyError(
            f"unknown zoo-torch case {case_id!r}; known: {', '.join(ARCHITECTURES)}"
        ) from None


@functools.cache
def _define() -> SimpleNamespace:
    """Define the network classes (imports torch); return them as a namespace.

    One long function on purpose: the classes subclass ``torch.nn.Module``, so they can only be
    defined once torch is imported, and importing this module must not import torch.
    """
    import torch
    from torch import nn

    def conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout)
        )

    class BasicBlock(nn.Module):
        """ResNet basic block: two 3x3 convs and a skip (projected when the shape changes)."""

        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1, self.conv2 = conv_bn(cin, cout, stride), conv_bn(cout, cout)
            self.relu = nn.ReLU()
            self.skip = nn.Identity()
            if stride != 1 or cin != cout:
                self.skip = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            return self.relu(self.conv2(self.relu(self.conv1(x))) + self.skip(x))

    class ResNet18(nn.Module):
        """ResNet-18: 7x7 stem, max-pool, BasicBlock x [2, 2, 2, 2], global pool, linear."""

        def __init__(self, classes: int) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
            blocks, cin = [], 64
            for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
                cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)
            )

        def forward(self, image):
            return self.head(self.blocks(self.stem(image)))

    class InvertedResidual(nn.Module):
        """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project; skip when shapes match."""

        def __init__(self, cin: int, cout: int, stride: int, expand: int = 4) -> None:
            super().__init__()
            mid = cin * expand
            self.body = nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False),
                nn.BatchNorm2d(mid),
                nn.ReLU6(),
                conv_bn(mid, mid, stride, groups=mid),
                nn.Hardswish(),
                nn.Conv2d(mid, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.body(x) if self.residual else self.body(x)

    class MobileNet(nn.Module):
        """A small MobileNetV2-style network of depthwise-separable inverted residuals."""

        def __init__(self, classes: int) -> None:
            super().__init__()
            plan = [(16, 16, 1), (16, 24, 2), (24, 24, 1), (24, 32, 2), (32, 32, 1), (32, 64, 2)]
            self.features = nn.Sequential(
                conv_bn(3, 16, stride=2),
                nn.ReLU6(),
                *(InvertedResidual(cin, cout, stride) for cin, cout, stride in plan),
            )
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, classes)
            )

        def forward(self, image):
            return self.head(self.features(image))

    def double_conv(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(conv_bn(cin, cout), nn.ReLU(), conv_bn(cout, cout), nn.ReLU())

    class UNet(nn.Module):
        """UNet: two max-pool downsamplings, two transposed-conv upsamplings, skip concatenation."""

        def __init__(self, width: int, classes: int) -> None:
            super().__init__()
            w = width
            self.enc1, self.enc2 = double_conv(3, w), double_conv(w, 2 * w)
            self.pool = nn.MaxPool2d(2)
            self.bottom = double_conv(2 * w, 4 * w)
            self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
            self.dec2 = double_conv(4 * w, 2 * w)
            self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
            self.dec1 = double_conv(2 * w, w)
            self.out = nn.Conv2d(w, classes, 1)

        def forward(self, image):
            skip1 = self.enc1(image)
            skip2 = self.enc2(self.pool(skip1))
            x = self.bottom(self.pool(skip2))
            x = self.dec2(torch.cat([self.up2(x), skip2], dim=1))
            return self.out(self.dec1(torch.cat([self.up1(x), skip1], dim=1)))

    class LSTMClassifier(nn.Module):
        """Embedding, stacked LSTM, linear layer on the last time step."""

        def __init__(self, vocab: int, embed: int, hidden: int, layers: int, classes: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
            self.out = nn.Linear(hidden, classes)

        def forward(self, tokens):
            states, _ = self.lstm(self.embed(tokens))
            return self.out(states[:, -1])

    class GRUTagger(nn.Module):
        """Embedding, bidirectional GRU, linear layer per time step (a sequence tagger)."""

        def __init__(self, vocab: int, embed: int, hidden: int, tags: int) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, embed)
            self.gru = nn.GRU(embed, hidden, batch_first=True, bidirectional=True)
            self.out = nn.Linear(2 * hidden, tags)

        def forward(self, tokens):
            states, _ = self.gru(self.embed(tokens))
            return self.out(states)

    class TransformerClassifier(nn.Module):
        """Token and learned position embeddings, ``nn.TransformerEncoder``, mean pool, linear."""

        def __init__(
            self, vocab: int, width: int, heads: int, layers: int, classes: int, length: int
        ) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, width)
            self.position = nn.Parameter(0.02 * torch.randn(1, length, width))
            layer = nn.TransformerEncoderLayer(
                width, heads, dim_feedforward=2 * width, activation="gelu", batch_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.out = nn.Linear(width, classes)

        def forward(self, tokens):
            states = self.encoder(self.embed(tokens) + self.position)
            return self.out(states.mean(dim=1))

    return SimpleNamespace(
        ResNet18=ResNet18,
        MobileNet=MobileNet,
        UNet=UNet,
        LSTMClassifier=LSTMClassifier,
        GRUTagger=GRUTagger,
        TransformerClassifier=TransformerClassifier,
    )


SOURCE = TorchZoo()
"""The registered ``zoo-torch`` source."""
