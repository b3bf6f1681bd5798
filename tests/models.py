"""Tiny ONNX models built in code, each with known structure.

Valid models are written in ONNX's text syntax and checked with `onnx.checker`; malformed ones
(cycles, undefined tensors) are built with `onnx.helper`, since the parser and checker refuse them.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, parser


def _parse(text: str) -> onnx.ModelProto:
    model = parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    return model


_HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def chain() -> onnx.ModelProto:
    """x -> Relu -> Neg -> Exp -> y: 3 nodes, 1 path."""
    return _parse(f"""{_HEADER}
        chain (float[4] x) => (float[4] y) {{
            a = Relu(x)
            b = Neg(a)
            y = Exp(b)
        }}""")


def diamond() -> onnx.ModelProto:
    """x -> Relu -> (Neg, Exp) -> Add -> y: 2 input->output paths."""
    return _parse(f"""{_HEADER}
        diamond (float[4] x) => (float[4] y) {{
            a = Relu(x)
            b = Neg(a)
            c = Exp(a)
            y = Add(b, c)
        }}""")


def duplicate_input() -> onnx.ModelProto:
    """Relu then Add(r, r) and Mul(x, x): repeated tensors give one edge, not two paths."""
    return _parse(f"""{_HEADER}
        dup (float[4] x) => (float[4] y, float[4] z) {{
            r = Relu(x)
            y = Add(r, r)
            z = Mul(x, x)
        }}""")


def with_constants_and_identities() -> onnx.ModelProto:
    """Constant feeding Add, Identity chains between Relu and Add and on the output."""
    return _parse(f"""{_HEADER}
        ignored (float[4] x) => (float[4] y) {{
            k = Constant <value = float[4] {{1.0, 2.0, 3.0, 4.0}}> ()
            r = Relu(x)
            i1 = Identity(r)
            i2 = Identity(i1)
            s = Add(i2, k)
            y = Identity(s)
        }}""")


def multi_output() -> onnx.ModelProto:
    """Split into two halves that are used separately and concatenated: 2 paths."""
    return _parse(f"""{_HEADER}
        multi (float[4] x) => (float[4] y) <int64[2] halves = {{2, 2}}> {{
            a, b = Split <axis = 0> (x, halves)
            c = Relu(a)
            d = Neg(b)
            y = Concat <axis = 0> (c, d)
        }}""")


def two_inputs_two_outputs() -> onnx.ModelProto:
    """Inputs x, w; Add(x, w) feeds two outputs directly and through Relu: 4 paths."""
    return _parse(f"""{_HEADER}
        io (float[4] x, float[4] w) => (float[4] s, float[4] r) {{
            s = Add(x, w)
            r = Relu(s)
        }}""")


def custom_domain() -> onnx.ModelProto:
    """A node of an unknown domain between two standard ops."""
    return _parse("""<ir_version: 8, opset_import: ["" : 17, "com.example" : 1]>
        custom (float[4] x) => (float[4] y) {
            a = Relu(x)
            b = com.example.Frobnicate(a)
            y = Neg(b)
        }""")


def if_subgraph() -> onnx.ModelProto:
    """An If whose branches read the outer tensor r produced by Relu."""
    return _parse(f"""{_HEADER}
        cond (float[4] x, bool c) => (float[4] y) {{
            r = Relu(x)
            y = If(c) <
                then_branch = then_g () => (float[4] t) {{ t0 = Neg(r)
                                                          t = Exp(t0) }},
                else_branch = else_g () => (float[4] e) {{ e = Sigmoid(r) }}
            >
        }}""")


def loop_subgraph() -> onnx.ModelProto:
    """A Loop whose body adds an outer tensor to the carried value."""
    return _parse(f"""{_HEADER}
        loop (float[4] x, int64 n) => (float[4] y) {{
            r = Relu(x)
            cond = Constant <value = bool {{1}}> ()
            y = Loop(n, cond, r) <
                body = body_g (int64 i, bool c_in, float[4] acc)
                           => (bool c_out, float[4] acc_out) {{
                    c_out = Identity(c_in)
                    acc_out = Add(acc, r)
                }}
            >
        }}""")


def unnamed_and_duplicate_names() -> onnx.ModelProto:
    """Three nodes: two named 'same', one unnamed."""
    model = chain()
    for node, name in zip(model.graph.node, ("same", "same", ""), strict=True):
        node.name = name
    return model


def with_weights() -> onnx.ModelProto:
    """A Conv with a 16x3x3x3 weight initializer (1.7 KB) and a tiny bias."""
    weight = numpy_helper.from_array(np.ones((16, 3, 3, 3), np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(16, np.float32), "B")
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"]),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 6, 6])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def with_external_data(location: str) -> onnx.ModelProto:
    """`with_weights` whose weight lives in an external file at `location` (never to be opened)."""
    model = with_weights()
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "1728")):
        weight.external_data.add(key=key, value=value)
    return model


def future_opset() -> onnx.ModelProto:
    """A chain that claims opset 99 of the default domain."""
    model = chain()
    model.opset_import[0].version = 99
    return model


def _raw_model(nodes, inputs=("x",), outputs=("y",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "raw",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [4]) for name in inputs],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [4]) for name in outputs],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def undefined_tensor() -> onnx.ModelProto:
    """Add reads 'ghost', which nothing defines."""
    return _raw_model(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Add", ["a", "ghost"], ["y"])]
    )


def cycle() -> onnx.ModelProto:
    """Relu -> Neg -> Add -> Relu: a dataflow cycle (invalid ONNX)."""
    return _raw_model(
        [
            helper.make_node("Relu", ["s"], ["a"]),
            helper.make_node("Neg", ["a"], ["b"]),
            helper.make_node("Add", ["x", "b"], ["s"]),
            helper.make_node("Exp", ["s"], ["y"]),
        ]
    )


def identity_cycle() -> onnx.ModelProto:
    """Two Identity nodes feeding each other: a cycle that only ignored ops form."""
    return _raw_model(
        [
            helper.make_node("Identity", ["b"], ["a"]),
            helper.make_node("Identity", ["a"], ["b"]),
            helper.make_node("Add", ["x", "a"], ["y"]),
        ]
    )


def empty_graph() -> onnx.ModelProto:
    """A graph with no nodes that passes its input straight through."""
    return _raw_model([], inputs=("x",), outputs=("x",))


def long_identity_chain(length: int) -> onnx.ModelProto:
    """Relu, then `length` Identity nodes, then Neg: deeper than Python's recursion limit."""
    nodes = [helper.make_node("Relu", ["x"], ["t0"])]
    nodes += [helper.make_node("Identity", [f"t{i}"], [f"t{i + 1}"]) for i in range(length)]
    nodes.append(helper.make_node("Neg", [f"t{length}"], ["y"]))
    return _raw_model(nodes)


