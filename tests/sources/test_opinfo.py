"""The opinfo source: PyTorch's OpInfo samples as one-op cases, and the torch-opinfo reference.

Importing op_db takes seconds, so the tests that need it share one module-scoped fixture and
enumerate a few ops (`enumerate_catalogue` on a subset) rather than the whole database; only
``test_opinfo_catalogue_*`` enumerates everything (slow).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from opseq.errors import ConfigError
from opseq.sources import get_source
from opseq.sources.opinfo import SOURCE, OpInfoSource, callee
from opseq.sources.opinfo_catalogue import (
    DTYPES,
    MAX_SAMPLES_PER_OP,
    SAMPLE_SEED,
    Catalogue,
    SkippedCase,
    catalogue_path,
    enumerate_catalogue,
    load_catalogue,
    lookup_opinfo,
    op_db,
    parse_case_id,
    qualified_name,
    torch_version,
)
from opseq.sources.opinfo_samples import draw_sample

pytestmark = pytest.mark.torch

# Known samples at torch 2.13 (sample order is fixed per torch version): gelu's samples alternate
# approximate='none' and 'tanh'; div.floor_rounding's #2 broadcasts (5, 1) by (5,); cat's #0 is a
# list of two (5, 5) tensors; cumsum's #3 passes dtype=int64.
GELU_TANH = "nn.functional.gelu@float32#1"
DIV_FLOOR = "div.floor_rounding@float32#2"
CAT_LIST = "cat@float32#0"
CUMSUM_INT = "cumsum@int64#3"
SUBSET = ("nn.functional.gelu", "div.floor_rounding", "cat", "cumsum", "bernoulli", "item", "zero_")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def subset(torch):
    """The OpInfos of `SUBSET`, with op_db imported once for the module."""
    pytest.importorskip("expecttest")
    return [opinfo for opinfo in op_db() if qualified_name(opinfo) in SUBSET]


@pytest.fixture(scope="module")
def subset_catalogue(subset):
    return enumerate_catalogue(subset, torch_version=torch_version())


def _direct(torch, case_id):
    """The op called on the sample itself, as OpInfo's own tests call it."""
    qualified, dtype, index = parse_case_id(case_id)
    opinfo = lookup_opinfo(qualified)
    sample = draw_sample(opinfo, getattr(torch, dtype), index, seed=SAMPLE_SEED)
    with torch.no_grad():
        return sample, opinfo.op(sample.input, *sample.args, **sample.kwargs)


def _module_output(torch, case, feed):
    with torch.no_grad():
        return case.model(*(torch.from_numpy(feed[spec.name]) for spec in case.inputs))


def test_opinfo_source_is_registered():
    assert get_source("opinfo") is SOURCE
    assert isinstance(SOURCE, OpInfoSource) and SOURCE.framework.value == "torch"


def test_opinfo_parse_case_id_splits_and_rejects():
    assert parse_case_id("nn.functional.gelu@float32#1") == ("nn.functional.gelu", "float32", 1)
    assert parse_case_id("torch.ops.aten._safe_softmax.default@float32#0")[0] == (
        "torch.ops.aten._safe_softmax.default"
    )
    for bad in ("gelu", "gelu@float64#1", "gelu@float32#x", "@float32#1", "gelu@float32#12345"):
        with pytest.raises(KeyError, match="not an opinfo case id"):
            parse_case_id(bad)


def test_opinfo_catalogue_from_dict_rejects_malformed_or_foreign_entries():
    version = "2.13.0+cpu"
    good = Catalogue(
        torch_version=version,
        case_ids=("abs@float32#0",),
        skipped=(SkippedCase(op="item", variant="", dtype="int64", sample=0, reason="r"),),
    )
    assert (
        Catalogue.from_dict(json.loads(json.dumps(good.to_dict())), torch_version=version) == good
    )
    with pytest.raises(ValueError, match="another torch version"):
        Catalogue.from_dict(good.to_dict(), torch_version="2.12.0")
    for key, value in [("cases", ["no id"]), ("cases", "abs@float32#0"), ("skipped", [{"op": 1}])]:
        with pytest.raises(ValueError, match="malformed"):
            Catalogue.from_dict({**good.to_dict(), key: value}, torch_version=version)
    with pytest.raises(ValueError, match="not an opinfo catalogue"):
        Catalogue.from_dict([], torch_version=version)


