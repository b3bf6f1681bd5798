"""ONNX model -> OpGraph: a `networkx.DiGraph` of operator nodes connected by dataflow.

An OpGraph has one node per ONNX operator node, keyed by a stable id (``main/17``: subgraph path
plus index; ``node.name`` may be empty or repeated). An edge u -> v exists when v consumes a tensor
that u produces; there is one edge per (producer, consumer) pair, carrying the consumed tensor names
in ``tensors`` (``Add(x, x)`` is one edge with ``("x", "x")``). A node whose subgraphs read
tensors of an enclosing graph (implicit inputs) gets edges from their producers too, each such
tensor listed once after the explicit inputs.

Node attributes: ``label``, ``op_type``, ``domain``, ``name``, ``attributes`` (small values by
value, tensors and long lists summarised), ``inputs``, ``outputs``, ``output_types`` (one
`TensorType` or None per output), and ``subgraphs`` (attribute name -> OpGraph) on If/Loop/Scan.

Graph attributes (``G.graph``): ``path``, ``inputs``, ``outputs``, ``input_consumers`` (graph input
-> ids of the nodes that read it), ``output_producers`` (graph output -> ids of the nodes that
produce it), ``outer_inputs`` (names a subgraph reads from enclosing scopes), ``ignored`` (label ->
number of spliced-out nodes), ``topological_order`` and, on the main graph, ``notes`` (non-fatal
remarks such as a shape-inference failure) and ``external_tensors`` (how many tensors, in any
graph or attribute, name external data that opseq did not read).

Ignored ops (default ``Constant`` and ``Identity``) are spliced out: the producers of their inputs
(including what their subgraphs read from the enclosing graph) are wired to the consumers of their
outputs. A node without inputs, like ``Constant``, thereby simply disappears; an ignored op's
subgraphs are dropped with it.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import networkx as nx
import onnx

from opseq._gc import collector_paused
from opseq.errors import InvalidModelError
from opseq.functions import inline_functions
from opseq.limits import DEFAULT_LIMITS, Limits, limit_error
from opseq.loader import load_model  # re-exported: loading is the step before this one
from opseq.strip import tensor_nbytes
from opseq.untrusted import decode_text, decode_texts

__all__ = [
    "DEFAULT_IGNORED_OPS",
    "MAIN_GRAPH",
    "TensorType",
    "build_opgraph",
    "iter_graphs",
    "label_of",
    "load_model",
]

DEFAULT_IGNORED_OPS: frozenset[str] = frozenset({"Constant", "Identity"})
MAIN_GRAPH = "main"

_DEFAULT_DOMAINS = ("", "ai.onnx")
_MAX_LIST_BY_VALUE = 64
_MAX_STRING_BY_VALUE = 256
# Tensors at least this large are kept out of the shape-inference skeleton (dims and dtype suffice).
_SKELETON_KEEP_BELOW_BYTES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorType:
    """Element type and shape of a tensor, as far as ONNX shape inference can tell.

    ``shape`` is None when the rank is unknown; each dim is an int, a symbolic name, or None.
    """

    dtype: str
    shape: tuple[int | str | None, ...] | None

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {"dtype": self.dtype, "shape": None if self.shape is None else list(self.shape)}


def label_of(op_type: str, domain: str) -> str:
    """Return the label of an op: ``op_type`` in the default domain, else ``domain:op_type``.

    Examples:
        >>> label_of("Conv", "")
        'Conv'
        >>> label_of("FusedMatMul", "com.microsoft")
        'com.microsoft:FusedMatMul'
    """
    return op_type if domain in _DEFAULT_DOMAINS else f"{domain}:{op_type}"


def build_opgraph(
    model: onnx.ModelProto,
    *,
    ignore_ops: Iterable[str] = DEFAULT_IGNORED_OPS,
    infer_shapes: bool = True,
    limits: Limits = DEFAULT_LIMITS,
) -> nx.DiGraph:
    """Build the OpGraph of `model`'s main graph, with subgraphs linked to their parent nodes.

    Runs in O(nodes + edges) beyond ONNX shape inference, which sees a skeleton of the model with
    large tensors reduced to dims and dtype, so it costs the same with or without weights.

    Args:
        model: The model (not modified). Model-local functions are inlined first.
        ignore_ops: Labels of ops to splice out.
        infer_shapes: Annotate outputs with ONNX shape inference; a failure becomes a note.
        limits: The node and nesting limits (checked before the nodes are built).

    Returns:
        The OpGraph (see the module docstring for its attributes).

    Raises:
        InvalidModelError: If a node reads an undefined tensor, a tensor has two producers, or the
            dataflow has a cycle.
        UnsupportedModelError: If local functions cannot be inlined.
        LimitExceededError: If the model has too many nodes (after inlining) or nests its
            subgraphs too deeply.

    Examples:
        >>> from onnx import helper, TensorProto
        >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
        >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
        >>> relu = helper.make_node("Relu", ["x"], ["r"])
        >>> nodes = [relu, helper.make_node("Add", ["r", "r"], ["y"])]
        >>> g = build_opgraph(helper.make_model(helper.make_graph(nodes, "g", [x], [y])))
        >>> sorted(g.nodes), g.edges["main/0", "main/1"]["tensors"]
        (['main/0', 'main/1'], ('r', 'r'))
    """
    model = inline_functions(model, max_nodes=limits.max_nodes)
    notes: list[str] = []
    if infer_shapes:
        model = _infer_shapes(_skeleton(model), notes)
    with collector_paused():
        builder = _GraphBuilder(frozenset(ignore_ops), limits)
        graph = builder.build(model.graph, MAIN_GRAPH, frozenset(), level=0)
    graph.graph["notes"] = tuple(notes)
    graph.graph["external_tensors"] = builder.external_tensors
    return graph


def iter_graphs(graph: nx.DiGraph) -> Iterator[nx.DiGraph]:
    """Yield `graph` and, depth first, every subgraph nested in its nodes."""
    stack = [graph]
    while stack:
        current = stack.pop()
        yield current
        for _, subgraphs in current.nodes(data="subgraphs"):
            if subgraphs:
                stack.extend(reversed(subgraphs.values()))


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """Copy the model without large tensor data (nor external-data references)."""
    skeleton = onnx.ModelProto(ir_version=model.ir_version)
    skeleton.opset_import.extend(model.opset_import)
    source, target = model.graph, skeleton.graph
    target.name = source.name
    target.node.extend(source.node)
    target.input.extend(source.input)
    target.output.extend(source.output)
    target.value_info.extend(source.value_info)
    for tensor in source.initializer:
        _copy_tensor_skeleton(tensor, target.initializer.add())
    for sparse in source.sparse_initializer:
        _copy_tensor_skeleton(sparse.values, target.initializer.add())
        target.initializer[-1].dims[:] = sparse.dims
    return skeleton


def _copy_tensor_skeleton(tensor: onnx.TensorProto, target: onnx.TensorProto) -> None:
    if tensor.data_location != onnx.TensorProto.EXTERNAL and (
        tensor_nbytes(tensor) < _SKELETON_KEEP_BELOW_BYTES
    ):
        target.CopyFrom(tensor)
        return
    target.name = tensor.name
    target.data_type = tensor.data_type
    target.dims.extend(tensor.dims)


def _infer_shapes(skeleton: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    try:
        # No data propagation: it materialises values of 1-D tensors, and a crafted model can make
        # it allocate without bound (a 60-step doubling Concat exhausts memory).
        return onnx.shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=False)
    except Exception as e:  # inference of exotic or future ops may fail in C++; types are optional
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        notes.append(f"shape inference failed, types are partial: {first_line}")
        return skeleton


class _GraphBuilder:
    """Builds one OpGraph per GraphProto, recursing into subgraphs."""

    def __init__(self, ignore_ops: frozenset[str], limits: Limits) -> None:
        self.ignore_ops = ignore_ops
        self.limits = limits
        self.nodes_seen = 0
        self.external_tensors = 0  # initializers and attribute tensors with external data

    def build(
        self, proto: onnx.GraphProto, path: str, outer_scope: frozenset[str], *, level: int
    ) -> nx.DiGraph:
        self._check_limits(proto, path, level)
        # Each protobuf field is read once: attribute access on protobuf messages dominates cost.
        nodes = [_NodeFields.of(node, f"{path}/{i}") for i, node in enumerate(proto.node)]
        initializers = proto.initializer[:]
        sparse = [(s.values, s.indices) for s in proto.sparse_initializer]
        self._count_external(*initializers, *(t for pair in sparse for t in pair))
        constants = set(decode_texts(t.name for t in initializers))
        constants.update(decode_texts(values.name for values, _ in sparse))
        inputs = tuple(v for v in decode_texts(v.name for v in proto.input) if v not in constants)
        producer = _producer_map(nodes)
        local = constants | set(inputs) | producer.keys()
        scope = _Scope(producer=producer, defined=outer_scope | local, inputs=frozenset(inputs))
        ignored = {i for i, fields in enumerate(nodes) if fields.label in self.ignore_ops}
        subgraphs = [self._scan_attributes(fields, scope.defined, level) for fields in nodes]
        reads = [_node_reads(f, s, scope) for f, s in zip(nodes, subgraphs, strict=True)]
        # Only a subgraph can read from enclosing graphs; the main graph's reads are all local.
        outer_reads = {n for r in reads for n in r if n not in local} if outer_scope else set()
        resolver = _Resolver(nodes, reads, scope, ignored)
        types = _value_types(proto)
        input_consumers: dict[str, list[str]] = {name: [] for name in inputs}
        node_items, edge_tensors = [], {}
        for index, fields in enumerate(nodes):
            if index in ignored:
                continue  # an ignored op's subgraphs go with it; its reads are spliced through
            node_items.append((fields.node_id, _node_attributes(fields, types, subgraphs[index])))
            _collect_edges(fields.node_id, reads[index], resolver, edge_tensors, input_consumers)
        outputs = decode_texts(v.name for v in proto.output)
        graph = nx.DiGraph(path=path, inputs=inputs, outputs=outputs)
        graph.add_nodes_from(node_items)
        graph.add_edges_from((u, v, {"tensors": tuple(t)}) for (u, v), t in edge_tensors.items())
        graph.graph.update(
            input_consumers={k: tuple(v) for k, v in input_consumers.items()},
            output_producers=_output_producers(outputs, path, resolver, scope),
            outer_inputs=tuple(sorted(outer_reads)),
            ignored=dict(Counter(nodes[i].label for i in sorted(ignored))),
            topological_order=_topological_order(graph, path),
        )
        return graph

    def _check_limits(self, proto: onnx.GraphProto, path: str, level: int) -> None:
        if level > self.limits.max_nesting:
            top_node = "/".join(path.split("/")[:2])
            raise limit_error(
                "max_nesting",
                f"subgraphs nested more than {self.limits.max_nesting} deep (in node {top_node})",
                self.limits.max_nesting,
            )
        self.nodes_seen += len(proto.node)
        if self.nodes_seen > self.limits.max_nodes:
            raise limit_error(
                "max_nodes",
                f"more than {self.limits.max_nodes:,} nodes (subgraphs included)",
                self.limits.max_nodes,
            )

    def _scan_attributes(
        self, fields: _NodeFields, visible: frozenset[str], level: int
    ) -> dict[str, nx.DiGraph]:
        """Build the node's subgraphs; count its attribute tensors that name external data."""
        subgraphs: dict[str, nx.DiGraph] = {}
        for attr in fields.attributes:
            kind = attr.type
            if kind == onnx.AttributeProto.GRAPH:
                key = decode_text(attr.name)
                subgraphs[key] = self.build(
                    attr.g, f"{fields.node_id}/{key}", visible, level=level + 1
                )
            elif kind == onnx.AttributeProto.GRAPHS:
                for k, g in enumerate(attr.graphs):
                    key = f"{decode_text(attr.name)}.{k}"
                    path = f"{fields.node_id}/{key}"
                    subgraphs[key] = self.build(g, path, visible, level=level + 1)
            elif kind in _TENSOR_ATTRIBUTES:
                self._count_external(*_attribute_tensors(attr))
        return subgraphs

    def _count_external(self, *tensors: onnx.TensorProto) -> None:
        self.external_tensors += sum(t.data_location == _EXTERNAL for t in tensors)


