"""The gate's checks that are not coverage: ``valid`` (onnx.checker) and ``runnable`` (ORT kernels).

``valid`` runs ``onnx.checker`` and strict shape inference (types checked, data propagated). A
structure-only model (`opseq.strip`) has tensors with dims and dtype but no data, which the
checker refuses ("should contain one and only one value field", or a ``raw_data`` too small for
its dims) and strict inference trips over where an op reads a value ("Data size mismatch"). The
checks therefore see a view of the model in which such tensors are graph inputs of the same name,
dtype and dims: what the structure promises and nothing more (`checkable_view`). Tensors whose
data is external get the same treatment, as opseq never opens the files they name, and so does
every tensor of at least 1 KiB when the tensors would take the view past protobuf's 2 GiB, which
the checker and inference, serializing the model, cannot pass.

``runnable`` asks whether the installed ONNX Runtime has a kernel for every node, the way it
decides at load time (`opseq.coverage.kernels`): local functions inlined first, If/Loop/Scan
bodies included, opset imports newer than ONNX Runtime accepts refused, and what it runs without a
kernel of its own not held against the model (``Constant``, ops with a function body, float16
nodes a float kernel runs).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import onnx

from opseq.coverage.criteria import Criterion, Offender
from opseq.coverage.kernels import (
    DEFAULT_PROVIDER,
    RuntimeContext,
    has_kernels_for,
    node_problems,
    ort_version,
    released_opsets,
)
from opseq.errors import LimitExceededError
from opseq.functions import inline_functions, inlined_node_count
from opseq.graph import MAIN_GRAPH
from opseq.limits import DEFAULT_LIMITS, PROTOBUF_MAX_BYTES, Limits, memory_cap
from opseq.strip import is_structure_only, tensor_nbytes
from opseq.untrusted import decode_text, escape_controls

__all__ = ["check_runnable", "check_valid", "checkable_view"]

_MESSAGE_CHARS = 240
_NODES_KEPT = 8
_ZERO_FILL_MAX_BYTES = 64 * 1024  # a tensor that cannot become an input gets zeros up to this
_LARGE_TENSOR_BYTES = 1024
_VALUE_FIELDS = (
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
)
_INFERENCE_LINE = re.compile(r"\(op_type:([^,)]*)(?:, node name: (.*?))?\): (.*)")
_CHECKER_NODE = re.compile(r"[Nn]ame: (.*?) OpType: ", re.DOTALL)
_FOLLOW_ON = "expected to have type but instead is null"

Message = tuple[str, str, str | None]  # (source, message, node name)


def check_valid(model: onnx.ModelProto, *, limits: Limits = DEFAULT_LIMITS) -> Criterion:
    """Check `model` with ``onnx.checker`` and strict shape inference.

    ``check_model(model, full_check=True)`` is the checker followed by strict inference without
    data propagation; the checker runs here once, then strict inference with data propagation,
    which sees what the full check sees and more. Stripped and external tensors are checked on
    their structure (see the module docstring).

    Args:
        model: The model (not modified).
        limits: ``max_nodes`` bounds the nodes inference would visit with local functions
            expanded; ``max_memory_bytes`` its memory (data propagation materialises values).

    Returns:
        Criterion ``valid``: one offender per distinct message with the nodes it names (errors
        that only follow from an earlier one are counted in the note); ``value`` counts them.
        ``passed`` is None when inference could not run and the checker found nothing.

    Raises:
        UnsupportedModelError: If local functions call each other recursively or one is
            defined twice (counting the nodes inference would visit needs the call graph).
    """
    view, notes = checkable_view(model)
    messages = _checker_messages(view)
    complete = inlined_node_count(model, stop_above=limits.max_nodes) <= limits.max_nodes
    if not complete:
        notes.append(f"shape inference not run: over {limits.max_nodes:,} nodes once inlined")
    else:
        try:
            with memory_cap(limits.memory_budget(view.ByteSize()), what="shape inference"):
                messages += _inference_messages(view)
        except LimitExceededError as e:
            notes.append(f"shape inference not finished: {e}")
            complete = False
    return _valid_criterion(_without_follow_on(messages, notes), notes, complete=complete)


def _checker_messages(view: onnx.ModelProto) -> list[Message]:
    try:
        onnx.checker.check_model(view, full_check=False)
    except Exception as e:  # ValidationError, or a C++ error on a malformed proto
        text = str(e).strip() or type(e).__name__
        message, _, context = text.partition("==> Context:")
        node = _CHECKER_NODE.search(context or message)
        return [("onnx.checker", " ".join(message.split()), node.group(1) if node else None)]
    return []


def _inference_messages(view: onnx.ModelProto) -> list[Message]:
    try:
        onnx.shape_inference.infer_shapes(view, check_type=True, strict_mode=True, data_prop=True)
    except MemoryError:
        raise
    except Exception as e:  # InferenceError, or a C++ error on a malformed proto
        text = str(e).strip() or type(e).__name__
        found = [
            ("shape inference", f"{m.group(1)}: {m.group(3)}", m.group(2) or None)
            for m in map(_INFERENCE_LINE.search, text.splitlines())
            if m
        ]
        return found or [("shape inference", " ".join(text.split()), None)]
    return []


def _without_follow_on(messages: list[Message], notes: list[str]) -> list[Message]:
    """Drop the errors of nodes whose inputs an earlier error left untyped, if any other."""
    primary = [m for m in messages if _FOLLOW_ON not in m[1]]
    if primary and len(primary) < len(messages):
        notes.append(f"{len(messages) - len(primary)} follow-on errors (inputs left untyped)")
        return primary
    return messages


def _valid_criterion(messages: list[Message], notes: list[str], *, complete: bool) -> Criterion:
    grouped: dict[tuple[str, str], list[str]] = {}
    for source, message, node in messages:
        nodes = grouped.setdefault((source, _one_line(message)), [])
        if node and node not in nodes and len(nodes) < _NODES_KEPT:
            nodes.append(node)
    offenders = tuple(
        Offender(item=message, nodes=tuple(nodes), detail=source)
        for (source, message), nodes in grouped.items()
    )
    return Criterion(
        name="valid",
        passed=False if offenders else (True if complete else None),
        value=len(offenders),
        offenders=offenders,
        note=escape_controls("; ".join(notes)) or None,
    )


def _one_line(text: str) -> str:
    text = escape_controls(decode_text(text))
    return text if len(text) <= _MESSAGE_CHARS else f"{text[: _MESSAGE_CHARS - 3]}..."


# --- the view the checks see


@dataclass(slots=True)
class _Hidden:
    inputs: int = 0
    external: int = 0
    zeroed: int = 0
    left: int = 0

    def notes(self) -> list[str]:
        notes = [
            f"{self.inputs} tensors without data were checked as inputs of their dims and dtype"
        ]
        if self.external:
            notes.append(f"{self.external} of them name external data, which is never opened")
        if self.zeroed:
            notes.append(f"{self.zeroed} small ones were given zeros instead")
        if self.left:
            notes.append(f"{self.left} could not be hidden and are checked as they are")
        return notes


def checkable_view(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Return the model the checks see, and notes on what was checked by structure only.

    Tensors without their data (stripped from a structure-only model, or external) become
    main-graph inputs of their name, dtype and dims: initializers of any graph (a subgraph reads
    it from the enclosing scope; only when its name is unique in the model) and ``Constant``
    values. Those that cannot (a ``Constant`` in a local function, another tensor attribute) get
    zeros when small; the rest are left for the checker to report.

    Returns:
        The view (`model` itself when nothing needs hiding) and the notes.
    """
    structure_only = is_structure_only(model)

    def hidden(tensor: onnx.TensorProto) -> bool:
        external = tensor.data_location == onnx.TensorProto.EXTERNAL
        return external or (structure_only and _lacks_data(tensor))

    if model.ByteSize() > PROTOBUF_MAX_BYTES:
        view = _hide(model, lambda t: hidden(t) or tensor_nbytes(t) >= _LARGE_TENSOR_BYTES)
        return view[0], ["over 2 GiB: tensors of 1 KiB or more were checked by dims and dtype"]
    if not any(hidden(t) for t in _iter_tensors(model)):
        return model, []
    view, counts = _hide(model, hidden)
    return view, counts.notes()


