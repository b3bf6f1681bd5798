"""Where an n-gram occurs in a model: the node paths that realise it, without enumerating paths.

A model may realise one n-gram along astronomically many node paths (the count is what
`opseq.ngrams.mine_ngrams` reports), so the search is bounded twice. First, one backward pass per
n-gram position marks the nodes from which the rest of the n-gram can still be completed (a node
with the label at position i and a successor marked at position i + 1); it costs O(nodes + edges)
times the n-gram's length per graph. Then a depth-first walk from the marked first nodes follows
marked successors only, so every step leads to a complete occurrence, and it stops at the limit.
Paths stay inside one graph (main graph or an If/Loop/Scan body), exactly as `mine_ngrams` counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import networkx as nx

from opseq.errors import ConfigError
from opseq.graph import iter_graphs
from opseq.ngrams import Ngram

__all__ = ["ngram_occurrences", "node_names"]

NodePath = tuple[str, ...]


def ngram_occurrences(
    graph: nx.DiGraph, ngrams: Iterable[Ngram], *, limit: int = 64
) -> dict[Ngram, tuple[NodePath, ...]]:
    """Find the node paths that realise each wanted n-gram, at most `limit` per n-gram.

    The main graph is searched first, then every subgraph depth first (`opseq.graph.iter_graphs`);
    within a graph, occurrences come in node order of their first node, then in successor order.

    Args:
        graph: An OpGraph (`opseq.graph.build_opgraph`).
        ngrams: The wanted n-grams, tuples of labels of any length >= 1 (repeats are ignored).
        limit: The most occurrences returned per n-gram.

    Returns:
        Every wanted n-gram, in the order given, mapped to its occurrences (empty when the model
        does not contain it).

    Raises:
        ConfigError: If `limit` is negative or an n-gram is empty.

    Examples:
        >>> g = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
        >>> nx.set_node_attributes(g, {"a": "Conv", "b": "Relu", "c": "Add"}, "label")
        >>> found = ngram_occurrences(g, [("Conv", "Add"), ("Relu", "Add"), ("Add", "Conv")])
        >>> found[("Conv", "Add")], found[("Relu", "Add")], found[("Add", "Conv")]
        ((('a', 'c'),), (('b', 'c'),), ())
    """
    if limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    wanted = tuple(dict.fromkeys(tuple(ngram) for ngram in ngrams))
    if any(not ngram for ngram in wanted):
        raise ConfigError("an n-gram needs at least one label")
    found: dict[Ngram, list[NodePath]] = {ngram: [] for ngram in wanted}
    for each in iter_graphs(graph):
        by_label = _nodes_by_label(each)
        for ngram, paths in found.items():
            if len(paths) < limit:
                paths.extend(_occurrences_in(each, by_label, ngram, limit - len(paths)))
    return {ngram: tuple(paths) for ngram, paths in found.items()}


def node_names(graph: nx.DiGraph, node_ids: Iterable[str]) -> tuple[str, ...]:
    """Return the ONNX node name of each id (the id itself when the name is empty).

    Ids of nodes inside If/Loop/Scan bodies are looked up in their subgraph.

    Args:
        graph: The OpGraph the ids come from.
        node_ids: Node ids of `graph` or of any of its subgraphs.

    Returns:
        One name per id, in order.

    Raises:
        KeyError: If an id is in no graph of `graph`.

    Examples:
        >>> g = nx.DiGraph()
        >>> g.add_nodes_from([("main/0", {"name": "relu_1"}), ("main/1", {"name": ""})])
        >>> node_names(g, ["main/1", "main/0"])
        ('main/1', 'relu_1')
    """
    owners: dict[str, nx.DiGraph] | None = None
    names = []
    for node in node_ids:
        if node in graph:
            attributes = graph.nodes[node]
        else:
            owners = _owners(graph) if owners is None else owners
            attributes = owners[node].nodes[node]
        names.append(attributes.get("name") or node)
    return tuple(names)


def _owners(graph: nx.DiGraph) -> dict[str, nx.DiGraph]:
    """Map every node id of every subgraph to the graph that holds it."""
    return {node: each for each in iter_graphs(graph) for node in each}


def _nodes_by_label(graph: nx.DiGraph) -> dict[str, list[str]]:
    by_label: dict[str, list[str]] = {}
    for node, label in graph.nodes(data="label"):
        by_label.setdefault(label, []).append(node)
    return by_label


def _occurrences_in(
    graph: nx.DiGraph, by_label: dict[str, list[str]], ngram: Ngram, limit: int
) -> Iterator[NodePath]:
    """Yield at most `limit` node paths of `graph` that realise `ngram`."""
    viable = _viable_nodes(graph, by_label, ngram)
    if not viable[0] or limit == 0:
        return
    yielded = 0
    for start in by_label[ngram[0]]:
        if start not in viable[0]:
            continue
        for path in _walk(graph, start, viable):
            yield path
            yielded += 1
            if yielded == limit:
                return


def _viable_nodes(
    graph: nx.DiGraph, by_label: dict[str, list[str]], ngram: Ngram
) -> list[set[str]]:
    """Per position i, the nodes labelled ``ngram[i]`` from which ``ngram[i:]`` can be completed.

    Built backwards: a node is viable at i when one of its successors is viable at i + 1. Each
    position scans only the nodes of its label and their successors.
    """
    viable: list[set[str]] = [set() for _ in ngram]
    viable[-1] = set(by_label.get(ngram[-1], ()))
    successors = graph.succ
    for i in range(len(ngram) - 2, -1, -1):
        after = viable[i + 1]
        if not after:
            break
        viable[i] = {
            node
            for node in by_label.get(ngram[i], ())
            if any(successor in after for successor in successors[node])
        }
    return viable


def _walk(graph: nx.DiGraph, start: str, viable: list[set[str]]) -> Iterator[NodePath]:
    """Yield every node path from `start` through viable nodes, depth first (explicit stack)."""
    last = len(viable) - 1
    if last == 0:
        yield (start,)
        return
    successors = graph.succ
    path = [start]
    stack = [iter(successors[start])]
    while stack:
        successor = next(stack[-1], None)
        if successor is None:
            stack.pop()
            path.pop()
        elif successor in viable[len(path)]:
            if len(path) == last:
                yield (*path, successor)
            else:
                path.append(successor)
                stack.append(iter(successors[successor]))
