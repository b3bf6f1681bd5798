"""The valid and runnable checks on tiny models; every runnable verdict is checked against ORT."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper, parser

from opseq.coverage import checks
from opseq.coverage.checks import check_runnable, check_valid, checkable_view
from opseq.coverage.criteria import Offender
from opseq.coverage.kernels import (
    DEFAULT_PROVIDER,
    match_kernel,
    ort_version,
    released_opsets,
    resolve_schema,
)
from opseq.strip import strip_weights
from tests import hostile, models


def parse(text: str, *, check: bool = True) -> onnx.ModelProto:
    model = parser.parse_model(text)
    if check:
        onnx.checker.check_model(model, full_check=True)
    return model


def raw_model(nodes, inputs, outputs, opset: int = 17, initializers=()) -> onnx.ModelProto:
    """A malformed-on-purpose model (no checker): inputs/outputs are (name, elem type, shape)."""
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(*i) for i in inputs],
        [helper.make_tensor_value_info(*o) for o in outputs],
        list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def ort_loads(model: onnx.ModelProto) -> bool:
    """Whether a real InferenceSession loads `model`, the same with optimisations off and on."""
    verdicts = set()
    for level in (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    ):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.log_severity_level = 4
        try:
            ort.InferenceSession(model.SerializeToString(), options, providers=[DEFAULT_PROVIDER])
            verdicts.add(True)
        except Exception:
            verdicts.add(False)
    assert len(verdicts) == 1, "ORT disagrees with itself across optimisation levels"
    return verdicts.pop()


def assert_runnable_agrees(model: onnx.ModelProto, expected: bool):
    criterion = check_runnable(model)
    assert criterion.passed is expected
    assert ort_loads(model) is expected
    return criterion


def single(
    op: str, elem: str, opset: int, inputs: int = 1, attributes: str = ""
) -> onnx.ModelProto:
    names = ", ".join(f"{elem}[2,2] x{i}" for i in range(inputs))
    args = ", ".join(f"x{i}" for i in range(inputs))
    ir = 10 if opset > 21 else 8
    return parse(f"""<ir_version: {ir}, opset_import: ["" : {opset}]>
        g ({names}) => ({elem}[2,2] y) {{ y = {op} {attributes} ({args}) }}""")


def erf_double_in_then_branch() -> onnx.ModelProto:
    return parse("""<ir_version: 8, opset_import: ["" : 17]>
        g (double[4] x, bool c) => (double[4] y) {
            y = If(c) <
                then_branch = t () => (double[4] a) { a = Erf(x) },
                else_branch = e () => (double[4] b) { b = Neg(x) }
            >
        }""")


# --- valid


def test_check_valid_valid_model_passes():
    criterion = check_valid(models.chain())
    assert (criterion.name, criterion.passed, criterion.value) == ("valid", True, 0)
    assert criterion.offenders == () and criterion.note is None


def test_check_valid_type_error_fails_with_the_message():
    model = raw_model(
        [helper.make_node("Add", ["x", "i"], ["y"], name="add")],
        [("x", TensorProto.FLOAT, [2, 3]), ("i", TensorProto.INT64, [2, 3])],
        [("y", TensorProto.FLOAT, [2, 3])],
    )
    criterion = check_valid(model)
    assert criterion.passed is False and criterion.value == 1
    assert criterion.offenders == (
        Offender(
            item="Add: B has inconsistent type tensor(int64)",
            nodes=("add",),
            detail="shape inference",
        ),
    )


def test_check_valid_undefined_input_fails_naming_the_node():
    model = raw_model(
        [helper.make_node("Relu", ["nope"], ["y"], name="relu")],
        [("x", TensorProto.FLOAT, [2, 3])],
        [("y", TensorProto.FLOAT, [2, 3])],
    )
    criterion = check_valid(model)
    assert criterion.passed is False
    assert criterion.offenders == (
        Offender(
            item="Nodes in a graph must be topologically sorted, however input 'nope' of node: "
            "name: relu OpType: Relu is not output of any previous nodes.",
            nodes=("relu",),
            detail="onnx.checker",
        ),
    )
    assert criterion.note == "1 follow-on errors (inputs left untyped)"


def test_check_valid_unknown_attribute_fails():
    model = raw_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu", alpha=0.5)],
        [("x", TensorProto.FLOAT, [2, 3])],
        [("y", TensorProto.FLOAT, [2, 3])],
    )
    assert check_valid(model).offenders == (
        Offender(
            item="Unrecognized attribute: alpha for operator Relu",
            nodes=("relu",),
            detail="onnx.checker",
        ),
    )


def test_check_valid_wrong_attribute_value_fails_in_inference():
    model = raw_model(
        [helper.make_node("Transpose", ["x"], ["y"], name="t", perm=[0, 2])],
        [("x", TensorProto.FLOAT, [2, 3])],
        [("y", TensorProto.FLOAT, [3, 2])],
    )
    assert check_valid(model).offenders == (
        Offender(
            item="Transpose: [TypeInferenceError] Invalid attribute perm {0, 2}, "
            "input shape = {2, 3}",
            nodes=("t",),
            detail="shape inference",
        ),
    )


def test_check_valid_declared_shape_that_contradicts_inference_fails():
    model = raw_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [("x", TensorProto.FLOAT, [2, 3])],
        [("y", TensorProto.FLOAT, [2, 4])],
    )
    (offender,) = check_valid(model).offenders
    assert offender.item == (
        "Relu: [ShapeInferenceError] Inferred shape and existing shape differ in dimension 1: "
        "(3) vs (4)"
    )


def test_check_valid_message_is_one_escaped_line():
    model = raw_model(
        [helper.make_node("Relu", ["nope"], ["y"], name="bad\x1b[2J\nname")],
        [("x", TensorProto.FLOAT, [2])],
        [("y", TensorProto.FLOAT, [2])],
    )
    (offender,) = check_valid(model).offenders
    assert "\n" not in offender.item and "\x1b" not in offender.item
    assert "node: name: bad\\x1b[2J name OpType: Relu" in offender.item  # whitespace collapsed
    assert offender.nodes == ("bad\x1b[2J\nname",)


def test_check_valid_stripped_model_passes():
    stripped = strip_weights(models.with_weights(), keep_below_bytes=0)
    with pytest.raises(onnx.checker.ValidationError, match="one and only one value field"):
        onnx.checker.check_model(stripped)  # what the check must not hold against the model
    criterion = check_valid(stripped)
    assert criterion.passed is True
    assert criterion.note == "2 tensors without data were checked as inputs of their dims and dtype"


def test_check_valid_stripped_values_read_by_inference_are_not_errors():
    model = parse("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[2,6] x) => (float[3,4] y) {
            shape = Constant <value = int64[2] {3, 4}> ()
            y = Reshape(x, shape)
        }""")
    stripped = strip_weights(model, keep_below_bytes=0)
    with pytest.raises(onnx.shape_inference.InferenceError, match="Data size mismatch"):
        onnx.shape_inference.infer_shapes(stripped, strict_mode=True, data_prop=True)
    assert check_valid(stripped).passed is True