def _hide(model: onnx.ModelProto, hidden: Callable[[onnx.TensorProto], bool]):
    counts = _Hidden()
    view = onnx.ModelProto()
    view.CopyFrom(model)
    main = view.graph
    declared = {i.name for i in main.input}
    unique = _unique_names(view)

    def hoist(name: str, tensor: onnx.TensorProto, dims, in_main: bool) -> bool:
        """Declare `name` a main-graph input; False when it cannot be one."""
        if name in declared:
            return in_main  # an initializer also listed as an input keeps its declaration
        if name in outputs or (not in_main and name not in unique):
            return False  # a graph must produce its outputs; names must not clash
        main.input.append(onnx.helper.make_tensor_value_info(name, tensor.data_type, list(dims)))
        declared.add(name)
        counts.inputs += 1
        counts.external += tensor.data_location == onnx.TensorProto.EXTERNAL
        return True

    for graph, in_main in _iter_graphs(main):
        outputs = {o.name for o in graph.output}
        _delete(graph.initializer, [
            i for i, t in enumerate(graph.initializer)
            if hidden(t) and hoist(t.name, t, t.dims, in_main)
        ])  # fmt: skip
        _delete(graph.sparse_initializer, [
            i for i, s in enumerate(graph.sparse_initializer)
            if hidden(s.values) and hoist(s.values.name, s.values, s.dims, in_main)
        ])  # fmt: skip
        constants = [(i, *_constant_tensor(node)) for i, node in enumerate(graph.node)]
        _delete(graph.node, [
            i for i, tensor, dims in constants
            if tensor is not None and hidden(tensor)
            and hoist(graph.node[i].output[0], tensor, dims, False)
        ])  # fmt: skip
        for tensor in graph.initializer:
            _zero_fill(tensor, hidden, counts)
        for node in graph.node:
            _zero_attributes(node, hidden, counts)
    for function in view.functions:
        for node in function.node:
            _zero_attributes(node, hidden, counts)
    return view, counts


