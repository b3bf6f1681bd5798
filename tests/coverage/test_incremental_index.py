"""A changed reference profiles only its changed models; profiling on Dask gives the same index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from opseq.cli import main
from opseq.coverage import profiling
from opseq.coverage.index import load_reference
from opseq.coverage.references import parse_reference
from tests.coverage.conftest import relu_neg
from tests.mining import random_model


def _corpus(directory: Path, models: int = 12, seed: int = 0) -> Path:
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(models):
        onnx.save(random_model(rng, int(rng.integers(2, 9))), directory / f"m{i:02d}.onnx")
    (directory / "broken.onnx").write_bytes(b"\x08\x07garbage")
    return directory


@pytest.fixture
def profiled(monkeypatch) -> list[str]:
    """The names of the models profiled (not taken from a previous index)."""
    names: list[str] = []
    real = profiling.profile_bytes

    def counting(item, limits):
        names.append(item[0])
        return real(item, limits)

    monkeypatch.setattr(profiling, "profile_bytes", counting)
    return names


def _same(a, b) -> None:
    assert (a.model_count, a.failed_count, a.failed) == (b.model_count, b.failed_count, b.failed)
    assert a.ngrams == b.ngrams and a.items == b.items
    assert a.load_models() == b.load_models()


def test_a_changed_model_is_the_only_one_profiled_again(tmp_path: Path, profiled: list[str]):
    corpus = _corpus(tmp_path / "corpus")
    cache = tmp_path / "cache"
    spec = parse_reference(str(corpus))
    first = load_reference(spec, cache_dir=cache)
    assert len(profiled) == 13 and first.model_count == 12 and first.failed_count == 1
    profiled.clear()
    onnx.save(relu_neg(), corpus / "m03.onnx")
    (corpus / "m05.onnx").rename(corpus / "moved.onnx")  # same content, another name
    second = load_reference(spec, cache_dir=cache)
    assert sorted(profiled) == ["broken.onnx", "m03.onnx"]  # failures are not remembered
    assert not second.from_cache and second.fingerprint != first.fingerprint
    _same(second, load_reference(spec, cache_dir=None))
    assert "moved.onnx" in {m.name for m in second.load_models()}
    # The index replaced is deleted: one summary, one models file, one pointer.
    files = sorted(p.name.split(".", 1)[1] for p in (cache / "references").iterdir())
    assert files == ["latest", "models.json.gz", "summary.json.gz"]


@pytest.mark.parametrize("damage", ["pointer", "models"])
def test_a_damaged_previous_index_means_profiling_everything(
    tmp_path: Path, profiled: list[str], damage: str
):
    corpus = _corpus(tmp_path / "corpus", models=4)
    cache = tmp_path / "cache"
    spec = parse_reference(str(corpus))
    load_reference(spec, cache_dir=cache)
    (target,) = (cache / "references").glob("*.latest" if damage == "pointer" else "*.models.*")
    target.write_bytes(b"../../etc/passwd" if damage == "pointer" else b"junk")
    onnx.save(relu_neg(), corpus / "m00.onnx")
    profiled.clear()
    again = load_reference(spec, cache_dir=cache)
    assert len(profiled) == 5
    _same(again, load_reference(spec, cache_dir=None))


@pytest.mark.slow
def test_profiling_on_a_local_cluster_gives_the_same_index(tmp_path: Path):
    from opseq.distributed.cluster import connect

    corpus = _corpus(tmp_path / "corpus", models=40, seed=5)
    spec = parse_reference(str(corpus))
    here = load_reference(spec, cache_dir=None)
    with connect(local_workers=2) as client:
        there = load_reference(spec, cache_dir=tmp_path / "cache", client=client)
    _same(here, there)
    assert there.failed == (("broken.onnx", there.failed[0][1]),)


@pytest.mark.slow
def test_coverage_corpus_on_dask_writes_the_same_report(tmp_path: Path, capsys):
    corpus = _corpus(tmp_path / "corpus", models=20, seed=6)
    reports = []
    for extra in (("--no-cache",), ("--dask", "2", "--cache-dir", str(tmp_path / "cache"))):
        code = main(["coverage", "--corpus", str(corpus), "--format", "json", "-q", *extra])
        out, err = capsys.readouterr()
        assert code == 0, err
        reports.append(json.loads(out))
    assert reports[0] == reports[1]
    assert reports[0]["corpora"][0]["models"] == 20
