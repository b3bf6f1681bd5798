"""Profiles, references, their cached indexes, and the coverage of a model against them."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opseq.coverage.index import load_reference
from opseq.coverage.model_coverage import ReferenceUnion, model_coverage
from opseq.coverage.profile import profile_model, versioned_op
from opseq.coverage.references import ReferenceError, parse_reference
from opseq.graph import build_opgraph
from opseq.ngrams import mine_ngrams
from tests.coverage.conftest import reference_of, relu_exp, relu_neg, relu_neg_exp, write


def profile(model: onnx.ModelProto, name: str = "m"):
    return profile_model(model, build_opgraph(model, infer_shapes=True), name=name)


def test_profile_items_are_exact():
    p = profile(relu_neg_exp())
    assert p.items["ops"] == {"Relu": 1, "Neg": 1, "Exp": 1, "LeakyRelu": 1, "Add": 1}
    assert p.items["versioned_ops"]["ai.onnx:Relu@14"] == 1
    assert p.items["versioned_ops"]["ai.onnx:LeakyRelu@16"] == 1
    assert p.items["dtypes"]["Add(float32,float32)"] == 1
    assert p.items["ranks"]["Add(2,2)"] == 1
    assert p.items["attributes"] == {"LeakyRelu.alpha~1e-1": 1}
    assert p.ngrams[("Relu", "Neg", "Exp", "Add")] == 1
    assert p.ngrams[("LeakyRelu", "Add")] == 1
    assert set(p.ngrams) == {
        ("Relu", "Neg"),
        ("Neg", "Exp"),
        ("Exp", "Add"),
        ("LeakyRelu", "Add"),
        ("Relu", "Neg", "Exp"),
        ("Neg", "Exp", "Add"),
        ("Relu", "Neg", "Exp", "Add"),
    }


def test_versioned_op_resolution():
    assert versioned_op("", "Resize", {"ai.onnx": 21}) == "ai.onnx:Resize@19"
    assert versioned_op("ai.onnx", "Resize", {"ai.onnx": 12}) == "ai.onnx:Resize@11"
    assert versioned_op("", "NoSuchOp", {"ai.onnx": 17}) == "ai.onnx:NoSuchOp@?"
    assert versioned_op("com.example", "Op", {"ai.onnx": 17}) == "com.example:Op@?"


def test_coverage_against_a_directory(reference_dir: Path):
    coverage = model_coverage(profile(relu_neg_exp()), reference_of(reference_dir))
    ops = coverage.items["ops"]
    assert (ops.distinct.covered, ops.distinct.total) == (3, 5)
    assert ops.uncovered == ("Add", "LeakyRelu")
    bigrams = coverage.ngrams[2]
    assert (bigrams.distinct.covered, bigrams.distinct.total) == (1, 4)  # only Relu>Neg
    assert set(bigrams.uncovered) == {("Neg", "Exp"), ("Exp", "Add"), ("LeakyRelu", "Add")}
    assert bigrams.novel == (("Neg", "Exp"),)  # both ops covered, the pair never seen
    assert coverage.ngrams[3].novel == ()  # Neg>Exp is not covered
    assert coverage.items["attributes"].uncovered == ("LeakyRelu.alpha~1e-1",)
    assert coverage.items["attributes"].nodes["LeakyRelu.alpha~1e-1"]  # names the node


def test_weighted_coverage_counts_paths(tmp_path: Path):
    # Relu feeds Neg twice over: two node paths realise Relu>Neg in the model.
    from tests.coverage.conftest import parse

    model = parse("""g (float[2] x) => (float[2] y) {
        a = Relu(x)
        b = Neg(a)
        c = Neg(a)
        d = Add(b, c)
        y = Exp(d)
    }""")
    reference = reference_of(write(tmp_path / "r", {"m": relu_neg()}))
    bigrams = model_coverage(profile(model), reference).ngrams[2]
    assert (bigrams.distinct.covered, bigrams.distinct.total) == (1, 3)
    assert (bigrams.weighted.covered, bigrams.weighted.total) == (2, 5)


def test_zero_denominator_is_null_not_full(reference_dir: Path):
    from tests.coverage.conftest import parse

    single = parse("""g (float[2] x) => (float[2] y) {
        y = Relu(x)
    }""")
    coverage = model_coverage(profile(single), reference_of(reference_dir))
    assert coverage.ngrams[2].distinct.ratio is None
    assert coverage.to_dict()["ngrams"]["2"]["distinct"] == {
        "covered": 0,
        "total": 0,
        "ratio": None,
    }


def test_a_model_covers_itself(tmp_path: Path):
    reference = reference_of(write(tmp_path / "r", {"m": relu_neg_exp()}))
    coverage = model_coverage(profile(relu_neg_exp()), reference)
    for kind in ("ops", "versioned_ops", "dtypes", "ranks", "attributes"):
        assert coverage.items[kind].uncovered == ()
    assert all(not c.uncovered and c.distinct.ratio == 1.0 for c in coverage.ngrams.values())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["Relu", "Neg", "Exp", "Sigmoid"]), min_size=2, max_size=6))
def test_distinct_coverage_matches_brute_force(labels):
    """A chain model against a reference: covered n-grams are exactly the shared windows."""
    from onnx import TensorProto, helper

    def chain(ops):
        names = ["x", *[f"t{i}" for i in range(len(ops) - 1)], "y"]
        nodes = [helper.make_node(op, [names[i]], [names[i + 1]]) for i, op in enumerate(ops)]
        value = helper.make_tensor_value_info
        graph = helper.make_graph(
            nodes, "c", [value("x", TensorProto.FLOAT, [2])], [value("y", TensorProto.FLOAT, [2])]
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    reference_ops = ["Relu", "Neg", "Exp", "Relu"]
    ref_profile = profile(chain(reference_ops))
    index = _FakeIndex(ref_profile)
    model = chain(labels)
    coverage = model_coverage(profile(model), ReferenceUnion((index,)))
    windows = {tuple(labels[i : i + 2]) for i in range(len(labels) - 1)}
    ref_windows = {tuple(reference_ops[i : i + 2]) for i in range(len(reference_ops) - 1)}
    assert coverage.ngrams[2].distinct.covered == len(windows & ref_windows)
    assert coverage.ngrams[2].distinct.total == len(windows)
    counts = mine_ngrams(build_opgraph(model), n=2).counts
    assert coverage.ngrams[2].weighted.total == sum(counts.values())


class _FakeIndex:
    """An index holding one profile, for the property test (no files)."""

    def __init__(self, p) -> None:
        self.items = {kind: dict.fromkeys(values, 1) for kind, values in p.items.items()}
        self.ngrams = dict.fromkeys(p.ngrams, 1)
        self.model_count = 1

    def to_dict(self) -> dict:
        return {"name": "fake"}


# --- references and the cache ----------------------------------------------------------------


def test_empty_and_missing_references(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReferenceError, match="holds no models"):
        load_reference(parse_reference(str(tmp_path / "empty")), cache_dir=None)
    with pytest.raises(ReferenceError, match="no such file"):
        parse_reference(str(tmp_path / "missing"))
    onnx.save(relu_neg(), tmp_path / "one.onnx")
    with pytest.raises(ReferenceError, match="is one model"):
        parse_reference(str(tmp_path / "one.onnx"))
    with pytest.raises(ReferenceError, match="bad filter"):
        parse_reference(f"{tmp_path}:outcome=ok,colour=red")


def test_a_reference_of_unreadable_models_is_refused(tmp_path: Path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.onnx").write_bytes(b"not a model")
    with pytest.raises(ReferenceError, match="none of its 1 models could be read"):
        load_reference(parse_reference(str(bad)), cache_dir=None)


def test_unreadable_members_are_counted_not_covered(tmp_path: Path):
    directory = write(tmp_path / "r", {"m": relu_neg()})
    (directory / "broken.onnx").write_bytes(b"\x08\x01garbage")
    index = load_reference(parse_reference(str(directory)), cache_dir=None)
    assert (index.model_count, index.failed_count) == (1, 1)
    assert index.failed[0][0] == "broken.onnx"


def test_manifest_reference_with_filters(tmp_path: Path):
    corpus = write(tmp_path / "c" / "models", {"a": relu_neg(), "b": relu_exp()}).parent
    rows = [
        {"id": "a", "model": "models/a.onnx", "outcome": "ok", "converter": "x", "source": "s"},
        {
            "id": "b",
            "model": "models/b.onnx",
            "outcome": "mismatch",
            "converter": "x",
            "source": "s",
            "verdict": "semantic",
        },
        {"id": "c", "model": "../outside.onnx", "outcome": "ok", "converter": "x", "source": "s"},
    ]
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    onnx.save(relu_exp(), tmp_path / "outside.onnx")
    everything = load_reference(parse_reference(str(corpus)), cache_dir=None)
    assert everything.model_count == 2  # the row pointing outside the corpus is not followed
    ok = load_reference(parse_reference(f"{corpus}/manifest.jsonl:outcome=ok"), cache_dir=None)
    assert ok.model_count == 1 and ("Relu", "Neg") in ok.ngrams
    corpus_ok = load_reference(parse_reference(f"corpus-ok:{corpus}"), cache_dir=None)
    assert corpus_ok.model_count == 1 and ("Relu", "Exp") not in corpus_ok.ngrams


def test_second_run_reads_the_cache(tmp_path: Path, reference_dir: Path):
    cache = tmp_path / "cache"
    first = load_reference(parse_reference(str(reference_dir)), cache_dir=cache)
    second = load_reference(parse_reference(str(reference_dir)), cache_dir=cache)
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.fingerprint == first.fingerprint
    assert second.ngrams == first.ngrams and second.items == first.items
    assert [m.ngrams for m in second.load_models()] == [m.ngrams for m in first.load_models()]


def test_changed_reference_gets_a_new_fingerprint(tmp_path: Path, reference_dir: Path):
    cache = tmp_path / "cache"
    first = load_reference(parse_reference(str(reference_dir)), cache_dir=cache)
    onnx.save(relu_neg_exp(), reference_dir / "relu_exp.onnx")
    second = load_reference(parse_reference(str(reference_dir)), cache_dir=cache)
    assert second.fingerprint != first.fingerprint and not second.from_cache
    assert ("LeakyRelu", "Add") in second.ngrams


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.write_bytes(b"not gzip"),
        lambda p: p.write_bytes(gzip.compress(b"{not json")),
        lambda p: p.write_bytes(gzip.compress(json.dumps([1, 2]).encode())),
        lambda p: _rewrite(p, index_schema=99),
        lambda p: _rewrite(p, onnx="0.0.1"),
        lambda p: _rewrite(p, ngram_models=[-1]),
        lambda p: _rewrite(p, items={"ops": {"Relu": "many"}}),
    ],
    ids=["not-gzip", "not-json", "not-object", "schema", "onnx-version", "counts", "types"],
)
def test_corrupt_cache_is_rebuilt_not_trusted(tmp_path: Path, reference_dir: Path, damage, caplog):
    cache = tmp_path / "cache"
    first = load_reference(parse_reference(str(reference_dir)), cache_dir=cache)
    (summary,) = (cache / "references").glob("*.summary.json.gz")
    damage(summary)
    with caplog.at_level(logging.WARNING, logger="opseq"):
        again = load_reference(parse_reference(str(reference_dir)), cache_dir=cache)
    assert not again.from_cache and "rebuilding" in caplog.text
    assert again.ngrams == first.ngrams and again.items == first.items
    assert load_reference(parse_reference(str(reference_dir)), cache_dir=cache).from_cache


def test_corrupt_models_file_is_rebuilt(tmp_path: Path, reference_dir: Path):
    cache = tmp_path / "cache"
    first = load_reference(parse_reference(str(reference_dir)), cache_dir=cache)
    (models,) = (cache / "references").glob("*.models.json.gz")
    models.write_bytes(b"junk")
    again = load_reference(parse_reference(str(reference_dir)), cache_dir=cache)
    assert again.from_cache  # the summary is fine; the per-model file is rebuilt on demand
    assert [m.ngrams for m in again.load_models()] == [m.ngrams for m in first.load_models()]


def _rewrite(path: Path, **changes) -> None:
    data = json.loads(gzip.decompress(path.read_bytes()))
    data.update(changes)
    path.write_bytes(gzip.compress(json.dumps(data).encode()))


@pytest.mark.slow
def test_default_reference_covers_onnx_ops():
    """The generated node tests: about 1,900 models at onnx 1.23, every one profiled."""
    index = load_reference(parse_reference("onnx-node-tests"), cache_dir=None)
    assert index.model_count > 1500 and index.failed_count == 0
    assert {"Conv", "Relu", "Resize", "Einsum"} <= set(index.items["ops"])
    assert "ai.onnx:Resize@19" in index.items["versioned_ops"]