_EXTERNAL = onnx.TensorProto.EXTERNAL
_TENSOR_ATTRIBUTES = frozenset(
    {
        onnx.AttributeProto.TENSOR,
        onnx.AttributeProto.TENSORS,
        onnx.AttributeProto.SPARSE_TENSOR,
        onnx.AttributeProto.SPARSE_TENSORS,
    }
)


def _attribute_tensors(attr: onnx.AttributeProto) -> list[onnx.TensorProto]:
    if attr.type == onnx.AttributeProto.TENSOR:
        return [attr.t]
    if attr.type == onnx.AttributeProto.TENSORS:
        return list(attr.tensors)
    sparse = [attr.sparse_tensor] if attr.type == onnx.AttributeProto.SPARSE_TENSOR else []
    sparse.extend(attr.sparse_tensors)
    return [t for s in sparse for t in (s.values, s.indices)]


@dataclass(frozen=True, slots=True)
class _NodeFields:
    """The fields of a NodeProto, read once."""

    node_id: str
    label: str
    op_type: str
    domain: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: tuple[onnx.AttributeProto, ...]

    @classmethod
    def of(cls, node: onnx.NodeProto, node_id: str) -> _NodeFields:
        op_type, domain = decode_text(node.op_type), decode_text(node.domain)
        return cls(
            node_id,
            label_of(op_type, domain),
            op_type,
            domain,
            decode_text(node.name),
            decode_texts(node.input[:]),  # slicing copies in C; iterating wraps each item
            decode_texts(node.output[:]),
            tuple(node.attribute[:]),
        )