def dense_ladder(blocks: int) -> onnx.ModelProto:
    """DenseNet-like blocks: each concatenates its input with a Relu of it, doubling the paths."""
    nodes, current = [], "x"
    for i in range(blocks):
        nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
        nodes.append(helper.make_node("Concat", [current, f"r{i}"], [f"c{i}"], axis=0))
        current = f"c{i}"
    nodes.append(helper.make_node("Neg", [current], ["y"]))
    graph = helper.make_graph(
        nodes,
        "ladder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def local_function() -> onnx.ModelProto:
    """The main graph calls a model-local function Twice(a) = Add(Relu(a), Relu(a)), then Neg."""
    return _parse("""<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
        caller (float[4] x) => (float[4] y) {
            d = local.Twice(x)
            y = Neg(d)
        }
        <domain: "local", opset_import: ["" : 17]>
        Twice (a) => (b) {
            r = Relu(a)
            b = Add(r, r)
        }""")


def initializer_listed_as_input() -> onnx.ModelProto:
    """IR 3 style: the weight W is an initializer and also listed among the graph inputs."""
    model = with_weights()
    weight = model.graph.initializer[0]
    model.graph.input.append(
        helper.make_tensor_value_info(weight.name, weight.data_type, list(weight.dims))
    )
    return model
