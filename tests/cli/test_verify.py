from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from opseq.cli import main
from opseq.strip import strip_weights
from tests import models
from tests.cli.errors import assert_one_error_line
from tests.verify.support import (
    CONV_FACTORY,
    EXAMPLE_SPEC,
    RELU_FACTORY,
    change_softmax_axis,
    conv_model,
    export_example,
    relu_model,
    torch_export,
    with_external_weights,
    write_factory,
)


def run(capsys, *argv):
    code = main(["verify", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def relu(tmp_path, save):
    """A Relu model over float[1, 4] and a factory file returning its torch twin."""
    return save(relu_model()), f"{write_factory(tmp_path, RELU_FACTORY)}:relu"


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


# --- bad input: one line, exit 2, no framework needed --------------------------------------


def test_help_has_an_example_that_runs_from_a_clone(capsys):
    assert main(["verify", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example:\n  python corpus/examples/verify_example.py tiny_cnn.onnx" in out
    assert "opseq verify tiny_cnn.onnx --source corpus/examples/verify_example.py:tiny_cnn" in out


def test_the_parser_imports_no_framework():
    code = (
        "import sys, opseq.cli; opseq.cli.build_parser(); "
        "print(sorted({'torch', 'tensorflow', 'keras', 'onnxruntime', 'opseq.verify'} & "
        "set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_output_naming_the_model_is_refused(capsys, relu):
    model, spec = relu
    before = model.read_bytes()
    code, _, err = run(capsys, model, "--source", spec, "-o", model)
    assert code == 2
    assert_one_error_line(err, "is one of the inputs")
    assert model.read_bytes() == before


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"z": np.ones((1, 4), np.float32)}, "no array for the ONNX input 'x'"),
        ({"x": np.ones((1, 5), np.float32)}, "shape [1, 5], the ONNX model declares [1, 4]"),
        ({"x": np.ones((1, 4), np.float64)}, "dtype float64, the ONNX model declares float32"),
        ({"x": np.ones((4,), np.float32)}, "has rank 2"),
    ],
)
def test_inputs_that_do_not_match_the_model(capsys, tmp_path, relu, arrays, fragment):
    model, spec = relu
    inputs = _npz(tmp_path / "in.npz", **arrays)
    code, out, err = run(capsys, model, "--source", spec, "--inputs", inputs)
    assert code == 2 and out == ""
    assert_one_error_line(err, f"--inputs {inputs}", fragment)


def test_unreadable_npz_is_never_unpickled(capsys, tmp_path, relu):
    model, spec = relu
    pickled = tmp_path / "obj.npz"
    np.savez(pickled, x=np.array([object()], dtype=object))
    code, _, err = run(capsys, model, "--source", spec, "--inputs", pickled)
    assert code == 2
    assert_one_error_line(err, "Object arrays cannot be loaded")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    code, _, err = run(capsys, model, "--source", spec, "--data", corrupt)
    assert code == 2
    assert_one_error_line(err, f"--data {corrupt}: cannot read it as .npz")


@pytest.mark.parametrize(
    ("arrays", "fragment"),
    [
        ({"samples": np.ones((3, 4), np.float32)}, "no array 'x'"),
        ({"x": np.ones((3, 4), np.float32), "y": np.zeros(2, np.int64)},
         "'y' has 2 labels, 'x' has 3 samples"),
        ({"x": np.ones((3, 4), np.float32), "y": np.zeros((3, 2), np.int64)},
         "one integer label per sample"),
        ({"x": np.ones((3, 5), np.float32)}, "'x' has shape [3, 5]"),
    ],
)  # fmt: skip
def test_bad_task_data(capsys, tmp_path, relu, arrays, fragment):
    model, spec = relu
    data = _npz(tmp_path / "data.npz", **arrays)
    code, _, err = run(capsys, model, "--source", spec, "--data", data)
    assert code == 2
    assert_one_error_line(err, fragment)


def test_task_data_needs_a_one_input_model(capsys, tmp_path, save, relu):
    _, spec = relu
    model = save(models.two_inputs_two_outputs(), "two.onnx")
    data = _npz(tmp_path / "data.npz", x=np.ones((3, 4), np.float32))
    code, _, err = run(capsys, model, "--source", spec, "--data", data)
    assert code == 2
    assert_one_error_line(err, "task-level checks need a model with one input")


@pytest.mark.parametrize(
    ("location", "fragment"),
    [
        ("../weights.bin", "leaves the model's directory"),
        ("/tmp/weights.bin", "is an absolute path"),
        ("link.bin", "resolves outside the model's directory"),
    ],
)
def test_external_data_escaping_the_directory_is_refused(capsys, tmp_path, location, fragment):
    directory = tmp_path / "m"
    directory.mkdir()
    (tmp_path / "weights.bin").write_bytes(np.full(54, 0.1, np.float32).tobytes())
    (directory / "link.bin").symlink_to(tmp_path / "weights.bin")
    model = directory / "model.onnx"
    model.write_bytes(with_external_weights(conv_model(), location).SerializeToString())
    spec = f"{write_factory(tmp_path, CONV_FACTORY)}:conv"
    code, out, err = run(capsys, model, "--source", spec)
    assert code == 2 and out == ""
    assert_one_error_line(err, fragment, "opseq verify runs only models whose external data")


def test_structure_only_models_are_refused(capsys, save, relu):
    _, spec = relu
    model = save(strip_weights(conv_model()), "stripped.onnx")
    code, _, err = run(capsys, model, "--source", spec)
    assert code == 2
    assert_one_error_line(err, "structure-only model")


@pytest.mark.parametrize(
    ("body", "attribute", "fragment"),
    [
        ("import no_such_module_opseq_test\n", "f", "No module named 'no_such_module_opseq_test'"),
        ("x = 1\n", "missing", "has no attribute 'missing'"),
        ("x = 1\n", "x", "not a callable factory"),
        ("def f():\n    raise RuntimeError('cannot build')\n", "f", "f() raised RuntimeError"),
        ("def f():\n    return 'model'\n", "f", "neither a torch.nn.Module nor a Keras model"),
    ],
)
def test_bad_source_specs(capsys, tmp_path, save, body, attribute, fragment):
    model = save(relu_model())
    spec = f"{write_factory(tmp_path, body)}:{attribute}"
    code, out, err = run(capsys, model, "--source", spec)
    assert code == 2 and out == ""
    assert_one_error_line(err, "--source", fragment)


def test_a_module_spec_that_does_not_import(capsys, save):
    code, _, err = run(capsys, save(relu_model()), "--source", "opseq_no_such_pkg.mod:f")
    assert code == 2
    assert_one_error_line(err, "no module named 'opseq_no_such_pkg'")


# --- torch: the verdict, end to end --------------------------------------------------------

torch_only = pytest.mark.torch


@torch_only
def test_example_export_passes_text_json_and_junit(capsys, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    model = export_example(tmp_path / "tiny_cnn.onnx")
    code, out, err = run(capsys, model, "--source", EXAMPLE_SPEC)
    assert code == 0, err
    assert err == ""
    assert "  verdict    ok: 0 of 10 input sets semantic" in out or "numerical" in out
    assert "reference  float64" in out and "probs" in out
    code, out, _ = run(capsys, model, "--source", EXAMPLE_SPEC, "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["verdict"] in ("ok", "numerical") and document["passed"]
    assert document["reference"] == "float64" and document["sets"] == 10
    (probs,) = document["outputs"]
    assert probs["name"] == "probs" and probs["max_abs_diff"] < 1e-5
    assert document["required_headroom"] <= 64 and document["repro"] is None
    code, out, _ = run(capsys, model, "--source", EXAMPLE_SPEC, "--format", "junit")
    suite = ET.fromstring(out).find("testsuite")
    assert code == 0 and suite.get("tests") == "2" and suite.get("failures") == "0"
    assert not list(tmp_path.glob("opseq-repro-*"))


def _replay(bundle, model_path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run `model_path` on the bundle's inputs in ONNX Runtime and the reference evaluator."""
    import onnxruntime as ort
    from onnx.reference import ReferenceEvaluator

    data = bundle / "test_data_set_0"
    x = numpy_helper.to_array(onnx.load_tensor(str(data / "input_0.pb")))
    expected = numpy_helper.to_array(onnx.load_tensor(str(data / "output_0.pb")))
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (by_ort,) = session.run(None, {"image": x})
    (by_reference,) = ReferenceEvaluator(str(model_path)).run(None, {"image": x})
    return expected, by_ort, by_reference


@torch_only
def test_planted_mul_bug_fails_with_a_bundle_that_replays(capsys, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    good = export_example(tmp_path / "good.onnx")
    bad = export_example(tmp_path / "tiny_cnn_bug.onnx", bug=True)
    code, out, err = run(capsys, bad, "--source", EXAMPLE_SPEC)
    assert code == 1, err
    assert "semantic: 10 of 10 input sets semantic" in out
    assert "blame      converter" in out
    bundle = tmp_path / "opseq-repro-tiny_cnn_bug"
    assert f"repro      {bundle.name} (input set 0)" in out
    assert (bundle / "model.onnx").read_bytes() == onnx.load(str(bad)).SerializeToString()
    # The expected output is what a correct export computes on the stored inputs ...
    expected, by_ort, by_reference = _replay(bundle, good)
    np.testing.assert_allclose(by_ort, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_reference, expected, rtol=1e-5, atol=1e-6)
    # ... and the bundled model reproduces the inconsistency in both evaluators.
    expected, by_ort, by_reference = _replay(bundle, bundle / "model.onnx")
    assert np.max(np.abs(by_ort - expected)) > 1e-6
    assert np.max(np.abs(by_reference - expected)) > 1e-6
    verdict = json.loads((bundle / "verdict.json").read_text())
    assert verdict["verdict"] == "semantic" and verdict["bundle"]["input_set"] == 0
    assert verdict["required_headroom"] > 64
    # A rerun keeps the bundle, still exits 1, and says why on one warning line.
    (bundle / "README.txt").write_text("edited")
    code, out, err = run(capsys, bad, "--source", EXAMPLE_SPEC, "--format", "json")
    assert code == 1 and json.loads(out)["repro"] is None
    assert json.loads(out)["repro_note"].endswith("--repro DIR writes elsewhere)")
    assert err.count("\n") == 1 and err.startswith("opseq: WARNING: repro bundle not written")
    assert (bundle / "README.txt").read_text() == "edited"
    code, _, _ = run(capsys, bad, "--source", EXAMPLE_SPEC, "--force", "-q")
    assert code == 1 and (bundle / "README.txt").read_text() != "edited"


@torch_only
def test_planted_softmax_axis_bug_writes_the_bundle_beside_the_report(capsys, tmp_path):
    pytest.importorskip("torch")
    bad = change_softmax_axis(export_example(tmp_path / "axis.onnx"), axis=0)
    report = tmp_path / "reports" / "verify.json"
    report.parent.mkdir()
    code, _, _ = run(capsys, bad, "--source", EXAMPLE_SPEC, "--format", "json", "-o", report)
    document = json.loads(report.read_text())
    assert code == 1 and document["verdict"] == "semantic"
    assert document["repro"] == str(report.parent / "opseq-repro-axis")
    assert (report.parent / "opseq-repro-axis" / "test_data_set_0" / "output_0.pb").is_file()
    code, _, _ = run(capsys, bad, "--source", EXAMPLE_SPEC, "--repro", tmp_path / "r", "-q",
                     "--format", "junit", "-o", tmp_path / "j.xml")  # fmt: skip
    suite = ET.fromstring((tmp_path / "j.xml").read_text()).find("testsuite")
    assert code == 1 and suite.get("failures") == "2" and (tmp_path / "r" / "model.onnx").exists()
    failure = suite.find("testcase").find("failure")
    assert failure.get("type") == "semantic" and "max abs diff" in failure.get("message")


@torch_only
def test_given_inputs_one_set_or_several(capsys, tmp_path):
    pytest.importorskip("torch")
    model = export_example(tmp_path / "tiny_cnn.onnx")
    rng = np.random.default_rng(0)
    one = _npz(tmp_path / "one.npz", image=rng.standard_normal((1, 1, 8, 8), dtype=np.float32))
    code, out, _ = run(capsys, model, "--source", EXAMPLE_SPEC, "--inputs", one, "--format",
                       "json")  # fmt: skip
    document = json.loads(out)
    assert code == 0 and document["sets"] == 1 and document["inputs"]["origin"] == "npz"
    many = _npz(tmp_path / "many.npz", image=rng.standard_normal((4, 1, 1, 8, 8),
                                                                 dtype=np.float32))  # fmt: skip
    code, out, _ = run(capsys, model, "--source", EXAMPLE_SPEC, "--inputs", many)
    assert code == 0 and "4 input sets from" in out


@torch_only
def test_a_model_that_cannot_run_in_float64_still_gets_a_verdict(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    factory = write_factory(tmp_path, """
        import torch

        class Float32Only(torch.nn.Module):
            def forward(self, x):
                if x.dtype != torch.float32:
                    raise TypeError("float32 inputs only")
                return torch.tanh(x) * 2.0

        def build():
            return Float32Only()
    """)  # fmt: skip
    spec = f"{factory}:build"
    namespace = {}
    exec(compile(factory.read_text(), str(factory), "exec"), namespace)
    model = torch_export(namespace["build"](), (torch.zeros(2, 3),), tmp_path / "f32.onnx")
    code, out, err = run(capsys, model, "--source", spec, "--format", "json")
    document = json.loads(out)
    assert code == 0, err
    assert document["reference"] == "framework-float32"
    assert "float64 unavailable: TypeError: float32 inputs only" in document["reference_note"]
    code, out, _ = run(capsys, model, "--source", spec)
    assert "reference  framework-float32 (float64 unavailable: TypeError" in out


@torch_only
def test_unstable_passes_with_a_warning(capsys, tmp_path):
    torch = pytest.importorskip("torch")
    factory = write_factory(tmp_path, """
        import torch

        class Cancel(torch.nn.Module):
            def forward(self, x):
                return (x + 1e5) - 1e5

        def build():
            return Cancel()
    """)  # fmt: skip
    namespace = {}
    exec(compile(factory.read_text(), str(factory), "exec"), namespace)
    model = torch_export(namespace["build"](), (torch.zeros(1, 16),), tmp_path / "cancel.onnx")
    code, out, err = run(capsys, model, "--source", f"{factory}:build")
    assert code == 0
    assert "verdict    unstable" in out
    assert err.count("\n") == 1 and "opseq: WARNING:" in err and "unstable" in err


@torch_only
def test_external_data_inside_the_directory_runs(capsys, tmp_path):
    pytest.importorskip("torch")
    directory = tmp_path / "m"
    directory.mkdir()
    model = directory / "model.onnx"
    model.write_bytes(with_external_weights(conv_model(), "w.bin").SerializeToString())
    (directory / "w.bin").write_bytes(np.full(54, 0.1, np.float32).tobytes())
    spec = f"{write_factory(tmp_path, CONV_FACTORY)}:conv"
    code, out, err = run(capsys, model, "--source", spec, "--format", "json")
    document = json.loads(out)
    assert code == 0, err
    assert document["verdict"] in ("ok", "numerical")
    assert "weights in external data (w.bin)" in document["notes"][0]


@torch_only
def test_external_data_travels_with_the_bundle(capsys, tmp_path):
    pytest.importorskip("torch")
    directory = tmp_path / "m"
    directory.mkdir()
    model = directory / "model.onnx"
    model.write_bytes(with_external_weights(conv_model(), "w.bin").SerializeToString())
    weights = np.full(54, 0.1 * (1 + 1e-3), np.float32).tobytes()  # the export is off by 1e-3
    (directory / "w.bin").write_bytes(weights)
    spec = f"{write_factory(tmp_path, CONV_FACTORY)}:conv"
    code, out, _ = run(capsys, model, "--source", spec, "--no-repro", "--format", "json")
    assert code == 1 and json.loads(out)["repro"] is None
    assert not list(tmp_path.glob("opseq-repro-*"))
    code, out, _ = run(capsys, model, "--source", spec, "--repro", tmp_path / "b")
    assert code == 1
    assert "blame      not attributed: the model keeps its weights as external data" in out
    assert (tmp_path / "b" / "w.bin").read_bytes() == weights
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "b" / "model.onnx"))
    x = numpy_helper.to_array(onnx.load_tensor(str(tmp_path / "b/test_data_set_0/input_0.pb")))
    assert session.run(None, {"x": x})[0].shape == (1, 2, 3, 3)


@torch_only
def test_symbolic_dims_without_specs_name_the_input(capsys, save, relu):
    pytest.importorskip("torch")
    _, spec = relu
    model = save(relu_model(shape=("batch", 4)), "dynamic.onnx")
    code, _, err = run(capsys, model, "--source", spec)
    assert code == 2
    assert_one_error_line(err, "ONNX input 'x'", "symbolic dimension 'batch'", "--inputs")


@torch_only
def test_a_source_model_that_fails_or_disagrees_on_the_inputs(capsys, tmp_path, save):
    pytest.importorskip("torch")
    factory = write_factory(tmp_path, """
        import torch
        from opseq.sources.base import InputSpec

        def wrong_width():
            return torch.nn.Linear(5, 2)

        def wrong_specs():
            return torch.nn.ReLU(), [InputSpec(name="x", shape=(1, 5))]
    """)  # fmt: skip
    model = save(relu_model())
    code, _, err = run(capsys, model, "--source", f"{factory}:wrong_width")
    assert code == 2
    assert_one_error_line(err, "the source model (torch) fails on the inputs")
    code, _, err = run(capsys, model, "--source", f"{factory}:wrong_specs")
    assert code == 2
    assert_one_error_line(err, "input 'x'", "shape [1, 5]")


@torch_only
def test_a_model_onnx_runtime_refuses(capsys, save, relu):
    pytest.importorskip("torch")
    _, spec = relu
    broken = relu_model()
    broken.graph.node[0].op_type = "NoSuchOperator"
    code, _, err = run(capsys, save(broken, "broken.onnx"), "--source", spec)
    assert code == 2
    assert_one_error_line(err, "broken.onnx: ONNX Runtime refuses the model")


_MLP_FACTORY = """
    from pathlib import Path

    import numpy as np
    import torch
    from opseq.sources.base import InputSpec

    def _mlp():
        model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                    torch.nn.Linear(32, 10))
        with np.load(Path(__file__).with_name("weights.npz"), allow_pickle=False) as weights:
            model.load_state_dict({k: torch.from_numpy(weights[k]) for k in weights.files})
        return model.eval()

    def mlp():
        return _mlp(), [InputSpec(name="x", shape=(8, 64))]

    def mlp_bare():
        return _mlp()
"""


def _train_digits_mlp(tmp_path):
    torch = pytest.importorskip("torch")
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
        )
        optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
        features, labels = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(60):
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    np.savez(tmp_path / "weights.npz",
             **{k: v.detach().numpy() for k, v in model.state_dict().items()})  # fmt: skip
    np.savez(tmp_path / "digits.npz", x=digits.data / 16.0, y=y)  # float64: cast to float32
    return model.eval(), x


@torch_only
@pytest.mark.parametrize("batch", ["dynamic", "fixed"])
def test_task_level_agreement_and_accuracy_on_digits(capsys, tmp_path, batch):
    torch = pytest.importorskip("torch")
    model, x = _train_digits_mlp(tmp_path)
    factory = write_factory(tmp_path, _MLP_FACTORY)
    path = tmp_path / "mlp.onnx"
    if batch == "dynamic":
        torch_export(model, (torch.zeros(8, 64),), path, input_names=["x"],
                     output_names=["logits"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
        spec = f"{factory}:mlp"
    else:
        torch_export(model, (torch.zeros(100, 64),), path, input_names=["x"],
                     output_names=["logits"])  # fmt: skip
        spec = f"{factory}:mlp_bare"
    data = tmp_path / "digits.npz"
    code, out, err = run(capsys, path, "--source", spec, "--data", data, "--top-k", "3",
                         "--batch-size", "256", "--format", "json")  # fmt: skip
    assert code == 0, err
    task = json.loads(out)["task"]
    assert task["samples"] == 1797 and task["classes"] == 10 and task["k"] == 3
    assert task["batch_size"] == (256 if batch == "dynamic" else 100)
    assert task["top1_agreement"] >= 0.995 and task["topk_agreement"] >= 0.99
    accuracy = task["accuracy"]
    with torch.no_grad():
        expected = float((model(torch.from_numpy(x)).argmax(1).numpy() == np.load(data)["y"])
                         .mean())  # fmt: skip
    assert abs(accuracy["source_top1"] - expected) <= 2 / 1797 and expected > 0.8
    assert abs(accuracy["onnx_top1"] - accuracy["source_top1"]) <= 3 / 1797
    assert accuracy["source_topk"] >= accuracy["source_top1"]
    assert "'x' cast from float64 to float32" in task["notes"]
    if batch == "fixed":
        assert "batch size is fixed at 100" in " ".join(task["notes"])
    code, out, _ = run(capsys, path, "--source", spec, "--data", data)
    assert code == 0 and "top-1 agreement" in out and "accuracy         top-1: source" in out
    wrong = _npz(tmp_path / "wrong.npz", x=x, y=np.load(data)["y"] + 5)
    code, _, err = run(capsys, path, "--source", spec, "--data", wrong)
    assert code == 2
    assert_one_error_line(err, "labels 'y' range over 5..14, the model scores 10 classes")


@pytest.mark.tf
@pytest.mark.slow
def test_keras_file_through_tf2onnx_passes(capsys, tmp_path):
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    tf2onnx = pytest.importorskip("tf2onnx")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.save(tmp_path / "m.keras")
    signature = (tf.TensorSpec((2, 6), tf.float32, name="x"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    onnx.save(proto, str(tmp_path / "m.onnx"))
    code, out, err = run(capsys, tmp_path / "m.onnx", "--source", tmp_path / "m.keras",
                         "--format", "json")  # fmt: skip
    document = json.loads(out)
    assert code == 0, err
    assert document["framework"] == "tensorflow" and document["verdict"] in ("ok", "numerical")
    assert document["reference"] == "float64"
