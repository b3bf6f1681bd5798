"""CoreML conversion with real coremltools: op structure, package size, predictions' note.

coremltools converts on every platform but predicts only on macOS, so off macOS the prediction
result must say so in words. Importing coremltools imports TensorFlow, hence the slow marks.
"""

from __future__ import annotations

import sys

import pytest

from opseq.difftest.coreml import (
    NOT_ON_MACOS,
    convert_coreml,
    mlprogram_ops,
    package_size,
    predict_coreml,
)
from opseq.errors import ConfigError, MissingDependencyError
from opseq.sources.base import Framework, InputSpec, ModelCase, case_inputs

pytestmark = pytest.mark.slow


def _case(module, shape=(1, 4), case_id="linear"):
    return ModelCase(
        case_id=case_id,
        framework=Framework.TORCH,
        model=module.eval(),
        inputs=(InputSpec(name="x", shape=shape),),
    )


def _linear():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())


def test_torch_model_converts_to_an_ml_program(tmp_path):
    result = convert_coreml(_case(_linear()), keep_dir=tmp_path)
    assert result.converted and result.error is None and result.precision == "float32"
    assert result.ops == ("const", "const", "linear", "relu")
    assert result.path == tmp_path / "linear.mlpackage" and result.path.is_dir()
    assert result.size_bytes == package_size(result.path) > 0
    assert result.to_dict()["op_count"] == 4
    assert result.versions["coremltools"]


def test_float16_adds_the_casts_and_without_keep_dir_nothing_is_left(tmp_path):
    result = convert_coreml(_case(_linear()), precision="float16")
    assert result.ops == ("const", "const", "const", "cast", "linear", "relu", "const", "cast")
    assert result.path is None and result.size_bytes > 0


def test_nested_blocks_are_listed_after_their_op():
    import torch

    class Last(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = torch.nn.GRU(2, 3, batch_first=True)

        def forward(self, x):
            return self.gru(x)[0][:, -1]

    torch.manual_seed(0)
    result = convert_coreml(_case(Last(), shape=(1, 5, 2), case_id="gru"))
    assert result.converted
    loop = result.ops.index("while_loop")
    assert "sigmoid" in result.ops[loop:] and "sigmoid" not in result.ops[:loop]
    assert mlprogram_ops(result.mlmodel.get_spec()) == result.ops


def test_predictions_run_on_macos_only():
    case = _case(_linear())
    result = predict_coreml(convert_coreml(case), case_inputs(case, count=2, seed=0))
    if sys.platform == "darwin":
        assert result.ran and result.note is None and len(result.outputs) == 2
    else:
        assert not result.ran and result.outputs == ()
        assert result.note == NOT_ON_MACOS
        assert (
            result.note == "CoreML predictions not run: coremltools runs predictions only on macOS"
        )
        assert result.to_dict() == {"ran": False, "note": NOT_ON_MACOS, "sets": 0}


def test_a_failed_conversion_is_a_result():
    import torch

    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("cannot run")

    result = convert_coreml(_case(Broken(), case_id="broken"))
    assert not result.converted and result.error == "RuntimeError: cannot run"
    assert result.ops == () and result.size_bytes is None
    note = predict_coreml(result, []).note
    assert note == "not converted: RuntimeError: cannot run"


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown CoreML precision 'int8'"):
        convert_coreml(_case(_linear()), precision="int8")


def test_missing_coremltools_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "coremltools", None)  # import of it now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'opseq\[coreml\]'"):
        convert_coreml(_case(_linear()))
