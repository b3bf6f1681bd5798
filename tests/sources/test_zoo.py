"""The zoo sources: fixed case lists, lazy framework imports, deterministic builds.

Building runs the model once per seed on one input set; nothing is converted here (the converters
are exercised in tests/e2e).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from opseq.sources import SOURCES, Framework, ModelCase, Source, get_source, make_inputs

FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "transformers", "tf2onnx")

# source -> (minimum number of cases, the cheapest case to build)
ZOO = {
    "zoo-keras": (6, "mobilenetv2"),
    "zoo-transformers": (6, "distilbert"),
    "zoo-torch": (3, "lstm-classifier"),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_case_ids_are_fixed_and_count_takes_a_prefix(name):
    source = get_source(name)
    assert isinstance(source, Source) and source.name == name
    ids = list(source.case_ids(count=None, seed=0))
    assert len(ids) >= ZOO[name][0] and len(set(ids)) == len(ids)
    assert list(source.case_ids(count=None, seed=123)) == ids
    assert list(source.case_ids(count=2, seed=0)) == ids[:2]
    assert list(source.case_ids(count=0, seed=0)) == []
    assert list(source.case_ids(count=len(ids) + 5, seed=0)) == ids


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_build_unknown_case_raises_key_error_naming_it(name):
    with pytest.raises(KeyError, match="no-such-net"):
        get_source(name).build("no-such-net", seed=0)


def test_zoo_import_and_naming_do_not_import_frameworks():
    code = f"""
import sys
from opseq.sources import get_source
for name in {sorted(ZOO)!r}:
    source = get_source(name)
    source.case_ids(count=None, seed=0)
    try:
        source.build("no-such-net", seed=0)
    except KeyError:
        pass
print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert result.stdout.strip() == "[]"


def test_zoo_registry_names_every_zoo_source():
    assert set(ZOO) <= set(SOURCES)


def _run(case: ModelCase, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Call the model as the converters will, and flatten its outputs to numpy arrays."""
    args = [feeds[spec.name] for spec in case.inputs]
    if case.framework is Framework.TORCH:
        import torch

        with torch.no_grad():
            out = case.model(*(torch.from_numpy(a) for a in args))
        outputs = out if isinstance(out, tuple) else (out,)
        return [o.numpy() for o in outputs]
    out = case.model(args[0] if len(args) == 1 else args, training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _check_build(name: str) -> None:
    source = get_source(name)
    case_id = ZOO[name][1]
    case = source.build(case_id, seed=0)
    assert case.case_id == case_id and case.framework is source.framework
    assert {"architecture", "parameters", "config"} <= set(case.metadata)
    assert case.metadata["parameters"] > 0
    for spec in case.inputs:
        assert spec.shape[0] == 1
    if case.framework is Framework.TORCH:
        assert not case.model.training
    (feeds,) = make_inputs(case.inputs, count=1, seed=0)
    first = _run(case, feeds)
    assert first and all(np.isfinite(o).all() for o in first)
    again = _run(source.build(case_id, seed=0), feeds)
    assert len(again) == len(first)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = _run(source.build(case_id, seed=1), feeds)
    assert not np.array_equal(other[0], first[0])


@pytest.mark.torch
@pytest.mark.parametrize("name", ["zoo-torch", "zoo-transformers"])
def test_zoo_torch_build_runs_and_is_deterministic_per_seed(name):
    pytest.importorskip("torch")
    if name == "zoo-transformers":
        pytest.importorskip("transformers")
    _check_build(name)


@pytest.mark.tf
def test_zoo_keras_build_runs_and_is_deterministic_per_seed():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("keras")
    _check_build("zoo-keras")
