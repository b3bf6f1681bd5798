"""The vocabulary's building blocks: tensor types, op specifications and shared constraints.

Every tensor type carries a ``nonneg`` flag (its values are known to be >= 0): ``Log`` and
``Sqrt`` accept only nonnegative inputs and ``Pow`` only a nonnegative base, and integer graph
inputs marked nonnegative are drawn from a nonnegative range (`opseq.sources.synthetic.source`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "BOOL",
    "BOTH",
    "FLOAT",
    "INT",
    "INT32",
    "INTS",
    "TF",
    "TF_ONLY",
    "TORCH",
    "TORCH_ONLY",
    "Attrs",
    "OpSpec",
    "TensorType",
    "broadcast_shapes",
    "draw_axis",
    "layout",
    "pick",
    "same_type",
]

FLOAT, INT, INT32, BOOL = "float32", "int64", "int32", "bool"
INTS = (INT, INT32)
TORCH, TF = "torch", "tensorflow"
BOTH = frozenset({TORCH, TF})
TORCH_ONLY, TF_ONLY = frozenset({TORCH}), frozenset({TF})


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorType:
    """Static shape and dtype of a tensor, and whether its values are known nonnegative."""

    shape: tuple[int, ...]
    dtype: str = FLOAT
    nonneg: bool = False

    @property
    def rank(self) -> int:
        """Number of dimensions."""
        return len(self.shape)

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


Attrs = dict[str, Any]
Sampler = Callable[[np.random.Generator, tuple[TensorType, ...]], "Attrs | None"]
Inferer = Callable[[tuple[TensorType, ...], Attrs], TensorType]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpSpec:
    """One operator: constraints (``sample``) and output type (``infer``).

    ``sample(rng, input_types)`` returns the attributes of one instance, or None if the op cannot
    apply to those inputs. ``infer(input_types, attrs)`` returns the type of the op's one output.
    ``weights`` marks ops whose materialisers create parameters. ``calls`` names, per framework
    of ``frameworks``, the framework call the materialiser makes (stated for the ops of the wide
    vocabulary).
    """

    name: str
    arity: int
    frameworks: frozenset[str] = field(default=BOTH)
    sample: Sampler
    infer: Inferer
    weights: bool = False
    calls: Mapping[str, str] = field(default_factory=dict)


def pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """Return one of `options`, drawn uniformly from `rng`."""
    return options[int(rng.integers(len(options)))]


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """Return the numpy broadcast of `shapes`, or None if they do not broadcast."""
    rank = max(len(s) for s in shapes)
    out = []
    for dims in zip(*((1,) * (rank - len(s)) + tuple(s) for s in shapes), strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def same_type(ts, _a, *, dtype=None, nonneg=None) -> TensorType:
    """The type of the first input, with `dtype` and `nonneg` replaced when given."""
    t = ts[0]
    return TensorType(
        shape=t.shape, dtype=dtype or t.dtype, nonneg=t.nonneg if nonneg is None else nonneg
    )


def draw_axis(rng: np.random.Generator, t: TensorType) -> int | None:
    """Draw an axis of size >= 2 (None if there is none)."""
    axes = [i for i, d in enumerate(t.shape) if d >= 2]
    return pick(rng, axes) if axes else None


def layout(t: TensorType, channels_last: bool) -> tuple[int, list[int]]:
    """Return the channel axis and the spatial axes of `t` (batch is axis 0)."""
    if channels_last:
        return t.rank - 1, list(range(1, t.rank - 1))
    return 1, list(range(2, t.rank))
