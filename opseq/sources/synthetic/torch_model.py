"""Materialise a `SyntheticGraph` as a ``torch.nn.Module``.

Weightless ops are functions of ``(torch, inputs, attrs)`` in `_FUNCTIONS` (those of the wide
vocabulary in `opseq.sources.synthetic.torch_wide`); ops with weights are
layer factories of ``(nn, attrs)`` in `_LAYERS`, created in node order after
``torch.manual_seed(seed)``. Batch and layer normalisations get random affine parameters and
running statistics from ``np.random.default_rng(seed)``, so they are not identities. Importing
this module does not import torch.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from opseq._optional import import_optional
from opseq.sources.synthetic.builder import SyntheticGraph
from opseq.sources.synthetic.torch_wide import WIDE_FUNCTIONS

__all__ = ["to_float64_module", "to_torch_module"]

_DTYPES = {"float32": "float32", "float64": "float64", "int64": "int64", "bool": "bool"}


def _pool(kind: str, dims: int):
    def apply(t, x, a):
        fn = getattr(t.nn.functional, f"{kind}_pool{dims}d")
        return fn(x[0], a["kernel"], a["stride"], a["padding"])

    return apply


def _pad(t, x, a):
    flat = [p for before_after in reversed(a["pads"]) for p in before_after]
    return t.nn.functional.pad(x[0], flat, value=a["value"])


def _slice(t, x, a):
    index = [slice(None)] * x[0].dim()
    index[a["axis"]] = slice(a["start"], a["stop"])
    return x[0][tuple(index)]


_FUNCTIONS: dict[str, Any] = {
    "Abs": lambda t, x, a: t.abs(x[0]),
    "Neg": lambda t, x, a: t.neg(x[0]),
    "Sin": lambda t, x, a: t.sin(x[0]),
    "Cos": lambda t, x, a: t.cos(x[0]),
    "Tan": lambda t, x, a: t.tan(x[0]),
    "Atan": lambda t, x, a: t.atan(x[0]),
    "Exp": lambda t, x, a: t.exp(x[0]),
    "Log": lambda t, x, a: t.log(x[0]),
    "Sqrt": lambda t, x, a: t.sqrt(x[0]),
    "Floor": lambda t, x, a: t.floor(x[0]),
    "Ceil": lambda t, x, a: t.ceil(x[0]),
    "Round": lambda t, x, a: t.round(x[0]),
    "Sigmoid": lambda t, x, a: t.sigmoid(x[0]),
    "Tanh": lambda t, x, a: t.tanh(x[0]),
    "Relu": lambda t, x, a: t.relu(x[0]),
    "LeakyRelu": lambda t, x, a: t.nn.functional.leaky_relu(x[0], a["alpha"]),
    "Gelu": lambda t, x, a: t.nn.functional.gelu(
        x[0], approximate="tanh" if a["approximate"] else "none"
    ),
    "Erf": lambda t, x, a: t.erf(x[0]),
    "Softplus": lambda t, x, a: t.nn.functional.softplus(x[0]),
    "Clip": lambda t, x, a: t.clamp(x[0], a["min"], a["max"]),
    "Elu": lambda t, x, a: t.nn.functional.elu(x[0]),
    "Square": lambda t, x, a: t.square(x[0]),
    "Softsign": lambda t, x, a: t.nn.functional.softsign(x[0]),
    "HardSigmoid": lambda t, x, a: t.nn.functional.hardsigmoid(x[0]),
    "LogicalNot": lambda t, x, a: t.logical_not(x[0]),
    "Cast": lambda t, x, a: x[0].to(getattr(t, _DTYPES[a["to"]])),
    "Add": lambda t, x, a: t.add(x[0], x[1]),
    "Sub": lambda t, x, a: t.sub(x[0], x[1]),
    "Mul": lambda t, x, a: t.mul(x[0], x[1]),
    "Div": lambda t, x, a: t.div(x[0], x[1]),
    "Pow": lambda t, x, a: t.pow(x[0], x[1]),
    "Max": lambda t, x, a: t.maximum(x[0], x[1]),
    "Min": lambda t, x, a: t.minimum(x[0], x[1]),
    "Greater": lambda t, x, a: t.gt(x[0], x[1]),
    "Less": lambda t, x, a: t.lt(x[0], x[1]),
    "Equal": lambda t, x, a: t.eq(x[0], x[1]),
    "LogicalAnd": lambda t, x, a: t.logical_and(x[0], x[1]),
    "LogicalOr": lambda t, x, a: t.logical_or(x[0], x[1]),
    "LogicalXor": lambda t, x, a: t.logical_xor(x[0], x[1]),
    "Where": lambda t, x, a: t.where(x[0], x[1], x[2]),
    "MaskedFill": lambda t, x, a: x[0].masked_fill(x[1], a["value"]),
    "ReduceSum": lambda t, x, a: t.sum(x[0], dim=a["axis"], keepdim=a["keepdims"]),
    "ReduceMean": lambda t, x, a: t.mean(x[0], dim=a["axis"], keepdim=a["keepdims"]),
    "ReduceMax": lambda t, x, a: t.amax(x[0], dim=a["axis"], keepdim=a["keepdims"]),
    "ReduceMin": lambda t, x, a: t.amin(x[0], dim=a["axis"], keepdim=a["keepdims"]),
    "ArgMax": lambda t, x, a: t.argmax(x[0], dim=a["axis"], keepdim=a["keepdims"]),
    "ArgMin": lambda t, x, a: t.argmin(x[0], dim=a["axis"], keepdim=a["keepdims"]),
    "Softmax": lambda t, x, a: t.softmax(x[0], dim=a["axis"]),
    "LogSoftmax": lambda t, x, a: t.log_softmax(x[0], dim=a["axis"]),
    "CumSum": lambda t, x, a: t.cumsum(x[0], dim=a["axis"]),
    "Flip": lambda t, x, a: t.flip(x[0], dims=(a["axis"],)),
    "MatMul": lambda t, x, a: t.matmul(x[0], x[1]),
    "Reshape": lambda t, x, a: t.reshape(x[0], a["shape"]),
    "Flatten": lambda t, x, a: t.flatten(x[0], start_dim=1),
    "Transpose": lambda t, x, a: x[0].permute(*a["perm"]),
    "Squeeze": lambda t, x, a: t.squeeze(x[0], dim=a["axis"]),
    "Unsqueeze": lambda t, x, a: t.unsqueeze(x[0], dim=a["axis"]),
    "Expand": lambda t, x, a: x[0].expand(*a["shape"]),
    "Concat": lambda t, x, a: t.cat([x[0], x[1]], dim=a["axis"]),
    "Slice": _slice,
    "Gather": lambda t, x, a: t.index_select(x[0], a["axis"], t.tensor(a["indices"])),
    "Pad": _pad,
    "Tril": lambda t, x, a: t.tril(x[0], a["diagonal"]),
    "Triu": lambda t, x, a: t.triu(x[0], a["diagonal"]),
    "Tile": lambda t, x, a: x[0].repeat(*a["reps"]),
    "MaxPool1d": _pool("max", 1),
    "MaxPool2d": _pool("max", 2),
    "AvgPool2d": _pool("avg", 2),
    "AdaptiveAvgPool2d": lambda t, x, a: t.nn.functional.adaptive_avg_pool2d(x[0], 1),
    "InterpolateNearest": lambda t, x, a: t.nn.functional.interpolate(
        x[0], size=a["size"], mode="nearest"
    ),
    "InterpolateBilinear": lambda t, x, a: t.nn.functional.interpolate(
        x[0], size=a["size"], mode="bilinear", align_corners=False
    ),
    "PixelShuffle": lambda t, x, a: t.nn.functional.pixel_shuffle(x[0], a["block"]),
    "PixelUnshuffle": lambda t, x, a: t.nn.functional.pixel_unshuffle(x[0], a["block"]),
    **WIDE_FUNCTIONS,
}


def _conv(nn, a, cls):
    return cls(a["in_channels"], a["out_channels"], a["kernel"], a["stride"], a["padding"])


_LAYERS: dict[str, Any] = {
    "Linear": lambda nn, a: nn.Linear(a["in_features"], a["out_features"]),
    "Conv1d": lambda nn, a: _conv(nn, a, nn.Conv1d),
    "Conv2d": lambda nn, a: _conv(nn, a, nn.Conv2d),
    "ConvTranspose2d": lambda nn, a: _conv(nn, a, nn.ConvTranspose2d),
    "BatchNorm": lambda nn, a: (nn.BatchNorm2d if len(a["shape"]) == 4 else nn.BatchNorm1d)(
        a["channels"]
    ),
    "LayerNorm": lambda nn, a: nn.LayerNorm(a["shape"][-1]),
    "PRelu": lambda nn, a: nn.PReLU(a["channels"]),
}


def to_torch_module(graph: SyntheticGraph, seed: int):
    """Return `graph` as a ``torch.nn.Module`` in eval mode, weights drawn from `seed`.

    ``forward(*inputs)`` takes the graph inputs in order and returns a tuple of the outputs.

    Args:
        graph: A graph built for ``"torch"``.
        seed: Seed of the weights (``torch.manual_seed``) and normalisation statistics.

    Returns:
        The module.

    Raises:
        ValueError: If an op of `graph` has no PyTorch implementation here.
    """
    torch = import_optional("torch", extra="torch")
    missing = sorted({op for op in graph.ops if op not in _FUNCTIONS and op not in _LAYERS})
    if missing:
        raise ValueError(f"no PyTorch implementation of: {', '.join(missing)}")
    torch.manual_seed(seed)
    return _module_class()(graph, np.random.default_rng(seed)).eval()


def to_float64_module(module):
    """The float64 twin of a module from `to_torch_module`: same weights, float64 throughout.

    Casts to float32 in the graph become casts to float64, so the twin never rounds to float32.
    """
    import copy

    twin = copy.deepcopy(module).double().eval()
    twin.float_name = "float64"
    return twin


def _randomise_norm(torch, layer, rng: np.random.Generator) -> None:
    """Give a normalisation layer random affine parameters (and running statistics)."""
    size = layer.weight.shape

    def tensor(values):
        return torch.from_numpy(values.astype(np.float32).reshape(size))

    with torch.no_grad():
        layer.weight.copy_(tensor(rng.uniform(0.5, 1.5, size)))
        layer.bias.copy_(tensor(rng.normal(0.0, 0.2, size)))
        if hasattr(layer, "running_mean"):
            layer.running_mean.copy_(tensor(rng.normal(0.0, 0.5, size)))
            layer.running_var.copy_(tensor(rng.uniform(0.5, 2.0, size)))


@functools.cache
def _module_class():
    import torch
    from torch import nn

    class SyntheticModule(nn.Module):
        """Runs the nodes of a `SyntheticGraph` in order."""

        def __init__(self, graph: SyntheticGraph, rng: np.random.Generator) -> None:
            super().__init__()
            self.graph = graph
            self.float_name = "float32"  # what a Cast to float32 casts to (float64 in the twin)
            self.layers = nn.ModuleDict()
            types = graph.types()
            for node in graph.nodes:
                if node.op not in _LAYERS:
                    continue
                attrs = dict(node.attrs, shape=types[node.inputs[0]].shape)
                layer = _LAYERS[node.op](nn, attrs)
                if node.op in ("BatchNorm", "LayerNorm"):
                    _randomise_norm(torch, layer, rng)
                self.layers[node.name] = layer

        def forward(self, *inputs):
            env = dict(zip((name for name, _ in self.graph.inputs), inputs, strict=True))
            for node in self.graph.nodes:
                args = [env[ref] for ref in node.inputs]
                if node.name in self.layers:
                    env[node.name] = self.layers[node.name](*args)
                else:
                    env[node.name] = _FUNCTIONS[node.op](torch, args, self._attrs(node))
            return tuple(env[name] for name in self.graph.outputs)

        def _attrs(self, node):
            if node.op in ("Cast", "CastWide") and node.attrs["to"] == "float32":
                return {**node.attrs, "to": self.float_name}
            return node.attrs

    return SyntheticModule