def _delete(field, indices: list[int]) -> None:
    for index in reversed(indices):
        del field[index]


def _constant_tensor(node: onnx.NodeProto):
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx") or not node.output:
        return None, None
    for attribute in node.attribute:
        if attribute.name == "value" and attribute.HasField("t"):
            return attribute.t, attribute.t.dims
        if attribute.name == "sparse_value" and attribute.HasField("sparse_tensor"):
            return attribute.sparse_tensor.values, attribute.sparse_tensor.dims
    return None, None


def _zero_attributes(node: onnx.NodeProto, hidden, counts: _Hidden) -> None:
    for attribute in node.attribute:
        for tensor in ([attribute.t] if attribute.HasField("t") else []) + list(attribute.tensors):
            _zero_fill(tensor, hidden, counts)


def _zero_fill(tensor: onnx.TensorProto, hidden, counts: _Hidden) -> None:
    """Give a hidden tensor that stays in place zeros (empty strings) of its size, if small."""
    if not hidden(tensor):
        return
    elements = math.prod(tensor.dims)
    if tensor_nbytes(tensor) > _ZERO_FILL_MAX_BYTES or elements > _ZERO_FILL_MAX_BYTES:
        counts.left += 1
        return
    counts.zeroed += 1
    tensor.ClearField("external_data")
    tensor.data_location = onnx.TensorProto.DEFAULT
    if tensor.data_type == onnx.TensorProto.STRING:
        tensor.string_data.extend([b""] * elements)
    else:
        tensor.raw_data = bytes(tensor_nbytes(tensor))


def _lacks_data(tensor: onnx.TensorProto) -> bool:
    """A tensor whose dims hold elements but that has no data (strip_weights' doing)."""
    has = tensor.HasField("raw_data") or any(len(getattr(tensor, f)) for f in _VALUE_FIELDS)
    return not has and math.prod(tensor.dims) > 0


def _iter_graphs(graph: onnx.GraphProto, in_main: bool = True):
    yield graph, in_main
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _iter_graphs(attribute.g, False)
            for subgraph in attribute.graphs:
                yield from _iter_graphs(subgraph, False)


def _iter_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    nodes = [n for f in model.functions for n in f.node]
    for graph, _ in _iter_graphs(model.graph):
        yield from graph.initializer
        yield from (s.values for s in graph.sparse_initializer)
        nodes.extend(graph.node)
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            if attribute.HasField("sparse_tensor"):
                yield attribute.sparse_tensor.values
            yield from attribute.tensors


def _unique_names(model: onnx.ModelProto) -> frozenset[str]:
    """Names defined once across all graphs (as input, initializer or node output)."""
    counts: dict[str, int] = {}
    for graph, _ in _iter_graphs(model.graph):
        names = [i.name for i in graph.input] + [t.name for t in graph.initializer]
        for name in {*names, *(o for node in graph.node for o in node.output)}:
            counts[name] = counts.get(name, 0) + 1
    return frozenset(name for name, count in counts.items() if count == 1)


# --- runnable