def _collect_edges(
    node_id: str,
    reads: list[str],
    resolver: _Resolver,
    edge_tensors: dict[tuple[str, str], list[str]],
    input_consumers: dict[str, list[str]],
) -> None:
    for name in reads:
        producers, graph_inputs = resolver.resolve(name)
        for producer_id in producers:
            if producer_id == node_id:
                raise InvalidModelError(
                    f"graph has a cycle: node {node_id} reads its own output {name!r}"
                )
            edge_tensors.setdefault((producer_id, node_id), []).append(name)
        for input_name in graph_inputs:
            consumers = input_consumers[input_name]
            if not consumers or consumers[-1] != node_id:
                consumers.append(node_id)


@dataclass(frozen=True, slots=True)
class _Scope:
    producer: dict[str, int]
    defined: frozenset[str]
    inputs: frozenset[str]


def _producer_map(nodes: list[_NodeFields]) -> dict[str, int]:
    producer: dict[str, int] = {}
    for index, fields in enumerate(nodes):
        for name in fields.outputs:
            if not name:
                continue
            if name in producer:
                first = nodes[producer[name]].node_id
                raise InvalidModelError(
                    f"tensor {name!r} is produced by both {first} and {fields.node_id}"
                )
            producer[name] = index
    return producer


def _node_reads(fields: _NodeFields, subgraphs: dict[str, nx.DiGraph], scope: _Scope) -> list[str]:
    """Names the node reads: inputs (repeats kept), then its subgraphs' outer reads (once each)."""
    reads = [name for name in fields.inputs if name]
    for name in reads:
        if name not in scope.defined:
            raise InvalidModelError(
                f"node {fields.node_id} ({fields.op_type}) reads undefined tensor {name!r}"
            )
    if subgraphs:
        implicit = dict.fromkeys(n for g in subgraphs.values() for n in g.graph["outer_inputs"])
        reads.extend(implicit)
    return reads


