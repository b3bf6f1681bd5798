"""Wide vocabulary: resizing in every mode of each framework.

PyTorch's ``F.interpolate`` (channels first) takes rank 3, 4 or 5 inputs with a mode per rank,
``align_corners`` for the linear family, and either output sizes or one scale factor (output
``floor(size * scale)``). TensorFlow resizes NHWC images three ways: ``tf.image.resize`` (eight
methods, optional antialiasing), the Keras ``Resizing`` layer, and the TF1 kernels with
``align_corners``/``half_pixel_centers``. Modes whose output is a convex combination of inputs
keep the ``nonneg`` flag; cubic and windowed-sinc kernels overshoot, so they drop it.
"""

from __future__ import annotations

import math

from opseq.sources.synthetic.ops.types import (
    FLOAT,
    TF_ONLY,
    TORCH_ONLY,
    OpSpec,
    TensorType,
    layout,
    pick,
)

__all__ = ["TORCH_MODES", "declare_wide_resize_ops"]

TORCH_MODES = {
    3: ("linear", "nearest", "nearest-exact", "area"),
    4: ("bilinear", "bicubic", "nearest", "nearest-exact", "area"),
    5: ("trilinear", "nearest", "nearest-exact", "area"),
}
"""``F.interpolate`` modes by input rank."""
_ALIGNABLE = frozenset({"linear", "bilinear", "bicubic", "trilinear"})
_CONVEX = frozenset({"linear", "bilinear", "trilinear", "nearest", "nearest-exact", "area"})
_SCALES = (0.5, 1.5, 1.75, 2.0, 3.0)
_TF_METHODS = (
    "bilinear",
    "nearest",
    "bicubic",
    "area",
    "lanczos3",
    "lanczos5",
    "gaussian",
    "mitchellcubic",
)
_KERAS_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")
_TF1_METHODS = ("bilinear", "nearest", "bicubic")
_TF1_CENTERS = ((True, False), (False, True), (False, False))


def _draw_sizes(rng, t: TensorType, spatial: list[int]) -> tuple[int, ...]:
    return tuple(int(rng.integers(max(1, t.shape[a] // 2), 2 * t.shape[a] + 1)) for a in spatial)


def _interpolate_sample(rng, ts):
    t = ts[0]
    if t.dtype != FLOAT or t.rank not in TORCH_MODES:
        return None
    mode = pick(rng, TORCH_MODES[t.rank])
    spatial = layout(t, channels_last=False)[1]
    attrs = {
        "mode": mode,
        "align_corners": bool(rng.integers(2)) if mode in _ALIGNABLE else None,
        "antialias": bool(mode in ("bilinear", "bicubic") and rng.integers(3) == 0),
        "size": None,
        "scale": None,
    }
    if rng.integers(2) == 0:
        attrs["size"] = _draw_sizes(rng, t, spatial)
    else:
        attrs["scale"] = pick(rng, _SCALES)
        if min(math.floor(t.shape[a] * attrs["scale"]) for a in spatial) < 1:
            return None
    return attrs


def _interpolate_infer(ts, a):
    t = ts[0]
    shape = list(t.shape)
    for i, axis in enumerate(layout(t, channels_last=False)[1]):
        shape[axis] = a["size"][i] if a["size"] else math.floor(t.shape[axis] * a["scale"])
    return TensorType(shape=tuple(shape), nonneg=t.nonneg and a["mode"] in _CONVEX)


def _tf_sample(draw):
    """A TF resize of a rank-4 NHWC float tensor: `draw(rng)` gives the mode attributes."""

    def sample(rng, ts):
        t = ts[0]
        if t.dtype != FLOAT or t.rank != 4:
            return None
        return {**draw(rng), "size": _draw_sizes(rng, t, [1, 2])}

    return sample


def _tf_infer(key):
    def infer(ts, a):
        n, _, _, c = ts[0].shape
        convex = a[key] in ("bilinear", "nearest", "area")
        return TensorType(shape=(n, *a["size"], c), nonneg=ts[0].nonneg and convex)

    return infer


def declare_wide_resize_ops() -> list[OpSpec]:
    """Return the resize ops of the wide vocabulary, in their order."""

    def tf_method(rng):
        return {"method": pick(rng, _TF_METHODS), "antialias": bool(rng.integers(2))}

    def keras_interpolation(rng):  # cropping to the aspect ratio keeps the target shape
        crop = bool(rng.integers(2))
        return {"interpolation": pick(rng, _KERAS_INTERPOLATIONS), "crop_to_aspect_ratio": crop}

    def tf1_method(rng):
        align, half = pick(rng, _TF1_CENTERS)
        return {"method": pick(rng, _TF1_METHODS), "align_corners": align, "half_pixel": half}

    return [
        OpSpec(
            name="InterpolateModes",
            arity=1,
            frameworks=TORCH_ONLY,
            sample=_interpolate_sample,
            infer=_interpolate_infer,
            calls={"torch": "F.interpolate(x, size | scale_factor, mode, align_corners)"},
        ),
        OpSpec(
            name="ResizeMethods",
            arity=1,
            frameworks=TF_ONLY,
            sample=_tf_sample(tf_method),
            infer=_tf_infer("method"),
            calls={"tensorflow": "tf.image.resize(x, size, method, antialias)"},
        ),
        OpSpec(
            name="ResizingLayer",
            arity=1,
            frameworks=TF_ONLY,
            sample=_tf_sample(keras_interpolation),
            infer=_tf_infer("interpolation"),
            calls={"tensorflow": "keras.layers.Resizing(h, w, interpolation, crop)"},
        ),
        OpSpec(
            name="ResizeV1",
            arity=1,
            frameworks=TF_ONLY,
            sample=_tf_sample(tf1_method),
            infer=_tf_infer("method"),
            calls={"tensorflow": "tf.compat.v1.image.resize_*(align_corners, half_pixel_centers)"},
        ),
    ]
