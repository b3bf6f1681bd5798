"""What a picture draws: the highlighted nodes, and the context around them, the rest collapsed.

`mark_highlights` finds the occurrences of each kind's n-grams (at most `OCCURRENCE_LIMIT` per
n-gram) and the main-graph nodes and edges they colour; an occurrence inside an If/Loop/Scan body
marks the main-graph node the body hangs under. `select_nodes` keeps either every node (small
graphs) or the nodes within K hops, in either direction, of a highlighted node; every connected
group of the nodes left out (connected ignoring edge direction, through left-out nodes only)
becomes one collapsed group. Both cost O(nodes + edges) per n-gram label or context tried.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, pairwise

import networkx as nx

from opseq.coverage.occurrences import ngram_occurrences
from opseq.errors import ConfigError
from opseq.graph import iter_graphs
from opseq.ngrams import Ngram

__all__ = [
    "DEFAULT_CONTEXT",
    "KINDS",
    "MAX_DRAWN_NODES",
    "OCCURRENCE_LIMIT",
    "WHOLE_GRAPH_NODES",
    "HighlightSummary",
    "Marks",
    "Selection",
    "mark_highlights",
    "select_nodes",
]

KINDS = ("risky", "uncovered", "novel", "pattern")  # the order of stripes and legend rows
WHOLE_GRAPH_NODES = 300
DEFAULT_CONTEXT = 2
# dot's layout time grows faster than linearly: on GPT-2's graph it takes 7 s for 546 nodes,
# 17 s for 1,092 and 150 s for 2,184 (bench models, graphviz 2.43).
MAX_DRAWN_NODES = 1000
# Occurrences searched per n-gram: enough to colour every occurrence in real models, bounded on
# crafted ones whose n-grams occur along 2**50 paths.
OCCURRENCE_LIMIT = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class HighlightSummary:
    """One kind of highlight: its n-grams, how many occur, and the nodes their occurrences cover.

    ``nodes`` counts distinct nodes of every graph, ``in_bodies`` those of them inside
    If/Loop/Scan bodies (not drawn); ``truncated`` says some n-gram had more than
    `OCCURRENCE_LIMIT` occurrences and only that many were coloured.
    """

    kind: str
    ngrams: tuple[Ngram, ...]
    found: int
    nodes: int
    in_bodies: int
    truncated: bool

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "kind": self.kind,
            "ngrams": [list(ngram) for ngram in self.ngrams],
            "found": self.found,
            "nodes": self.nodes,
            "in_bodies": self.in_bodies,
            "truncated": self.truncated,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Marks:
    """Which main-graph nodes and edges each kind colours, and the legend's numbers."""

    nodes: Mapping[str, tuple[str, ...]]
    bodies: Mapping[str, tuple[str, ...]]
    body_counts: Mapping[str, int]
    edges: Mapping[tuple[str, str], tuple[str, ...]]
    summaries: tuple[HighlightSummary, ...]
    notes: tuple[str, ...]

    @property
    def marked(self) -> frozenset[str]:
        """Main-graph nodes to keep: highlighted ones and parents of highlighted bodies."""
        return frozenset(self.nodes) | frozenset(self.bodies)


