"""Hostile ONNX model files for the hardening tests (the seeded mutator is `tests.mutants`).

Each builder states exactly what it makes. Most return the serialized file (`bytes`), since the
hostile part (invalid UTF-8, protobuf nesting beyond the decoder's limit) cannot be set on, or
decoded into, an `onnx.ModelProto` from Python; the few that return a `ModelProto` say so.
Models that are meant to be valid pass `onnx.checker` before any corruption; the others are
built with `onnx.helper` on purpose. None of them is ever meant to be run, and no external-data
location they name is ever meant to be opened.
"""

from __future__ import annotations

import onnx
from onnx import AttributeProto, GraphProto, NodeProto, TensorProto, helper

_OPSET = 17
_IR = 8
_HOSTILE_DOMAIN = "x.hostile"
_LOCAL = "local"


def _vi(name: str, elem_type: int = TensorProto.FLOAT, shape=(4,)) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, None if shape is None else list(shape))


def _model(nodes, inputs=("x",), outputs=("y",), name="hostile", **kwargs) -> onnx.ModelProto:
    """A model of `nodes` with float[4] inputs and outputs (names, or ready ValueInfoProtos)."""
    opsets = kwargs.pop("opsets", (("", _OPSET),))
    graph = helper.make_graph(
        nodes,
        name,
        [i if isinstance(i, onnx.ValueInfoProto) else _vi(i) for i in inputs],
        [o if isinstance(o, onnx.ValueInfoProto) else _vi(o) for o in outputs],
        kwargs.pop("initializer", None),
    )
    return helper.make_model(
        graph,
        ir_version=_IR,
        opset_imports=[helper.make_opsetid(domain, version) for domain, version in opsets],
        **kwargs,
    )


# --- invalid UTF-8

# Marker strings, each occurring in the serialization exactly `count` times (asserted).
_UTF8_MARKERS = {
    "producer_name": ("hostile-producer", 1),
    "op_type": ("Relu", 1),
    "node_name": ("hostile_node", 1),
    "domain": ("x.hostile.domain", 2),
    "tensor_name": ("hostile_tensor", 2),
    "graph_name": ("hostile_graph", 1),
    "doc_string": ("hostile doc string", 1),
    "metadata_key": ("hostile_key", 1),
}
INVALID_UTF8_FIELDS = tuple(_UTF8_MARKERS)


def _corrupt(marker: bytes) -> bytes:
    """`marker` with its 2nd and 3rd bytes replaced by 0xF2 0xFF (same length, invalid UTF-8)."""
    return marker[:1] + b"\xf2\xff" + marker[3:]


