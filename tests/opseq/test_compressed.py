"""Compressed corpora: gzip models and manifests read everywhere, bombs and junk refused."""

from __future__ import annotations

import gzip
import json

import pytest

from opseq.cli import main
from opseq.corpus import CorpusError, read_manifest
from opseq.corpus_compress import compress_corpus
from opseq.errors import ConfigError, LimitExceededError, ModelLoadError
from opseq.limits import Limits
from opseq.loader import load_model, model_files
from tests import models


def test_a_gzip_model_loads_like_the_plain_one(tmp_path):
    plain = models.chain().SerializeToString()
    path = tmp_path / "m.onnx.gz"
    path.write_bytes(gzip.compress(plain))
    assert load_model(path).SerializeToString() == plain
    assert load_model(gzip.compress(plain)).SerializeToString() == plain


def test_a_gzip_bomb_stops_at_the_size_limit(tmp_path):
    path = tmp_path / "bomb.onnx.gz"
    path.write_bytes(gzip.compress(b"\0" * (4 << 20)))  # 4 KiB that inflate to 4 MiB
    assert path.stat().st_size < 8 << 10
    with pytest.raises(LimitExceededError, match="gzip stream inflates: over the limit"):
        load_model(path, limits=Limits(max_model_bytes=1 << 20))


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (gzip.compress(b"x" * 1000, mtime=0)[:20], "gzip stream is truncated"),
        (b"\x1f\x8b" + b"junk" * 10, "not a valid gzip stream"),
    ],
    ids=["truncated", "not-gzip"],  # byte ids with a gzip timestamp differ between xdist workers
)
def test_broken_gzip_is_one_clear_refusal(tmp_path, data, fragment):
    path = tmp_path / "m.onnx.gz"
    path.write_bytes(data)
    with pytest.raises(ModelLoadError, match=fragment):
        load_model(path)


def test_model_files_finds_plain_and_compressed_models(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.onnx").write_bytes(b"")
    (tmp_path / "y.onnx.gz").write_bytes(b"")
    (tmp_path / "dir.onnx").mkdir()
    (tmp_path / "notes.txt").write_text("")
    assert model_files(tmp_path) == [tmp_path / "a" / "x.onnx", tmp_path / "y.onnx.gz"]


def _corpus(tmp_path):
    model_dir = tmp_path / "models" / "src" / "conv"
    model_dir.mkdir(parents=True)
    rows = []
    for i, make in enumerate((models.chain, models.diamond)):
        (model_dir / f"m{i}.onnx").write_bytes(make().SerializeToString())
        rows.append(
            {
                "id": f"src/m{i}/conv",
                "outcome": "ok",
                "converter": "conv",
                "source": "src",
                "model": f"models/src/conv/m{i}.onnx",
            }
        )
    rows.append(
        {
            "id": "src/m2/conv",
            "outcome": "convert_fail",
            "converter": "conv",
            "source": "src",
            "model": None,
            "error": "refused",
        }
    )
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "manifest.jsonl").write_text(text)
    return rows


def test_compress_corpus_keeps_every_row_and_model(tmp_path, capsys):
    rows = _corpus(tmp_path)
    before = read_manifest(tmp_path)
    result = compress_corpus(tmp_path)
    assert result.models == 2 and result.bytes_after < result.bytes_before
    assert not (tmp_path / "manifest.jsonl").exists()
    after = read_manifest(tmp_path)
    assert [r.id for r in after] == [r["id"] for r in rows]
    assert [r.model for r in after] == [
        "models/src/conv/m0.onnx.gz",
        "models/src/conv/m1.onnx.gz",
        None,
    ]
    for old, new in zip(before[:2], after[:2], strict=True):
        assert not (tmp_path / old.model).exists()
        assert (
            load_model(tmp_path / new.model).SerializeToString()
            == (
                (models.chain if old.id.endswith("m0/conv") else models.diamond)()
            ).SerializeToString()
        )
    # the compressed corpus is read by the CLI like a plain one
    assert main(["analyze", str(tmp_path / "models"), "--format", "jsonl", "-q"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert main(["corpus", "show", str(tmp_path), "--format", "json"]) == 0


def test_compress_corpus_twice_is_refused_and_a_campaign_will_not_append(tmp_path, capsys):
    _corpus(tmp_path)
    compress_corpus(tmp_path)
    with pytest.raises(ConfigError, match="no plain manifest"):
        compress_corpus(tmp_path)
    code = main(
        [
            "corpus",
            "build",
            str(tmp_path),
            "--source",
            "synthetic-torch",
            "--converter",
            "torch.onnx-torchscript",
            "--count",
            "1",
            "--workers",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "compressed and read-only" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (gzip.compress(b'{"id": "a"}\n', mtime=0)[:15], "gzip stream is truncated"),
        (b"\x1f\x8bnot gzip at all", "not a valid gzip stream"),
        (gzip.compress(b"\xff\xfe\n", mtime=0), "not UTF-8"),
    ],
    ids=["truncated", "not-gzip", "not-utf8"],
)
def test_a_broken_compressed_manifest_is_a_corpus_error(tmp_path, data, fragment):
    (tmp_path / "manifest.jsonl.gz").write_bytes(data)
    with pytest.raises(CorpusError, match=fragment):
        read_manifest(tmp_path)
