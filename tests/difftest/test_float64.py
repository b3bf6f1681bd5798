"""The float64 twin: same weights, float64 throughout, or a reason why not."""

from __future__ import annotations

import numpy as np
import pytest

from opseq.difftest.execute import run_framework
from opseq.difftest.float64 import float64_twin, run_float64
from opseq.sources import get_source
from opseq.sources.base import Framework, InputSpec, ModelCase, make_inputs


def _outputs(case: ModelCase, count: int = 2):
    feeds = make_inputs(case.inputs, count=count, seed=0)
    return feeds, run_framework(case, feeds)


@pytest.mark.torch
def test_synthetic_torch_twin_casts_to_float64_where_the_model_casts_to_float32():
    source = get_source("synthetic-torch")
    case = source.build("n050-s000000", seed=0)  # its graph casts to float32 on the way
    assert any(node.op == "Cast" for node in source.graph("n050-s000000").nodes)
    feeds, framework = _outputs(case)
    reference = run_float64(case, feeds, framework)
    assert reference.note is None
    for twin_set, framework_set in zip(reference.outputs, framework, strict=True):
        for twin, output in zip(twin_set, framework_set, strict=True):
            if output.dtype.kind == "f":
                assert twin.dtype == np.float64
            else:
                assert twin.dtype == output.dtype


@pytest.mark.torch
def test_generic_torch_twin_is_a_double_copy_and_leaves_the_model_alone():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh()).eval()
    case = ModelCase(
        case_id="mlp",
        framework=Framework.TORCH,
        model=model,
        inputs=(InputSpec(name="x", shape=(2, 4)),),
    )
    twin = float64_twin(case)
    assert next(twin.model.parameters()).dtype == torch.float64
    assert next(model.parameters()).dtype == torch.float32  # a copy
    feeds, framework = _outputs(case)
    reference = run_float64(case, feeds, framework)
    assert reference.note is None
    (first,) = reference.outputs[0]
    assert first.dtype == np.float64
    assert np.max(np.abs(first - framework[0][0])) < 1e-6  # the same function, more digits


@pytest.mark.torch
def test_a_twin_that_still_computes_in_float32_is_unavailable_with_the_reason():
    torch = pytest.importorskip("torch")

    class Float32Inside(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x.float())

    case = ModelCase(
        case_id="f32",
        framework=Framework.TORCH,
        model=Float32Inside().eval(),
        inputs=(InputSpec(name="x", shape=(2,)),),
    )
    feeds, framework = _outputs(case)
    reference = run_float64(case, feeds, framework)
    assert reference.outputs is None
    assert reference.note == "float64 unavailable: output 0 is still computed in float32"


@pytest.mark.torch
def test_a_twin_that_raises_is_unavailable_with_the_error():
    def broken():
        raise RuntimeError("no float64 kernel")

    torch = pytest.importorskip("torch")
    case = ModelCase(
        case_id="broken",
        framework=Framework.TORCH,
        model=torch.nn.ReLU(),
        inputs=(InputSpec(name="x", shape=(2,)),),
        float64_model=broken,
    )
    feeds, framework = _outputs(case)
    reference = run_float64(case, feeds, framework)
    assert reference.note == "float64 unavailable: RuntimeError: no float64 kernel"


@pytest.mark.tf
def test_keras_twin_computes_in_float64_with_the_same_weights():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(4,), batch_size=2, name="x")
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    flag = keras.ops.cast(keras.ops.argmax(hidden, axis=-1), "int64")  # an integer cast stays
    model = keras.Model(inputs, [keras.layers.Dense(3)(hidden), flag])
    case = ModelCase(
        case_id="dense", framework=Framework.TENSORFLOW, model=model,
        inputs=(InputSpec(name="x", shape=(2, 4)),),
    )  # fmt: skip
    feeds, framework = _outputs(case)
    reference = run_float64(case, feeds, framework)
    assert reference.note is None
    values, index = reference.outputs[0]
    assert values.dtype == np.float64 and index.dtype == np.int64
    assert np.max(np.abs(values - framework[0][0])) < 1e-5


@pytest.mark.tf
def test_a_tf_function_without_a_twin_says_so():
    tf = pytest.importorskip("tensorflow")

    @tf.function
    def double(x):
        return x * 2.0

    case = ModelCase(
        case_id="fn", framework=Framework.TENSORFLOW, model=double,
        inputs=(InputSpec(name="x", shape=(2,)),),
    )  # fmt: skip
    feeds, framework = _outputs(case)
    reference = run_float64(case, feeds, framework)
    assert "a tf.function has no float64 twin" in reference.note