def invalid_utf8(field: str) -> bytes:
    """A small valid model, serialized, then one string field made invalid UTF-8.

    Before corruption the model is checker-valid (full check): IR 8, opset_import `"": 17` (and,
    for `field="domain"` only, `"x.hostile.domain": 1`), producer_name `hostile-producer`,
    graph `hostile_graph` with model doc_string `hostile doc string` and metadata_props
    `{hostile_key: v}`, input x and output y (float[4]), and two nodes:
    `hostile_tensor = Relu(x)` named `hostile_node`, then `y = Add(hostile_tensor, x)` named
    `add` (in domain `x.hostile.domain` for `field="domain"`, otherwise the default domain).

    The marker bytes of `field` are then replaced in the serialization by the same number of
    bytes, the 2nd and 3rd becoming 0xF2 0xFF (e.g. `Relu` -> `R\\xf2\\xffu`), so every protobuf
    length stays valid. `tensor_name` and `domain` occur twice (producer output and consumer
    input; node domain and opset_import domain) and both occurrences get the same bytes, so the
    dataflow and the domain import stay consistent. Decoded with `onnx.load_model_from_string`,
    the field reads back as Python `bytes`, not `str`.

    Args:
        field: One of `INVALID_UTF8_FIELDS`: producer_name, op_type (of the Relu), node_name
            (of the Relu), domain (of the Add), tensor_name, graph_name, doc_string (of the
            model), metadata_key.

    Returns:
        The corrupted serialized model (192 bytes; 231 for `domain`).
    """
    marker, count = _UTF8_MARKERS[field]
    add_domain = marker if field == "domain" else ""
    opsets = (("", _OPSET), (marker, 1)) if field == "domain" else (("", _OPSET),)
    tensor = _UTF8_MARKERS["tensor_name"][0]
    nodes = [
        helper.make_node("Relu", ["x"], [tensor], name=_UTF8_MARKERS["node_name"][0]),
        helper.make_node("Add", [tensor, "x"], ["y"], name="add", domain=add_domain),
    ]
    model = _model(
        nodes,
        name=_UTF8_MARKERS["graph_name"][0],
        opsets=opsets,
        producer_name=_UTF8_MARKERS["producer_name"][0],
        doc_string=_UTF8_MARKERS["doc_string"][0],
    )
    helper.set_model_props(model, {_UTF8_MARKERS["metadata_key"][0]: "v"})
    onnx.checker.check_model(model, full_check=True)
    data = model.SerializeToString()
    needle = marker.encode()
    if data.count(needle) != count:  # pragma: no cover - guards the marker choice
        raise AssertionError(f"marker {marker!r} occurs {data.count(needle)} times, not {count}")
    return data.replace(needle, _corrupt(needle))


# --- terminal control characters

#: Appended to every hostile string of `control_characters`.
CONTROL_PAYLOAD = "\x1b[2J\nopseq: error: forged\r\u202e"


def control_characters() -> bytes:
    """A checker-valid model whose names would repaint, forge lines on, or reverse a terminal.

    Every string below ends with `CONTROL_PAYLOAD`: ESC `[2J` (clear screen), a newline followed
    by the forged line `opseq: error: forged`, a carriage return, and U+202E (right-to-left
    override); all valid UTF-8. Strings: the producer_name (`evil` + payload), the graph name
    (`g` + payload), the three node names (`n0`/`n1`/`n2` + payload), the tensor between the
    first two nodes (`t` + payload), and the op_type of the middle node (`Op` + payload, in the
    custom domain `x.hostile`, imported at version 1). Structure: x -> Relu -> custom op -> Neg
    -> y (float[4]).

    Returns:
        The serialized model (363 bytes).
    """
    p = CONTROL_PAYLOAD
    nodes = [
        helper.make_node("Relu", ["x"], [f"t{p}"], name=f"n0{p}"),
        helper.make_node(f"Op{p}", [f"t{p}"], ["u"], name=f"n1{p}", domain=_HOSTILE_DOMAIN),
        helper.make_node("Neg", ["u"], ["y"], name=f"n2{p}"),
    ]
    model = _model(
        nodes,
        name=f"g{p}",
        opsets=(("", _OPSET), (_HOSTILE_DOMAIN, 1)),
        producer_name=f"evil{p}",
    )
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


# --- sizes that explode

_FANOUT_OPS = ("Relu", "Neg", "Abs", "Sigmoid")


def _short(i: int) -> str:
    """A short tensor name for index `i`, unique and never `x` or `y` (base 34)."""
    digits = "0123456789abcdefghijklmnopqrstuvwz"
    out = ""
    while True:
        i, r = divmod(i, 34)
        out = digits[r] + out
        if not i:
            return out


