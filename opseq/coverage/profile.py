"""A model's architectural profile: the items coverage is measured on.

Six kinds of item, each counted per model:

- ``ops``: labels (``Conv``, ``com.microsoft:FusedMatMul``), one per node;
- ``versioned_ops``: ``domain:op@since_version``, the schema version the node's opset import
  resolves to through onnx's schemas (``ai.onnx:Resize@19`` for Resize under opset 21);
  ``domain:op@?`` when no schema resolves (a custom domain, an op that does not exist at that
  opset, a domain with no opset import);
- ``ngrams``: label n-grams along dataflow paths, n = 2..4, counted by node paths
  (`opseq.ngrams.mine_ngrams`);
- ``dtypes``: op + input element types, ``Conv(float32,float32,float32)`` (an omitted optional
  input is empty, an unknown type ``?``);
- ``ranks``: op + input ranks, ``Conv(4,4,1)``;
- ``attributes``: op + one explicitly set attribute value, ``Conv.auto_pad=SAME_UPPER``;
  integers, strings and short integer lists by value, floats binned by power of ten
  (``LeakyRelu.alpha~1e-2``), tensors and graphs by kind only. Defaults the node leaves unset are
  not items: which values a model *writes* is what a converter exercises.

The finer labels follow COMET's layer-input and parameter coverage, on ONNX nodes. Every kind
but ``ngrams`` keeps the names of the nodes where each item occurs (a few per item), so that
reports can point at them.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import networkx as nx
import onnx

from opseq.graph import iter_graphs
from opseq.limits import DEFAULT_LIMITS, Limits
from opseq.ngrams import Ngram, mine_ngrams
from opseq.untrusted import decode_text

__all__ = [
    "FINER_KINDS",
    "ITEM_KINDS",
    "NGRAM_LENGTHS",
    "ModelProfile",
    "float_bin",
    "profile_model",
    "versioned_op",
]

NGRAM_LENGTHS = (2, 3, 4)
FINER_KINDS = ("dtypes", "ranks", "attributes")
ITEM_KINDS = ("ops", "versioned_ops", *FINER_KINDS)  # the kinds of string items

_DEFAULT_DOMAIN = "ai.onnx"
_NODES_KEPT = 8  # node ids kept per item: enough to find them, bounded for hostile models
_INT_LIST_BY_VALUE = 8
_STRING_BY_VALUE = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelProfile:
    """The items of one model, with counts.

    ``items[kind][item]`` is the number of nodes carrying a string item; ``ngrams[ngram]`` the
    number of node paths realising an n-gram (a Python int of any size). ``nodes[kind][item]``
    holds up to 8 node names per item (the node id for an unnamed node). ``digest`` is the
    SHA-256 of the serialized model.
    """

    name: str
    digest: str
    opset: int | None
    node_count: int
    items: Mapping[str, Mapping[str, int]]
    ngrams: Mapping[Ngram, int]
    nodes: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def present(self, kind: str) -> frozenset:
        """The distinct items of `kind` (``"ngrams"`` or one of `ITEM_KINDS`)."""
        return frozenset(self.ngrams if kind == "ngrams" else self.items[kind])

    def to_dict(self) -> dict:
        """Return a JSON-safe dict (n-grams as label lists, counts as ints)."""
        return {
            "name": self.name,
            "digest": self.digest,
            "opset": self.opset,
            "node_count": self.node_count,
            "items": {kind: dict(values) for kind, values in self.items.items()},
            "ngrams": [[list(ngram), count] for ngram, count in self.ngrams.items()],
        }


def profile_model(
    model: onnx.ModelProto,
    graph: nx.DiGraph,
    *,
    name: str,
    digest: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
) -> ModelProfile:
    """Profile `model`, whose OpGraph (built with shape inference) is `graph`.

    Args:
        model: The model (for its opset imports and tensor types).
        graph: Its OpGraph from `opseq.graph.build_opgraph` with ``infer_shapes=True``.
        name: How reports name the model.
        digest: SHA-256 of its serialized bytes, if the caller has it.
        limits: ``max_ngram_windows`` bounds the n-gram count.

    Returns:
        The profile.

    Examples:
        >>> from onnx import helper, TensorProto
        >>> x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
        >>> y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
        >>> nodes = [helper.make_node("Relu", ["x"], ["r"]),
        ...          helper.make_node("LeakyRelu", ["r"], ["y"], alpha=0.01)]
        >>> m = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
        ...                       opset_imports=[helper.make_opsetid("", 17)])
        >>> from opseq.graph import build_opgraph
        >>> p = profile_model(m, build_opgraph(m), name="m")
        >>> sorted(p.items["versioned_ops"]), dict(p.ngrams)
        (['ai.onnx:LeakyRelu@16', 'ai.onnx:Relu@14'], {('Relu', 'LeakyRelu'): 1})
        >>> sorted(p.items["dtypes"]), sorted(p.items["attributes"])
        (['LeakyRelu(float32)', 'Relu(float32)'], ['LeakyRelu.alpha~1e-2'])
    """
    if digest is None:
        digest = hashlib.sha256(model.SerializeToString()).hexdigest()
    opsets = opset_versions(model)
    types = _tensor_types(model, graph)
    counts: dict[str, dict[str, int]] = {kind: {} for kind in ITEM_KINDS}
    nodes: dict[str, dict[str, list[str]]] = {kind: {} for kind in ITEM_KINDS}
    node_count = 0
    for each in iter_graphs(graph):
        for node_id, data in each.nodes(data=True):
            node_count += 1
            for kind, item in _node_items(data, opsets, types):
                counts[kind][item] = counts[kind].get(item, 0) + 1
                kept = nodes[kind].setdefault(item, [])
                if len(kept) < _NODES_KEPT:
                    kept.append(data["name"] or node_id)
    ngrams = mine_ngrams(graph, n=(NGRAM_LENGTHS[0], NGRAM_LENGTHS[-1]), limits=limits)
    return ModelProfile(
        name=name,
        digest=digest,
        opset=opsets.get(_DEFAULT_DOMAIN),
        node_count=node_count,
        items=counts,
        ngrams=dict(ngrams.counts),
        nodes={kind: {k: tuple(v) for k, v in items.items()} for kind, items in nodes.items()},
    )


def opset_versions(model: onnx.ModelProto) -> dict[str, int]:
    """The model's opset imports, domain -> version, with the default domain as ``ai.onnx``."""
    versions: dict[str, int] = {}
    for opset in model.opset_import:
        domain = decode_text(opset.domain) or _DEFAULT_DOMAIN
        versions[domain] = max(versions.get(domain, opset.version), opset.version)
    return versions


