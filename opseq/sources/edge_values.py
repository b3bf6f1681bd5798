"""Input sets that reach the corners of an op's domain: the ``edge`` input strategy.

Seeded normals exercise an op's middle; converters and runtimes part ways at its edges. The
``edge`` strategy keeps input set 0 normal (so a case still sees typical values) and, from set 1
on, replaces a share of each tensor's elements with values from one of three *corner families*,
in turn, so that each family appears in at least three sets of ten (the calibrated rule needs
``min_sets`` = 3 disagreeing sets before it calls a case semantic):

- ``specials``: +0 and -0, float32 subnormals, +-inf and NaN for floats; 0, -1, 1 and the dtype's
  extremes for free integers; the range ends for bounded ones.
- ``ties``: values exactly at .5 (Round's ties, Floor/Ceil at integers), and duplicated maxima and
  minima (ArgMax/ArgMin/TopK/Max/Min with equal candidates), made by copying a tensor's extreme
  element into several places and by quantising to a few levels.
- ``magnitudes``: values near the float32 and float16 limits and tiny normals for floats; for
  integers, values near the int32 limits and just past 2**24 (where float32 stops holding every
  integer, so casts disagree).

Integer inputs are *bounded* unless their `InputSpec.role` is ``"data"``: a token id or an index
stays within ``[low, high)`` (a negative ``low`` asks for negative indices), only its range ends
and duplicates are hit. Booleans are all-true, all-false or random. Zero-size dimensions cannot
come from input values (a converted model's shapes are fixed); they come from sources whose cases
have them (the ``opinfo`` source's empty samples).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["CORNER_FAMILIES", "EDGE_SHARE", "corner_family", "draw_edge"]

CORNER_FAMILIES = ("specials", "ties", "magnitudes")
EDGE_SHARE = 0.25
"""Share of a tensor's elements replaced by corner values (the rest stay normal, so an op whose
corners collapse everything, such as a sum over an axis with one NaN, still has live values)."""

_F32 = np.finfo(np.float32)
_F16_MAX = float(np.finfo(np.float16).max)
_FLOAT_CORNERS: dict[str, tuple[float, ...]] = {
    "specials": (
        0.0,
        -0.0,
        float(_F32.smallest_subnormal),
        -float(_F32.smallest_subnormal),
        1e-40,
        -1e-40,
        np.inf,
        -np.inf,
        np.nan,
    ),
    "ties": (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.0, 1.0, 2.0),
    "magnitudes": (
        float(_F32.max),
        -float(_F32.max),
        1e38,
        -1e38,
        _F16_MAX,
        -_F16_MAX,
        65520.0,  # rounds to float16 inf
        float(_F32.tiny),
        -float(_F32.tiny),
        1e4,
        -1e4,
    ),
}


def corner_family(set_index: int) -> str | None:
    """Return the corner family of input set `set_index` (None: set 0, drawn normal).

    Examples:
        >>> [corner_family(i) for i in range(5)]
        [None, 'specials', 'ties', 'magnitudes', 'specials']
    """
    if set_index == 0:
        return None
    return CORNER_FAMILIES[(set_index - 1) % len(CORNER_FAMILIES)]


def draw_edge(
    rng: np.random.Generator,
    *,
    shape: tuple[int, ...],
    dtype: np.dtype,
    family: str,
    low: int,
    high: int,
    bounded: bool,
) -> np.ndarray:
    """Draw one tensor of the `family` corner family.

    Args:
        rng: The input stream.
        shape: The tensor's shape.
        dtype: Its dtype.
        family: One of `CORNER_FAMILIES`.
        low: For integers, the lowest value of the input's range.
        high: For integers, one past its highest value.
        bounded: For integers, stay within ``[low, high)``.

    Returns:
        The tensor.
    """
    if dtype.kind == "b":
        choice = int(rng.integers(3))
        if choice == 2:
            return rng.integers(0, 2, shape).astype(bool)
        return np.full(shape, bool(choice))
    if dtype.kind == "f":
        base = rng.standard_normal(shape).astype(np.float32)
        return _mixed(rng, base, family, _float_corners).astype(dtype)
    base = rng.integers(low, high, shape).astype(np.int64)
    pick = _bounded_corners(low, high) if bounded else _free_corners(dtype)
    return _mixed(rng, base, family, pick).astype(dtype)


def _mixed(
    rng: np.random.Generator,
    base: np.ndarray,
    family: str,
    corners: Callable[[str], tuple],
) -> np.ndarray:
    out = base.copy()
    if out.size == 0:
        return out
    if family == "ties":
        out = _with_duplicates(rng, out)
    values = np.asarray(corners(family), dtype=out.dtype)
    mask = rng.random(out.shape) < EDGE_SHARE
    out[mask] = values[rng.integers(len(values), size=int(mask.sum()))]
    return out


def _with_duplicates(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Quantise to a few levels half the time; always copy the extremes into a few places."""
    flat = x.reshape(-1)
    if x.dtype.kind == "f" and rng.integers(2) == 0:
        flat = np.round(flat * 2) / 2
    count = max(1, flat.size // 8)
    for extreme in (flat.max(), flat.min()):
        flat[rng.integers(flat.size, size=count)] = extreme
    return flat.reshape(x.shape)


def _float_corners(family: str) -> tuple[float, ...]:
    return _FLOAT_CORNERS[family]


def _free_corners(dtype: np.dtype) -> Callable[[str], tuple[int, ...]]:
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    i32 = np.iinfo(np.int32)

    def corners(family: str) -> tuple[int, ...]:
        if family == "specials":
            return (0, -1, 1, lo, hi) if lo < 0 else (0, 1, hi)
        if family == "ties":
            return (0, 1, 2, -2) if lo < 0 else (0, 1, 2)
        big = (int(i32.max), int(i32.min), 2**24 + 1, -(2**24) - 1, 2**31, 2**53 + 1)
        return tuple(v for v in big if lo <= v <= hi) or (hi,)

    return corners


def _bounded_corners(low: int, high: int) -> Callable[[str], tuple[int, ...]]:
    ends = tuple(sorted({low, high - 1} | ({-1, 0} & set(range(low, high)))))

    def corners(family: str) -> tuple[int, ...]:
        return ends

    return corners