def test_check_valid_stripped_subgraph_initializer_and_string_attribute_pass():
    keys = helper.make_tensor("keys", TensorProto.STRING, [3], [b"a", b"b", b"c"])
    values = helper.make_tensor("values", TensorProto.INT64, [3], [1, 2, 3])
    default = helper.make_tensor("default", TensorProto.INT64, [1], [0])
    encode = helper.make_node(
        "LabelEncoder", ["s"], ["e"], domain="ai.onnx.ml",
        keys_tensor=keys, values_tensor=values, default_tensor=default,
    )  # fmt: skip
    weight = numpy_helper.from_array(np.ones(300, np.float32), "w")
    branch = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [300])],
        [weight],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["n"])],
        "else",
        [],
        [helper.make_tensor_value_info("n", TensorProto.FLOAT, [300])],
    )
    model = helper.make_model(
        helper.make_graph(
            [encode, helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other)],
            "g",
            [
                helper.make_tensor_value_info("s", TensorProto.STRING, [2]),
                helper.make_tensor_value_info("x", TensorProto.FLOAT, [300]),
                helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            ],
            [
                helper.make_tensor_value_info("e", TensorProto.INT64, [2]),
                helper.make_tensor_value_info("y", TensorProto.FLOAT, [300]),
            ],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 4)],
        ir_version=8,
    )
    onnx.checker.check_model(model, full_check=True)
    stripped = strip_weights(model, keep_below_bytes=0)
    criterion = check_valid(stripped)
    assert criterion.passed is True
    assert criterion.note == (
        "1 tensors without data were checked as inputs of their dims and dtype; "
        "3 small ones were given zeros instead"
    )


