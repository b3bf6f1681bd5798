"""``opseq verify --attack``: bad input (exit 2, one line) and end to end on torch and Keras."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from opseq.cli import main
from tests.cli.errors import assert_one_error_line
from tests.verify.support import RELU_FACTORY, relu_model, write_factory
from tests.verify.test_attack import (
    EPS,
    LINEAR_FACTORY,
    X,
    Y,
    keras_linear,
    torch_linear,
    torch_onnx,
)


def run(capsys, *argv):
    code = main(["verify", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture
def relu(tmp_path, save):
    """A Relu model over float[1, 4], its torch twin's factory, and labelled data in [0, 1]."""
    data = _npz(tmp_path / "data.npz", x=X[4:5], y=Y[4:5])  # x in [0, 1]
    return save(relu_model()), f"{write_factory(tmp_path, RELU_FACTORY)}:relu", data


def test_the_parser_mirrors_the_attack_module():
    from opseq.cli import verify as cli
    from opseq.verify import attack

    assert cli.METHODS == attack.METHODS
    assert cli.DEFAULT_PGD_STEPS == attack.DEFAULT_PGD_STEPS


# --- bad input: exit 2, one line on stderr; none of these imports a framework ----------------


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--eps", "0"], "--eps 0: must be a positive finite number"),
        (["--eps", "-0.5"], "--eps -0.5: must be a positive finite number"),
        (["--eps", "nan"], "--eps nan: must be a positive finite number"),
        (["--eps", "2"], "--eps 2: larger than the data range [0, 1] (max - min = 1)"),
        (["--eps", "0.1", "--steps", "3"],
         "--steps applies to --attack pgd; FGSM takes one step of size --eps"),
        (["--eps", "0.1", "--step-size", "0.01"], "--step-size applies to --attack pgd"),
        ([], "--attack fgsm needs --eps E"),
    ],
)  # fmt: skip
def test_bad_attack_parameters(capsys, relu, extra, fragment):
    model, spec, data = relu
    code, _, err = run(capsys, model, "--source", spec, "--data", data, "--attack", "fgsm", *extra)
    assert code == 2
    assert_one_error_line(err, fragment)


@pytest.mark.parametrize(
    ("y", "fragment"),
    [
        (np.array([1.5]), "y[0] = 1.5 is not a whole number"),
        (np.array([np.nan]), "y[0] = nan is not a whole number"),
        (np.array([[1]]), "'y' must be one integer label per sample, got int64 of shape [1, 1]"),
        (np.array([1, 0]), "'y' has 2 labels, 'x' has 1 samples"),
        (np.array(["a"]), "array 'y' has dtype <U1; expected numbers"),
    ],
)
def test_bad_labels(capsys, tmp_path, relu, y, fragment):
    model, spec, _ = relu
    data = _npz(tmp_path / "bad.npz", x=X[4:5], y=y)
    code, _, err = run(
        capsys, model, "--source", spec, "--data", data, "--attack", "pgd", "--eps", "0.1"
    )
    assert code == 2
    assert_one_error_line(err, fragment)


def test_attack_needs_data_and_labels(capsys, tmp_path, relu):
    model, spec, _ = relu
    code, _, err = run(capsys, model, "--source", spec, "--attack", "fgsm", "--eps", "0.1")
    assert code == 2
    assert_one_error_line(err, "--attack fgsm needs --data FILE.npz with samples 'x' and labels")
    unlabelled = _npz(tmp_path / "x.npz", x=X[4:5])
    code, _, err = run(capsys, model, "--source", spec, "--data", unlabelled, "--attack", "fgsm",
                       "--eps", "0.1")  # fmt: skip
    assert code == 2
    assert_one_error_line(err, f"needs labels: --data {unlabelled} has no array 'y'")
    nan = _npz(tmp_path / "nan.npz", x=np.full((1, 4), np.nan, np.float32), y=Y[4:5])
    code, _, err = run(capsys, model, "--source", spec, "--data", nan, "--attack", "fgsm",
                       "--eps", "0.1")  # fmt: skip
    assert code == 2
    assert_one_error_line(err, "'x' holds NaN or an infinity, so it has no data range")


def test_attack_seed_without_random_start(capsys, relu):
    model, spec, data = relu
    code, _, err = run(capsys, model, "--source", spec, "--data", data, "--attack", "pgd",
                       "--eps", "0.1", "--attack-seed", "3")  # fmt: skip
    assert code == 2
    assert_one_error_line(err, "--attack-seed seeds --random-start, which was not given")


