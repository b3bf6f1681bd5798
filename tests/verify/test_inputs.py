from __future__ import annotations

import zipfile

import numpy as np
import pytest
from onnx import TensorProto

from opseq.errors import ConfigError
from opseq.sources.base import Framework, InputSpec
from opseq.verify.inputs import (
    check_feeds,
    declared_inputs,
    plan_from_npz,
    plan_seeded,
    read_npz,
)
from opseq.verify.source import SourceModel
from tests.verify.support import relu_model


def _source(**kwargs) -> SourceModel:
    return SourceModel(spec="m:f", framework=Framework.TORCH, model=object(), **kwargs)


def test_declared_inputs_static_symbolic_and_unknown_dims():
    model = relu_model(shape=(1, "batch", 3))
    model.graph.input[0].type.tensor_type.shape.dim.add()  # a dimension of unknown size
    (item,) = declared_inputs(model)
    assert item.name == "x" and item.dtype == np.float32
    assert item.shape == (1, "batch", 3, None)
    assert item.shown_shape() == "[1, batch, 3, ?]"


def test_one_npz_is_one_set_when_ranks_match(tmp_path):
    declared = declared_inputs(relu_model(shape=(1, 4)))
    plan = plan_from_npz({"x": np.ones((1, 4), np.float32)}, declared, path="a.npz")
    assert len(plan.feeds) == 1 and plan.origin == "npz"
    check_feeds(plan, declared)


def test_an_extra_leading_axis_holds_several_sets():
    declared = declared_inputs(relu_model(shape=(1, 4)))
    stacked = np.arange(12, dtype=np.float32).reshape(3, 1, 4)
    plan = plan_from_npz({"x": stacked}, declared, path="a.npz")
    assert len(plan.feeds) == 3
    assert np.array_equal(plan.feeds[2]["x"], stacked[2])
    assert plan.specs == (InputSpec(name="x", shape=(1, 4)),)
    assert plan.describe() == "3 input sets from a.npz"


def test_npz_keys_may_drop_a_tf_suffix():
    declared = declared_inputs(relu_model(name="x:0"))
    plan = plan_from_npz({"x": np.ones((1, 4), np.float32)}, declared, path="a.npz")
    check_feeds(plan, declared)


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"z": np.ones((1, 4), np.float32)}, "no array for the ONNX input 'x'"),
        ({"x": np.ones((4,), np.float32)}, "expected rank 2 (one input set) or 3"),
    ],
)
def test_npz_that_fits_no_input_is_refused(arrays, fragment):
    with pytest.raises(ConfigError, match=r"--inputs a\.npz") as info:
        plan_from_npz(arrays, declared_inputs(relu_model()), path="a.npz")
    assert fragment in str(info.value)


def test_sets_must_agree_on_their_count():
    model = relu_model()
    model.graph.input.append(model.graph.input[0])
    model.graph.input[1].name = "w"
    arrays = {"x": np.ones((2, 1, 4), np.float32), "w": np.ones((3, 1, 4), np.float32)}
    with pytest.raises(ConfigError, match="as many in every array"):
        plan_from_npz(arrays, declared_inputs(model), path="a.npz")


@pytest.mark.parametrize(
    ("array", "fragment"),
    [
        (np.ones((1, 4), np.float64), "dtype float64, the ONNX model declares float32"),
        (np.ones((1, 5), np.float32), "shape [1, 5], the ONNX model declares [1, 4]"),
    ],
)
def test_check_feeds_names_dtype_and_shape_problems(array, fragment):
    declared = declared_inputs(relu_model())
    plan = plan_from_npz({"x": array}, declared, path="a.npz")
    with pytest.raises(ConfigError, match="input 'x'") as info:
        check_feeds(plan, declared)
    assert fragment in str(info.value)


