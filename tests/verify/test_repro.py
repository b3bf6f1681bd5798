from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from opseq.verify.repro import BundleRefused, default_bundle_dir, write_bundle
from tests.verify.support import relu_model, synthetic_report


def _write(target: Path, *, force: bool = False, value: float = 1.0) -> Path:
    return write_bundle(
        target,
        report=synthetic_report(),
        model=relu_model(),
        external=(),
        inputs={"x": np.full((1, 4), value, np.float32)},
        expected=[np.full((1, 4), value, np.float32)],
        output_names=["y"],
        input_set=0,
        force=force,
    )


def _load(path: Path) -> np.ndarray:
    return numpy_helper.to_array(onnx.load_tensor(str(path)))


def test_bundle_layout_replays_with_the_reference_evaluator(tmp_path):
    from onnx.reference import ReferenceEvaluator

    bundle = _write(tmp_path / "b", value=-2.0)
    assert sorted(p.name for p in bundle.iterdir()) == [
        "README.txt", "model.onnx", "test_data_set_0", "verdict.json"
    ]  # fmt: skip
    data = bundle / "test_data_set_0"
    x = _load(data / "input_0.pb")
    assert onnx.load_tensor(str(data / "input_0.pb")).name == "x"
    (y,) = ReferenceEvaluator(str(bundle / "model.onnx")).run(None, {"x": x})
    assert np.array_equal(y, np.zeros((1, 4), np.float32))  # Relu(-2)
    assert np.array_equal(_load(data / "output_0.pb"), x)  # the expected outputs, as given
    verdict = json.loads((bundle / "verdict.json").read_text())
    assert verdict["verdict"] == "semantic" and verdict["bundle"]["input_set"] == 0
    readme = (bundle / "README.txt").read_text()
    assert "passing needs --headroom >= 225" in readme and "test_data_set_0" in readme
    assert not list(tmp_path.glob(".b.*"))


def test_existing_directory_is_kept_without_force(tmp_path):
    target = tmp_path / "b"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(BundleRefused, match="exists and is not empty"):
        _write(target)
    with pytest.raises(BundleRefused, match="not an opseq repro bundle"):
        _write(target, force=True)
    assert (target / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_force_replaces_an_earlier_bundle_whole(tmp_path):
    target = tmp_path / "b"
    _write(target, value=1.0)
    with pytest.raises(BundleRefused):
        _write(target, value=2.0)
    _write(target, force=True, value=3.0)
    assert _load(target / "test_data_set_0" / "input_0.pb")[0, 0] == 3.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_an_empty_directory_is_used_and_a_file_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert (_write(tmp_path / "empty") / "model.onnx").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleRefused, match="not a directory"):
        _write(tmp_path / "file", force=True)


def test_default_bundle_dir_is_beside_the_report_or_here(tmp_path):
    assert default_bundle_dir(Path("a/m.onnx"), None) == Path("opseq-repro-m")
    assert default_bundle_dir(Path("m.onnx"), tmp_path / "r.json") == tmp_path / "opseq-repro-m"
