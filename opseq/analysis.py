"""Structural analysis of ONNX models: what `opseq analyze` reports.

`analyze_model` runs the pipeline load -> OpGraph -> n-grams and path counts for one model and
returns a `ModelAnalysis`; `summarize_corpus` aggregates several.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import onnx

from opseq.errors import OpseqError
from opseq.graph import DEFAULT_IGNORED_OPS, build_opgraph, iter_graphs
from opseq.limits import DEFAULT_LIMITS, Limits, memory_cap
from opseq.loader import load_model
from opseq.model_notes import model_notes
from opseq.ngrams import Ngram, NgramCounts, count_paths, longest_path, mine_ngrams, to_decimal
from opseq.strip import is_structure_only
from opseq.untrusted import decode_text

__all__ = [
    "SCHEMA_VERSION",
    "CorpusSummary",
    "ModelAnalysis",
    "ModelInfo",
    "SubgraphInfo",
    "analyze_model",
    "summarize_corpus",
    "summarize_graph",
]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What the model file says about itself."""

    path: str
    file_size: int | None
    producer_name: str
    producer_version: str
    ir_version: int
    opset_imports: Mapping[str, int]
    graph_name: str
    structure_only: bool

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "path": self.path,
            "file_size": self.file_size,
            "producer_name": self.producer_name,
            "producer_version": self.producer_version,
            "ir_version": self.ir_version,
            "opset_imports": dict(self.opset_imports),
            "graph_name": self.graph_name,
            "structure_only": self.structure_only,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SubgraphInfo:
    """An If/Loop/Scan body: where it hangs and how big it is."""

    path: str
    parent_op: str
    nodes: int
    edges: int
    path_count: int

    def to_dict(self) -> dict:
        """Return a JSON-safe dict (the path count as a decimal string)."""
        return {
            "path": self.path,
            "parent_op": self.parent_op,
            "nodes": self.nodes,
            "edges": self.edges,
            "path_count": to_decimal(self.path_count),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelAnalysis:
    """Structure of one model: sizes, op histogram, n-grams, path count, longest path.

    Counts (nodes, edges, op histogram, n-grams) include subgraphs; ``path_count`` and
    ``longest_path`` are those of the main graph.
    """

    info: ModelInfo
    nodes: int
    edges: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    op_histogram: Mapping[str, int]
    ngrams: NgramCounts
    path_count: int
    longest_path: tuple[str, ...]
    subgraphs: tuple[SubgraphInfo, ...]
    ignored: Mapping[str, int]
    notes: tuple[str, ...]

    def to_dict(self, *, top: int | None = None) -> dict:
        """Return a JSON-safe dict; `top` keeps the most frequent n-grams per length.

        ``path_count`` is a decimal string because it exceeds what JSON readers hold exactly.
        """
        return {
            "schema_version": SCHEMA_VERSION,
            **self.info.to_dict(),
            "nodes": self.nodes,
            "edges": self.edges,
            "distinct_ops": len(self.op_histogram),
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "path_count": to_decimal(self.path_count),
            "longest_path": {"length": len(self.longest_path), "ops": list(self.longest_path)},
            "subgraphs": [s.to_dict() for s in self.subgraphs],
            "ignored": dict(self.ignored),
            "op_histogram": dict(_most_common(self.op_histogram)),
            "ngrams": {
                str(n): [
                    {"ngram": list(ngram), "count": count}
                    for ngram, count in self.ngrams.most_common(n, top)
                ]
                for n in range(self.ngrams.n_min, self.ngrams.n_max + 1)
            },
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusSummary:
    """Aggregate structure of several models: distinct ops and n-grams, the most shared ones."""

    models: int
    distinct_ops: tuple[str, ...]
    ops_in_every_model: tuple[str, ...]
    distinct_ngrams: Mapping[int, int]
    shared_ngrams: Mapping[int, tuple[tuple[Ngram, int], ...]]

    def to_dict(self) -> dict:
        """Return a JSON-safe dict; shared n-grams carry the number of models containing them."""
        return {
            "schema_version": SCHEMA_VERSION,
            "models": self.models,
            "distinct_ops": list(self.distinct_ops),
            "ops_in_every_model": list(self.ops_in_every_model),
            "distinct_ngrams": {str(n): count for n, count in self.distinct_ngrams.items()},
            "shared_ngrams": {
                str(n): [{"ngram": list(ngram), "models": count} for ngram, count in shared]
                for n, shared in self.shared_ngrams.items()
            },
        }


def analyze_model(
    source: str | os.PathLike[str] | bytes,
    *,
    n: tuple[int, int] = (1, 4),
    ignore_ops: Iterable[str] = DEFAULT_IGNORED_OPS,
    infer_shapes: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> ModelAnalysis:
    """Load one model and analyse its structure.

    Args:
        source: Path of an ``.onnx`` file, or its bytes. External data is never read.
        n: Inclusive range of n-gram lengths.
        ignore_ops: Labels of ops spliced out of the OpGraph.
        infer_shapes: Run ONNX shape inference for node output types. Off by default: nothing
            in a `ModelAnalysis` depends on types, and inference costs as much as the rest.
        limits: Resource limits (file size, nodes, n-gram windows, nesting, memory).

    Returns:
        The analysis.

    Raises:
        ModelLoadError: If the input is not a readable ONNX model.
        InvalidModelError: If its dataflow is invalid (undefined tensor, cycle, empty graph).
        LimitExceededError: If the model exceeds one of `limits`.
    """
    model = load_model(source, limits=limits)
    try:
        with memory_cap(limits.memory_budget(_source_size(source)), what="analysis"):
            graph = build_opgraph(
                model, ignore_ops=ignore_ops, infer_shapes=infer_shapes, limits=limits
            )
            return summarize_graph(graph, model, source=source, n=n, limits=limits)
    except OpseqError as e:
        raise type(e)(f"{_describe_source(source)}: {e}") from e


def _source_size(source: str | os.PathLike[str] | bytes) -> int:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    return Path(source).stat().st_size


def _describe_source(source: str | os.PathLike[str] | bytes) -> str:
    return "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)


def summarize_graph(
    graph: nx.DiGraph,
    model: onnx.ModelProto,
    *,
    source: str | os.PathLike[str] | bytes,
    n: tuple[int, int] = (1, 4),
    limits: Limits = DEFAULT_LIMITS,
) -> ModelAnalysis:
    """Compute the `ModelAnalysis` of an already built OpGraph of `model`."""
    graphs = list(iter_graphs(graph))
    ignored: Counter[str] = Counter()
    for each in graphs:
        ignored.update(each.graph["ignored"])
    labels = dict(graph.nodes(data="label"))
    return ModelAnalysis(
        info=_model_info(model, source),
        nodes=sum(g.number_of_nodes() for g in graphs),
        edges=sum(g.number_of_edges() for g in graphs),
        inputs=graph.graph["inputs"],
        outputs=graph.graph["outputs"],
        op_histogram=dict(Counter(label for g in graphs for _, label in g.nodes(data="label"))),
        ngrams=mine_ngrams(graph, n=n, limits=limits),
        path_count=count_paths(graph),
        longest_path=tuple(labels[node] for node in longest_path(graph)),
        subgraphs=tuple(_subgraph_info(g, graph) for g in graphs[1:]),
        ignored=dict(ignored),
        notes=(*graph.graph["notes"], *model_notes(model, graphs)),
    )


def summarize_corpus(analyses: Sequence[ModelAnalysis], *, top: int = 10) -> CorpusSummary:
    """Aggregate analyses: distinct ops and n-grams, and the n-grams shared by most models.

    Args:
        analyses: One analysis per model.
        top: How many of the most shared n-grams to keep per length.

    Returns:
        The summary.
    """
    ops_per_model = [set(a.op_histogram) for a in analyses]
    models_with: Counter[Ngram] = Counter()
    for analysis in analyses:
        models_with.update(analysis.ngrams.present)
    lengths = sorted({len(ngram) for ngram in models_with})
    return CorpusSummary(
        models=len(analyses),
        distinct_ops=tuple(sorted(set().union(*ops_per_model))),
        ops_in_every_model=tuple(sorted(set.intersection(*ops_per_model))) if ops_per_model else (),
        distinct_ngrams={n: sum(1 for g in models_with if len(g) == n) for n in lengths},
        shared_ngrams={
            n: tuple(_most_common({g: c for g, c in models_with.items() if len(g) == n})[:top])
            for n in lengths
        },
    )


def _most_common(counts: Mapping) -> list[tuple]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _model_info(model: onnx.ModelProto, source: str | os.PathLike[str] | bytes) -> ModelInfo:
    return ModelInfo(
        path=_describe_source(source),
        file_size=_source_size(source),
        producer_name=decode_text(model.producer_name),
        producer_version=decode_text(model.producer_version),
        ir_version=model.ir_version,
        opset_imports={
            decode_text(op.domain) or "ai.onnx": op.version for op in model.opset_import
        },
        graph_name=decode_text(model.graph.name),
        structure_only=is_structure_only(model),
    )


def _subgraph_info(subgraph: nx.DiGraph, main: nx.DiGraph) -> SubgraphInfo:
    path = subgraph.graph["path"]
    parent_path = path.rsplit("/", 1)[0]
    return SubgraphInfo(
        path=path,
        parent_op=_find_parent_op(main, parent_path),
        nodes=subgraph.number_of_nodes(),
        edges=subgraph.number_of_edges(),
        path_count=count_paths(subgraph),
    )


def _find_parent_op(main: nx.DiGraph, node_id: str) -> str:
    for graph in iter_graphs(main):
        if node_id in graph:
            return graph.nodes[node_id]["label"]
    return "?"
