"""Delta debugging of synthetic graphs: the smallest graph that keeps an inconsistency.

The search only edits a `SyntheticGraph`; whether a candidate still shows the inconsistency is a
predicate it is given (the reducer's: materialise, convert, judge with `run_difftest` under the
row's oracle). Edits, each keeping every remaining op's input types, so every remaining op's
attributes stay valid:

1. **cone**: keep only the ancestors of one output (`cone`), trying the outputs in the order
   given (the semantic ones first);
2. **removal** (`remove_nodes`), ddmin-style over the remaining nodes (Zeller's delta
   debugging: try removing halves, then quarters, ... down to single nodes; after a success the
   granularity drops by one). A removed node is *bypassed* when one of its inputs has its output's
   shape and dtype (its consumers read that input instead); otherwise it is *cut* (its output
   becomes a new graph input of the same type, so everything only it needed upstream goes); a
   removed node that only feeds a graph output is *truncated* (the output moves to its first
   input). A last pass tries cutting the nodes that were bypassable, one at a time.

Shapes are not shrunk: every op's attributes were drawn for its input shapes (``Reshape``,
``Linear``, ``Slice`` ...), and shrinking them needs each op's own rule.

Every candidate judged counts as one test; the search stops at the budget's test count or
deadline and returns the smallest graph found so far. Identical candidates are judged once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opseq.reduce.recipe import graph_to_dict
from opseq.sources.synthetic.builder import SyntheticGraph, SyntheticNode
from opseq.sources.synthetic.ops import TensorType

__all__ = ["Budget", "ShrinkResult", "cone", "remove_nodes", "shrink_graph"]

FIXPOINT, MAX_TESTS, DEADLINE = "fixpoint", "max-tests", "deadline"


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """How much a reduction may cost: candidate tests and wall-clock seconds."""

    max_tests: int = 200
    deadline_s: float = 600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ShrinkResult:
    """The smallest graph found, and what finding it cost.

    Attributes:
        graph: The graph.
        tests: Candidates judged.
        seconds: Wall time of the search.
        stopped: ``fixpoint`` (no edit keeps the inconsistency), ``max-tests`` or ``deadline``.
        steps: The accepted edits, in order, in words.
    """

    graph: SyntheticGraph
    tests: int
    seconds: float
    stopped: str
    steps: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (without the graph)."""
        return {
            "tests": self.tests,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "steps": list(self.steps),
        }


def _same_type(a: TensorType, b: TensorType) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype


def _prune(
    nodes: Sequence[SyntheticNode],
    inputs: Sequence[tuple[str, TensorType]],
    outputs: Sequence[str],
    like: SyntheticGraph,
) -> SyntheticGraph | None:
    """Keep the nodes `outputs` need and the inputs they read; None if nothing computes."""
    input_names = {name for name, _ in inputs}
    outputs = tuple(dict.fromkeys(o for o in outputs if o not in input_names))
    needed = set(outputs)
    kept = []
    for node in reversed(nodes):
        if node.name in needed:
            kept.append(node)
            needed.update(node.inputs)
    if not kept or not outputs:
        return None
    return SyntheticGraph(
        framework=like.framework,
        seed=like.seed,
        inputs=tuple((name, t) for name, t in inputs if name in needed),
        nodes=tuple(reversed(kept)),
        outputs=outputs,
    )


def cone(graph: SyntheticGraph, output: str) -> SyntheticGraph | None:
    """The ancestors of `output` only, with `output` the one graph output.

    Examples:
        >>> from opseq.reduce.recipe import graph_from_dict
        >>> t = {"shape": [2], "dtype": "float32", "nonneg": False}
        >>> g = graph_from_dict({"framework": "torch", "seed": 0,
        ...     "inputs": [{"name": "x0", "type": t}],
        ...     "nodes": [{"name": "n0", "op": "Abs", "inputs": ["x0"], "attrs": {}, "output": t},
        ...               {"name": "n1", "op": "Neg", "inputs": ["x0"], "attrs": {}, "output": t}],
        ...     "outputs": ["n0", "n1"]})
        >>> cone(g, "n1").ops
        ('Neg',)
    """
    return _prune(graph.nodes, graph.inputs, (output,), graph)


def remove_nodes(
    graph: SyntheticGraph, names: frozenset[str], *, cut: frozenset[str] = frozenset()
) -> SyntheticGraph | None:
    """Remove the nodes `names` (bypass, cut or truncate each: module docstring).

    Args:
        graph: The graph.
        names: Nodes to remove.
        cut: Nodes among `names` to cut even when they could be bypassed.

    Returns:
        The smaller graph, or None when nothing would be left to compute.
    """
    types = graph.types()
    alias: dict[str, str] = {}
    moved_up: dict[str, str] = {}
    new_inputs: list[tuple[str, TensorType]] = []
    kept: list[SyntheticNode] = []
    for node in graph.nodes:
        inputs = tuple(alias.get(ref, ref) for ref in node.inputs)
        if node.name not in names:
            kept.append(replace(node, inputs=inputs))
            continue
        same = [ref for ref in inputs if _same_type(types[ref], node.output)]
        if same and node.name not in cut:
            alias[node.name] = same[0]
        else:
            new_inputs.append((node.name, node.output))
            moved_up[node.name] = inputs[0]
    read = {ref for node in kept for ref in node.inputs}
    outputs = []
    for output in graph.outputs:
        output = alias.get(output, output)
        while output in moved_up and output not in read:  # truncate: nothing else reads it
            output = moved_up[output]
        outputs.append(output)
    return _prune(kept, (*graph.inputs, *new_inputs), outputs, graph)