def test_symbolic_dims_need_given_inputs():
    declared = declared_inputs(relu_model(shape=("batch", 4)))
    with pytest.raises(ConfigError) as info:
        plan_seeded(_source(), declared, count=2, seed=0)
    message = str(info.value)
    assert "'x'" in message and "symbolic dimension 'batch'" in message and "--inputs" in message


def test_seeded_sets_from_declared_specs_and_examples():
    declared = declared_inputs(relu_model(shape=(2, 3)))
    plan = plan_seeded(_source(), declared, count=4, seed=1)
    assert plan.origin == "onnx-declared" and len(plan.feeds) == 4
    assert plan.feeds[0]["x"].shape == (2, 3) and plan.feeds[0]["x"].dtype == np.float32
    again = plan_seeded(_source(), declared, count=4, seed=1)
    assert np.array_equal(again.feeds[3]["x"], plan.feeds[3]["x"])
    specs = (InputSpec(name="x", shape=(2, 3)),)
    assert plan_seeded(_source(specs=specs), declared, count=1, seed=0).origin == "factory-specs"
    ids = np.array([[3, 9, 5]], np.int64)
    int_model = declared_inputs(relu_model(shape=(1, 3), dtype=TensorProto.INT64))
    drawn = plan_seeded(_source(examples=(ids,)), int_model, count=20, seed=0)
    assert drawn.origin == "factory-examples"
    values = np.concatenate([f["x"] for f in drawn.feeds])
    assert values.min() >= 3 and values.max() <= 9


def test_positional_examples_must_match_the_inputs_in_number():
    declared = declared_inputs(relu_model())
    examples = (np.ones((1, 4), np.float32), np.ones((1, 4), np.float32))
    with pytest.raises(ConfigError, match="2 example inputs by position"):
        plan_seeded(_source(examples=examples), declared, count=1, seed=0)


def test_read_npz_keeps_order(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, b=np.zeros(1), a=np.ones(2))
    assert list(read_npz(path, flag="--inputs")) == ["b", "a"]


def _corrupt(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x=np.zeros(1000))
    data = bytearray(path.read_bytes())
    data[100:140] = b"\xff" * 40
    path.write_bytes(bytes(data))
    return path


def _pickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([{"evil": 1}], dtype=object))
    return path


def _npy(tmp_path):
    path = tmp_path / "one.npz"
    with open(path, "wb") as stream:
        np.save(stream, np.zeros(3))
    return path


def _text(tmp_path):
    path = tmp_path / "text.npz"
    path.write_text("not a zip")
    return path


def _empty_zip(tmp_path):
    path = tmp_path / "empty.npz"
    with zipfile.ZipFile(path, "w"):
        pass
    return path


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (_corrupt, "cannot read it as .npz"),
        (_pickled, "Object arrays cannot be loaded"),
        (_npy, "not an .npz archive"),
        (_text, "cannot read it as .npz"),
        (_empty_zip, "holds no arrays"),
        (lambda tmp_path: tmp_path / "missing.npz", "No such file"),
        (lambda tmp_path: tmp_path, "not a regular file"),
    ],
)
def test_read_npz_refuses_bad_files_in_one_line(tmp_path, make, fragment):
    with pytest.raises(ConfigError) as info:
        read_npz(make(tmp_path), flag="--inputs")
    message = str(info.value)
    assert fragment in message and "\n" not in message and message.startswith("--inputs ")


def test_edge_sets_keep_set_zero_and_reach_the_corners():
    declared = declared_inputs(relu_model(shape=(16, 16)))
    normal = plan_seeded(_source(), declared, count=4, seed=2)
    edge = plan_seeded(_source(), declared, count=4, seed=2, strategy="edge")
    assert np.array_equal(edge.feeds[0]["x"], normal.feeds[0]["x"])
    assert np.isnan(edge.feeds[1]["x"]).any() and not np.isnan(normal.feeds[1]["x"]).any()
    assert edge.to_dict()["strategy"] == "edge"
    assert edge.describe() == (
        "4 input sets drawn with seed 2 (edge values) from the ONNX model's declared inputs"
    )