def check_runnable(
    model: onnx.ModelProto,
    *,
    providers: tuple[str, ...] = (DEFAULT_PROVIDER,),
    limits: Limits = DEFAULT_LIMITS,
) -> Criterion:
    """Check that the installed ONNX Runtime has a kernel for every node of `model`.

    Args:
        model: The model (not modified); its local functions are inlined first.
        providers: Execution providers whose kernels count.
        limits: ``max_nodes`` bounds the inlined model.

    Returns:
        Criterion ``runnable``: one offender per (versioned op, input types) without a kernel,
        naming its nodes, and one per opset import ONNX Runtime refuses; ``value`` counts them.
        ``passed`` is None when onnxruntime lists no kernel for any of `providers`.

    Raises:
        LimitExceededError: If inlining local functions would exceed ``limits.max_nodes``.
        UnsupportedModelError: If local functions cannot be inlined (recursion, duplicates).
    """
    absent = [p for p in providers if not has_kernels_for(p)]
    if len(absent) == len(providers):
        note = f"onnxruntime {ort_version()} lists no kernels for {', '.join(absent)}"
        return Criterion(name="runnable", passed=None, note=escape_controls(note))
    model = inline_functions(model, max_nodes=limits.max_nodes)
    released = released_opsets()
    imports = {_domain(decode_text(i.domain)): i.version for i in model.opset_import}
    too_new = {d: v for d, v in imports.items() if d in released and v > released[d]}
    context = RuntimeContext(  # ONNX Runtime imports the domains it knows at their newest
        opsets={**released, **imports}, providers=tuple(p for p in providers if p not in absent)
    )
    types = _inferred_types(model)
    problems = {_opset_problem(d, v, released[d]): [] for d, v in too_new.items()}
    for node_id, node in _iter_nodes(model.graph, MAIN_GRAPH):
        domain = _domain(decode_text(node.domain))
        found = (
            [_opset_problem(domain, too_new[domain], released[domain])]
            if domain in too_new
            else node_problems(node, types, context)
        )
        for problem in found:
            nodes = problems.setdefault(problem, [])
            if len(nodes) < _NODES_KEPT:
                nodes.append(decode_text(node.name) or node_id)
    offenders = tuple(
        Offender(item=escape_controls(item), nodes=tuple(nodes), detail=_one_line(detail))
        for (item, detail), nodes in problems.items()
    )
    return Criterion(
        name="runnable",
        passed=not offenders,
        value=len(offenders),
        offenders=offenders,
        note=_runnable_note(context, absent),
    )


def _opset_problem(domain: str, version: int, newest: int) -> tuple[str, str]:
    name = domain or "ai.onnx"
    return f"opset {name}={version}", f"onnxruntime {ort_version()} accepts {name} up to {newest}"


def _runnable_note(context: RuntimeContext, absent: list[str]) -> str | None:
    notes = []
    if context.unknown_types:
        notes.append(
            f"{context.unknown_types} nodes were matched on op and version only: shape "
            "inference could not tell their types"
        )
    if context.expanded:
        notes.append(f"{context.expanded} nodes without a kernel were checked by function body")
    if absent:
        notes.append(f"onnxruntime {ort_version()} lists no kernels for {', '.join(absent)}")
    return escape_controls("; ".join(notes)) or None


def _inferred_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Tensor name -> type over every graph, declared or inferred (the outermost wins)."""
    structure_only = is_structure_only(model)

    def skipped(tensor: onnx.TensorProto) -> bool:  # types need no large values
        external = tensor.data_location == onnx.TensorProto.EXTERNAL
        large = tensor_nbytes(tensor) >= _LARGE_TENSOR_BYTES
        return external or large or (structure_only and _lacks_data(tensor))

    view = _hide(model, skipped)[0] if any(map(skipped, _iter_tensors(model))) else model
    # Types are best effort: a node inference cannot type is matched on op and version only.
    with contextlib.suppress(Exception):
        view = onnx.shape_inference.infer_shapes(view, strict_mode=False, data_prop=False)
    types: dict[str, onnx.TypeProto] = {}
    for graph, _ in _iter_graphs(view.graph):
        for info in (*graph.input, *graph.value_info, *graph.output):
            if info.type.WhichOneof("value") is not None:
                types.setdefault(info.name, info.type)
        for tensor in graph.initializer:
            types.setdefault(tensor.name, _tensor_type(tensor.data_type, tensor.dims))
        for node in graph.node:
            tensor, dims = _constant_tensor(node)
            if tensor is not None:
                types.setdefault(node.output[0], _tensor_type(tensor.data_type, dims))
    return types


def _tensor_type(data_type: int, dims) -> onnx.TypeProto:
    return onnx.helper.make_tensor_type_proto(data_type, list(dims))


def _domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def _iter_nodes(graph: onnx.GraphProto, path: str) -> Iterator[tuple[str, onnx.NodeProto]]:
    """Every node with its id (``main/4/then_branch/2``), a node's subgraphs after it."""
    for index, node in enumerate(graph.node):
        node_id = f"{path}/{index}"
        yield node_id, node
        for attribute in node.attribute:
            name = decode_text(attribute.name)
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _iter_nodes(attribute.g, f"{node_id}/{name}")
            for k, subgraph in enumerate(attribute.graphs):
                yield from _iter_nodes(subgraph, f"{node_id}/{name}.{k}")