def test_check_valid_stripped_model_still_reports_real_errors():
    model = strip_weights(models.with_weights(), keep_below_bytes=0)
    model.graph.node[1].attribute.append(helper.make_attribute("alpha", 0.5))
    (offender,) = check_valid(model).offenders
    assert offender.item == "Unrecognized attribute: alpha for operator Relu"


def test_check_valid_external_data_is_checked_by_structure_and_never_opened(tmp_path):
    model = models.with_external_data(str(tmp_path / "weights.bin"))
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)  # the raw checker would look for the file
    criterion = check_valid(model)
    assert criterion.passed is True
    assert criterion.note == (
        "1 tensors without data were checked as inputs of their dims and dtype; "
        "1 of them name external data, which is never opened"
    )


def test_check_valid_stripped_initializer_listed_as_input_passes():
    stripped = strip_weights(models.initializer_listed_as_input(), keep_below_bytes=0)
    assert check_valid(stripped).passed is True


def test_check_valid_model_past_protobuf_limit_is_checked_by_structure(monkeypatch):
    monkeypatch.setattr(checks, "PROTOBUF_MAX_BYTES", 1000)  # with_weights is 1.8 kB
    view, notes = checkable_view(models.with_weights())
    assert [t.name for t in view.graph.initializer] == ["B"]  # 64 bytes: kept with its data
    assert notes == ["over 2 GiB: tensors of 1 KiB or more were checked by dims and dtype"]
    assert check_valid(models.with_weights()).passed is True


def test_checkable_view_leaves_a_complete_model_alone():
    model = models.with_weights()
    assert checkable_view(model) == (model, [])


def test_check_valid_functions_that_double_skip_inference_instead_of_hanging():
    model = onnx.load_model_from_string(hostile.doubling_functions(40))
    criterion = check_valid(model)
    assert criterion.passed is None and criterion.offenders == ()
    assert criterion.note == "shape inference not run: over 200,000 nodes once inlined"


# --- runnable


def test_check_runnable_standard_model_passes():
    criterion = assert_runnable_agrees(models.diamond(), True)
    assert (criterion.name, criterion.value, criterion.offenders, criterion.note) == (
        "runnable",
        0,
        (),
        None,
    )


def test_check_runnable_type_without_kernel_fails_naming_the_node():
    model = single("Erf", "double", 13)
    model.graph.node[0].name = "erf"
    criterion = assert_runnable_agrees(model, False)
    assert criterion.value == 1
    assert criterion.offenders == (
        Offender(
            item="ai.onnx:Erf@13(tensor(double))",
            nodes=("erf",),
            detail="no kernel for these types (T: tensor(float))",
        ),
    )


def test_check_runnable_version_without_kernel_fails():
    model = parse("""<ir_version: 10, opset_import: ["" : 22]>
        g (float[1,1,4,4] x, float[1,4] rois, int64[1] i) => (float[1,1,1,1] y) {
            y = RoiAlign <output_height = 1, output_width = 1> (x, rois, i)
        }""")
    (offender,) = assert_runnable_agrees(model, False).offenders
    assert offender.item == "ai.onnx:RoiAlign@22(tensor(float),tensor(float),tensor(int64))"
    assert offender.detail == "no kernel for this version (kernels: 10-15, 16)"
    assert offender.nodes == ("main/0",)


def test_check_runnable_opset_newer_than_onnxruntime_fails_naming_the_nodes():
    newest = released_opsets()[""]
    model = single("Relu", "float", newest + 1)
    model.graph.node[0].name = "relu"
    criterion = assert_runnable_agrees(model, False)
    assert criterion.offenders == (
        Offender(
            item=f"opset ai.onnx={newest + 1}",
            nodes=("relu",),
            detail=f"onnxruntime {ort_version()} accepts ai.onnx up to {newest}",
        ),
    )


@pytest.mark.parametrize(("elem", "runs"), [("float16", True), ("bfloat16", False)])
def test_check_runnable_float16_runs_through_casts_but_bfloat16_does_not(elem, runs):
    model = single("Add", elem, 14, inputs=2)
    schema = resolve_schema("", "Add", 14)
    fp16 = ["tensor(float16)"] * 2
    assert not match_kernel(schema, fp16, fp16[:1], providers=[DEFAULT_PROVIDER]).found
    assert_runnable_agrees(model, runs)


