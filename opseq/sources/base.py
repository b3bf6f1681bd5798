"""The model-source interface: a source names cases and builds each as a framework model.

A source is a plugin: anything with the attributes of `Source`. Built-in sources are registered by
name in `opseq.sources`; any other can be named as ``package.module:attribute``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Framework", "InputSpec", "ModelCase", "Source", "make_inputs"]


class Framework(str, Enum):
    """The framework a model is written in."""

    TORCH = "torch"
    TENSORFLOW = "tensorflow"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSpec:
    """One model input: name, static shape, dtype, and the range of random values.

    Floating inputs are drawn from a standard normal distribution; integer inputs uniformly from
    ``[low, high)`` (token ids, class indices); boolean inputs uniformly.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: int = 0
    high: int = 2

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "low": self.low,
            "high": self.high,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCase:
    """A framework model ready to convert, with the inputs it takes.

    ``model`` is a ``torch.nn.Module`` in eval mode (called positionally with the inputs in
    order) or a Keras model (called with the list of inputs in order). Its outputs, flattened in
    order, correspond to the ONNX graph outputs. ``float64_model``, when given, builds the same
    model computing in float64 with the same weights (`opseq.difftest.float64` makes one
    generically otherwise).
    """

    case_id: str
    framework: Framework
    model: Any
    inputs: tuple[InputSpec, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    float64_model: Callable[[], Any] | None = field(default=None, repr=False, compare=False)


@runtime_checkable
class Source(Protocol):
    """Names model cases and builds them. Building may import a framework; naming must not."""

    name: str
    framework: Framework

    def case_ids(self, *, count: int | None, seed: int) -> Sequence[str]:
        """Return the ids of the cases to test: all of them when `count` is None."""
        ...

    def build(self, case_id: str, *, seed: int) -> ModelCase:
        """Build one case, with weights initialised from `seed`."""
        ...


def make_inputs(
    specs: Sequence[InputSpec], *, count: int, seed: int
) -> list[dict[str, np.ndarray]]:
    """Draw `count` input sets from `seed` (the same seed always gives the same inputs).

    Examples:
        >>> spec = InputSpec(name="ids", shape=(1, 3), dtype="int64", low=0, high=10)
        >>> first = make_inputs([spec], count=2, seed=7)
        >>> [x["ids"].shape for x in first], first[0]["ids"].dtype.name
        ([(1, 3), (1, 3)], 'int64')
        >>> bool((make_inputs([spec], count=2, seed=7)[1]["ids"] == first[1]["ids"]).all())
        True
    """
    rng = np.random.default_rng(seed)
    return [{spec.name: _draw(rng, spec) for spec in specs} for _ in range(count)]


def _draw(rng: np.random.Generator, spec: InputSpec) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return rng.standard_normal(spec.shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, spec.shape).astype(bool)
    return rng.integers(spec.low, spec.high, spec.shape).astype(dtype)
