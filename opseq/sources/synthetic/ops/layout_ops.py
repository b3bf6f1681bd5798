"""Version 1 spatial ops, declared under each framework's own name and channel layout.

Ops whose shapes depend on the layout are declared twice: ``Conv2d`` (PyTorch, channels first)
and ``Conv2D`` (Keras, channels last). Part of the frozen version 1 vocabulary (see
`opseq.sources.synthetic.ops.float_ops`).
"""

from __future__ import annotations

from typing import Any

from opseq.sources.synthetic.ops.types import (
    FLOAT,
    TF_ONLY,
    TORCH_ONLY,
    OpSpec,
    TensorType,
    layout,
    pick,
    same_type,
)

__all__ = ["declare_layout_ops"]

_CHANNELS = (4, 8, 16)
_MAX_CHANNELS = 128


def _out_len(size: int, kernel: int, stride: int, padding: Any) -> int:
    if padding == "same":
        return -(-size // stride)
    pad = 0 if padding == "valid" else int(padding)
    return (size + 2 * pad - kernel) // stride + 1


def _window(name, *, rank, channels_last, frameworks, kind) -> OpSpec:
    """Convolutions, transposed convolutions and pooling over ``rank - 2`` spatial dims."""

    def sample(rng, ts):
        t = ts[0]
        if t.dtype != FLOAT or t.rank != rank:
            return None
        channel, spatial = layout(t, channels_last)
        kernel, stride = pick(rng, (1, 2, 3)), pick(rng, (1, 2))
        if kind == "pool":
            kernel = max(kernel, 2)
        if kind == "deconv":
            kernel = max(kernel, stride)
            padding = "valid" if channels_last else 0
        elif kind == "pool":
            padding = "valid" if channels_last else 0
        elif channels_last:
            padding = pick(rng, ("valid", "same"))
        else:
            padding = pick(rng, (0, kernel // 2))
        if min(t.shape[a] for a in spatial) < kernel or t.shape[channel] > _MAX_CHANNELS:
            return None
        attrs = {"kernel": kernel, "stride": stride, "padding": padding}
        if kind != "pool":
            attrs |= {"in_channels": t.shape[channel], "out_channels": pick(rng, _CHANNELS)}
        return attrs

    def infer(ts, a):
        t = ts[0]
        channel, spatial = layout(t, channels_last)
        shape = list(t.shape)
        for axis in spatial:
            if kind == "deconv":
                shape[axis] = (shape[axis] - 1) * a["stride"] + a["kernel"]
            else:
                shape[axis] = _out_len(shape[axis], a["kernel"], a["stride"], a["padding"])
        if kind != "pool":
            shape[channel] = a["out_channels"]
        return TensorType(shape=tuple(shape), nonneg=kind == "pool" and t.nonneg)

    return OpSpec(
        name=name,
        arity=1,
        frameworks=frameworks,
        sample=sample,
        infer=infer,
        weights=kind != "pool",
    )


def _global_pool(name, *, channels_last, frameworks) -> OpSpec:
    def sample(rng, ts):
        return {} if ts[0].dtype == FLOAT and ts[0].rank == 4 else None

    def infer(ts, a):
        shape = list(ts[0].shape)
        for axis in layout(ts[0], channels_last)[1]:
            shape[axis] = 1
        return TensorType(shape=tuple(shape), nonneg=ts[0].nonneg)

    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


def _resize(name, *, mode, channels_last, frameworks) -> OpSpec:
    def sample(rng, ts):
        t = ts[0]
        if t.dtype != FLOAT or t.rank != 4:
            return None
        spatial = layout(t, channels_last)[1]
        size = [int(rng.integers(max(1, t.shape[a] // 2), 2 * t.shape[a] + 1)) for a in spatial]
        return {"size": tuple(size), "mode": mode}

    def infer(ts, a):
        shape = list(ts[0].shape)
        for axis, size in zip(layout(ts[0], channels_last)[1], a["size"], strict=True):
            shape[axis] = size
        return TensorType(shape=tuple(shape), nonneg=ts[0].nonneg)

    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


def _shuffle(name, *, up, channels_last, frameworks) -> OpSpec:
    """Depth to space (`up`) or space to depth with block size 2."""

    def sample(rng, ts):
        t = ts[0]
        if t.rank != 4 or t.dtype != FLOAT:
            return None
        channel, spatial = layout(t, channels_last)
        ok = t.shape[channel] % 4 == 0 if up else all(t.shape[a] % 2 == 0 for a in spatial)
        return {"block": 2} if ok else None

    def infer(ts, a):
        shape = list(ts[0].shape)
        channel, spatial = layout(ts[0], channels_last)
        shape[channel] = shape[channel] // 4 if up else shape[channel] * 4
        for axis in spatial:
            shape[axis] = shape[axis] * 2 if up else shape[axis] // 2
        return TensorType(shape=tuple(shape), nonneg=ts[0].nonneg)

    return OpSpec(name=name, arity=1, frameworks=frameworks, sample=sample, infer=infer)


def _channels_sample(channels_last, *, max_rank):
    """Normalisations and PReLU: the size of the channel axis, on ranks 2..`max_rank`."""

    def sample(rng, ts):
        t = ts[0]
        if t.dtype != FLOAT or not 2 <= t.rank <= max_rank:
            return None
        return {"channels": t.shape[layout(t, channels_last)[0]]}

    return sample


def declare_layout_ops() -> list[OpSpec]:
    """Return the version 1 spatial ops of both frameworks, in their order."""
    ops = []
    for fw, last, names in (
        (TORCH_ONLY, False, ("Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d")),
        (TF_ONLY, True, ("Conv1D", "Conv2D", "Conv2DTranspose", "MaxPooling1D", "MaxPooling2D")),
    ):
        conv1, conv2, deconv, pool1, pool2 = names
        ops += [
            _window(conv1, rank=3, channels_last=last, frameworks=fw, kind="conv"),
            _window(conv2, rank=4, channels_last=last, frameworks=fw, kind="conv"),
            _window(deconv, rank=4, channels_last=last, frameworks=fw, kind="deconv"),
            _window(pool1, rank=3, channels_last=last, frameworks=fw, kind="pool"),
            _window(pool2, rank=4, channels_last=last, frameworks=fw, kind="pool"),
        ]
        avg = "AvgPool2d" if not last else "AveragePooling2D"
        ops.append(_window(avg, rank=4, channels_last=last, frameworks=fw, kind="pool"))
        ops.append(
            OpSpec(
                name="BatchNorm" if not last else "BatchNormalization",
                arity=1,
                frameworks=fw,
                sample=_channels_sample(last, max_rank=4),
                infer=same_type,
                weights=True,
            )
        )
        ops.append(
            OpSpec(
                name="PRelu" if not last else "PReLU",
                arity=1,
                frameworks=fw,
                sample=_channels_sample(last, max_rank=99),
                infer=same_type,
                weights=True,
            )
        )
    ops += [
        _global_pool("AdaptiveAvgPool2d", channels_last=False, frameworks=TORCH_ONLY),
        _global_pool("GlobalAveragePooling2D", channels_last=True, frameworks=TF_ONLY),
        _resize("InterpolateNearest", mode="nearest", channels_last=False, frameworks=TORCH_ONLY),
        _resize("InterpolateBilinear", mode="bilinear", channels_last=False, frameworks=TORCH_ONLY),
        _resize("ResizeNearest", mode="nearest", channels_last=True, frameworks=TF_ONLY),
        _resize("ResizeBilinear", mode="bilinear", channels_last=True, frameworks=TF_ONLY),
        _shuffle("PixelShuffle", up=True, channels_last=False, frameworks=TORCH_ONLY),
        _shuffle("PixelUnshuffle", up=False, channels_last=False, frameworks=TORCH_ONLY),
        _shuffle("DepthToSpace", up=True, channels_last=True, frameworks=TF_ONLY),
        _shuffle("SpaceToDepth", up=False, channels_last=True, frameworks=TF_ONLY),
    ]
    return ops
