"""Inline a model's local functions, after checking what inlining would produce.

A function may call other functions, each call copying the callee's nodes, so a file of a few
kilobytes whose functions call each other twice per level inlines to 2**40 nodes, and a function
that calls itself never finishes. The node count after inlining is therefore computed first, from
the call graph (each function's size once, callees before callers), and inlining only runs when it
is within ``max_nodes``.
"""

from __future__ import annotations

import graphlib
from collections import Counter
from collections.abc import Iterable

import onnx

from opseq.errors import UnsupportedModelError
from opseq.limits import limit_error
from opseq.untrusted import decode_text

__all__ = ["inline_functions", "inlined_node_count"]

FunctionKey = tuple[str, str, str]  # (domain, name, overload)


def inline_functions(model: onnx.ModelProto, *, max_nodes: int) -> onnx.ModelProto:
    """Return `model` with its local functions inlined (the model itself if it has none).

    Raises:
        LimitExceededError: If inlining would make more than `max_nodes` nodes.
        UnsupportedModelError: If functions call each other recursively, one is defined twice,
            or onnx's inliner fails.
    """
    if not model.functions:
        return model
    count = inlined_node_count(model, stop_above=max_nodes)
    if count > max_nodes:
        raise limit_error(
            "max_nodes",
            f"inlining its local functions would make more than {max_nodes:,} nodes",
            max_nodes,
        )
    import onnx.inliner

    try:
        return onnx.inliner.inline_local_functions(model)
    except Exception as e:  # the inliner raises bare RuntimeErrors from C++
        raise UnsupportedModelError(f"cannot inline the model's local functions: {e}") from e


def inlined_node_count(model: onnx.ModelProto, *, stop_above: int) -> int:
    """Count the nodes of the main graph (subgraphs included) once every call is inlined.

    Counts saturate at ``stop_above + 1``: beyond the limit only "too many" matters, and exact
    counts can have thousands of digits.

    Raises:
        UnsupportedModelError: If local functions call each other recursively, or one key
            (domain, name, overload) is defined twice.

    Examples:
        >>> from onnx import helper
        >>> relu = helper.make_node("Relu", ["a"], ["b"])
        >>> f = helper.make_function("d", "f", ["a"], ["b"], [relu], [helper.make_opsetid("", 18)])
        >>> calls = [helper.make_node("f", ["x"], ["y"], domain="d"),
        ...     helper.make_node("f", ["y"], ["z"], domain="d")]
        >>> model = helper.make_model(helper.make_graph(calls, "g", [], []), functions=[f])
        >>> inlined_node_count(model, stop_above=100)
        2
    """
    functions: dict[FunctionKey, onnx.FunctionProto] = {}
    for function in model.functions:
        key = _function_key(function)
        if key in functions:
            raise UnsupportedModelError(f"local function {_show(key)} is defined twice")
        functions[key] = function
    calls = {key: _calls(f.node, functions) for key, f in functions.items()}
    sizes: dict[FunctionKey, int] = {}
    try:
        sorter = graphlib.TopologicalSorter({k: set(c) for k, c in calls.items()})
        order = list(sorter.static_order())
    except graphlib.CycleError as e:
        cycle = " -> ".join(_show(key) for key in e.args[1])
        raise UnsupportedModelError(
            f"local functions call each other recursively: {cycle}"
        ) from None
    cap = stop_above + 1
    for key in order:  # callees first
        own = _own_nodes(functions[key].node, functions)
        sizes[key] = min(cap, own + sum(n * sizes[c] for c, n in calls[key].items()))
    main_calls = _calls(model.graph.node, functions)
    own = _own_nodes(model.graph.node, functions)
    return min(cap, own + sum(n * sizes[c] for c, n in main_calls.items()))


def _function_key(function: onnx.FunctionProto) -> FunctionKey:
    return decode_text(function.domain), decode_text(function.name), decode_text(function.overload)


def _node_key(node: onnx.NodeProto) -> FunctionKey:
    return decode_text(node.domain), decode_text(node.op_type), decode_text(node.overload)


def _show(key: FunctionKey) -> str:
    domain, name, overload = key
    return f"{domain}:{name}" + (f" (overload {overload})" if overload else "")


def _iter_nodes(nodes: Iterable[onnx.NodeProto]) -> Iterable[onnx.NodeProto]:
    """`nodes` and every node of their subgraphs, with an explicit stack."""
    stack = [iter(nodes)]
    while stack:
        node = next(stack[-1], None)
        if node is None:
            stack.pop()
            continue
        yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                stack.append(iter(attribute.g.node))
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                stack.extend(iter(g.node) for g in attribute.graphs)


def _calls(
    nodes: Iterable[onnx.NodeProto], functions: dict[FunctionKey, onnx.FunctionProto]
) -> Counter[FunctionKey]:
    keys = (_node_key(node) for node in _iter_nodes(nodes))
    return Counter(key for key in keys if key in functions)


def _own_nodes(
    nodes: Iterable[onnx.NodeProto], functions: dict[FunctionKey, onnx.FunctionProto]
) -> int:
    """Nodes that stay nodes after inlining (calls are replaced by the callee's nodes)."""
    return sum(1 for node in _iter_nodes(nodes) if _node_key(node) not in functions)
