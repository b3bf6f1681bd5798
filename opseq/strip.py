"""Strip tensor data from a model so that only its structure remains.

Structure-only models keep every tensor's name, dtype and dims, so shape inference and analysis work
unchanged, but they are small enough to commit by the thousand. They are flagged in
``metadata_props`` so that nobody mistakes them for runnable models.
"""

from __future__ import annotations

import math

import onnx

__all__ = ["STRUCTURE_ONLY_KEY", "is_structure_only", "strip_weights", "tensor_nbytes"]

STRUCTURE_ONLY_KEY = "opseq.structure_only"

# Small tensors are kept because shape inference reads their values (Reshape shapes, Slice starts).
_KEEP_BELOW_BYTES = 1024

_DATA_FIELDS = (
    "raw_data",
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
)


def strip_weights(
    model: onnx.ModelProto,
    *,
    keep_below_bytes: int = _KEEP_BELOW_BYTES,
    keep_node_metadata: bool = False,
) -> onnx.ModelProto:
    """Return a copy of `model` whose large tensors have dims and dtype but no data.

    Initializers, sparse initializers, ``Constant`` values and tensor attributes in every subgraph
    and local function are stripped when their data takes at least `keep_below_bytes` bytes.
    External data references are removed too, so the copy never points at files. Per-node
    ``doc_string`` and ``metadata_props`` (the dynamo exporter records stack traces and name
    scopes there, most of a structure-only model's bytes) are dropped unless asked to keep them.

    Args:
        model: The model; it is not modified.
        keep_below_bytes: Tensors smaller than this keep their data.
        keep_node_metadata: Keep the nodes' doc strings and metadata_props.

    Returns:
        The structure-only copy, with ``metadata_props[opseq.structure_only] = "true"``.
    """
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    for tensor in _iter_tensors(stripped):
        if (
            tensor.data_location == onnx.TensorProto.EXTERNAL
            or tensor_nbytes(tensor) >= keep_below_bytes
        ):
            _clear_data(tensor)
    if not keep_node_metadata:
        for node in _iter_nodes(stripped):
            node.ClearField("doc_string")
            node.ClearField("metadata_props")
    _set_metadata(stripped, STRUCTURE_ONLY_KEY, "true")
    return stripped


def is_structure_only(model: onnx.ModelProto) -> bool:
    """Tell whether `model` was produced by `strip_weights`."""
    return any(p.key == STRUCTURE_ONLY_KEY and p.value == "true" for p in model.metadata_props)


def _iter_nodes(model: onnx.ModelProto):
    graphs = [model.graph]
    yield from (node for function in model.functions for node in function.node)
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            yield node
            for attr in node.attribute:
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)


def _iter_tensors(model: onnx.ModelProto):
    graphs = [model.graph]
    nodes = [n for f in model.functions for n in f.node]
    while graphs:
        graph = graphs.pop()
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
        nodes.extend(graph.node)
        while nodes:
            node = nodes.pop()
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    graphs.append(attr.g)
                graphs.extend(attr.graphs)


def tensor_nbytes(tensor: onnx.TensorProto) -> int:
    """Return the size of a tensor's data in bytes, computed from dims and dtype.

    Reading ``raw_data`` from Python would copy it; this never touches the data.

    Examples:
        >>> t = onnx.helper.make_tensor("w", onnx.TensorProto.FLOAT, [64, 3, 7, 7], [0.0] * 9408)
        >>> tensor_nbytes(t)
        37632
    """
    count = math.prod(tensor.dims)
    if tensor.data_type == onnx.TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    return count * _itemsize(tensor.data_type)


def _itemsize(data_type: int) -> int:
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 8  # unknown or future dtypes: assume the widest common width


def _clear_data(tensor: onnx.TensorProto) -> None:
    for field in _DATA_FIELDS:
        tensor.ClearField(field)
    tensor.ClearField("external_data")
    tensor.data_location = onnx.TensorProto.DEFAULT


def _set_metadata(model: onnx.ModelProto, key: str, value: str) -> None:
    for prop in model.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    model.metadata_props.add(key=key, value=value)
