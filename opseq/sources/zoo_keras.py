"""Keras applications with random weights: real image classifiers for tf2onnx.

Each case is one ``keras.applications`` architecture built with ``weights=None`` (nothing is
downloaded) and the weights initialised from the seed. The model takes one NHWC float32 image,
batch 1, named ``input``, and returns the logits of the 1000 classes: the applications are built
with ``classifier_activation=None``, because with random weights a softmax over 1000 classes is
near-uniform (about 1e-3 everywhere) and squeezes the converters' differences below 1e-9, which
hides them from a differential test.

Random weights alone make a poor stand-in for a trained network: Keras starts every
batch normalisation with moving mean 0 and variance 1, and through MobileNet's and EfficientNet's
linear bottlenecks the activations then shrink until the logits are about 1e-11. So `build`
calibrates the moving statistics as training would: one pass over a few random images in training
mode with momentum 0 and dropout off, after which each batch normalisation holds the mean and
variance of its own input and the logits are of order one.

Two more departures from the defaults, for the same reason (outputs that depend on the input):
the inputs are standard normal, that is already normalised images, so applications that can
leave out their built-in rescaling from [0, 255] are built with ``include_preprocessing=False``
(EfficientNetB0 cannot, and keeps it); and ConvNeXt's layer scales, which Keras starts at 1e-6
so that every residual block is nearly the identity, are set to `LAYER_SCALE`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from opseq._optional import import_optional
from opseq.sources.base import Framework, InputSpec, ModelCase

__all__ = ["APPLICATIONS", "SOURCE", "KerasZoo"]

CALIBRATION_IMAGES = 4
LAYER_SCALE = 0.1


@dataclass(frozen=True, slots=True, kw_only=True)
class _Application:
    """One ``keras.applications`` constructor and the square image size it is built for."""

    constructor: str
    image_size: int = 224
    include_preprocessing: bool | None = None
    """False to leave out the built-in rescaling; None for applications without the option."""


APPLICATIONS: dict[str, _Application] = {
    "mobilenetv3small": _Application(constructor="MobileNetV3Small", include_preprocessing=False),
    "mobilenetv2": _Application(constructor="MobileNetV2"),
    "efficientnetb0": _Application(constructor="EfficientNetB0"),
    "nasnetmobile": _Application(constructor="NASNetMobile"),
    "resnet50": _Application(constructor="ResNet50"),
    "densenet121": _Application(constructor="DenseNet121"),
    "convnexttiny": _Application(constructor="ConvNeXtTiny", include_preprocessing=False),
    "inceptionv3": _Application(constructor="InceptionV3", image_size=299),
}
"""Case id -> application, cheapest first (so ``count`` keeps the cheap ones)."""


class KerasZoo:
    """The ``zoo-keras`` source: Keras applications, random weights, batch 1."""

    name = "zoo-keras"
    framework = Framework.TENSORFLOW

    def case_ids(self, *, count: int | None = None, seed: int = 0) -> Sequence[str]:
        """Return the architecture ids in a fixed order (the seed does not change it).

        Args:
            count: Return only the first `count` ids; all of them when None.
            seed: Unused: the zoo is a fixed list.

        Returns:
            Case ids, cheapest first.
        """
        ids = list(APPLICATIONS)
        return ids if count is None else ids[:count]

    def build(self, case_id: str, *, seed: int = 0) -> ModelCase:
        """Build one application with weights initialised from `seed`.

        Args:
            case_id: One of `case_ids()`.
            seed: Seed of the weight initialisation (``keras.utils.set_random_seed``).

        Returns:
            The Keras model, its input ``input`` (1, size, size, 3) float32, and metadata.

        Raises:
            KeyError: If `case_id` is not a case of this source.
        """
        app = _lookup(case_id)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        keras = import_optional("keras", extra="tensorflow")
        keras.utils.set_random_seed(seed)
        shape = (app.image_size, app.image_size, 3)
        options: dict[str, Any] = {"input_shape": shape, "classifier_activation": None}
        if app.include_preprocessing is not None:
            options["include_preprocessing"] = app.include_preprocessing
        model = getattr(keras.applications, app.constructor)(weights=None, **options)
        calibrated = _calibrate_batchnorm(keras, model, shape, seed=seed)
        scaled = _set_layer_scales(model, LAYER_SCALE)
        return ModelCase(
            case_id=case_id,
            framework=self.framework,
            model=model,
            inputs=(InputSpec(name="input", shape=(1, *shape), dtype="float32"),),
            metadata={
                "architecture": app.constructor,
                "parameters": int(model.count_params()),
                "config": {**options, "input_shape": list(shape), "weights": None},
                "batchnorm_calibration": {"layers": calibrated, "images": CALIBRATION_IMAGES},
                "layer_scale": {"layers": scaled, "value": LAYER_SCALE} if scaled else None,
            },
        )


def _calibrate_batchnorm(keras, model, shape: tuple[int, ...], *, seed: int) -> int:
    """Set every batch normalisation's moving statistics to those of its input; return how many.

    One forward pass in training mode over `CALIBRATION_IMAGES` standard-normal images drawn from
    `seed` (from a stream of their own, so they are not the test inputs of `make_inputs`), with
    momentum 0 (the moving statistics become the batch statistics) and dropout rate 0 (so the
    statistics are those inference sees); both are restored afterwards.
    """
    norms = [lay for lay in _iter_layers(model) if isinstance(lay, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    drops = [lay for lay in _iter_layers(model) if isinstance(lay, keras.layers.Dropout)]
    saved = [(lay, "momentum", lay.momentum) for lay in norms]
    saved += [(lay, "rate", lay.rate) for lay in drops]
    images = np.random.default_rng([seed, 1]).standard_normal((CALIBRATION_IMAGES, *shape))
    try:
        for lay in norms:
            lay.momentum = 0.0
        for lay in drops:
            lay.rate = 0.0
        model(images.astype("float32"), training=True)
    finally:
        for lay, attribute, value in saved:
            setattr(lay, attribute, value)
    return len(norms)


def _set_layer_scales(model, value: float) -> int:
    """Set the weights of every ``LayerScale`` layer (ConvNeXt) to `value`; return how many."""
    scales = [lay for lay in _iter_layers(model) if type(lay).__name__ == "LayerScale"]
    for lay in scales:
        lay.gamma.assign(np.full(tuple(lay.gamma.shape), value, dtype="float32"))
    return len(scales)


def _iter_layers(layer) -> Iterator:
    """Yield the layers nested in `layer` (depth first), not `layer` itself."""
    for child in getattr(layer, "layers", ()):
        yield child
        yield from _iter_layers(child)


def _lookup(case_id: str) -> _Application:
    try:
        return APPLICATIONS[case_id]
    except KeyError:
        raise KeyError(
            f"unknown zoo-keras case {case_id!r}; known: {', '.join(APPLICATIONS)}"
        ) from None


SOURCE = KerasZoo()
"""The registered ``zoo-keras`` source."""