def test_opinfo_import_does_not_import_torch():
    code = "import sys, opseq.sources.opinfo, opseq.sources; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert result.stdout.strip() == "False"


def test_opinfo_enumeration_is_stable_and_ids_parse(subset, subset_catalogue):
    again = enumerate_catalogue(subset, torch_version=torch_version())
    assert again == subset_catalogue
    ids = subset_catalogue.case_ids
    assert len(set(ids)) == len(ids)
    for case_id in ids:
        qualified, dtype, index = parse_case_id(case_id)
        assert dtype in DTYPES and 0 <= index < MAX_SAMPLES_PER_OP
        assert qualified in SUBSET
    assert {GELU_TANH, DIV_FLOOR, CAT_LIST, CUMSUM_INT} <= set(ids)
    # Ops in op_db order, then dtypes in DTYPES order, then samples in order.
    cat = [i for i in ids if i.startswith("cat@")]
    assert cat == [f"cat@{d}#{i}" for d in DTYPES for i in range(MAX_SAMPLES_PER_OP)]


def test_opinfo_skipped_ops_and_samples_carry_reasons(subset_catalogue):
    skipped = {(s.op, s.dtype, s.sample): s.reason for s in subset_catalogue.skipped}
    assert skipped[("bernoulli", None, None)].startswith("random")
    assert skipped[("zero_", None, None)].startswith("in place only")
    assert skipped[("item", "float32", 0)] == "returns a float, not tensors"
    assert skipped[("item", "int64", 0)] == "returns a int, not tensors"
    assert all(reason for reason in skipped.values())
    ids = subset_catalogue.case_ids
    assert not [i for i in ids if i.startswith(("bernoulli@", "item@", "zero_@"))]


@pytest.mark.parametrize(
    ("case_id", "call", "kwargs"),
    [
        (GELU_TANH, "torch.nn.functional.gelu(x0, approximate='tanh')", {"approximate": "tanh"}),
        (DIV_FLOOR, "torch.div(x0, x1, rounding_mode='floor')", {"rounding_mode": "floor"}),
        (CAT_LIST, "torch.cat([x0, x1], dim=-1)", {"dim": -1}),
        (CUMSUM_INT, "torch.cumsum(x0, 1, dtype=torch.int64)", {"dtype": "torch.int64"}),
    ],
)
def test_opinfo_build_module_equals_the_op_on_its_sample(torch, subset, case_id, call, kwargs):
    case = SOURCE.build(case_id, seed=0)
    sample, expected = _direct(torch, case_id)
    own = case.input_sets(1, 0, "normal")[0]
    # Set 0 is the sample's own tensors, named x0, x1, ... in order (input, args, kwargs).
    tensors = [sample.input] if isinstance(sample.input, torch.Tensor) else list(sample.input)
    tensors += [a for a in sample.args if isinstance(a, torch.Tensor)]
    assert [s.name for s in case.inputs] == [f"x{i}" for i in range(len(tensors))]
    for spec, tensor in zip(case.inputs, tensors, strict=True):
        assert spec.shape == tuple(tensor.shape) and spec.dtype == str(tensor.dtype)[6:]
        np.testing.assert_array_equal(own[spec.name], tensor.numpy())
    actual = _module_output(torch, case, own)
    assert actual.dtype == expected.dtype and torch.equal(actual, expected)
    assert case.metadata["call"] == call and case.metadata["kwargs"] == kwargs
    assert case.metadata["call_imports"] == ["import torch"]
    _, dtype, index = parse_case_id(case_id)
    assert (case.metadata["dtype"], case.metadata["sample"]) == (dtype, index)
    # The reproducer line computes the same thing.
    scope = {"torch": torch, **{n: torch.from_numpy(a) for n, a in own.items()}}
    assert torch.equal(eval(call, scope), expected)


