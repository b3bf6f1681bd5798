"""The three small datasets the ``trained`` source learns, all bundled with scikit-learn.

Nothing is downloaded: ``load_digits`` (1,797 8x8 grey images of the digits 0-9, 64 features),
``load_breast_cancer`` (569 tumours, 30 features, 2 classes) and ``load_wine`` (178 wines, 13
features, 3 classes) ship inside scikit-learn. Each is split once, stratified and seeded, 80% for
training and 20% for test, and standardised with the mean and standard deviation of the training
part only (the test part must not leak into the model). After standardisation every feature has
unit variance on the training set, so an attack budget such as FGSM's epsilon is in standard
deviations of a feature, the same unit on all three datasets.

`layout` reshapes the flat feature rows into what an architecture takes: images for the 2-D
convolutions (digits only), 1-D signals for the convolutions on tabular data (the features in
dataset order as one channel), and sequences for the recurrent networks (digits: the 8 rows as 8
steps of 8 features; tabular: the features as steps of one value, the same reading of a row as a
signal that the 1-D convolutions use).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opseq.errors import ConfigError

__all__ = ["DATASETS", "TEST_FRACTION", "Dataset", "layout", "load_dataset"]

TEST_FRACTION = 0.2

DATASETS = {
    "digits": "load_digits",
    "breast_cancer": "load_breast_cancer",
    "wine": "load_wine",
}
"""Dataset id -> the ``sklearn.datasets`` loader."""

IMAGE_SIDE = {"digits": 8}
"""Datasets whose rows are square images, and the side."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Dataset:
    """A standardised, split dataset: float32 features (rows), int64 labels.

    Attributes:
        name: A key of `DATASETS`.
        x_train, y_train, x_test, y_test: The split, features standardised with the training
            statistics.
        mean, std: Those statistics, per feature (a constant feature's std is 1, not 0).
        classes: The number of classes.
        seed: The seed of the split.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    classes: int
    seed: int

    @property
    def features(self) -> int:
        """The number of features of a row."""
        return int(self.x_train.shape[1])

    def to_dict(self) -> dict:
        """Return a JSON-safe summary (sizes, not data)."""
        return {
            "name": self.name,
            "train": len(self.y_train),
            "test": len(self.y_test),
            "features": self.features,
            "classes": self.classes,
            "seed": self.seed,
            "test_fraction": TEST_FRACTION,
        }


def load_dataset(name: str, *, seed: int = 0) -> Dataset:
    """Load a bundled dataset, split it (stratified, seeded) and standardise it on train.

    Args:
        name: A key of `DATASETS`.
        seed: Seed of the split; the same seed always gives the same split.

    Returns:
        The dataset.

    Raises:
        ConfigError: If `name` is not a known dataset.

    Examples:
        >>> d = load_dataset("wine", seed=0)
        >>> d.x_train.shape, d.x_test.shape, d.classes
        ((142, 13), (36, 13), 3)
        >>> bool(np.allclose(d.x_train.mean(axis=0), 0, atol=1e-5))
        True
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    bunch = getattr(datasets, DATASETS[name])()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=seed
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # digits has always-blank border pixels
    return Dataset(
        name=name,
        x_train=((x_train - mean) / std).astype(np.float32),
        y_train=y_train,
        x_test=((x_test - mean) / std).astype(np.float32),
        y_test=y_test,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        classes=int(y.max()) + 1,
        seed=seed,
    )


def layout(dataset: str, features: int, kind: str, framework: str) -> tuple[int, ...]:
    """Return the shape of one sample (without batch) that an architecture kind takes.

    Args:
        dataset: A key of `DATASETS`.
        features: The number of features of a row.
        kind: ``"flat"`` (a vector), ``"conv"`` (an image on digits, a 1-D signal otherwise)
            or ``"sequence"`` (steps of features).
        framework: ``"torch"`` (channels first) or ``"keras"`` (channels last).

    Returns:
        The sample shape.

    Examples:
        >>> layout("digits", 64, "conv", "torch"), layout("digits", 64, "conv", "keras")
        ((1, 8, 8), (8, 8, 1))
        >>> layout("wine", 13, "conv", "torch"), layout("wine", 13, "sequence", "keras")
        ((1, 13), (13, 1))
    """
    side = IMAGE_SIDE.get(dataset)
    if kind == "flat":
        return (features,)
    if kind == "sequence":
        return (side, side) if side else (features, 1)
    if kind != "conv":
        raise ValueError(f"unknown layout kind {kind!r}")
    spatial = (side, side) if side else (features,)
    return (1, *spatial) if framework == "torch" else (*spatial, 1)