def versioned_op(domain: str, op_type: str, opsets: Mapping[str, int]) -> str:
    """Return ``domain:op@since_version`` for a node under the given opset imports.

    Examples:
        >>> versioned_op("", "Resize", {"ai.onnx": 21})
        'ai.onnx:Resize@19'
        >>> versioned_op("", "Relu", {"ai.onnx": 5})
        'ai.onnx:Relu@1'
        >>> versioned_op("custom", "Op", {"ai.onnx": 17})
        'custom:Op@?'
    """
    domain = domain or _DEFAULT_DOMAIN
    version = opsets.get(domain)
    since = None if version is None else _since_version(domain, op_type, version)
    return f"{domain}:{op_type}@{'?' if since is None else since}"


@functools.lru_cache(maxsize=8192)
def _since_version(domain: str, op_type: str, version: int) -> int | None:
    schema_domain = "" if domain == _DEFAULT_DOMAIN else domain
    try:
        return onnx.defs.get_schema(op_type, version, schema_domain).since_version
    except onnx.defs.SchemaError:
        return None


def _node_items(data: dict, opsets: Mapping[str, int], types: Mapping[str, tuple]):
    label = data["label"]
    yield "ops", label
    yield "versioned_ops", versioned_op(data["domain"], data["op_type"], opsets)
    names = data["inputs"]
    inputs = [types.get(name) if name else None for name in names]
    dtypes = (_dtype_cell(name, t) for name, t in zip(names, inputs, strict=True))
    ranks = (_rank_cell(name, t) for name, t in zip(names, inputs, strict=True))
    yield "dtypes", f"{label}({','.join(dtypes)})"
    yield "ranks", f"{label}({','.join(ranks)})"
    for attribute, value in sorted(data["attributes"].items()):
        yield "attributes", f"{label}.{attribute}{_attribute_cell(value)}"


def _dtype_cell(name: str, tensor_type: tuple | None) -> str:
    if not name:
        return ""
    return "?" if tensor_type is None or tensor_type[0] is None else tensor_type[0]


def _rank_cell(name: str, tensor_type: tuple | None) -> str:
    if not name:
        return ""
    return "?" if tensor_type is None or tensor_type[1] is None else str(tensor_type[1])