def wide_fanout_path_count(stages: int = 7200) -> bytes:
    """A chain of `stages` diamonds with 4 branches each: 4**stages input->output paths.

    Stage s reads one tensor (x for s = 0), feeds it to four unary nodes Relu, Neg, Abs and
    Sigmoid, and sums their four outputs with one `Sum`; that sum is the next stage's input, and
    the last one is y (float[4]). Nodes: 5 * stages (36,000 by default); edges between nodes:
    8 * stages - 4. Each stage multiplies the number of x->y paths by 4, so there are exactly
    4**stages = 2**(2 * stages) of them; for 7200 stages that is 2**14400, 4335 decimal digits
    (beyond Python's default 4300-digit int->str limit). Tensor names are short base-34 strings.
    Checker-valid (opset 17, IR 8); not checked here, to keep the build fast.

    Args:
        stages: Number of 4-way diamonds.

    Returns:
        The serialized model (753 KB, built in 0.15 to 0.4 s, for 7200 stages).
    """
    nodes = []
    current = "x"
    for s in range(stages):
        branches = [_short(5 * s + k) for k in range(4)]
        for op, out in zip(_FANOUT_OPS, branches, strict=True):
            nodes.append(NodeProto(op_type=op, input=[current], output=[out]))
        current = "y" if s == stages - 1 else _short(5 * s + 4)
        nodes.append(NodeProto(op_type="Sum", input=branches, output=[current]))
    return _model(nodes, name="fanout").SerializeToString()


def dense_layers(layers: int = 6, width: int = 60) -> bytes:
    """`layers` fully connected layers of `width` nodes with distinct op types, then a Sum.

    Node j of layer k has op_type `Op{j:02d}` (domain `x.hostile`, imported at version 1, so no
    schema applies and any number of inputs is fine) and output `{k}_{j}`. Layer 0 nodes read
    only x; every node of layer k > 0 reads all `width` outputs of layer k - 1; one default
    domain `Sum` reads all of the last layer and writes y. Nodes: layers * width + 1 (361 by
    default); edges between nodes: (layers - 1) * width**2 + width (18,060). Every sequence of
    op types across 4 consecutive layers occurs, so for layers >= 4 an n-gram miner's length-4
    windows hold width**4 + width**3 distinct windows (the second term ending in Sum):
    12,960,000 + 216,000 = 13,176,000 by default, from (layers - 3) * width**4 + width**3 =
    39,096,000 four-node paths. Checker-valid (full check).

    Args:
        layers: Number of dense layers (at least 1).
        width: Nodes per layer (at most 100, for two-digit op types).

    Returns:
        The serialized model (115 KB, built in under 10 ms, by default).
    """
    nodes = []
    previous = ["x"]
    for k in range(layers):
        outputs = [f"{k}_{j}" for j in range(width)]
        for j, out in enumerate(outputs):
            nodes.append(
                NodeProto(
                    op_type=f"Op{j:02d}", domain=_HOSTILE_DOMAIN, input=previous, output=[out]
                )
            )
        previous = outputs
    nodes.append(NodeProto(op_type="Sum", input=previous, output=["y"]))
    opsets = (("", _OPSET), (_HOSTILE_DOMAIN, 1))
    return _model(nodes, name="dense", opsets=opsets).SerializeToString()


def doubling_functions(levels: int = 40) -> bytes:
    """Model-local functions f0..f{levels} where each calls the previous one twice.

    Domain `local` (imported at version 1 next to `"": 17`). `f0(a) => (b)` is `b = Relu(a)`;
    `f_k(a) => (b)` is `t = local.f{k-1}(a); b = local.f{k-1}(t)`; the main graph is
    `y = local.f{levels}(x)`. Nodes as stored: 2 * levels + 1 in functions, 1 in the graph;
    fully inlined, the main graph would have 2**levels Relu nodes in a chain (about 1.1e12 by
    default). Never inline it. It is checker-valid without `full_check`; shape inference
    (`full_check=True`) walks every call, taking about 1 s at 18 levels and doubling per level.

    Args:
        levels: Index of the outermost function.

    Returns:
        The serialized model (3.2 KB, built in under 2 ms, by default).
    """
    imports = [helper.make_opsetid("", _OPSET), helper.make_opsetid(_LOCAL, 1)]
    functions = [
        helper.make_function(
            _LOCAL, "f0", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])], imports
        )
    ]
    for k in range(1, levels + 1):
        body = [
            helper.make_node(f"f{k - 1}", ["a"], ["t"], domain=_LOCAL),
            helper.make_node(f"f{k - 1}", ["t"], ["b"], domain=_LOCAL),
        ]
        functions.append(helper.make_function(_LOCAL, f"f{k}", ["a"], ["b"], body, imports))
    main = helper.make_node(f"f{levels}", ["x"], ["y"], domain=_LOCAL)
    model = _model([main], name="doubling", opsets=(("", _OPSET), (_LOCAL, 1)), functions=functions)
    return model.SerializeToString()


