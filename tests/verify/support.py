"""Shared pieces of the verify tests: the shipped example, factories written to files, exports."""

from __future__ import annotations

import importlib.util
import io
import textwrap
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "corpus" / "examples" / "verify_example.py"
EXAMPLE_SPEC = f"{EXAMPLE}:tiny_cnn"


def example_module():
    """corpus/examples/verify_example.py, imported from its file."""
    spec = importlib.util.spec_from_file_location("verify_example_for_tests", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def export_example(path: Path, *, bug: bool = False) -> Path:
    """The shipped example exported to `path` (with the planted bug if asked)."""
    example_module().export(path, bug=bug)
    return path


def write_factory(directory: Path, body: str, name: str = "factory.py") -> Path:
    """Write a Python file with `body` (dedented) and return its path."""
    path = directory / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def torch_export(model, args: tuple, path: Path, **kwargs) -> Path:
    """torch.onnx.export with the TorchScript exporter (dynamo=False), opset 17, to `path`."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, args, buffer, dynamo=False, opset_version=17, **kwargs)
    path.write_bytes(buffer.getvalue())
    return path


def change_softmax_axis(path: Path, axis: int = 0) -> Path:
    """Graph surgery: the model's Softmax normalises over `axis` instead."""
    model = onnx.load(str(path))
    (node,) = [n for n in model.graph.node if n.op_type == "Softmax"]
    for attr in node.attribute:
        if attr.name == "axis":
            attr.i = axis
            break
    else:
        node.attribute.append(helper.make_attribute("axis", axis))
    onnx.save(model, str(path))
    return path


def relu_model(shape=(1, 4), dtype=TensorProto.FLOAT, name: str = "x") -> onnx.ModelProto:
    """A one-node model y = Relu(x) with the declared input shape (ints or symbolic names)."""
    graph = helper.make_graph(
        [helper.make_node("Relu", [name], ["y"])],
        "relu",
        [helper.make_tensor_value_info(name, dtype, list(shape))],
        [helper.make_tensor_value_info("y", dtype, list(shape))],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


RELU_FACTORY = """
    import torch

    def relu():
        return torch.nn.ReLU()
"""


def with_external_weights(model: onnx.ModelProto, location: str) -> onnx.ModelProto:
    """A copy whose first initializer names `location` as its external data (file not written)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    tensor = copy.graph.initializer[0]
    size = len(tensor.raw_data) or numpy_helper.to_array(tensor).nbytes
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(size))):
        tensor.external_data.add(key=key, value=value)
    return copy


def conv_model() -> onnx.ModelProto:
    """Conv(3->2, 3x3, weight 0.1, bias 0), Relu, over 1x3x5x5; its torch twin: CONV_FACTORY."""
    weight = numpy_helper.from_array(np.full((2, 3, 3, 3), 0.1, np.float32), "W")
    bias = numpy_helper.from_array(np.zeros(2, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W", "B"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
        [weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


CONV_FACTORY = """
    import torch

    def conv():
        layer = torch.nn.Conv2d(3, 2, 3)
        with torch.no_grad():
            layer.weight.fill_(0.1)
            layer.bias.zero_()
        return torch.nn.Sequential(layer, torch.nn.ReLU())
"""


def synthetic_report(names=("probs",), *, onnx_error: float = 900.0, sets: int = 10):
    """A VerifyReport from made-up measurements (framework error 3 units), no framework needed."""
    from opseq.difftest.calibration import Calibration
    from opseq.difftest.compare import compare_outputs, merge_comparisons
    from opseq.difftest.measure import OutputErrors
    from opseq.sources.base import InputSpec
    from opseq.tolerance import CalibratedRule
    from opseq.verify.inputs import InputPlan
    from opseq.verify.report import VerifyReport, output_reports

    one = OutputErrors(kind="float", framework_error=3.0, onnx_error=onnx_error)
    errors = tuple(tuple(one for _ in names) for _ in range(sets))
    rule = CalibratedRule()
    calibration = Calibration(rule=rule, verdict=rule.judge(errors), errors=errors, names=names)
    expected = [np.zeros(2, np.float32) for _ in names]
    actual = [np.full(2, 1e-3, np.float32) for _ in names]
    comparisons = merge_comparisons([compare_outputs(expected, actual, names=names)] * sets)
    plan = InputPlan(
        specs=(InputSpec(name="x", shape=(2,)),),
        feeds=({"x": np.zeros(2, np.float32)},),
        origin="factory-specs",
        seed=0,
    )
    semantic = calibration.verdict.semantic_sets > 0
    return VerifyReport(
        model="m.onnx",
        source="f.py:m",
        framework="torch",
        inputs=plan,
        calibration=calibration,
        outputs=output_reports(calibration, comparisons),
        first_semantic_set=0 if semantic else None,
    )