def test_check_runnable_function_op_without_kernel_passes():
    model = single("Mish", "float", 18)
    schema = resolve_schema("", "Mish", 18)
    float_ = ["tensor(float)"]
    assert not match_kernel(schema, float_, float_, providers=[DEFAULT_PROVIDER]).found
    criterion = assert_runnable_agrees(model, True)
    assert criterion.note == "1 nodes without a kernel were checked by function body"


def test_check_runnable_function_body_without_kernel_fails():
    model = parse("""<ir_version: 8, opset_import: ["" : 13]>
        g (int16[2,2] x, int16 low) => (int16[2,2] y) { y = Clip(x, low) }""")
    (offender,) = assert_runnable_agrees(model, False).offenders
    assert offender.item == "ai.onnx:Where@9(tensor(bool),tensor(int16),tensor(int16))"
    assert offender.detail.endswith("(in the function body of Clip@13)")


@pytest.mark.parametrize(("opset", "runs"), [(24, True), (28, False)])
def test_check_runnable_function_body_of_an_older_opset_holds_only_while_its_ops_do(opset, runs):
    # Swish's body dates from opset 24; an op of it has a newer version at 28, so onnx (and
    # ONNX Runtime) refuse to expand it there, and Swish has no kernel.
    assert_runnable_agrees(single("Swish", "float", opset), runs)


@pytest.mark.parametrize("imported", [True, False])
def test_check_runnable_com_microsoft_op_passes(imported):
    opsets = '"" : 17, "com.microsoft" : 1' if imported else '"" : 17'
    model = parse(
        f"""<ir_version: 8, opset_import: [{opsets}]>
        g (float[2,2] x) => (float[2,2] y) {{ y = com.microsoft.Gelu(x) }}""",
        check=imported,
    )
    assert_runnable_agrees(model, True)


def test_check_runnable_invented_custom_domain_op_fails():
    (offender,) = assert_runnable_agrees(models.custom_domain(), False).offenders
    assert offender == Offender(
        item="com.example:Frobnicate@?(tensor(float))",
        nodes=("main/1",),
        detail=f"onnxruntime {ort_version()} has no schema for it at opset 1",
    )


def test_check_runnable_if_branches_are_checked():
    assert_runnable_agrees(models.if_subgraph(), True)
    (offender,) = assert_runnable_agrees(erf_double_in_then_branch(), False).offenders
    assert (offender.item, offender.nodes) == (
        "ai.onnx:Erf@13(tensor(double))",
        ("main/0/then_branch/0",),
    )


def test_check_runnable_loop_body_is_checked():
    assert_runnable_agrees(models.loop_subgraph(), True)


def test_check_runnable_local_functions_are_inlined():
    assert_runnable_agrees(models.local_function(), True)
    model = parse("""<ir_version: 8, opset_import: ["" : 17, "local" : 1]>
        g (double[4] x) => (double[4] y) { y = local.F(x) }
        <domain: "local", opset_import: ["" : 17]>
        F (a) => (b) { b = Erf(a) }""")
    (offender,) = assert_runnable_agrees(model, False).offenders
    assert (offender.item, offender.nodes) == ("ai.onnx:Erf@13(tensor(double))", ("main/0",))


def test_check_runnable_unknown_types_are_not_held_against_a_node():
    model = parse(
        """<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
        g (float[2,2] x) => (float[2,2] y) {
            g = com.microsoft.Gelu(x)
            y = Relu(g)
        }""",
        check=False,
    )
    criterion = assert_runnable_agrees(model, True)
    assert criterion.note == (
        "1 nodes were matched on op and version only: shape inference could not tell their types"
    )


def test_check_runnable_stripped_model_is_judged_like_the_original():
    model = single("Erf", "double", 13)
    assert check_runnable(strip_weights(models.with_weights(), keep_below_bytes=0)).passed is True
    assert check_runnable(strip_weights(model, keep_below_bytes=0)) == check_runnable(model)


def test_check_runnable_provider_without_kernels_is_not_evaluated():
    criterion = check_runnable(models.chain(), providers=("NoSuchExecutionProvider",))
    assert criterion.passed is None and criterion.offenders == ()
    assert (
        criterion.note
        == f"onnxruntime {ort_version()} lists no kernels for NoSuchExecutionProvider"
    )


def test_criteria_are_json():
    for criterion in (check_valid(models.chain()), check_runnable(erf_double_in_then_branch())):
        assert json.loads(json.dumps(criterion.to_dict())) == criterion.to_dict()
