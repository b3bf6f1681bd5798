from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from opseq.errors import UnsupportedModelError
from opseq.verify.external import check_external_data, external_tensors, session_from_path
from tests.verify.support import conv_model, with_external_weights

WEIGHT_BYTES = 2 * 3 * 3 * 3 * 4


def _write(directory, location: str, *, data: bool = True):
    directory.mkdir(parents=True, exist_ok=True)
    model = with_external_weights(conv_model(), location)
    path = directory / "model.onnx"
    path.write_bytes(model.SerializeToString())
    if data:
        target = directory / location
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(np.full((2, 3, 3, 3), 0.1, np.float32).tobytes())
    return model, path


def test_no_external_data_is_no_locations():
    assert check_external_data(conv_model(), Path("m.onnx")) == ()


def test_plain_names_inside_the_directory_pass_and_run(tmp_path):
    model, path = _write(tmp_path / "m", "weights/w.bin")
    assert check_external_data(model, path) == ("weights/w.bin",)
    session = session_from_path(path)
    x = np.ones((1, 3, 5, 5), np.float32)
    (y,) = session.run(None, {"x": x})
    assert np.allclose(y, 2.7, atol=1e-5)


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("../w.bin", "leaves the model's directory"),
        ("/etc/passwd", "is an absolute path"),
        ("C:\\w.bin", "is an absolute path"),
        ("", "is not a file name"),
        ("missing.bin", "does not exist"),
    ],
)
def test_locations_outside_or_missing_are_refused(tmp_path, location, fragment):
    model, path = _write(tmp_path / "m", location, data=False)
    (tmp_path / "w.bin").write_bytes(b"\0" * WEIGHT_BYTES)
    with pytest.raises(UnsupportedModelError) as info:
        check_external_data(model, path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_symbolic_link_escaping_the_directory_is_refused(tmp_path):
    model, path = _write(tmp_path / "m", "w.bin", data=False)
    outside = tmp_path / "secret.bin"
    outside.write_bytes(b"\0" * WEIGHT_BYTES)
    os.symlink(outside, tmp_path / "m" / "w.bin")
    with pytest.raises(UnsupportedModelError, match="resolves outside the model's directory"):
        check_external_data(model, path)


def test_a_link_inside_the_directory_is_fine(tmp_path):
    model, path = _write(tmp_path / "m", "w.bin", data=False)
    (tmp_path / "m" / "real.bin").write_bytes(b"\0" * WEIGHT_BYTES)
    os.symlink("real.bin", tmp_path / "m" / "w.bin")
    assert check_external_data(model, path) == ("w.bin",)


def test_a_directory_or_a_short_file_is_refused(tmp_path):
    model, path = _write(tmp_path / "m", "w.bin", data=False)
    (tmp_path / "m" / "w.bin").mkdir()
    with pytest.raises(UnsupportedModelError, match="not a regular file"):
        check_external_data(model, path)
    model, path = _write(tmp_path / "n", "w.bin", data=False)
    (tmp_path / "n" / "w.bin").write_bytes(b"\0" * 8)
    with pytest.raises(UnsupportedModelError, match=f"claims bytes 0..{WEIGHT_BYTES}"):
        check_external_data(model, path)


def test_external_tensors_in_attributes_and_subgraphs_are_found():
    tensor = onnx.helper.make_tensor("k", onnx.TensorProto.FLOAT, [1], [1.0])
    tensor.ClearField("float_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../k.bin")
    const = onnx.helper.make_node("Constant", [], ["y"], value=tensor)
    body = onnx.helper.make_graph([const], "body", [], [onnx.helper.make_tensor_value_info(
        "y", onnx.TensorProto.FLOAT, [1])])  # fmt: skip
    node = onnx.helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    graph = onnx.helper.make_graph([node], "g", [], [])
    model = onnx.helper.make_model(graph)
    assert len(list(external_tensors(model))) == 2
