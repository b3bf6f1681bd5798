"""The ``trained`` source: five architectures x two frameworks x three datasets, trained.

Random weights make a network whose outputs need not mean anything; a converter that keeps
accuracy on a trained classifier is what a deployment cares about. This source trains each case
on a bundled scikit-learn dataset (`opseq.sources.trained.datasets`) on first use, caches the
weights (`opseq.sources.trained.training`), and feeds campaigns rows of the test split instead of
random normals, so a differential test runs the model where it was trained to work. Each case
also measures its conversion at the task (`opseq.sources.trained.quality`: clean and FGSM
accuracy of source and conversion, latency, memory, size), which a campaign row records as
``quality``.

Case ids are ``<framework>/<architecture>/<dataset>``: ``torch/lenet5/digits``,
``keras/gru/wine``. A campaign converts one framework's models, so a source object lists one
framework's cases: `SOURCE` (registered as ``trained``) lists the torch cases, `KERAS_SOURCE` the
Keras ones, and ``for_framework`` returns the view of either (a campaign that asks it for the
converter's framework reaches both under the one name). Any view builds any case id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from opseq.sources.base import Framework, InputSpec, ModelCase, make_inputs
from opseq.sources.trained.architectures import ARCHITECTURES
from opseq.sources.trained.datasets import DATASETS, Dataset, load_dataset
from opseq.sources.trained.quality import DEFAULT_EPS, SourceQuality, onnx_quality
from opseq.sources.trained.training import TrainConfig, train

__all__ = ["FRAMEWORK_IDS", "KERAS_SOURCE", "SOURCE", "TrainedSource", "parse_case_id"]

FRAMEWORK_IDS = {"torch": Framework.TORCH, "keras": Framework.TENSORFLOW}
"""The framework part of a case id -> the framework."""

INPUT_NAME = "x"


def parse_case_id(case_id: str) -> tuple[str, str, str]:
    """Split ``framework/architecture/dataset``, checking each part.

    Raises:
        KeyError: If the id is not of that form or names an unknown part.

    Examples:
        >>> parse_case_id("torch/lenet5/digits")
        ('torch', 'lenet5', 'digits')
    """
    parts = case_id.split("/")
    if (
        len(parts) != 3
        or parts[0] not in FRAMEWORK_IDS
        or parts[1] not in ARCHITECTURES
        or parts[2] not in DATASETS
    ):
        raise KeyError(
            f"unknown trained case {case_id!r}; expected framework/architecture/dataset with "
            f"framework in {', '.join(FRAMEWORK_IDS)}, architecture in {', '.join(ARCHITECTURES)},"
            f" dataset in {', '.join(DATASETS)}"
        )
    return parts[0], parts[1], parts[2]


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainedSource:
    """Trained classifiers of one framework (`for_framework` gives the other's).

    Attributes:
        framework: The framework whose cases `case_ids` lists.
        config: How the networks are trained.
        cache_dir: Root of the weight cache; the default cache directory when None.
        eps: The FGSM radius of each case's quality measurement (standardised units).
        name: ``trained``.
    """

    framework: Framework = Framework.TORCH
    config: TrainConfig = field(default_factory=TrainConfig)
    cache_dir: Path | None = None
    eps: float = DEFAULT_EPS
    name: str = "trained"

    def for_framework(self, framework: Framework) -> TrainedSource:
        """The same source listing `framework`'s cases."""
        return TrainedSource(
            framework=Framework(framework),
            config=self.config,
            cache_dir=self.cache_dir,
            eps=self.eps,
        )

    def case_ids(self, *, count: int | None = None, seed: int = 0) -> Sequence[str]:
        """Return this framework's case ids, dataset by dataset, in a fixed order.

        Args:
            count: Only the first `count` ids; all 15 when None.
            seed: Unused: the grid is fixed.

        Returns:
            Case ids such as ``torch/mlp/digits``.
        """
        prefix = next(k for k, v in FRAMEWORK_IDS.items() if v is self.framework)
        ids = [f"{prefix}/{arch}/{data}" for data in DATASETS for arch in ARCHITECTURES]
        return ids if count is None else ids[:count]

    def build(self, case_id: str, *, seed: int = 0) -> ModelCase:
        """Train (or load) one network and wrap it as a case fed with test rows.

        Args:
            case_id: ``framework/architecture/dataset``, of either framework.
            seed: Seed of the split, the initial weights and the batch order.

        Returns:
            The model in eval mode, its input ``x`` of shape ``(1, *sample)`` float32,
            metadata holding ``test_accuracy``, and the ``quality`` hook that measures a
            converted model (`opseq.sources.trained.quality`).

        Raises:
            KeyError: If `case_id` is not a case of this source.
        """
        framework, arch, dataset = parse_case_id(case_id)
        data = load_dataset(dataset, seed=seed)
        trained = train(
            framework, arch, data, seed=seed, config=self.config, cache_dir=self.cache_dir
        )
        spec = InputSpec(name=INPUT_NAME, shape=(1, *trained.sample_shape), dtype="float32")
        measured: dict[str, SourceQuality] = {}

        def quality(onnx_model) -> dict:
            # The source side is measured once per case, whatever number of conversions.
            if "source" not in measured:
                measured["source"] = SourceQuality.measure(
                    framework, trained.model, data, trained.sample_shape, eps=self.eps
                )
            source = measured["source"]
            return {"source": source.to_dict(), "onnx": onnx_quality(source, onnx_model)}

        return ModelCase(
            case_id=case_id,
            framework=FRAMEWORK_IDS[framework],
            model=trained.model,
            inputs=(spec,),
            quality=quality,
            metadata={
                "architecture": arch,
                "dataset": data.to_dict(),
                "test_accuracy": trained.accuracy,
                "parameters": _parameters(framework, trained.model),
                "training": {**trained.to_dict(), "config": self.config.to_dict()},
            },
            input_sets=_test_rows(data, spec),
        )


def _parameters(framework: str, model) -> int:
    if framework == "torch":
        return int(sum(p.numel() for p in model.parameters()))
    return int(model.count_params())


def _test_rows(data: Dataset, spec: InputSpec):
    """Input sets drawn from the test split: what the model was trained to classify.

    Under the ``normal`` strategy every set is a test row (chosen by the seed without
    replacement, then again once all are used); under ``edge``, set 0 is such a row and the
    others the corner values of `make_inputs`, as for every source.
    """

    def input_sets(count: int, seed: int, strategy: str) -> list[dict[str, np.ndarray]]:
        rng = np.random.default_rng([seed, 2])
        n = len(data.y_test)
        order = np.concatenate([rng.permutation(n) for _ in range(-(-count // n))])
        rows = [{spec.name: data.x_test[k].reshape(spec.shape).copy()} for k in order[:count]]
        if strategy == "normal":
            return rows
        return rows[:1] + make_inputs((spec,), count=count, seed=seed, strategy=strategy)[1:]

    return input_sets


SOURCE = TrainedSource(framework=Framework.TORCH)
"""The registered ``trained`` source (torch cases; ``for_framework`` for Keras)."""

KERAS_SOURCE = SOURCE.for_framework(Framework.TENSORFLOW)
"""The Keras cases: ``--source opseq.sources.trained:KERAS_SOURCE``."""
