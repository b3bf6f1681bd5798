"""Operator n-grams and dataflow path counts of an OpGraph, by dynamic programming over the DAG.

An n-gram is the tuple of labels along a directed path of n operator nodes. Its count in a graph is
the number of distinct node paths that realise it. A dataflow path runs from a graph input through
operator nodes to a graph output; their number is astronomically large on real models, so it is
counted, never enumerated. Everything here is O((nodes + edges) * n) or better, except
`iter_paths`, which stops after an explicit limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import networkx as nx

from opseq._gc import collector_paused
from opseq.errors import ConfigError
from opseq.graph import iter_graphs
from opseq.limits import DEFAULT_LIMITS, Limits, limit_error

__all__ = [
    "SCHEMA_VERSION",
    "DataflowPath",
    "Ngram",
    "NgramCounts",
    "count_paths",
    "iter_paths",
    "longest_path",
    "mine_ngrams",
    "parse_ngram_range",
    "to_decimal",
]

SCHEMA_VERSION = 1

Ngram = tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NgramCounts:
    """n-grams of lengths ``n_min..n_max`` with the number of node paths realising each.

    ``counts`` must be treated as read-only. A model *contains* an n-gram when its count is > 0;
    every key has a positive count.
    """

    n_min: int
    n_max: int
    counts: Mapping[Ngram, int]

    @property
    def present(self) -> frozenset[Ngram]:
        """The n-grams the graph contains."""
        return frozenset(self.counts)

    def of_length(self, n: int) -> dict[Ngram, int]:
        """Return the counts of the n-grams of length `n`."""
        return {ngram: count for ngram, count in self.counts.items() if len(ngram) == n}

    def most_common(self, n: int, k: int | None = None) -> list[tuple[Ngram, int]]:
        """Return the `k` most frequent n-grams of length `n` (all if `k` is None), ties by name."""
        ranked = sorted(self.of_length(n).items(), key=lambda item: (-item[1], item[0]))
        return ranked if k is None else ranked[:k]

    def to_dict(self) -> dict:
        """Return a JSON-safe dict (n-grams as label lists, most frequent first)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "n_min": self.n_min,
            "n_max": self.n_max,
            "ngrams": [
                {"ngram": list(ngram), "count": count}
                for n in range(self.n_min, self.n_max + 1)
                for ngram, count in self.most_common(n)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> NgramCounts:
        """Rebuild counts written by `to_dict`."""
        counts = {tuple(item["ngram"]): int(item["count"]) for item in data["ngrams"]}
        return cls(n_min=int(data["n_min"]), n_max=int(data["n_max"]), counts=counts)


@dataclass(frozen=True, slots=True, kw_only=True)
class DataflowPath:
    """One graph-input -> graph-output path: the input read, the node ids, the output written."""

    source: str
    nodes: tuple[str, ...]
    sink: str


def parse_ngram_range(text: str) -> tuple[int, int]:
    """Parse ``"3"`` or ``"2..4"`` into an inclusive (n_min, n_max) range.

    Raises:
        ConfigError: If the text is not a range of positive integers with n_min <= n_max.

    Examples:
        >>> parse_ngram_range("2..4")
        (2, 4)
        >>> parse_ngram_range("3")
        (3, 3)
    """
    low, sep, high = text.partition("..")
    try:
        n_min, n_max = int(low), int(high if sep else low)
    except ValueError as e:
        raise ConfigError(f"n-gram range must look like 3 or 2..4, got {text!r}") from e
    return _check_range(n_min, n_max)


def _check_range(n_min: int, n_max: int) -> tuple[int, int]:
    if not 1 <= n_min <= n_max:
        raise ConfigError(f"n-gram range needs 1 <= n_min <= n_max, got {n_min}..{n_max}")
    return n_min, n_max


def mine_ngrams(
    graph: nx.DiGraph,
    *,
    n: int | tuple[int, int] = (1, 4),
    include_subgraphs: bool = True,
    limits: Limits = DEFAULT_LIMITS,
) -> NgramCounts:
    """Count the n-grams along every directed path of the OpGraph.

    For each node v in topological order, the n-grams ending at v are the (n-1)-grams ending at
    each predecessor extended by v's label; their counts add up. Only windows of length <= n are
    kept, so the cost is O(edges * distinct windows), never the number of paths.

    Args:
        graph: An OpGraph from `opseq.graph.build_opgraph`.
        n: One length, or an inclusive (n_min, n_max) range.
        include_subgraphs: Add the n-grams of If/Loop/Scan bodies (paths stay inside one graph).
        limits: ``max_ngram_windows`` bounds the windows built, all graphs and lengths together.

    Returns:
        The counts.

    Raises:
        ConfigError: If the range is invalid.
        LimitExceededError: If the count would build more windows than the limit allows.

    Examples:
        >>> g = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
        >>> nx.set_node_attributes(g, {"a": "Conv", "b": "Relu", "c": "Add"}, "label")
        >>> counts = mine_ngrams(g, n=2).counts
        >>> counts[("Conv", "Relu")], counts[("Conv", "Add")], counts[("Relu", "Add")]
        (1, 1, 1)
    """
    n_min, n_max = _check_range(*((n, n) if isinstance(n, int) else n))
    totals: dict[Ngram, int] = {}
    graphs = iter_graphs(graph) if include_subgraphs else (graph,)
    budget = limits.max_ngram_windows
    with collector_paused():
        for each in graphs:
            budget = _add_ngrams(each, n_min, n_max, totals, budget)
            if budget < 0:
                raise limit_error(
                    "max_ngram_windows",
                    f"counting its {n_min}..{n_max}-grams needs more than "
                    f"{limits.max_ngram_windows:,} n-gram windows",
                    limits.max_ngram_windows,
                )
    return NgramCounts(n_min=n_min, n_max=n_max, counts=totals)


def _add_ngrams(
    graph: nx.DiGraph, n_min: int, n_max: int, totals: dict[Ngram, int], budget: int
) -> int:
    """Add the n-grams of `graph` to `totals`; return the window budget left (< 0: exhausted)."""
    labels = dict(graph.nodes(data="label"))
    predecessors = graph.pred
    # Windows ending at a node are dropped once its last successor has used them.
    unused_successors = dict(graph.out_degree())
    windows: dict[object, list[dict[Ngram, int]]] = {}
    for node in _topological_order(graph):
        label = labels[node]
        upstream = [windows[p] for p in predecessors[node]]
        ending_here = [{(label,): 1}]
        for length in range(2, n_max + 1):
            extended = _extend(upstream, length - 2, label)
            if not extended:
                break
            ending_here.append(extended)
            # A new table is at most the sum of the predecessors' tables, which the budget has
            # counted already: checking per table keeps memory within twice the budget.
            budget -= len(extended)
            if budget < 0:
                return budget
        budget -= 1
        for table in ending_here[n_min - 1 :]:
            for ngram, count in table.items():
                totals[ngram] = totals.get(ngram, 0) + count
        if unused_successors[node]:
            windows[node] = ending_here[: n_max - 1]
        for predecessor in predecessors[node]:
            unused_successors[predecessor] -= 1
            if not unused_successors[predecessor]:
                del windows[predecessor]
    return budget


def _extend(upstream: list[list[dict[Ngram, int]]], index: int, label: str) -> dict[Ngram, int]:
    """Extend the windows of length ``index + 1`` ending at each predecessor by `label`."""
    tables = [windows[index] for windows in upstream if len(windows) > index]
    if len(tables) == 1:  # the common case: a comprehension beats the merge loop below
        return {(*ngram, label): count for ngram, count in tables[0].items()}
    extended: dict[Ngram, int] = {}
    for table in tables:
        for ngram, count in table.items():
            key = (*ngram, label)
            extended[key] = extended.get(key, 0) + count
    return extended


def count_paths(graph: nx.DiGraph) -> int:
    """Count the dataflow paths from a graph input to a graph output, exactly.

    A path is (graph input, nodes v1..vk, graph output) with v1 reading the input, an edge between
    consecutive nodes, and vk producing the output. Paths inside subgraphs are not included.

    Args:
        graph: An OpGraph.

    Returns:
        The number of paths (a Python int: it exceeds 2**64 on real models).

    Examples:
        >>> g = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
        >>> g.graph.update(input_consumers={"x": ("a",)}, output_producers={"y": ("c",)})
        >>> count_paths(g)
        2
    """
    paths_to = _paths_from_inputs(graph)
    return sum(
        paths_to[producer]
        for producers in graph.graph["output_producers"].values()
        for producer in producers
    )


def to_decimal(count: int) -> str:
    """Write a non-negative int of any size in decimal, exactly.

    Python refuses ``str()`` of ints beyond 4,300 digits (a guard against its quadratic
    conversion); path counts of crafted models go beyond that, and their size is bounded by the
    node limit instead. Halving by powers of ten keeps every ``str()`` call under the guard.

    Examples:
        >>> to_decimal(4**7200)[:6], len(to_decimal(4**7200))
        ('679105', 4335)
        >>> to_decimal(0)
        '0'
    """
    if count < _DECIMAL_CHUNK:
        return str(count)
    digits = _decimal_digits_bound(count)
    half = digits // 2
    high, low = divmod(count, 10**half)
    return to_decimal(high) + to_decimal(low).zfill(half)


_DECIMAL_CHUNK = 10**4000


def _decimal_digits_bound(count: int) -> int:
    # bit_length * log10(2), rounded up: at most one digit too many.
    return count.bit_length() * 30103 // 100000 + 1


def _paths_from_inputs(graph: nx.DiGraph) -> dict[object, int]:
    """Number of paths from any graph input to each node (ending at that node)."""
    paths_to = dict.fromkeys(graph.nodes, 0)
    for consumers in graph.graph["input_consumers"].values():
        for consumer in consumers:
            paths_to[consumer] += 1
    predecessors = graph.pred
    for node in _topological_order(graph):
        paths_to[node] += sum(paths_to[p] for p in predecessors[node])
    return paths_to


def _paths_to_outputs(graph: nx.DiGraph) -> dict[object, int]:
    """Number of paths from each node to any graph output (starting at that node)."""
    paths_from = dict.fromkeys(graph.nodes, 0)
    for producers in graph.graph["output_producers"].values():
        for producer in producers:
            paths_from[producer] += 1
    successors = graph.succ
    for node in reversed(_topological_order(graph)):
        paths_from[node] += sum(paths_from[s] for s in successors[node])
    return paths_from


def longest_path(graph: nx.DiGraph) -> tuple[object, ...]:
    """Return the node ids of a longest directed path (the first found on ties).

    Examples:
        >>> longest_path(nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")]))
        ('a', 'b', 'c')
    """
    length: dict[object, int] = {}
    best_predecessor: dict[object, object] = {}
    predecessors = graph.pred
    for node in _topological_order(graph):
        length[node] = 1
        for predecessor in predecessors[node]:
            if length[predecessor] + 1 > length[node]:
                length[node] = length[predecessor] + 1
                best_predecessor[node] = predecessor
    if not length:
        return ()
    node = max(length, key=length.__getitem__)
    path = [node]
    while node in best_predecessor:
        node = best_predecessor[node]
        path.append(node)
    return tuple(reversed(path))


def iter_paths(graph: nx.DiGraph, *, limit: int) -> Iterator[DataflowPath]:
    """Yield at most `limit` input -> output dataflow paths, depth first.

    Nodes that reach no graph output are never visited, so each path costs O(its length).

    Args:
        graph: An OpGraph.
        limit: The maximum number of paths to yield; required because there may be 2**58 of them.

    Yields:
        The paths, in input order, then depth first.

    Raises:
        ConfigError: If `limit` is negative.
    """
    if limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    if limit == 0:
        return
    sinks: dict[object, list[str]] = {}
    for output, producers in graph.graph["output_producers"].items():
        for producer in producers:
            sinks.setdefault(producer, []).append(output)
    reaches_output = {node for node, count in _paths_to_outputs(graph).items() if count}
    yielded = 0
    for source, consumers in graph.graph["input_consumers"].items():
        for start in consumers:
            if start not in reaches_output:
                continue
            for nodes in _iter_node_paths(graph, start, reaches_output):
                for sink in sinks.get(nodes[-1], ()):
                    yield DataflowPath(source=source, nodes=nodes, sink=sink)
                    yielded += 1
                    if yielded == limit:
                        return


def _iter_node_paths(
    graph: nx.DiGraph, start: object, reaches_output: set[object]
) -> Iterator[tuple[object, ...]]:
    """Yield every node path from `start` (each prefix too), with an explicit stack."""
    path = [start]
    stack = [iter(graph.succ[start])]
    yield tuple(path)
    while stack:
        successor = next(stack[-1], None)
        if successor is None:
            stack.pop()
            path.pop()
        elif successor in reaches_output:
            path.append(successor)
            stack.append(iter(graph.succ[successor]))
            yield tuple(path)


def _topological_order(graph: nx.DiGraph) -> tuple[object, ...]:
    # build_opgraph caches the order; graphs built by hand (doctests, tests) compute it.
    order = graph.graph.get("topological_order")
    if order is not None and len(order) == graph.number_of_nodes():
        return order
    return tuple(nx.topological_sort(graph))