def recursive_function() -> bytes:
    """A model-local function `local.f(a) => (b)` whose only node is `b = local.f(a)`.

    The main graph is `r = Relu(x); y = local.f(r)`. Inlining never terminates. The checker
    refuses it (`Cycle detected in model-local function references: local::f -> local::f`).

    Returns:
        The serialized model (152 bytes).
    """
    imports = [helper.make_opsetid("", _OPSET), helper.make_opsetid(_LOCAL, 1)]
    body = [helper.make_node("f", ["a"], ["b"], domain=_LOCAL)]
    function = helper.make_function(_LOCAL, "f", ["a"], ["b"], body, imports)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("f", ["r"], ["y"], domain=_LOCAL),
    ]
    model = _model(
        nodes, name="recursive", opsets=(("", _OPSET), (_LOCAL, 1)), functions=[function]
    )
    return model.SerializeToString()


# --- protobuf nesting


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_head(number: int, length: int) -> bytes:
    """The tag and length of a length-delimited protobuf field `number` of `length` bytes."""
    return _varint(number << 3 | 2) + _varint(length)


def _len_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field `number` holding `payload`."""
    return _len_head(number, len(payload)) + payload


def nested_if(depth: int) -> bytes:
    """A valid model with `depth` If nodes, each nested in the then-branch of the previous one.

    Main graph `nested`: inputs x (float[4]) and c (bool), output y (float[4]), one node
    `y = If(c)`. The If at level d (1 = outermost) writes `t{d-1}` (y for d = 1); its
    then-branch (graph `g_t{d}`, output `t{d}`) holds only the If of level d + 1, and its
    else-branch (graph `g_e{d}`) holds only `e{d} = Relu(x)`. The innermost If's then-branch
    is `t{depth} = Identity(x)`. Nodes: `depth` If, `depth` Relu, one Identity; every branch
    output is typed float[4]; checker-valid (full check). Protobuf message nesting: ModelProto >
    GraphProto, then NodeProto > AttributeProto > GraphProto per level, and the innermost
    graph's output adds ValueInfoProto > TypeProto > Tensor > TensorShapeProto > Dimension: 3 *
    depth + 7 messages deep, counting the ModelProto as 1.

    The bytes are assembled field by field from the inside out (in linear time), so no message
    deeper than 7 is ever serialized by protobuf. Python's upb decoder (protobuf 7.36) decodes
    depth 31 (nesting 100) and refuses depth 32 (nesting 103) and beyond with
    `google.protobuf.message.DecodeError: Error parsing message with type 'onnx.ModelProto':
    Exceeded upb_DecodeOptions_MaxDepth`; onnx's C++ checker, given the file's path, likewise
    accepts depth 31 and fails to parse depth 32.

    Args:
        depth: Number of nested If nodes (at least 1).

    Returns:
        The serialized model: 1.3 KB at depth 10, 4.0 KB at depth 32, about 133 bytes per level
        beyond (1.3 MB and 0.1 s at depth 10,000).
    """
    node = NodeProto(op_type="Identity", input=["x"], output=[f"t{depth}"]).SerializeToString()
    prefixes: list[bytes] = []  # innermost first
    suffixes: list[bytes] = []  # innermost first
    length = len(node)  # of the serialized If (or Identity) at the current level
    for d in range(depth, 0, -1):
        graph = GraphProto(name=f"g_t{d}", output=[_vi(f"t{d}")]).SerializeToString()
        graph += _len_head(1, length)  # GraphProto.node, the inner If follows
        graph_length = len(graph) + length
        attr = AttributeProto(name="then_branch", type=AttributeProto.GRAPH).SerializeToString()
        attr += _len_head(6, graph_length)  # AttributeProto.g
        attr_length = len(attr) + graph_length
        out = "y" if d == 1 else f"t{d - 1}"
        head = NodeProto(op_type="If", input=["c"], output=[out]).SerializeToString()
        head += _len_head(5, attr_length)  # NodeProto.attribute
        relu = NodeProto(op_type="Relu", input=["x"], output=[f"e{d}"])
        else_graph = GraphProto(name=f"g_e{d}", node=[relu], output=[_vi(f"e{d}")])
        else_attr = AttributeProto(name="else_branch", type=AttributeProto.GRAPH, g=else_graph)
        tail = _len_field(5, else_attr.SerializeToString())
        prefixes.append(head + attr + graph)
        suffixes.append(tail)
        length = len(head) + attr_length + len(tail)
    shell = _model([], inputs=("x", _vi("c", TensorProto.BOOL, ())), name="nested")
    graph = shell.graph.SerializeToString() + _len_head(1, length)  # GraphProto.node
    shell.ClearField("graph")
    model = shell.SerializeToString() + _len_head(7, len(graph) + length)  # ModelProto.graph
    return b"".join((model, graph, *reversed(prefixes), node, *suffixes))


# --- nodes reading their own outputs


def identity_reads_own_output() -> onnx.ModelProto:
    """`r = Relu(x)`, `a = Identity(a)` (reads its own output), `y = Add(r, a)`.

    Built with `onnx.helper`; not checker-valid on purpose (a is never defined before use).

    Returns:
        The model.
    """
    return _model(
        [
            helper.make_node("Relu", ["x"], ["r"]),
            helper.make_node("Identity", ["a"], ["a"]),
            helper.make_node("Add", ["r", "a"], ["y"]),
        ],
        name="self_identity",
    )


def _constant_reading_itself(output: str) -> NodeProto:
    """`output = Constant(value=[1, 2, 3, 4])` that also has a GRAPH attribute `body`.

    The body graph is `z = Neg(output)` with output z: it reads the Constant's own output from
    the enclosing scope.
    """
    body = helper.make_graph(
        [helper.make_node("Neg", [output], ["z"])], "reads_own_output", [], [_vi("z")]
    )
    value = helper.make_tensor("value", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    return helper.make_node("Constant", [], [output], value=value, body=body)


def constant_in_if_reads_own_output() -> onnx.ModelProto:
    """An If whose then-branch holds a Constant whose extra subgraph reads the Constant's output.

    Main graph (inputs x float[4] and cond bool): `r = Relu(x); y = If(cond)`. Then-branch:
    `c = Constant(value=[1, 2, 3, 4], body=<graph: z = Neg(c)>)` followed by `t = Add(c, r)`,
    output t. Else-branch: `e = Sigmoid(r)`. So an ignored op (Constant) carries a subgraph that
    reads the node's own output c. Constant has no `body` attribute; not checker-valid.

    Returns:
        The model.
    """
    then_branch = helper.make_graph(
        [_constant_reading_itself("c"), helper.make_node("Add", ["c", "r"], ["t"])],
        "then",
        [],
        [_vi("t")],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Sigmoid", ["r"], ["e"])], "else", [], [_vi("e")]
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch),
    ]
    return _model(nodes, inputs=("x", _vi("cond", TensorProto.BOOL, ())), name="const_in_if")


def constant_with_subgraph_reading_itself() -> onnx.ModelProto:
    """In the main graph: `r = Relu(x)`, `c = Constant(value, body=<z = Neg(c)>)`, `y = Add(r, c)`.

    The same Constant as in `constant_in_if_reads_own_output`, but at top level. Not
    checker-valid (Constant has no `body` attribute).

    Returns:
        The model.
    """
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        _constant_reading_itself("c"),
        helper.make_node("Add", ["r", "c"], ["y"]),
    ]
    return _model(nodes, name="const_reads_itself")


# --- external data in unusual places

#: The location every external-data tensor below names.
EXTERNAL_LOCATION = "../../etc/passwd"


def _external_tensor(name: str) -> TensorProto:
    """A float[4] tensor whose data is EXTERNAL at `EXTERNAL_LOCATION`, offset 0, length 16."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", EXTERNAL_LOCATION), ("offset", "0"), ("length", "16")):
        tensor.external_data.add(key=key, value=value)
    return tensor


