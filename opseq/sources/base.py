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

from opseq.errors import ConfigError
from opseq.sources.edge_values import corner_family, draw_edge

__all__ = [
    "INPUT_STRATEGIES",
    "Framework",
    "InputSpec",
    "ModelCase",
    "Source",
    "case_inputs",
    "check_strategy",
    "make_inputs",
]

INPUT_STRATEGIES = ("normal", "edge")
"""``normal``: seeded normals (and uniform integers); ``edge``: set 0 normal, the others mixing in
corner values (`opseq.sources.edge_values`)."""


class Framework(str, Enum):
    """The framework a model is written in."""

    TORCH = "torch"
    TENSORFLOW = "tensorflow"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputSpec:
    """One model input: name, static shape, dtype, and the range of random values.

    Floating inputs are drawn from a standard normal distribution; integer inputs uniformly from
    ``[low, high)`` (token ids, class indices); boolean inputs uniformly. ``role`` says what an
    integer input's values mean: ``"index"`` (the default: they must stay within ``[low, high)``,
    also under the ``edge`` strategy) or ``"data"`` (any value of the dtype is meaningful, so the
    ``edge`` strategy may feed its extremes).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: int = 0
    high: int = 2
    role: str = "index"

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "low": self.low,
            "high": self.high,
            "role": self.role,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCase:
    """A framework model ready to convert, with the inputs it takes.

    ``model`` is a ``torch.nn.Module`` in eval mode (called positionally with the inputs in
    order) or a Keras model (called with the list of inputs in order). Its outputs, flattened in
    order, correspond to the ONNX graph outputs. ``float64_model``, when given, builds the same
    model computing in float64 with the same weights (`opseq.difftest.float64` makes one
    generically otherwise). ``quality``, when given, measures a converted ``onnx.ModelProto``
    at the task the model was trained for (trained sources: accuracy, robustness, cost) and
    returns a JSON-safe dict that a campaign records as the row's ``quality``.
    """

    case_id: str
    framework: Framework
    model: Any
    inputs: tuple[InputSpec, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    float64_model: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    input_sets: Callable[[int, int, str], list[dict[str, np.ndarray]]] | None = field(
        default=None, repr=False, compare=False
    )
    quality: Callable[[Any], dict[str, Any]] | None = field(default=None, repr=False, compare=False)


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
    specs: Sequence[InputSpec], *, count: int, seed: int, strategy: str = "normal"
) -> list[dict[str, np.ndarray]]:
    """Draw `count` input sets from `seed` (the same seed always gives the same inputs).

    Args:
        specs: The inputs.
        count: How many sets.
        seed: Seed of ``np.random.default_rng``.
        strategy: One of `INPUT_STRATEGIES`. Under ``edge``, set 0 is the ``normal`` set 0 and
            the others come from the corner families of `opseq.sources.edge_values`.

    Returns:
        Input sets, keyed by input name.

    Raises:
        ConfigError: If `strategy` is unknown.

    Examples:
        >>> spec = InputSpec(name="ids", shape=(1, 3), dtype="int64", low=0, high=10)
        >>> first = make_inputs([spec], count=2, seed=7)
        >>> [x["ids"].shape for x in first], first[0]["ids"].dtype.name
        ([(1, 3), (1, 3)], 'int64')
        >>> bool((make_inputs([spec], count=2, seed=7)[1]["ids"] == first[1]["ids"]).all())
        True
        >>> edge = make_inputs([spec], count=4, seed=7, strategy="edge")
        >>> bool((edge[0]["ids"] == first[0]["ids"]).all()), int(edge[1]["ids"].max()) < 10
        (True, True)
    """
    check_strategy(strategy)
    rng = np.random.default_rng(seed)
    if strategy == "normal":
        return [{spec.name: _draw(rng, spec) for spec in specs} for _ in range(count)]
    normal = [{spec.name: _draw(rng, spec) for spec in specs} for _ in range(min(count, 1))]
    edge_rng = np.random.default_rng([seed, 0xED6E])
    return normal + [
        {spec.name: _draw_edge(edge_rng, spec, corner_family(k)) for spec in specs}
        for k in range(1, count)
    ]


def check_strategy(strategy: str) -> None:
    """Raise `ConfigError` unless `strategy` is one of `INPUT_STRATEGIES`."""
    if strategy not in INPUT_STRATEGIES:
        raise ConfigError(
            f"unknown input strategy {strategy!r}; known: {', '.join(INPUT_STRATEGIES)}"
        )


def case_inputs(
    case: ModelCase, *, count: int, seed: int, strategy: str = "normal"
) -> list[dict[str, np.ndarray]]:
    """Return the case's input sets: its own `ModelCase.input_sets`, else `make_inputs`."""
    check_strategy(strategy)
    if case.input_sets is not None:
        return case.input_sets(count, seed, strategy)
    return make_inputs(case.inputs, count=count, seed=seed, strategy=strategy)


def _draw(rng: np.random.Generator, spec: InputSpec) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return rng.standard_normal(spec.shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, spec.shape).astype(bool)
    return rng.integers(spec.low, spec.high, spec.shape).astype(dtype)


def _draw_edge(rng: np.random.Generator, spec: InputSpec, family: str) -> np.ndarray:
    return draw_edge(
        rng,
        shape=spec.shape,
        dtype=np.dtype(spec.dtype),
        family=family,
        low=spec.low,
        high=spec.high,
        bounded=spec.role != "data",
    )
