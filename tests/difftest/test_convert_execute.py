"""Converters and runners on tiny models: the converted model computes what the framework does."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest

from opseq.difftest.convert import (
    CONVERTERS,
    Converter,
    default_opset,
    get_converter,
)
from opseq.difftest.execute import (
    create_session,
    graph_input_names,
    median_latency_ms,
    run_framework,
    run_onnxruntime,
    run_reference,
    select_feeds,
)
from opseq.errors import ConfigError, MissingDependencyError
from opseq.sources.base import Framework, InputSpec, ModelCase, make_inputs

TORCH_CONVERTERS = ["torch.onnx-torchscript", "torch.onnx-dynamo"]


def _assert_all_close(expected, actual, *, atol=1e-5):
    assert len(expected) == len(actual)
    for exp_set, act_set in zip(expected, actual, strict=True):
        assert len(exp_set) == len(act_set)
        for e, a in zip(exp_set, act_set, strict=True):
            assert e.dtype == a.dtype and e.shape == a.shape
            np.testing.assert_allclose(a, e, atol=atol, rtol=0)


def _convert_and_run(case: ModelCase, converter_name: str, *, opset: int = 17):
    model = get_converter(converter_name).convert(case, opset=opset)
    onnx.checker.check_model(model)
    feeds = make_inputs(case.inputs, count=3, seed=1)
    expected = run_framework(case, feeds)
    return model, feeds, expected, run_onnxruntime(create_session(model), feeds)


@pytest.fixture
def torch_case() -> ModelCase:
    """Two inputs, one unused (exporters drop it); nested dict/tuple output with a None."""
    torch = pytest.importorskip("torch")

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(6, 4)

        def forward(self, x, unused):
            hidden = torch.tanh(self.linear(x))
            return {"hidden": hidden, "rest": (None, hidden.sum(dim=-1), x.argmax(dim=-1))}

    torch.manual_seed(0)
    specs = (InputSpec(name="x", shape=(2, 6)), InputSpec(name="unused", shape=(3,)))
    return ModelCase(case_id="tiny", framework=Framework.TORCH, model=Tiny().eval(), inputs=specs)


@pytest.mark.torch
@pytest.mark.parametrize("converter_name", TORCH_CONVERTERS)
def test_torch_converters_outputs_agree_with_framework(torch_case, converter_name):
    model, feeds, expected, actual = _convert_and_run(torch_case, converter_name)
    assert graph_input_names(model) in (["x"], ["x", "unused"])
    assert [a.dtype.name for a in expected[0]] == ["float32", "float32", "int64"]
    _assert_all_close(expected, actual)
    _assert_all_close(expected, run_reference(model, feeds))
    assert model.producer_name == "pytorch"
    # dynamo implements opset >= 18 and converts down; it may keep 18 (module docstring)
    assert default_opset(model) in (17, 18)


@pytest.mark.torch
def test_torchscript_converter_honours_opset(torch_case):
    model = get_converter("torch.onnx-torchscript").convert(torch_case, opset=13)
    assert default_opset(model) == 13


@pytest.mark.tf
def test_tf2onnx_keras_model_outputs_agree_with_framework():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    # Named layers: Keras numbers unnamed ones per process ("add_1" after another test's "add").
    dense = keras.layers.Dense(2, activation="tanh", name="dense")(a)
    model = keras.Model([a, b], [dense, keras.layers.Add(name="add")([a, b])])
    specs = (InputSpec(name="a", shape=(1, 3)), InputSpec(name="b", shape=(1, 3)))
    case = ModelCase(case_id="k", framework=Framework.TENSORFLOW, model=model, inputs=specs)
    onnx_model, _, expected, actual = _convert_and_run(case, "tf2onnx")
    assert onnx_model.producer_name == "tf2onnx" and default_opset(onnx_model) == 17
    assert [o.name for o in onnx_model.graph.output] == ["dense", "add"]
    _assert_all_close(expected, actual)


@pytest.mark.tf
def test_tf2onnx_tf_function_dict_outputs_flattened_in_key_order():
    from opseq.difftest.execute import import_tensorflow

    tf = import_tensorflow()

    @tf.function
    def fn(x, y):
        return {"sum": x + y, "prod": x * y}

    specs = (InputSpec(name="x", shape=(4,)), InputSpec(name="y", shape=(4,)))
    case = ModelCase(case_id="f", framework=Framework.TENSORFLOW, model=fn, inputs=specs)
    onnx_model, feeds, expected, actual = _convert_and_run(case, "tf2onnx")
    assert [o.name for o in onnx_model.graph.output] == ["prod", "sum"]
    np.testing.assert_array_equal(expected[0][0], feeds[0]["x"] * feeds[0]["y"])
    _assert_all_close(expected, actual)


def test_get_converter_unknown_name_config_error():
    with pytest.raises(ConfigError, match=r"unknown converter 'nope'; known: .*tf2onnx"):
        get_converter("nope")


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("torch.onnx-torchscript", "torch"),
        ("torch.onnx-dynamo", "torch"),
        ("tf2onnx", "tensorflow"),
    ],
)
def test_get_converter_missing_framework_names_extra(monkeypatch, name, extra):
    monkeypatch.setattr(importlib.util, "find_spec", lambda _name, *args: None)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'opseq\[{extra}\]'"):
        get_converter(name)


def test_converters_registry_follows_protocol():
    assert set(CONVERTERS) == {"torch.onnx-torchscript", "torch.onnx-dynamo", "tf2onnx"}
    for name, converter in CONVERTERS.items():
        assert isinstance(converter, Converter) and converter.name == name
    assert CONVERTERS["tf2onnx"].framework is Framework.TENSORFLOW
    assert set(CONVERTERS["torch.onnx-dynamo"].versions()) == {"torch", "onnxscript"}
    assert {"tensorflow", "tf2onnx"} <= set(CONVERTERS["tf2onnx"].versions())


def test_select_feeds_by_name_suffix_and_position():
    x, y = np.zeros(1), np.ones(1)
    feed = {"x": x, "y": y}
    assert select_feeds(["y"], feed) == {"y": y}
    assert select_feeds(["x:0"], feed)["x:0"] is x
    assert select_feeds(["first", "second"], feed)["second"] is y
    with pytest.raises(ValueError, match=r"cannot feed ONNX inputs \['z'\]"):
        select_feeds(["z"], feed)


ADD_WITH_INITIALIZER_INPUT = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[3] x, float[3] w) => (float[3] y) <float[3] w = {1.0, 2.0, 3.0}> {
    y = Add(x, w)
}"""