def external_data_in_constant_attribute() -> onnx.ModelProto:
    """`r = Relu(x)`, `k = Constant(value=<external>)`, `y = Add(r, k)`.

    The Constant's `value` (float[4]) is the model's only external-data tensor: data_location
    EXTERNAL, external_data location `../../etc/passwd`, offset 0, length 16. No initializers.

    Returns:
        The model.
    """
    constant = helper.make_node("Constant", [], ["k"], value=_external_tensor("k"))
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        constant,
        helper.make_node("Add", ["r", "k"], ["y"]),
    ]
    return _model(nodes, name="external_constant")


def external_data_in_subgraph_initializer() -> onnx.ModelProto:
    """`r = Relu(x)`, `y = If(cond)`; the then-branch has an external-data initializer w.

    Then-branch: initializer w (float[4], data_location EXTERNAL, location `../../etc/passwd`,
    offset 0, length 16) and `t = Add(r, w)`, output t. Else-branch: `e = Neg(r)`. The main graph
    has no initializers; w is the model's only external-data tensor.

    Returns:
        The model.
    """
    then_branch = helper.make_graph(
        [helper.make_node("Add", ["r", "w"], ["t"])],
        "then",
        [],
        [_vi("t")],
        [_external_tensor("w")],
    )
    else_branch = helper.make_graph([helper.make_node("Neg", ["r"], ["e"])], "else", [], [_vi("e")])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch),
    ]
    return _model(nodes, inputs=("x", _vi("cond", TensorProto.BOOL, ())), name="external_if")