def _key(graph: SyntheticGraph) -> str:
    """The cache key: the graph with its inputs renamed by position.

    A cut that only renames an input (its producer read graph inputs alone) then has the key of
    the graph a bypass gave, and is judged once.
    """
    names = {name: f"input{i}" for i, (name, _) in enumerate(graph.inputs)}
    data = graph_to_dict(graph)
    for entry in data["inputs"]:
        entry["name"] = names[entry["name"]]
    for node in data["nodes"]:
        node["inputs"] = [names.get(ref, ref) for ref in node["inputs"]]
    return json.dumps(data, sort_keys=True)


class _Search:
    """The predicate behind a budget and a cache; counts what it judges."""

    def __init__(self, predicate: Callable[[SyntheticGraph], bool], budget: Budget) -> None:
        self.predicate, self.budget = predicate, budget
        self.start = time.monotonic()
        self.tests = 0
        self.cache: dict[str, bool] = {}
        self.stopped = FIXPOINT

    def holds(self, candidate: SyntheticGraph) -> bool | None:
        """Whether the inconsistency persists in `candidate`; None once the budget is spent."""
        key = _key(candidate)
        if key in self.cache:
            return self.cache[key]
        if self.tests >= self.budget.max_tests:
            self.stopped = MAX_TESTS
            return None
        if time.monotonic() - self.start >= self.budget.deadline_s:
            self.stopped = DEADLINE
            return None
        self.tests += 1
        self.cache[key] = bool(self.predicate(candidate))
        return self.cache[key]


def shrink_graph(
    graph: SyntheticGraph,
    predicate: Callable[[SyntheticGraph], bool],
    *,
    output_order: Sequence[str] = (),
    budget: Budget = Budget(),
) -> ShrinkResult:
    """Shrink `graph` while `predicate` holds (module docstring).

    Args:
        graph: A graph on which `predicate` holds.
        predicate: Whether a candidate still shows the inconsistency; it must not raise.
        output_order: Outputs whose cones to try, in order; all outputs in graph order when
            empty.
        budget: Test count and deadline.

    Returns:
        The smallest graph found and the cost.
    """
    search = _Search(predicate, budget)
    steps: list[str] = []
    current = _try_cones(graph, search, output_order or graph.outputs, steps)
    if search.stopped == FIXPOINT:
        current = _ddmin(current, search, steps)
    if search.stopped == FIXPOINT:
        current = _cut_pass(current, search, steps)
    return ShrinkResult(
        graph=current,
        tests=search.tests,
        seconds=time.monotonic() - search.start,
        stopped=search.stopped,
        steps=tuple(steps),
    )


def _try_cones(graph, search: _Search, outputs: Sequence[str], steps: list[str]):
    if len(graph.outputs) < 2:
        return graph
    for output in outputs:
        candidate = cone(graph, output)
        if candidate is None:
            continue
        holds = search.holds(candidate)
        if holds is None:
            break
        if holds:
            steps.append(f"cone of {output}: {len(graph.nodes)} -> {len(candidate.nodes)} nodes")
            return candidate
    return graph


def _ddmin(graph: SyntheticGraph, search: _Search, steps: list[str]) -> SyntheticGraph:
    granularity = 2
    while len(graph.nodes) > 1:
        names = [node.name for node in graph.nodes]
        granularity = min(granularity, len(names))
        for chunk in _chunks(names, granularity):
            candidate = remove_nodes(graph, frozenset(chunk))
            if candidate is None:
                continue
            holds = search.holds(candidate)
            if holds is None:
                return graph
            if holds:
                steps.append(
                    f"removed {', '.join(chunk)}: {len(graph.nodes)} -> "
                    f"{len(candidate.nodes)} nodes"
                )
                graph, granularity = candidate, max(granularity - 1, 2)
                break
        else:
            if granularity >= len(names):
                return graph
            granularity = min(2 * granularity, len(names))
    return graph


def _cut_pass(graph: SyntheticGraph, search: _Search, steps: list[str]) -> SyntheticGraph:
    changed = True
    while changed and len(graph.nodes) > 1:
        changed = False
        for node in graph.nodes:
            candidate = remove_nodes(graph, frozenset({node.name}), cut=frozenset({node.name}))
            if candidate is None:
                continue
            holds = search.holds(candidate)
            if holds is None:
                return graph
            if holds:
                steps.append(f"cut {node.name}: {len(graph.nodes)} -> {len(candidate.nodes)} nodes")
                graph, changed = candidate, True
                break
    return graph


def _chunks(names: Sequence[str], count: int) -> list[list[str]]:
    """Split `names` into `count` contiguous chunks of nearly equal size.

    Examples:
        >>> _chunks(["a", "b", "c", "d", "e"], 2)
        [['a', 'b', 'c'], ['d', 'e']]
    """
    size, extra = divmod(len(names), count)
    chunks, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        chunks.append(list(names[start:end]))
        start = end
    return [c for c in chunks if c]
