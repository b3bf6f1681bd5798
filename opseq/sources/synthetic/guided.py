"""Coverage-guided choice of synthetic cases: each slot takes the candidate adding most new items.

A blind synthetic campaign takes the graph seeds of each size family in turn. A guided one builds,
per *slot* (one case of the campaign), ``candidates`` graphs of the slot's size grown from seeds
drawn from (campaign seed, slot), and picks the graph whose *source-level items* the graphs chosen
so far cover least. Slot i has ``SIZES[i % 18]`` nodes: the interleaved order of
`SyntheticSource.case_ids` for its first 18 x ``min_per_size`` (810) ids, after which that list
continues only the families that needed more seeds to cover the vocabulary. The chosen ids are
ordinary ``n035-s000012`` ids that the source rebuilds alone, so replaying and resuming a guided
campaign need nothing new.

Items of a graph (`items`), as strings ``kind:text``:

- ``op:Conv2d``: an op;
- ``attribute:LeakyRelu.alpha~1e-2``: an op with one attribute value; floats binned by power of
  ten as `opseq.coverage.profile` bins them, integers by value up to 16 in magnitude and by power
  of two beyond (``~2^6``: channel counts and sizes follow the input shapes), bools and strings by
  value, tuples elementwise up to 8 values (``=[0,2,1]``) and by length beyond;
- ``dtypes:Where(bool,float32,float32)`` and ``ranks:Add(4,2)``: an op with its input dtypes,
  or ranks, in input order;
- ``pair:Relu>Add@1``: the producer and consumer ops of one edge and the consumer's input slot.

Score of a candidate: the sum, over its distinct items, of ``1 / (1 + n)`` where ``n`` is the
number of chosen graphs containing the item: an item never seen counts 1, seen once 1/2, twice
1/3. Every kind weighs the same, so the many pair and finer items steer the choice, as COMET's
layer-sequence and parameter coverage do; a weight that never reaches zero still prefers rare
items when nothing is new. Ties go to the lowest graph seed. Scores are summed with `math.fsum`,
exact whatever the order, so the choice does not depend on set iteration order.

The chosen ids are written to a state file (JSON: format, schema version, opseq version, source,
vocabulary (the source's own: a restricted source keeps its name), seed, candidates, the chosen
ids, time spent) so that a resumed campaign reads them instead of building candidates again; a
longer campaign continues from them, since the first k choices do not depend on how many follow.
A state file from another schema or opseq version, source, vocabulary, seed or number of
candidates, or one that is unreadable or malformed, is ignored with one warning and the choice
recomputed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opseq import __version__
from opseq.coverage.profile import float_bin
from opseq.errors import ConfigError
from opseq.sources.base import Source
from opseq.sources.synthetic.builder import SyntheticGraph, SyntheticNode
from opseq.sources.synthetic.ops import vocabulary
from opseq.sources.synthetic.source import SIZES, parse_case_id
from opseq.untrusted import escape_controls

__all__ = [
    "DEFAULT_CANDIDATES",
    "ITEM_KINDS",
    "SCHEMA_VERSION",
    "GuidanceState",
    "guided_case_ids",
    "item_kind",
    "items",
]

SCHEMA_VERSION = 1
DEFAULT_CANDIDATES = 16
ITEM_KINDS = ("op", "attribute", "dtypes", "ranks", "pair")
_FORMAT = "opseq-guidance"
_SEED_SPACE = 1_000_000  # candidate graph seeds keep the six digits of ordinary case ids
_SMALL_INT = 16
_TUPLE_BY_VALUE = 8
_MAX_CANDIDATES = 4096
_MAX_STATE_BYTES = 64 << 20  # far above any state opseq writes (about 15 bytes per case)

logger = logging.getLogger(__name__)


# --- items ------------------------------------------------------------------------------------


def items(graph: SyntheticGraph) -> frozenset[str]:
    """Return the distinct source-level items of `graph` (see the module docstring).

    Examples:
        >>> from opseq.sources.synthetic.builder import build_chain_graph
        >>> graph = build_chain_graph(["Relu", "LeakyRelu"], seed=0, framework="torch")
        >>> sorted(i for i in items(graph) if not i.startswith("ranks"))
        ... # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
        ['attribute:LeakyRelu.alpha~1e-...', 'dtypes:LeakyRelu(float32)', 'dtypes:Relu(float32)',
         'op:LeakyRelu', 'op:Relu', 'pair:Relu>LeakyRelu@0']
    """
    types = graph.types()
    producers = {node.name: node.op for node in graph.nodes}
    found: set[str] = set()
    for node in graph.nodes:
        found.update(_node_items(node, types, producers))
    return frozenset(found)


def item_kind(item: str) -> str:
    """The kind of an item of `items`: one of `ITEM_KINDS`."""
    return item.partition(":")[0]


def _node_items(node: SyntheticNode, types: Mapping, producers: Mapping[str, str]):
    inputs = [types[name] for name in node.inputs]
    yield f"op:{node.op}"
    yield f"dtypes:{node.op}({','.join(t.dtype for t in inputs)})"
    yield f"ranks:{node.op}({','.join(str(t.rank) for t in inputs)})"
    for name, value in sorted(node.attrs.items()):
        yield f"attribute:{node.op}.{name}{_attribute_cell(value)}"
    for slot, name in enumerate(node.inputs):
        if name in producers:  # graph inputs have no producer op
            yield f"pair:{producers[name]}>{node.op}@{slot}"


def _attribute_cell(value: Any) -> str:
    """``=value`` for bools, strings, small ints and short tuples; ``~bin`` for the others.

    Examples:
        >>> [_attribute_cell(v) for v in (True, 3, 37, -300, 0.2, "same", (0, 2, 1))]
        ['=True', '=3', '~2^5', '~-2^8', '~1e-1', '=same', '=[0,2,1]']
        >>> _attribute_cell(((0, 1), (2, 0))), _attribute_cell((1, 32)), _attribute_cell((0,) * 9)
        ('=[[0,1],[2,0]]', '=[1,~2^5]', '=<9 values>')
    """
    if isinstance(value, tuple | list):
        if _flat_length(value) > _TUPLE_BY_VALUE:
            return f"=<{_flat_length(value)} values>"
        return f"=[{','.join(_element_cell(v) for v in value)}]"
    if isinstance(value, float):
        return f"~{float_bin(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _SMALL_INT:
        return f"~{'-' if value < 0 else ''}2^{abs(value).bit_length() - 1}"
    return f"={value}"


def _element_cell(value: Any) -> str:
    """A tuple element: its value without the ``=``, a bin with its ``~``."""
    cell = _attribute_cell(value)
    return cell[1:] if cell.startswith("=") else cell


def _flat_length(value: Any) -> int:
    if isinstance(value, tuple | list):
        return sum(_flat_length(v) for v in value)
    return 1


# --- state ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GuidanceState:
    """The items a set of chosen graphs covers, each with the number of graphs containing it."""

    counts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, graphs: Iterable[SyntheticGraph]) -> GuidanceState:
        """The state after choosing `graphs`."""
        counts: dict[str, int] = {}
        for graph in graphs:
            _count(counts, items(graph))
        return cls(counts=counts)

    def score(self, found: Iterable[str]) -> float:
        """The weighted number of uncovered items in `found` (see the module docstring)."""
        return _score(found, self.counts)

    def distinct(self, kind: str | None = None) -> int:
        """How many distinct items of `kind` (of `ITEM_KINDS`; all kinds when None) are covered."""
        return sum(1 for item in self.counts if kind is None or item_kind(item) == kind)

    def to_dict(self) -> dict:
        """Return a JSON-safe dict: the counts, and distinct items per kind."""
        return {
            "schema_version": SCHEMA_VERSION,
            "counts": dict(sorted(self.counts.items())),
            "distinct": {kind: self.distinct(kind) for kind in ITEM_KINDS},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GuidanceState:
        """Rebuild a state from `to_dict` output.

        Raises:
            ValueError: If ``counts`` is not a mapping of item strings to positive counts.
        """
        counts = data.get("counts")
        if type(counts) is not dict or not all(
            type(k) is str and type(v) is int and v > 0 for k, v in counts.items()
        ):
            raise ValueError("counts must map item strings to positive integers")
        return cls(counts=dict(counts))


def _score(found: Iterable[str], counts: Mapping[str, int]) -> float:
    return math.fsum(1 / (1 + counts.get(item, 0)) for item in found)


def _count(counts: dict[str, int], found: Iterable[str]) -> None:
    for item in found:
        counts[item] = counts.get(item, 0) + 1


# --- choosing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Timing:
    """Candidate graphs built, and the seconds spent building and scoring them."""

    graphs_built: int = 0
    build_s: float = 0.0
    score_s: float = 0.0

    def plus(self, other: _Timing) -> _Timing:
        return _Timing(
            graphs_built=self.graphs_built + other.graphs_built,
            build_s=self.build_s + other.build_s,
            score_s=self.score_s + other.score_s,
        )

    def to_dict(self) -> dict:
        return {
            "graphs_built": self.graphs_built,
            "build_s": round(self.build_s, 6),
            "score_s": round(self.score_s, 6),
        }


def guided_case_ids(
    source: Source,
    *,
    count: int,
    seed: int,
    candidates: int = DEFAULT_CANDIDATES,
    state_path: Path | None = None,
) -> list[str]:
    """Choose `count` case ids of a synthetic source, each the candidate adding most new items.

    Args:
        source: A synthetic source (it needs ``graph(case_id)`` and ``framework``).
        count: How many cases.
        seed: Campaign seed: with the slot, it selects each slot's candidate graph seeds.
        candidates: Candidate graphs built per slot.
        state_path: Where the choice is kept (JSON); a valid state there is reused (and
            extended when `count` asks for more), anything else is ignored with a warning.

    Returns:
        Distinct case ids like ``n035-s000012``; the same arguments give the same list, and a
        smaller `count` gives a prefix of it.

    Raises:
        ConfigError: If `count` or `seed` is negative or `candidates` is not 1 to 4096.
    """
    _check_arguments(count=count, seed=seed, candidates=candidates)
    header = _header(source, seed=seed, candidates=candidates)
    stored = None if state_path is None else _read_state(state_path, header)
    chosen, timing = stored if stored is not None else ([], _Timing())
    if len(chosen) >= count:
        return chosen[:count]
    counts: dict[str, int] = {}
    for graph in filter(None, (_built_graph(source, case_id) for case_id in chosen)):
        _count(counts, items(graph))
    added, spent = _choose(source, counts, chosen, count=count, seed=seed, candidates=candidates)
    if state_path is not None:
        _write_state(state_path, {**header, "case_ids": added, **timing.plus(spent).to_dict()})
    return added


def _check_arguments(*, count: int, seed: int, candidates: int) -> None:
    limits = (("count", count, 0, math.inf), ("seed", seed, 0, math.inf))
    for name, value, low, high in (*limits, ("candidates", candidates, 1, _MAX_CANDIDATES)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            bounds = f">= {low}" if high == math.inf else f"from {low} to {high}"
            raise ConfigError(f"guided generation needs an integer {name} {bounds}, got {value!r}")


def _choose(
    source: Source,
    counts: dict[str, int],
    chosen: list[str],
    *,
    count: int,
    seed: int,
    candidates: int,
) -> tuple[list[str], _Timing]:
    """Extend `chosen` to `count` ids, updating `counts`; return the ids and the time spent."""
    ids, taken, timing = list(chosen), set(chosen), _Timing()
    for slot in range(len(chosen), count):
        case_id, found, spent = _choose_slot(source, counts, taken, slot, seed, candidates)
        ids.append(case_id)
        taken.add(case_id)
        _count(counts, found)
        timing = timing.plus(spent)
    return ids, timing


def _choose_slot(
    source: Source,
    counts: Mapping[str, int],
    taken: set[str],
    slot: int,
    seed: int,
    candidates: int,
) -> tuple[str, frozenset[str], _Timing]:
    nodes = SIZES[slot % len(SIZES)]  # the order of SyntheticSource.case_ids while families last
    seeds = _candidate_seeds(nodes, taken, slot=slot, seed=seed, candidates=candidates)
    best: tuple[float, int, frozenset[str]] | None = None
    build_s = score_s = 0.0
    for graph_seed in seeds:
        start = time.perf_counter()
        graph = _built_graph(source, _case_id(nodes, graph_seed))
        build_s += time.perf_counter() - start
        if graph is None:
            continue
        start = time.perf_counter()
        found = items(graph)
        score = _score(found, counts)
        score_s += time.perf_counter() - start
        if best is None or score > best[0]:  # seeds ascend: a tie keeps the lowest
            best = (score, graph_seed, found)
    if best is None:  # no candidate builds: the campaign records the lowest as a failure
        best = (0.0, seeds[0], frozenset())
    timing = _Timing(graphs_built=len(seeds), build_s=build_s, score_s=score_s)
    return _case_id(nodes, best[1]), best[2], timing


def _built_graph(source: Source, case_id: str) -> SyntheticGraph | None:
    """The graph of `case_id`, or None when none grows (a restricted vocabulary may stall)."""
    try:
        return source.graph(case_id)
    except (RuntimeError, ConfigError) as e:
        logger.debug("%s does not build: %s", case_id, e)
        return None


def _candidate_seeds(
    nodes: int, taken: set[str], *, slot: int, seed: int, candidates: int
) -> list[int]:
    """`candidates` distinct graph seeds from (seed, slot), ascending, none already chosen."""
    rng = np.random.default_rng([seed, slot])
    seeds: set[int] = set()
    while len(seeds) < candidates:
        for value in rng.integers(0, _SEED_SPACE, size=candidates - len(seeds)):
            if _case_id(nodes, int(value)) not in taken:
                seeds.add(int(value))
    return sorted(seeds)


def _case_id(nodes: int, graph_seed: int) -> str:
    return f"n{nodes:03d}-s{graph_seed:06d}"


# --- state file -------------------------------------------------------------------------------


def _header(source: Source, *, seed: int, candidates: int) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "schema_version": SCHEMA_VERSION,
        "opseq_version": __version__,
        "source": source.name,
        "vocabulary": list(_vocabulary(source)),
        "seed": seed,
        "candidates": candidates,
    }


def _vocabulary(source: Source) -> tuple[str, ...]:
    """The ops the source grows graphs from: a restricted source keeps its name, not its ops."""
    names = getattr(source, "vocabulary", None)
    if isinstance(names, tuple | list) and all(isinstance(n, str) for n in names):
        return tuple(names)
    return vocabulary(source.framework.value)


class _UnusableState(ValueError):
    """Why a state file is ignored (one short line)."""


def _read_state(path: Path, header: Mapping[str, Any]) -> tuple[list[str], _Timing] | None:
    """The chosen ids and time spent of a valid state at `path`; None (warned) otherwise."""
    if not os.path.lexists(path):
        return None
    try:
        data = _load_json(path)
        _check_header(data, header)
        return _checked_ids(data.get("case_ids")), _checked_timing(data)
    except (_UnusableState, OSError, ValueError, RecursionError) as e:
        reason = e if isinstance(e, _UnusableState) else f"unreadable ({type(e).__name__})"
        logger.warning(
            "ignoring the guidance state %s: %s; choosing the cases again",
            escape_controls(str(path)),
            reason,
        )
        return None


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise _UnusableState("not a regular file")
    with path.open("rb") as stream:
        raw = stream.read(_MAX_STATE_BYTES + 1)
    if len(raw) > _MAX_STATE_BYTES:
        raise _UnusableState("larger than any state opseq writes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # ValueError: bad JSON, UTF-8, or a huge int
        raise _UnusableState(f"not valid JSON ({type(e).__name__})") from e


def _check_header(data: Any, header: Mapping[str, Any]) -> None:
    if type(data) is not dict:
        raise _UnusableState(f"a JSON {type(data).__name__}, not an object")
    for key, expected in header.items():
        value = data.get(key)
        if type(value) is not type(expected) or value != expected:
            raise _UnusableState(f"{key} is {_shown(value)}, expected {_shown(expected)}")


def _shown(value: Any) -> str:
    """A short, printable rendering of a value read from the file."""
    if type(value) is str:
        return repr(escape_controls(value[:60]))
    if type(value) in (int, float, bool) and len(repr(value)) <= 20:
        return repr(value)
    if type(value) is list and all(type(v) is str for v in value):
        return f"a list of {len(value)} names"
    return f"a JSON {type(value).__name__}" if value is not None else "missing"


def _checked_ids(value: Any) -> list[str]:
    if type(value) is not list or not all(type(v) is str for v in value):
        raise _UnusableState("case_ids is not a list of strings")
    for slot, case_id in enumerate(value):
        try:
            nodes, _ = parse_case_id(case_id)
        except KeyError:
            raise _UnusableState(f"case_ids[{slot}] is not a synthetic case id") from None
        if nodes != SIZES[slot % len(SIZES)]:
            raise _UnusableState(f"case_ids[{slot}] has {nodes} nodes, not the slot's size")
    if len(set(value)) != len(value):
        raise _UnusableState("case_ids repeats an id")
    return list(value)


def _checked_timing(data: Mapping[str, Any]) -> _Timing:
    built, build_s, score_s = (data.get(k) for k in ("graphs_built", "build_s", "score_s"))
    if type(built) is not int or not 0 <= built < 2**63:
        raise _UnusableState("graphs_built is not a count")
    for value in (build_s, score_s):
        if type(value) not in (int, float) or not 0 <= value < math.inf:
            raise _UnusableState("a timing is not a finite number of seconds")
    return _Timing(graphs_built=built, build_s=float(build_s), score_s=float(score_s))


def _write_state(path: Path, data: Mapping[str, Any]) -> None:
    """Write the state atomically; a state that cannot be written is only a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".guidance-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=1)
                stream.write("\n")
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as e:
        logger.warning(
            "could not write the guidance state %s: %s",
            escape_controls(str(path)),
            escape_controls(str(e.strerror or e)),
        )