def _attribute_cell(value) -> str:
    """``=value`` by value for ints, strings and short int lists; ``~1e-2`` bins for floats."""
    if isinstance(value, bool) or value is None:
        return f"={value}"
    if isinstance(value, int):
        return f"={value}"
    if isinstance(value, float):
        return f"~{float_bin(value)}"
    if isinstance(value, str):
        if value in ("inf", "-inf", "nan"):  # non-finite floats arrive as strings
            return f"~{value}"
        return f"={value}" if len(value) <= _STRING_BY_VALUE else "=<long string>"
    if isinstance(value, list):
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            if len(value) <= _INT_LIST_BY_VALUE:
                return f"=[{','.join(map(str, value))}]"
            return f"=<{len(value)} ints>"
        if all(isinstance(v, float) for v in value):
            return f"~[{','.join(float_bin(v) for v in value[:_INT_LIST_BY_VALUE])}]"
        return f"=<list of {len(value)}>"
    if isinstance(value, dict):
        kind = next(iter(value), "value")
        if kind == "length":
            return f"=<{value['length']} values>"
        return f"=<{kind}>"
    return "=<value>"


def float_bin(value: float) -> str:
    """The power of ten of a float, with its sign: 0.01 -> ``1e-2``, -300 -> ``-1e2``, 0 -> ``0``.

    Examples:
        >>> [float_bin(v) for v in (0.01, 0.015, -300.0, 0.0, 1.0)]
        ['1e-2', '1e-2', '-1e2', '0', '1e0']
        >>> float_bin(0.009999999776482582)
        '1e-2'
    """
    if value == 0:
        return "0"
    # Attributes are float32: 0.01 arrives as 0.0099999998, which must bin with 0.01.
    exponent = math.floor(math.log10(abs(float(f"{value:.6g}"))))
    return f"{'-' if value < 0 else ''}1e{exponent}"


def _tensor_types(model: onnx.ModelProto, graph: nx.DiGraph) -> dict[str, tuple]:
    """Tensor name -> (dtype, rank) from the model's declared types and the inferred ones.

    One flat map over all graphs: a name shadowed in a subgraph keeps its outermost type, which
    is what the subgraph reads unless it redefines it.
    """
    types: dict[str, tuple] = {}
    for proto in _graph_protos(model.graph):
        for values in (proto.input, proto.value_info, proto.output):
            for info in values:
                entry = _declared(info.type)
                if entry is not None:
                    types.setdefault(decode_text(info.name), entry)
        for tensor in proto.initializer:
            types.setdefault(decode_text(tensor.name), (_dtype(tensor.data_type), len(tensor.dims)))
        for node in proto.node:
            if node.op_type == "Constant" and node.output:
                types.setdefault(decode_text(node.output[0]), _constant_type(node))
    for each in iter_graphs(graph):
        for _, data in each.nodes(data=True):
            for name, tensor_type in zip(data["outputs"], data["output_types"], strict=True):
                if tensor_type is not None and name not in types:
                    rank = None if tensor_type.shape is None else len(tensor_type.shape)
                    types[name] = (tensor_type.dtype, rank)
    return types


def _graph_protos(proto: onnx.GraphProto):
    stack = [proto]
    while stack:
        current = stack.pop()
        yield current
        for node in current.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    stack.append(attribute.g)
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attribute.graphs)


def _declared(type_proto: onnx.TypeProto) -> tuple | None:
    if type_proto.WhichOneof("value") != "tensor_type" or not type_proto.tensor_type.elem_type:
        return None
    tensor = type_proto.tensor_type
    rank = len(tensor.shape.dim) if tensor.HasField("shape") else None
    return (_dtype(tensor.elem_type), rank)


def _constant_type(node: onnx.NodeProto) -> tuple:
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.type == onnx.AttributeProto.TENSOR:
            return (_dtype(attribute.t.data_type), len(attribute.t.dims))
        if attribute.name in ("value_float", "value_int", "value_string"):
            kind = {"value_float": "float32", "value_int": "int64", "value_string": "object"}
            return (kind[attribute.name], 0)
        if attribute.name in ("value_floats", "value_ints", "value_strings"):
            kind = {"value_floats": "float32", "value_ints": "int64", "value_strings": "object"}
            return (kind[attribute.name], 1)
    return (None, None)


@functools.lru_cache(maxsize=64)
def _dtype(elem_type: int) -> str:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name
    except (KeyError, TypeError, ValueError):
        try:
            return onnx.TensorProto.DataType.Name(elem_type).lower()
        except ValueError:
            return str(elem_type)