def test_runners_feed_only_declared_inputs_not_initializers():
    model = onnx.parser.parse_model(ADD_WITH_INITIALIZER_INPUT)
    assert graph_input_names(model) == ["x"]
    feeds = [{"x": np.ones(3, np.float32)}]
    expected = np.array([2.0, 3.0, 4.0], np.float32)
    for optimize in (True, False):
        (outputs,) = run_onnxruntime(create_session(model, optimize=optimize), feeds)
        np.testing.assert_array_equal(outputs[0], expected)
    np.testing.assert_array_equal(run_reference(model, feeds)[0][0], expected)


def test_create_session_optimisation_level():
    import onnxruntime as ort

    model = onnx.parser.parse_model(ADD_WITH_INITIALIZER_INPUT)
    levels = ort.GraphOptimizationLevel
    for optimize, level in ((True, levels.ORT_ENABLE_ALL), (False, levels.ORT_DISABLE_ALL)):
        options = create_session(model, optimize=optimize).get_session_options()
        assert options.graph_optimization_level == level
        assert options.intra_op_num_threads == 1


def test_median_latency_ms_calls_repeats_times():
    calls = []
    latency = median_latency_ms(lambda: calls.append(1), repeats=4)
    assert len(calls) == 4 and 0.0 <= latency < 1000.0
    with pytest.raises(ValueError, match="repeats"):
        median_latency_ms(lambda: None, repeats=0)
