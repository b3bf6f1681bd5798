"""What onnx's schemas make possible at an opset: the default-domain ops and their feasible pairs.

The *op space* at opset k is every default-domain op with a schema of ``since_version <= k``;
an op is *deprecated* at k when the schema in force there (the latest such) says so (Upsample
from 10, Scatter from 11, GroupNormalization-18 until 21 replaces it).

A bigram (A, B) is *type-feasible* at k, after COMET's layer-pair rule carried to ONNX ops, when
some type that an output of A may have (its type constraint's allowed types, or its fixed type
such as ``tensor(int64)``) is one that some input of B allows, both schemas taken as in force at
k and both ops current (not deprecated). Nothing else (shapes, attributes, the number of inputs)
is checked, so feasibility is necessary for a model to contain the pair, not sufficient.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import onnx
import onnx.defs

from opseq.errors import ConfigError

__all__ = [
    "FeasibleBigrams",
    "default_domain_ops",
    "highest_opset",
    "type_feasible_bigrams",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeasibleBigrams:
    """The type-feasible bigrams of the current default-domain ops at one opset.

    Examples:
        >>> space = type_feasible_bigrams(17)
        >>> space.is_feasible("Shape", "Gather"), space.is_feasible("Shape", "Sin")
        (True, False)
    """

    opset: int
    pairs: frozenset[tuple[str, str]]

    @property
    def count(self) -> int:
        """How many ordered pairs are feasible."""
        return len(self.pairs)

    def is_feasible(self, first: str, second: str) -> bool:
        """Whether an output of `first` may feed an input of `second` by type."""
        return (first, second) in self.pairs

    def count_without(self, ops: Iterable[str]) -> int:
        """How many feasible pairs involve none of `ops` (e.g. ops a graph never shows)."""
        excluded = frozenset(ops)
        return sum(1 for a, b in self.pairs if a not in excluded and b not in excluded)

    def to_dict(self) -> dict:
        """Return a JSON-safe summary (the count, not the pairs)."""
        return {"opset": self.opset, "count": self.count}


def highest_opset() -> int:
    """The highest default-domain opset the installed onnx knows."""
    return onnx.defs.onnx_opset_version()


@functools.lru_cache(maxsize=64)
def default_domain_ops(opset: int) -> tuple[frozenset[str], frozenset[str]]:
    """The default-domain op names that exist at `opset`, current and deprecated apart.

    Args:
        opset: A default-domain opset version, 1 to `highest_opset()`.

    Returns:
        ``(current, deprecated)``: the ops whose schema in force at `opset` is not deprecated,
        and those whose schema is.

    Raises:
        ConfigError: If `opset` is not an opset the installed onnx knows.

    Examples:
        >>> current, deprecated = default_domain_ops(17)
        >>> "Relu" in current, sorted(deprecated)
        (True, ['Scatter', 'Upsample'])
    """
    _check_opset(opset)
    current, deprecated = set(), set()
    for schema in _schemas_in_force(opset):
        (deprecated if schema.deprecated else current).add(schema.name)
    return frozenset(current), frozenset(deprecated)


@functools.lru_cache(maxsize=16)
def type_feasible_bigrams(opset: int) -> FeasibleBigrams:
    """The ordered pairs (A, B) of current default-domain ops where A's output may feed B.

    Args:
        opset: A default-domain opset version, 1 to `highest_opset()`.

    Returns:
        The feasible pairs at `opset` (see the module docstring for the rule).

    Raises:
        ConfigError: If `opset` is not an opset the installed onnx knows.
    """
    _check_opset(opset)
    schemas = [s for s in _schemas_in_force(opset) if not s.deprecated]
    produces = {s.name: _types(s, s.outputs) for s in schemas}
    consumers: dict[str, set[str]] = {}  # type -> ops with an input that allows it
    for schema in schemas:
        for type_str in _types(schema, schema.inputs):
            consumers.setdefault(type_str, set()).add(schema.name)
    pairs = {
        (first, second)
        for first, types in produces.items()
        for type_str in types
        for second in consumers.get(type_str, ())
    }
    return FeasibleBigrams(opset=opset, pairs=frozenset(pairs))


def _check_opset(opset: int) -> None:
    if isinstance(opset, bool) or not isinstance(opset, int) or not 1 <= opset <= highest_opset():
        raise ConfigError(
            f"opset {opset!r} is not a default-domain opset of onnx {onnx.__version__} "
            f"(1 to {highest_opset()})"
        )


def _schemas_in_force(opset: int) -> Iterator[onnx.defs.OpSchema]:
    """Per default-domain op, its latest schema with ``since_version <= opset``."""
    latest: dict[str, onnx.defs.OpSchema] = {}
    for schema in _default_domain_schemas():
        if schema.since_version <= opset:
            kept = latest.get(schema.name)
            if kept is None or schema.since_version > kept.since_version:
                latest[schema.name] = schema
    return iter(latest.values())


@functools.lru_cache(maxsize=1)
def _default_domain_schemas() -> tuple[onnx.defs.OpSchema, ...]:
    schemas = onnx.defs.get_all_schemas_with_history()
    return tuple(s for s in schemas if s.domain in ("", "ai.onnx"))


def _types(schema: onnx.defs.OpSchema, parameters) -> frozenset[str]:
    """Every type the given inputs or outputs of `schema` may have."""
    allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
    types: set[str] = set()
    for parameter in parameters:
        # A type_str is a constraint's name, or a fixed type such as tensor(int64).
        types.update(allowed.get(parameter.type_str, (parameter.type_str,)))
    return frozenset(types)