def test_opinfo_input_sets_redraw_the_sample_and_edge_keeps_integers(torch, subset):
    case = SOURCE.build("gather@float32#0", seed=0)
    assert [(s.dtype, s.shape) for s in case.inputs] == [("float32", (10, 5)), ("int64", (5, 5))]
    index_spec = case.inputs[1]
    assert 0 <= index_spec.low < index_spec.high <= 10  # the range of its own indices
    normal = case.input_sets(4, 0, "normal")
    again = case.input_sets(4, 0, "normal")
    assert all(np.array_equal(a[n], b[n]) for a, b in zip(normal, again, strict=True) for n in a)
    own = normal[0]
    for other in normal[1:]:
        assert not np.array_equal(other["x0"], own["x0"])
        assert other["x1"].shape == own["x1"].shape
        assert ((other["x1"] >= 0) & (other["x1"] < 10)).all()  # still valid indices
        _module_output(torch, case, other)  # gather accepts every redraw
    edge = case.input_sets(4, 0, "edge")
    np.testing.assert_array_equal(edge[0]["x0"], own["x0"])
    assert all(np.array_equal(s["x1"], own["x1"]) for s in edge)
    assert all(not np.array_equal(s["x0"], own["x0"], equal_nan=True) for s in edge[1:])
    with pytest.raises(Exception, match="unknown input strategy"):
        case.input_sets(2, 0, "uniform")


def test_opinfo_float64_twin_computes_in_float64(torch, subset):
    case = SOURCE.build(GELU_TANH, seed=0)
    own = case.input_sets(1, 0, "normal")[0]
    twin = case.float64_model()
    with torch.no_grad():
        wide = twin(torch.from_numpy(own["x0"].astype(np.float64)))
    assert wide.dtype == torch.float64
    narrow = _module_output(torch, case, own)
    np.testing.assert_allclose(wide.numpy(), narrow.numpy(), rtol=1e-5, atol=1e-6)
    # A dtype constant is widened too (cumsum's dtype=float32 sample becomes float64).
    cumsum = SOURCE.build("cumsum@float32#3", seed=0)
    assert cumsum.metadata["kwargs"] == {"dtype": "torch.float32"}
    x = torch.from_numpy(cumsum.input_sets(1, 0, "normal")[0]["x0"].astype(np.float64))
    assert cumsum.float64_model()(x).dtype == torch.float64


def test_opinfo_build_unknown_or_skipped_case_raises(subset):
    with pytest.raises(KeyError, match="no-such-op"):
        SOURCE.build("no-such-op@float32#0", seed=0)
    with pytest.raises(ValueError, match="skipped: random"):
        SOURCE.build("bernoulli@float32#0", seed=0)
    with pytest.raises(ValueError, match="skipped: returns a float"):
        SOURCE.build("item@float32#0", seed=0)


def test_opinfo_callee_falls_back_to_op_db_for_lambdas(torch, subset):
    where = lookup_opinfo("where")  # OpInfo wraps torch.where in a lambda (input first)
    name, method, imports = callee(where)
    assert not method and "op_db" in name and imports[-1].endswith("import op_db")
    case = SOURCE.build("where@float32#0", seed=0)
    own = case.input_sets(1, 0, "normal")[0]
    scope = {"torch": torch, "op_db": op_db()}
    scope |= {n: torch.from_numpy(a) for n, a in own.items()}
    assert torch.equal(eval(case.metadata["call"], scope), _module_output(torch, case, own))