def mark_highlights(graph: nx.DiGraph, highlights: Mapping[str, Iterable[Ngram]]) -> Marks:
    """Find the occurrences of each kind's n-grams and the main-graph nodes and edges they colour.

    Raises:
        ConfigError: If a kind is not one of `KINDS`.
    """
    unknown = sorted(set(highlights) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown highlight kind {unknown[0]!r}; use one of {', '.join(KINDS)}")
    owner = _body_owners(graph)
    nodes: dict[str, list[str]] = {}
    bodies: dict[str, list[str]] = {}
    edges: dict[tuple[str, str], list[str]] = {}
    summaries = []
    for kind in (k for k in KINDS if k in highlights):
        ngrams = tuple(dict.fromkeys(tuple(ngram) for ngram in highlights[kind]))
        found = ngram_occurrences(graph, ngrams, limit=OCCURRENCE_LIMIT)
        covered = {node for paths in found.values() for path in paths for node in path}
        for node in covered:
            target = bodies if node in owner else nodes
            _add_once(target.setdefault(owner.get(node, node), []), kind)
        for path in (p for paths in found.values() for p in paths if p[0] not in owner):
            for edge in pairwise(path):
                _add_once(edges.setdefault(edge, []), kind)
        summaries.append(
            HighlightSummary(
                kind=kind,
                ngrams=ngrams,
                found=sum(1 for paths in found.values() if paths),
                nodes=len(covered),
                in_bodies=sum(1 for node in covered if node in owner),
                truncated=any(len(paths) == OCCURRENCE_LIMIT for paths in found.values()),
            )
        )
    body_counts = {parent: count for parent, count in _body_sizes(graph).items() if count}
    hidden = sum(body_counts.values())
    notes = (f"If/Loop/Scan bodies not drawn: {hidden:,} nodes",) if hidden else ()
    return Marks(
        nodes={n: tuple(k) for n, k in nodes.items()},
        bodies={n: tuple(k) for n, k in bodies.items()},
        body_counts=body_counts,
        edges={e: tuple(k) for e, k in edges.items()},
        summaries=tuple(summaries),
        notes=notes,
    )


def _add_once(kinds: list[str], kind: str) -> None:
    if kind not in kinds:
        kinds.append(kind)


def _body_owners(graph: nx.DiGraph) -> dict[str, str]:
    """Map every node of every If/Loop/Scan body to the main-graph node it hangs under."""
    owner = {}
    for parent, subgraphs in graph.nodes(data="subgraphs"):
        for body in (subgraphs or {}).values():
            for each in iter_graphs(body):
                owner.update(dict.fromkeys(each, parent))
    return owner


def _body_sizes(graph: nx.DiGraph) -> dict[str, int]:
    return {
        parent: sum(
            each.number_of_nodes() for body in subgraphs.values() for each in iter_graphs(body)
        )
        for parent, subgraphs in graph.nodes(data="subgraphs")
        if subgraphs
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The nodes a picture draws, in topological order, and the groups collapsed into one node.

    ``context`` is the hops kept around highlighted nodes, None when no context was applied (the
    whole graph, or its first nodes when nothing is highlighted).
    """

    kept: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    context: int | None
    notes: tuple[str, ...] = ()
    group_of: Mapping[str, int] = field(default_factory=dict, repr=False)

    @property
    def drawn(self) -> int:
        """Operator nodes plus collapsed groups in the picture."""
        return len(self.kept) + len(self.groups)

    def to_dict(self) -> dict:
        """Return a JSON-safe dict (group sizes, not members)."""
        return {
            "kept": list(self.kept),
            "groups": [len(group) for group in self.groups],
            "context": self.context,
            "notes": list(self.notes),
        }


def select_nodes(
    graph: nx.DiGraph,
    marked: Collection[str],
    *,
    context: int | str | None = None,
    max_nodes: int = MAX_DRAWN_NODES,
) -> Selection:
    """Choose the nodes to draw around the `marked` (highlighted) ones.

    Args:
        graph: An OpGraph (its main graph only is considered).
        marked: Nodes that must be drawn.
        context: Hops kept around marked nodes (a whole number), ``"all"`` for the whole graph, or
            None: the whole graph up to `WHOLE_GRAPH_NODES` nodes, else `DEFAULT_CONTEXT`.
        max_nodes: The context shrinks, down to 0, until at most this many nodes and groups are
            drawn; past that the selection at context 0 is returned as is.

    Returns:
        The selection. With nothing marked, a graph larger than `WHOLE_GRAPH_NODES` (or than
        `max_nodes` with ``"all"``) keeps its first `WHOLE_GRAPH_NODES` nodes in topological order.

    Raises:
        ConfigError: If `context` is neither a whole number, ``"all"`` nor None.

    Examples:
        >>> g = nx.path_graph(6, create_using=nx.DiGraph)
        >>> s = select_nodes(g, {2}, context=1)
        >>> s.kept, s.groups
        ((1, 2, 3), ((0,), (4, 5)))
    """
    order = _topological_order(graph)
    hops = _requested_hops(context, len(order))
    if not marked:
        if len(order) <= WHOLE_GRAPH_NODES or (hops is None and len(order) <= max_nodes):
            return Selection(kept=order, groups=(), context=None)
        return _first_nodes(graph, order)
    if hops is None:
        if len(order) <= max_nodes:
            return Selection(kept=order, groups=(), context=None)
        tried = [DEFAULT_CONTEXT, *range(DEFAULT_CONTEXT - 1, -1, -1)]
        reduced_from = f"the whole graph ({len(order):,} nodes)"
    else:
        tried = list(range(hops, -1, -1))
        reduced_from = f"context {hops}"
    for k in tried:
        selection = _around(graph, order, marked, k)
        if selection.drawn <= max_nodes:
            break
    if k != hops:
        note = f"{reduced_from} reduced to context {k} to draw at most {max_nodes:,} nodes"
        selection = _with_note(selection, note, first=True)
    return selection


def _requested_hops(context: int | str | None, nodes: int) -> int | None:
    """Hops to keep, None for the whole graph."""
    if context is None:
        return None if nodes <= WHOLE_GRAPH_NODES else DEFAULT_CONTEXT
    if context == "all":
        return None
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ConfigError(f"context must be a whole number >= 0 or 'all', got {context!r}")
    return context


def _around(graph: nx.DiGraph, order: Sequence[str], marked: Collection[str], k: int) -> Selection:
    kept = _within_hops(graph, marked, k)
    selection = _collapse(graph, order, kept, context=k)
    if selection.groups:
        collapsed = sum(len(group) for group in selection.groups)
        note = (
            f"context {k}: {collapsed:,} of {len(order):,} nodes collapsed into "
            f"{_plural(len(selection.groups), 'group')}"
        )
        selection = _with_note(selection, note)
    return selection


def _first_nodes(graph: nx.DiGraph, order: Sequence[str]) -> Selection:
    selection = _collapse(graph, order, set(order[:WHOLE_GRAPH_NODES]), context=None)
    note = (
        f"nothing highlighted: the first {WHOLE_GRAPH_NODES:,} of {len(order):,} nodes in "
        "topological order; the rest collapsed"
    )
    return _with_note(selection, note)


def _within_hops(graph: nx.DiGraph, sources: Collection[str], hops: int) -> set[str]:
    """The nodes at most `hops` edges away from a source, ignoring edge direction."""
    reached = set(sources)
    frontier = list(sources)
    for _ in range(hops):
        next_frontier = []
        for node in frontier:
            for neighbour in chain(graph.pred[node], graph.succ[node]):
                if neighbour not in reached:
                    reached.add(neighbour)
                    next_frontier.append(neighbour)
        frontier = next_frontier
    return reached


def _collapse(
    graph: nx.DiGraph, order: Sequence[str], kept: set[str], *, context: int | None
) -> Selection:
    """Keep `kept` (in topological order) and group the other nodes by connected component."""
    group_of: dict[str, int] = {}
    groups: list[tuple[str, ...]] = []
    for start in order:
        if start in kept or start in group_of:
            continue
        group_of[start] = len(groups)
        members, queue = [start], [start]
        while queue:
            node = queue.pop()
            for neighbour in chain(graph.pred[node], graph.succ[node]):
                if neighbour not in kept and neighbour not in group_of:
                    group_of[neighbour] = len(groups)
                    members.append(neighbour)
                    queue.append(neighbour)
        groups.append(tuple(members))
    return Selection(
        kept=tuple(node for node in order if node in kept),
        groups=tuple(groups),
        context=context,
        group_of=group_of,
    )


def _with_note(selection: Selection, note: str, *, first: bool = False) -> Selection:
    notes = (note, *selection.notes) if first else (*selection.notes, note)
    return dataclasses.replace(selection, notes=notes)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _topological_order(graph: nx.DiGraph) -> tuple[str, ...]:
    # build_opgraph caches the order; graphs built by hand compute it.
    order = graph.graph.get("topological_order")
    if order is not None and len(order) == graph.number_of_nodes():
        return tuple(order)
    return tuple(nx.topological_sort(graph))