def external_data_in_function() -> onnx.ModelProto:
    """`r = Relu(x)`, `y = local.F(r)`; F's body holds a Constant with an external-data value.

    Function `local.F(a) => (b)`: `k = Constant(value=<external>)`, `b = Add(a, k)`; the value is
    float[4], data_location EXTERNAL, location `../../etc/passwd`, offset 0, length 16, the
    model's only external-data tensor.

    Returns:
        The model.
    """
    imports = [helper.make_opsetid("", _OPSET)]
    body = [
        helper.make_node("Constant", [], ["k"], value=_external_tensor("k")),
        helper.make_node("Add", ["a", "k"], ["b"]),
    ]
    function = helper.make_function(_LOCAL, "F", ["a"], ["b"], body, imports)
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("F", ["r"], ["y"], domain=_LOCAL),
    ]
    return _model(
        nodes, name="external_function", opsets=(("", _OPSET), (_LOCAL, 1)), functions=[function]
    )


# --- opset and output oddities


def _chain(**kwargs) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["y"])]
    return _model(nodes, name="chain", **kwargs)


def negative_opset() -> onnx.ModelProto:
    """`y = Neg(Relu(x))` importing the default domain at version -3.

    Returns:
        The model.
    """
    return _chain(opsets=(("", -3),))


def no_default_domain_import() -> onnx.ModelProto:
    """`y = Neg(Relu(x))` (default-domain ops) importing only `x.hostile` version 1.

    Returns:
        The model.
    """
    return _chain(opsets=((_HOSTILE_DOMAIN, 1),))


def no_outputs() -> onnx.ModelProto:
    """`a = Relu(x)`, `b = Neg(a)`, and no graph outputs declared (the checker accepts it).

    Returns:
        The model.
    """
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["a"], ["b"])]
    return _model(nodes, outputs=(), name="no_outputs")