class _Resolver:
    """Maps a tensor name to the real (not ignored) nodes and graph inputs it comes from."""

    def __init__(
        self, nodes: list[_NodeFields], reads: list[list[str]], scope: _Scope, ignored: set[int]
    ):
        self.nodes, self.reads, self.scope, self.ignored = nodes, reads, scope, ignored
        self.cache: dict[str, object] = {}

    def resolve(self, name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Return (producer ids, graph input names) that `name` carries data from."""
        # Iterative depth-first resolution: chains of thousands of ignored nodes must not hit the
        # recursion limit, and a cycle of ignored nodes must become an error, not a hang.
        stack = [name]
        while stack:
            top = stack[-1]
            state = self.cache.get(top)
            if state is not None and state is not _IN_PROGRESS:
                stack.pop()
                continue
            index = self.scope.producer.get(top)
            if index is None or index not in self.ignored:
                self.cache[top] = self._direct(top, index)
                stack.pop()
                continue
            sources = self.reads[index]
            if state is _IN_PROGRESS:
                self.cache[top] = self._merge(sources)
                stack.pop()
                continue
            if top in sources or any(self.cache.get(s) is _IN_PROGRESS for s in sources):
                raise InvalidModelError(
                    f"graph has a cycle through ignored node {self.nodes[index].node_id}"
                )
            self.cache[top] = _IN_PROGRESS
            stack.extend(s for s in sources if s not in self.cache)
        return self.cache[name]  # type: ignore[return-value]

    def _direct(self, name: str, index: int | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if index is not None:
            return (self.nodes[index].node_id,), ()
        return (), ((name,) if name in self.scope.inputs else ())

    def _merge(self, sources: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        producers: dict[str, None] = {}
        graph_inputs: dict[str, None] = {}
        for source in sources:
            upstream, upstream_inputs = self.cache[source]  # type: ignore[misc]
            producers.update(dict.fromkeys(upstream))
            graph_inputs.update(dict.fromkeys(upstream_inputs))
        return tuple(producers), tuple(graph_inputs)


_IN_PROGRESS = object()


def _output_producers(
    outputs: tuple[str, ...], path: str, resolver: _Resolver, scope: _Scope
) -> dict[str, tuple[str, ...]]:
    producers = {}
    for name in outputs:
        if name not in scope.defined:
            raise InvalidModelError(f"graph {path}: output {name!r} is never produced")
        producers[name] = resolver.resolve(name)[0]
    return producers


def _topological_order(graph: nx.DiGraph, path: str) -> tuple[str, ...]:
    indegree = {node: degree for node, degree in graph.in_degree()}
    ready = [node for node, degree in indegree.items() if degree == 0]
    order = []
    while ready:
        node = ready.pop()
        order.append(node)
        for successor in graph.successors(node):
            indegree[successor] -= 1
            if indegree[successor] == 0:
                ready.append(successor)
    if len(order) != len(indegree):
        cycle = nx.find_cycle(graph.subgraph(n for n, d in indegree.items() if d > 0))
        described = " -> ".join(f"{u} ({graph.nodes[u]['op_type']})" for u, _ in cycle)
        raise InvalidModelError(f"graph {path} has a cycle: {described} -> {cycle[0][0]}")
    return tuple(order)


def _node_attributes(
    fields: _NodeFields, types: dict[str, TensorType], subgraphs: dict[str, nx.DiGraph]
) -> dict:
    attributes = {
        "label": fields.label,
        "op_type": fields.op_type,
        "domain": fields.domain,
        "name": fields.name,
        "attributes": {decode_text(a.name): _attribute_value(a) for a in fields.attributes},
        "inputs": fields.inputs,
        "outputs": fields.outputs,
        "output_types": tuple(types.get(name) for name in fields.outputs),
    }
    if subgraphs:
        attributes["subgraphs"] = subgraphs
    return attributes


def _value_types(proto: onnx.GraphProto) -> dict[str, TensorType]:
    types = {}
    for value_infos in (proto.input, proto.value_info, proto.output):
        for info in value_infos[:]:
            tensor_type = _tensor_type(info.type.SerializeToString())
            if tensor_type is not None:
                types[decode_text(info.name)] = tensor_type
    return types


@functools.lru_cache(maxsize=4096)
def _tensor_type(serialized: bytes) -> TensorType | None:
    """Convert a serialized TypeProto; cached because a model repeats few distinct types.

    Reading dims field by field costs microseconds each; serializing is one C call.
    """
    type_proto = onnx.TypeProto.FromString(serialized)
    if type_proto.WhichOneof("value") != "tensor_type":
        return None
    tensor = type_proto.tensor_type
    if not tensor.elem_type:
        return None
    shape = None
    if tensor.HasField("shape"):
        shape = tuple(_dim_value(d) for d in tensor.shape.dim)
    return TensorType(dtype=_dtype_name(tensor.elem_type), shape=shape)


def _dim_value(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    kind = dim.WhichOneof("value")
    if kind == "dim_value":
        return dim.dim_value
    if kind == "dim_param":
        return dim.dim_param
    return None


def _dtype_name(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        return (
            onnx.TensorProto.DataType.Name(elem_type).lower()
            if elem_type in _DTYPE_NAMES
            else str(elem_type)
        )


_DTYPE_NAMES = frozenset(onnx.TensorProto.DataType.values())


def _attribute_value(attr: onnx.AttributeProto):
    """Small attribute values by value; tensors, graphs and long lists summarised."""
    kind = attr.type
    if kind == onnx.AttributeProto.INT:
        return attr.i
    if kind == onnx.AttributeProto.FLOAT:
        return _json_float(attr.f)
    if kind == onnx.AttributeProto.STRING:
        return _short_string(attr.s)
    if kind == onnx.AttributeProto.INTS:
        return _short_list(attr.ints)
    if kind == onnx.AttributeProto.FLOATS:
        return _short_list(attr.floats, _json_float)
    if kind == onnx.AttributeProto.STRINGS:
        return _short_list(attr.strings, _short_string)
    if kind == onnx.AttributeProto.TENSOR:
        return {"tensor": {"dtype": _dtype_name(attr.t.data_type), "dims": list(attr.t.dims)}}
    if kind in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return {"graph": decode_text(attr.name)}
    return {"type": onnx.AttributeProto.AttributeType.Name(kind)}


def _json_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _short_string(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= _MAX_STRING_BY_VALUE else f"{text[:_MAX_STRING_BY_VALUE]}..."


def _short_list(values, convert=None) -> list | dict:
    # The length first: a repeated field of millions of values must not become a Python list.
    if len(values) > _MAX_LIST_BY_VALUE:
        return {"length": len(values)}
    return list(values) if convert is None else [convert(value) for value in values]