@pytest.mark.parametrize("flag", [["--eps", "0.1"], ["--steps", "3"], ["--random-start"]])
def test_attack_options_without_attack(capsys, relu, flag):
    model, spec, data = relu
    code, _, err = run(capsys, model, "--source", spec, "--data", data, *flag)
    assert code == 2
    assert_one_error_line(err, f"{flag[0]} applies only with --attack fgsm|pgd")


def test_an_onnx_model_as_source_has_no_gradients(capsys, relu):
    model, _, data = relu
    code, _, err = run(capsys, model, "--source", model, "--data", data, "--attack", "fgsm",
                       "--eps", "0.1")  # fmt: skip
    assert code == 2
    assert_one_error_line(
        err, "--attack needs gradients of the source model", f"--source {model} is an ONNX "
        "model, which has none; give the torch or Keras model it was converted from"
    )  # fmt: skip


def test_a_factory_returning_no_framework_model_is_refused(capsys, tmp_path, relu):
    model, _, data = relu
    factory = write_factory(tmp_path, """
        import onnx

        def exported():
            return onnx.load(__file__.replace("ort_factory.py", "model.onnx"))
    """, "ort_factory.py")  # fmt: skip
    code, _, err = run(capsys, model, "--source", f"{factory}:exported", "--data", data,
                       "--attack", "fgsm", "--eps", "0.1")  # fmt: skip
    assert code == 2
    assert_one_error_line(err, "neither a torch.nn.Module nor a Keras model")


@pytest.mark.torch
def test_a_torch_model_without_input_gradient_is_refused(capsys, tmp_path, relu):
    model, _, data = relu
    factory = write_factory(tmp_path, """
        import torch

        class Detached(torch.nn.Module):
            def forward(self, x):
                return torch.relu(x).detach()

        def detached():
            return Detached()
    """, "detached.py")  # fmt: skip
    code, _, err = run(capsys, model, "--source", f"{factory}:detached", "--data", data,
                       "--attack", "fgsm", "--eps", "0.1")  # fmt: skip
    assert code == 2
    assert_one_error_line(err, "the source model has no gradient with respect to its input")


# --- end to end -------------------------------------------------------------------------------


@pytest.fixture
def linear(tmp_path):
    """The two-class linear torch model of tests/verify/test_attack.py: factory, export, data."""
    factory = write_factory(tmp_path, LINEAR_FACTORY, "linear.py")
    data = _npz(tmp_path / "data.npz", x=np.repeat(X[:4], 6, 0), y=np.repeat(Y[:4], 6))
    return factory, data


@pytest.mark.torch
def test_torch_end_to_end_exact_export(capsys, tmp_path, linear):
    factory, data = linear
    path = torch_onnx(torch_linear(), tmp_path / "linear.onnx")
    argv = [path, "--source", f"{factory}:linear", "--data", data, "--attack", "fgsm",
            "--eps", str(EPS)]  # fmt: skip
    code, out, err = run(capsys, *argv, "--format", "json")
    assert code == 0, err
    robustness = json.loads(out)["robustness"]
    assert robustness["attack"]["method"] == "fgsm" and robustness["attack"]["clip"] == [0, 0.75]
    assert robustness["samples"] == 24 and robustness["scores"] == "logits"
    assert robustness["clean_accuracy"] == {"source": 1.0, "onnx": 1.0}
    assert robustness["adversarial_accuracy"] == {"source": 1.0, "onnx": 1.0}
    assert robustness["adversarial_agreement"] == 1.0 and robustness["transfer_gap"] == 0.0
    assert robustness["mcnemar"] == {"b": 0, "c": 0, "p_value": 1.0}
    assert robustness["verdict"]["answer"] == "no" and robustness["verdict"]["direction"] == "equal"
    assert robustness["max_perturbation"] == EPS
    code, out, _ = run(capsys, *argv)
    assert code == 0
    assert "  robustness FGSM, L-inf eps 0.125, clipped to [0, 0.75], crafted on the source " in out
    assert "    mcnemar          b = 0, c = 0, exact p = 1 (alpha 0.05; equal)" in out
    assert "    less robust      no: no sample is right on one side and wrong on the other" in out
    code, out, _ = run(capsys, *argv, "--format", "junit")
    suite = ET.fromstring(out).find("testsuite")
    names = [c.get("name") for c in suite.findall("testcase")]
    assert "robustness less robust" in names and "robustness transfer gap" in names
    assert suite.get("failures") == "0"
    # PGD: softmax head read as probabilities, still in the ball, still exact
    softmax = torch_onnx(torch_linear(softmax=True), tmp_path / "softmax.onnx")
    code, out, err = run(capsys, softmax, "--source",
                         f"{factory}:linear_softmax", "--data", data, "--attack", "pgd", "--eps",
                         "0.1", "--steps", "3", "--random-start", "--format", "json")  # fmt: skip
    assert code == 0, err
    robustness = json.loads(out)["robustness"]
    assert robustness["scores"] == "probabilities"
    assert robustness["attack"]["steps"] == 3 and robustness["attack"]["random_start"] is True
    assert robustness["max_perturbation"] <= 0.1


