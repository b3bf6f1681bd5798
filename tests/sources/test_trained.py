"""The ``trained`` source: bundled datasets, ten architectures, seeded cached training, cases.

Training runs on a tiny configuration (one or two epochs on wine) into a temporary cache, so
these tests never touch the user's cache; the campaign test trains its one default case there
too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

from opseq.cli import main
from opseq.errors import ConfigError
from opseq.sources import Framework, ModelCase, Source, get_source
from opseq.sources.trained import KERAS_SOURCE, SOURCE, TrainedSource, parse_case_id
from opseq.sources.trained.architectures import ARCHITECTURES, LAYOUTS, build_keras, build_torch
from opseq.sources.trained.datasets import DATASETS, layout, load_dataset
from opseq.sources.trained.training import TrainConfig, _get_weights, cache_path, train

TINY = TrainConfig(epochs={"wine": 2}, default_epochs=1)
# dataset -> (train rows, test rows, features, classes, test rows per class)
SIZES = {
    "digits": (1437, 360, 64, 10, [36, 36, 35, 37, 36, 37, 36, 36, 35, 36]),
    "breast_cancer": (455, 114, 30, 2, [42, 72]),
    "wine": (142, 36, 13, 3, [12, 14, 10]),
}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_datasets_are_split_stratified_and_standardised_on_train(name):
    data = load_dataset(name, seed=0)
    train_rows, test_rows, features, classes, per_class = SIZES[name]
    assert data.x_train.shape == (train_rows, features)
    assert data.x_test.shape == (test_rows, features)
    assert data.classes == classes and data.x_train.dtype == np.float32
    assert np.bincount(data.y_test).tolist() == per_class
    assert np.allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    spread = data.x_train.std(axis=0)
    # digits has blank border pixels: constant features stay 0 (std 1 is kept, not 0)
    assert np.allclose(spread[spread > 0], 1, atol=1e-4)
    again = load_dataset(name, seed=0)
    assert np.array_equal(again.x_test, data.x_test) and np.array_equal(again.y_test, data.y_test)
    other = load_dataset(name, seed=1)
    assert not np.array_equal(other.y_test, data.y_test)


def test_unknown_dataset_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown dataset 'iris'"):
        load_dataset("iris")


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_torch_architecture_builds_and_runs_with_exact_shapes(arch, dataset):
    import torch

    _, _, features, classes, _ = SIZES[dataset]
    shape = layout(dataset, features, LAYOUTS[arch], "torch")
    torch.manual_seed(0)
    model = build_torch(arch, shape, classes).eval()
    with torch.no_grad():
        out = model(torch.zeros((3, *shape)))
    assert tuple(out.shape) == (3, classes) and out.dtype == torch.float32


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_keras_architecture_builds_and_runs_with_exact_shapes(arch, dataset):
    _, _, features, classes, _ = SIZES[dataset]
    shape = layout(dataset, features, LAYOUTS[arch], "keras")
    model = build_keras(arch, shape, classes)
    out = np.asarray(model(np.zeros((3, *shape), dtype=np.float32), training=False))
    assert out.shape == (3, classes) and out.dtype == np.float32
    assert model.inputs[0].name == "x"


def test_layouts_of_each_kind():
    assert layout("digits", 64, "flat", "torch") == (64,)
    assert layout("digits", 64, "sequence", "torch") == (8, 8)
    assert layout("breast_cancer", 30, "conv", "torch") == (1, 30)
    assert layout("breast_cancer", 30, "conv", "keras") == (30, 1)
    assert layout("breast_cancer", 30, "sequence", "torch") == (30, 1)


def _weights(trained):
    return _get_weights(trained.framework, trained.model)


def _same(a, b) -> bool:
    return [n for n, _ in a] == [n for n, _ in b] and all(
        np.array_equal(x, y) for (_, x), (_, y) in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("arch", ["resnet", "gru"])
def test_torch_training_is_reproducible(arch):
    data = load_dataset("wine", seed=0)
    first = train("torch", arch, data, seed=3, config=TINY, use_cache=False)
    second = train("torch", arch, data, seed=3, config=TINY, use_cache=False)
    assert _same(_weights(first), _weights(second))
    assert first.accuracy == second.accuracy and first.epochs == 2
    assert not first.from_cache and not first.stopped_early
    other = train("torch", arch, data, seed=4, config=TINY, use_cache=False)
    assert not _same(_weights(first), _weights(other))


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet", "gru"])
def test_keras_training_is_reproducible(arch):
    data = load_dataset("wine", seed=0)
    first = train("keras", arch, data, seed=3, config=TINY, use_cache=False)
    second = train("keras", arch, data, seed=3, config=TINY, use_cache=False)
    assert _same(_weights(first), _weights(second))
    assert first.accuracy == second.accuracy and first.epochs == 2


def test_second_training_loads_the_cache(tmp_path):
    data = load_dataset("wine", seed=0)
    first = train("torch", "mlp", data, seed=0, config=TINY, cache_dir=tmp_path)
    path = cache_path("torch", "mlp", "wine", 0, TINY, tmp_path)
    assert path.is_file() and path.parent == tmp_path / "trained"
    second = train("torch", "mlp", data, seed=0, config=TINY, cache_dir=tmp_path)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.train_seconds == 0.0 and second.epochs == 2
    assert _same(_weights(first), _weights(second)) and first.accuracy == second.accuracy


def test_cache_keys_differ_by_everything_that_trains(tmp_path):
    paths = {
        cache_path("torch", "mlp", "wine", 0, TINY, tmp_path),
        cache_path("torch", "mlp", "wine", 1, TINY, tmp_path),
        cache_path("torch", "gru", "wine", 0, TINY, tmp_path),
        cache_path("torch", "mlp", "digits", 0, TINY, tmp_path),
        cache_path("torch", "mlp", "wine", 0, TrainConfig(epochs={"wine": 3}), tmp_path),
        cache_path("torch", "mlp", "wine", 0, TrainConfig(learning_rate=0.1), tmp_path),
    }
    assert len(paths) == 6


@pytest.mark.parametrize("damage", ["garbage", "truncated", "tampered", "other-key"])
def test_a_damaged_cache_file_is_retrained_not_trusted(tmp_path, damage):
    data = load_dataset("wine", seed=0)
    first = train("torch", "mlp", data, seed=0, config=TINY, cache_dir=tmp_path)
    path = cache_path("torch", "mlp", "wine", 0, TINY, tmp_path)
    blob = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not an npz file")
    elif damage == "truncated":
        path.write_bytes(blob[: len(blob) // 2])
    else:
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
        if damage == "tampered":
            arrays["w0"] = arrays["w0"] + 1.0
        else:
            meta = json.loads(bytes(arrays["meta"]).decode())
            meta["key"] = "0" * 24
            arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with path.open("wb") as f:
            np.savez(f, **arrays)
    again = train("torch", "mlp", data, seed=0, config=TINY, cache_dir=tmp_path)
    assert not again.from_cache
    assert _same(_weights(first), _weights(again)) and again.accuracy == first.accuracy
    assert path.read_bytes() == blob  # rewritten sound
    assert train("torch", "mlp", data, seed=0, config=TINY, cache_dir=tmp_path).from_cache


def test_source_is_registered_and_lists_one_framework():
    source = get_source("trained")
    assert source is SOURCE and isinstance(source, Source) and source.name == "trained"
    assert source.framework is Framework.TORCH
    ids = list(source.case_ids(count=None, seed=0))
    assert len(ids) == 15 and ids[:3] == [
        "torch/mlp/digits",
        "torch/lenet5/digits",
        "torch/vgg/digits",
    ]
    assert ids[-1] == "torch/gru/wine"
    assert list(source.case_ids(count=2, seed=9)) == ids[:2]
    keras_ids = list(KERAS_SOURCE.case_ids(count=None, seed=0))
    assert KERAS_SOURCE.framework is Framework.TENSORFLOW
    assert keras_ids == [i.replace("torch/", "keras/", 1) for i in ids]
    assert source.for_framework(Framework.TENSORFLOW).case_ids() == keras_ids


@pytest.mark.parametrize(
    "case_id", ["torch/mlp", "jax/mlp/wine", "torch/alexnet/wine", "keras/mlp/iris", "a/b/c/d"]
)
def test_unknown_case_ids_are_key_errors(case_id):
    with pytest.raises(KeyError, match="unknown trained case"):
        parse_case_id(case_id)


def test_build_wraps_the_trained_model_with_test_rows(tmp_path):
    source = TrainedSource(config=TINY, cache_dir=tmp_path)
    case = source.build("torch/lenet5/wine", seed=0)
    assert isinstance(case, ModelCase) and case.framework is Framework.TORCH
    assert [(s.name, s.shape, s.dtype) for s in case.inputs] == [("x", (1, 1, 13), "float32")]
    meta = case.metadata
    assert meta["architecture"] == "lenet5" and meta["dataset"]["test"] == 36
    data = load_dataset("wine", seed=0)
    trained = train("torch", "lenet5", data, seed=0, config=TINY, cache_dir=tmp_path)
    assert trained.from_cache and meta["test_accuracy"] == trained.accuracy
    assert meta["training"]["epochs"] == 2 and meta["training"]["config"] == TINY.to_dict()
    sets = case.input_sets(40, 5, "normal")
    rows = [s["x"].reshape(-1) for s in sets]
    assert len(sets) == 40 and all(s["x"].shape == (1, 1, 13) for s in sets)
    firsts = {tuple(r) for r in rows[:36]}
    assert firsts == {tuple(r) for r in data.x_test}  # every test row once, then again
    assert [tuple(r) for r in rows] == [
        tuple(s["x"].reshape(-1)) for s in case.input_sets(40, 5, "normal")
    ]
    edge = case.input_sets(3, 5, "edge")
    assert np.array_equal(edge[0]["x"], sets[0]["x"]) and len(edge) == 3


def test_importing_the_source_imports_no_framework():
    code = (
        "import sys, opseq.sources.trained, opseq.difftest.coreml; "
        "print([m for m in ('torch', 'tensorflow', 'keras', 'sklearn', 'coremltools') "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "converter"),
    [
        ("trained", "torch.onnx-torchscript"),
        ("trained", "torch.onnx-dynamo"),
        ("opseq.sources.trained:KERAS_SOURCE", "tf2onnx"),
    ],
)
def test_campaign_converts_a_trained_case(tmp_path, monkeypatch, capsys, source, converter):
    monkeypatch.setenv("OPSEQ_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "corpus"
    argv = ["corpus", "build", str(out), "--source", source, "--converter", converter]
    code = main([*argv, "--count", "1", "--workers", "1", "--inputs", "3"])
    assert code == 0, capsys.readouterr().err
    (line,) = (out / "manifest.jsonl").read_text().splitlines()
    row = json.loads(line)
    assert row["outcome"] == "ok" and row["case"].endswith("/mlp/digits")
    assert 0.9 <= row["metadata"]["test_accuracy"] <= 1.0
    assert row["input_specs"][0]["shape"] == [1, 64]
    assert os.listdir(tmp_path / "cache" / "trained")
    source_side, onnx_side = row["quality"]["source"], row["quality"]["onnx"]
    assert source_side["samples"] == 360 and source_side["attack"]["method"] == "fgsm"
    assert round(source_side["accuracy"], 6) == row["metadata"]["test_accuracy"]
    assert onnx_side["accuracy"] == source_side["accuracy"]
    assert source_side["adversarial_accuracy"] < source_side["accuracy"]
    assert onnx_side["adversarial_accuracy"] == source_side["adversarial_accuracy"]
    assert onnx_side["agreement"] == 1.0 and onnx_side["mcnemar_p"] == 1.0
    assert set(onnx_side["latency_ms"]) == set(onnx_side["memory_mb"]) == {"ort_all", "ort_none"}
    assert onnx_side["size_bytes"] == row["onnx_size"] and source_side["size_bytes"] > 0


def test_quality_compares_source_and_conversion_on_the_whole_test_split(tmp_path):
    import torch

    from opseq.difftest.convert import get_converter
    from opseq.sources.trained.quality import accuracy

    source = TrainedSource(config=TINY, cache_dir=tmp_path)
    case = source.build("torch/mlp/wine", seed=0)
    model = get_converter("torch.onnx-torchscript").convert(case, opset=17)
    quality = case.quality(model)
    data = load_dataset("wine", seed=0)
    with torch.no_grad():
        expected = case.model(torch.from_numpy(data.x_test)).numpy().argmax(axis=1)
    assert quality["source"]["accuracy"] == accuracy(expected, data.y_test)
    assert quality["onnx"]["accuracy"] == quality["source"]["accuracy"]
    assert quality["onnx"]["nodes"] == len(model.graph.node)
    # a model that always answers class 0 loses accuracy, and McNemar sees it
    constant = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Constant", [], ["y"], value_floats=[1.0, 0.0, 0.0])],
            "constant",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 13])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
    )
    worse = case.quality(constant)["onnx"]
    assert worse["accuracy"] == pytest.approx(float(np.mean(data.y_test == 0)))
    assert worse["agreement"] < 1 and worse["mcnemar_p"] < 0.05


def test_a_failing_quality_measurement_is_recorded_not_raised():
    import torch

    from opseq.difftest.convert import get_converter
    from opseq.difftest.oracle import run_difftest
    from opseq.sources.base import InputSpec

    def broken(model):
        raise RuntimeError("no test split")

    case = ModelCase(
        case_id="linear",
        framework=Framework.TORCH,
        model=torch.nn.Linear(3, 2).eval(),
        inputs=(InputSpec(name="x", shape=(1, 3), dtype="float32"),),
        quality=broken,
    )
    result = run_difftest(case, get_converter("torch.onnx-torchscript"), n_inputs=2)
    assert result.outcome.value == "ok"
    assert result.to_dict()["quality"] == {"error": "RuntimeError: no test split"}


@pytest.mark.slow
def test_keras_cache_loads_in_a_process_that_built_other_models(tmp_path):
    data = load_dataset("wine", seed=0)
    build_keras("mlp", (13,), 3)  # moves Keras's layer-name counters on
    first = train("keras", "mlp", data, seed=0, config=TINY, cache_dir=tmp_path)
    build_keras("mlp", (13,), 3)
    second = train("keras", "mlp", data, seed=0, config=TINY, cache_dir=tmp_path)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert _same(_weights(first), _weights(second)) and first.accuracy == second.accuracy