def test_opinfo_catalogue_is_cached_and_rebuilt_when_unusable(tmp_path, monkeypatch, subset):
    from opseq.sources import opinfo_catalogue

    calls = []
    monkeypatch.setattr(opinfo_catalogue, "op_db", lambda: calls.append(1) or subset)
    opinfo_catalogue._cached_catalogue.cache_clear()
    try:
        catalogue = load_catalogue(tmp_path)
        path = catalogue_path(tmp_path, torch_version())
        assert path.is_file() and calls == [1]
        assert catalogue == enumerate_catalogue(subset, torch_version=torch_version())
        opinfo_catalogue._cached_catalogue.cache_clear()
        assert load_catalogue(tmp_path) == catalogue and calls == [1]  # read from the file
        path.write_text("{not json")
        opinfo_catalogue._cached_catalogue.cache_clear()
        assert load_catalogue(tmp_path) == catalogue and calls == [1, 1]  # rebuilt
        monkeypatch.setenv("OPSEQ_CACHE_DIR", str(tmp_path))
        restricted = SOURCE.restricted(["div.*", "cat"])
        assert restricted.case_ids(count=None) == [
            i for i in catalogue.case_ids if i.startswith(("div.floor_rounding@", "cat@"))
        ]
        assert restricted.case_ids(count=2) == restricted.case_ids()[:2]
        with pytest.raises(ConfigError, match="--ops nope: no opinfo case"):
            SOURCE.restricted(["nope"]).case_ids()
    finally:
        opinfo_catalogue._cached_catalogue.cache_clear()


@pytest.mark.slow
def test_opinfo_cases_run_through_the_oracle_with_torchscript(subset):
    from opseq.difftest.convert import get_converter
    from opseq.difftest.oracle import run_difftest
    from opseq.outcomes import Outcome
    from opseq.tolerance import Verdict

    converter = get_converter("torch.onnx-torchscript")
    results = {
        case_id: run_difftest(SOURCE.build(case_id, seed=0), converter, n_inputs=3)
        for case_id in (GELU_TANH, CAT_LIST, "linalg.cholesky@float32#0")
    }
    gelu, cat, cholesky = results.values()
    assert gelu.outcome is Outcome.OK and gelu.verdict is Verdict.OK
    assert gelu.calibration is not None and gelu.calibration.to_dict().get("note") is None
    assert cat.outcome is Outcome.OK and cat.max_abs_diff == 0.0
    # The TorchScript exporter has no symbolic for linalg_cholesky at opset 17.
    assert cholesky.outcome is Outcome.CONVERT_FAIL
    assert "linalg_cholesky" in cholesky.failure.message


@pytest.mark.slow
def test_torch_opinfo_reference_on_a_few_ops(tmp_path, monkeypatch, subset):
    from opseq.coverage import opinfo_reference, references
    from opseq.coverage.index import load_reference

    spec = references.parse_reference("torch-opinfo")
    whole, _ = references.resolve_members(spec)
    monkeypatch.setattr(opinfo_reference, "ONLY_OPS", ("nn.functional.gelu", "linalg.cholesky"))
    restricted, _ = references.resolve_members(spec)
    assert restricted != whole  # a subset is never cached as the whole reference
    index = load_reference(spec, cache_dir=tmp_path)
    gelu_cases = SOURCE.case_ids_matching(["nn.functional.gelu"])
    assert len(gelu_cases) == 4
    # linalg.cholesky does not convert: its cases are left out, not failures.
    assert (index.model_count, index.failed_count) == (4, 0)
    assert {"Erf", "Tanh", "Mul"} <= set(index.items["ops"])
    assert {m.name for m in index.load_models()} == set(gelu_cases)
    again = load_reference(spec, cache_dir=tmp_path)
    assert again.from_cache and again.model_count == index.model_count


@pytest.mark.slow
def test_torch_opinfo_export_survives_an_exporter_crash(subset):
    import onnx

    from opseq.coverage.opinfo_reference import _Exporter
    from opseq.coverage.references import MemberUnavailable

    exporter = _Exporter(total=2)
    # At torch 2.13 the TorchScript exporter dies of SIGFPE on this sample (im2col's reshape);
    # whatever the exporter does with it, the case is unavailable, and the next one exports.
    with pytest.raises(MemberUnavailable, match=re.escape("nn.functional.unfold@float32#0")):
        exporter.export("nn.functional.unfold@float32#0")
    model = onnx.load_from_string(exporter.export(GELU_TANH))
    assert "Tanh" in {node.op_type for node in model.graph.node}
    assert exporter.pool is None and exporter.folder is None  # stopped after the last one