@pytest.mark.torch
def test_torch_end_to_end_altered_export_is_less_robust(capsys, tmp_path, linear):
    factory, data = linear
    path = torch_onnx(torch_linear(), tmp_path / "altered.onnx", bias=[0.0, -0.75])
    code, out, err = run(capsys, path, "--source", f"{factory}:linear", "--data", data,
                         "--attack", "fgsm", "--eps", str(EPS), "--no-repro",
                         "--format", "json")  # fmt: skip
    document = json.loads(out)
    assert code == 1, err  # the changed bias is a semantic inconsistency in its own right
    robustness = document["robustness"]
    assert robustness["adversarial_accuracy"] == {"source": 1.0, "onnx": 0.5}
    assert robustness["transfer_gap"] == 0.5 and robustness["adversarial_agreement"] == 0.5
    assert robustness["mcnemar"]["b"] == 12 and robustness["mcnemar"]["c"] == 0
    assert robustness["mcnemar"]["p_value"] == pytest.approx(2 / 2**12)
    assert robustness["verdict"]["answer"] == "yes"
    assert robustness["verdict"]["direction"] == "onnx less robust"
    code, out, _ = run(capsys, path, "--source", f"{factory}:linear", "--data", data,
                       "--attack", "fgsm", "--eps", str(EPS), "--no-repro")  # fmt: skip
    assert "    transfer gap     +50.00 percentage points" in out
    assert "    less robust      yes: p < 0.05: the export is less robust" in out


@pytest.mark.torch
def test_without_attack_the_output_is_unchanged(capsys, tmp_path, linear):
    factory, data = linear
    path = torch_onnx(torch_linear(), tmp_path / "linear.onnx")
    code, out, _ = run(capsys, path, "--source", f"{factory}:linear", "--data", data,
                       "--format", "json")  # fmt: skip
    assert code == 0 and "robustness" not in json.loads(out)
    code, out, _ = run(capsys, path, "--source", f"{factory}:linear", "--data", data)
    assert code == 0 and "robustness" not in out and "top-1 agreement" in out


@pytest.mark.torch
def test_whole_float_labels_are_accepted(capsys, tmp_path, linear):
    factory, _ = linear
    path = torch_onnx(torch_linear(), tmp_path / "linear.onnx")
    data = _npz(tmp_path / "float.npz", x=X[:4], y=Y[:4].astype(np.float64))
    code, out, err = run(capsys, path, "--source", f"{factory}:linear", "--data", data,
                         "--attack", "fgsm", "--eps", str(EPS), "--format", "json")  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert "'y' cast from float64 to int64 (whole numbers)" in document["task"]["notes"]
    assert document["robustness"]["samples"] == 4


@pytest.mark.tf
@pytest.mark.slow
def test_keras_end_to_end_through_tf2onnx(capsys, tmp_path):
    tf = pytest.importorskip("tensorflow")
    tf2onnx = pytest.importorskip("tf2onnx")
    import onnx

    model = keras_linear()
    model.save(tmp_path / "linear.keras")
    signature = (tf.TensorSpec((None, 4), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    onnx.save(proto, str(tmp_path / "linear.onnx"))
    data = _npz(tmp_path / "data.npz", x=X, y=Y)
    code, out, err = run(capsys, tmp_path / "linear.onnx", "--source", tmp_path / "linear.keras",
                         "--inputs", _npz(tmp_path / "in.npz", x=X[:2]), "--data", data,
                         "--attack", "fgsm", "--eps", str(EPS), "--format", "json")  # fmt: skip
    assert code == 0, err
    document = json.loads(out)
    assert document["framework"] == "tensorflow"
    robustness = document["robustness"]
    assert robustness["adversarial_agreement"] == 1.0
    assert robustness["mcnemar"] == {"b": 0, "c": 0, "p_value": 1.0}
    assert robustness["verdict"]["answer"] == "no"
    assert robustness["adversarial_accuracy"] == {"source": 1.0, "onnx": 1.0}
    assert robustness["max_perturbation"] == EPS
