"""The Parquet corpus index: a warm run equals a cold one, and no index file is ever trusted."""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hypotheses.features import StructureTable, extract_structure, load_corpus, presence_matrix
from opseq.cli import main
from opseq.graph import DEFAULT_IGNORED_OPS
from opseq.mining.dask_mining import mine_corpus
from opseq.mining.index import MAX_INDEX_BYTES, MiningParams
from tests.cli.errors import assert_one_error_line
from tests.mining import random_model, read_rows, write_corpus, write_manifest

PARAMS = MiningParams(n_max=4, ignore_ops=tuple(DEFAULT_IGNORED_OPS))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    directory = tmp_path / "corpus"
    write_corpus(directory)
    return directory


def reference_table(corpus: Path) -> tuple[list[str], np.ndarray, object]:
    """Ids, node counts and presence matrix mined model by model, without the index code."""
    rows = [r for r in read_rows(corpus) if r["model"] and r["outcome"] in ("ok", "mismatch")]
    structures = [extract_structure(corpus / r["model"], n_max=4) for r in rows]
    nodes = np.array([s.nodes for s in structures], dtype=np.int64)
    return [r["id"] for r in rows], nodes, presence_matrix(structures)


def assert_same(a: StructureTable, b: StructureTable) -> None:
    assert a.ids == b.ids
    assert np.array_equal(a.nodes, b.nodes) and a.nodes.dtype == b.nodes.dtype
    assert a.presence.names == b.presence.names
    ma, mb = a.presence.matrix, b.presence.matrix
    assert ma.shape == mb.shape and ma.dtype == mb.dtype
    assert np.array_equal(ma.indptr, mb.indptr) and np.array_equal(ma.indices, mb.indices)
    assert np.array_equal(ma.data, mb.data) and ma.indices.dtype == mb.indices.dtype
    assert a.excluded == b.excluded and a.outcomes == b.outcomes
    assert np.array_equal(a.recorded_mismatch, b.recorded_mismatch)


def stats(corpus: Path, index: Path, params: MiningParams = PARAMS):
    """Mine the corpus's labelled models through the index; return the call's statistics."""
    rows = [r for r in read_rows(corpus) if r["model"] and r["outcome"] in ("ok", "mismatch")]
    names = [r["model"] for r in rows]
    mined = mine_corpus(
        [str(corpus / n) for n in names],
        params=params,
        names=names,
        keep=frozenset(names),
        index=index,
    )
    return mined.stats


def test_cold_and_warm_tables_equal_mining_each_model(corpus: Path, tmp_path: Path):
    index = tmp_path / "index" / "structure.parquet"
    cold = load_corpus(corpus, index=index)
    assert index.is_file()
    warm = load_corpus(corpus, index=index)
    plain = load_corpus(corpus)  # no index at all
    ids, nodes, presence = reference_table(corpus)
    assert cold.ids == tuple(ids) and np.array_equal(cold.nodes, nodes)
    assert cold.presence.names == presence.names
    assert (cold.presence.matrix != presence.matrix).nnz == 0
    assert_same(cold, warm)
    assert_same(cold, plain)
    assert cold.excluded == {"outcome load_fail": 1, "outcome convert_fail": 1}
    assert stats(corpus, index).to_dict() == {
        "models": 12, "from_index": 12, "mined": 0, "dropped": 0, "written": False,
        "rebuilt": None,
    }  # fmt: skip
    assert [p.name for p in index.parent.iterdir()] == ["structure.parquet"]  # no temporary left


def test_index_rows_hold_hash_nodes_ngrams_and_versions(corpus: Path, tmp_path: Path):
    index = tmp_path / "structure.parquet"
    load_corpus(corpus, index=index)
    table = pq.read_table(index)
    assert table.num_rows == 12 and table.column("n_max").to_pylist() == [4] * 12
    header = json.loads(table.schema.metadata[b"opseq.corpus_index"])
    assert header["index_schema"] == 1 and header["params"]["n_max"] == 4
    assert {"opseq", "onnx", "vocabulary"} <= set(header)
    import hashlib

    row = table.slice(0, 1).to_pylist()[0]
    model = next(r["model"] for r in read_rows(corpus) if r["model"] == row["path"])
    digest = hashlib.sha256((corpus / model).read_bytes()).hexdigest()
    assert row["digest"] == digest
    structure = extract_structure(corpus / model, n_max=4)
    vocabulary = vocabulary_of(table.schema.metadata)
    assert row["nodes"] == structure.nodes
    assert {tuple(vocabulary[i].split("\x1f")) for i in row["ngrams"]} == structure.ngrams


def test_a_changed_model_is_mined_alone_and_a_removed_one_dropped(corpus: Path, tmp_path: Path):
    index = tmp_path / "structure.parquet"
    assert stats(corpus, index).mined == 12
    changed = corpus / "models" / "m001.onnx"
    changed.write_bytes(random_model(np.random.default_rng(99), 7).SerializeToString())
    assert stats(corpus, index).to_dict() == {
        "models": 12, "from_index": 11, "mined": 1, "dropped": 1, "written": True,
        "rebuilt": None,
    }  # fmt: skip
    assert_same(load_corpus(corpus, index=index), load_corpus(corpus))
    rows = read_rows(corpus)
    write_manifest(corpus, [r for r in rows if r["model"] != "models/m002.onnx"])
    after = stats(corpus, index)
    assert (after.mined, after.dropped, after.written) == (0, 1, True)
    assert pq.read_table(index).num_rows == 11
    assert_same(load_corpus(corpus, index=index), load_corpus(corpus))


def test_a_filtered_run_keeps_the_rows_it_did_not_look_at(corpus: Path, tmp_path: Path):
    index = tmp_path / "structure.parquet"
    rows = read_rows(corpus)
    for i, row in enumerate(rows):
        row["converter"] = "a" if i % 2 else "b"
    write_manifest(corpus, rows)
    load_corpus(corpus, index=index)
    only_a = load_corpus(corpus, index=index, converters=["a"])
    assert pq.read_table(index).num_rows == 12
    assert_same(only_a, load_corpus(corpus, converters=["a"]))


def test_unreadable_model_is_remembered_until_it_changes(corpus: Path, tmp_path: Path):
    index = tmp_path / "structure.parquet"
    (corpus / "models" / "m003.onnx").write_bytes(b"not a model")
    table = load_corpus(corpus, index=index)
    assert table.excluded["unreadable model (ModelLoadError)"] == 1
    assert stats(corpus, index).mined == 0
    assert load_corpus(corpus, index=index).excluded == table.excluded
    (corpus / "models" / "m003.onnx").write_bytes(random_model(np.random.default_rng(5), 3)
                                                  .SerializeToString())  # fmt: skip
    assert stats(corpus, index).mined == 1


def test_same_content_at_two_paths_is_mined_once(corpus: Path, tmp_path: Path):
    shutil.copy(corpus / "models" / "m000.onnx", corpus / "models" / "copy.onnx")
    rows = read_rows(corpus)
    write_manifest(
        corpus, [*rows, {**rows[0], "id": "tiny/copy/conv", "model": "models/copy.onnx"}]
    )
    index = tmp_path / "structure.parquet"
    first = stats(corpus, index)
    assert (first.models, first.mined) == (13, 12)
    table = load_corpus(corpus, index=index)
    assert (
        table.presence.matrix[[0]].toarray().tolist()
        == table.presence.matrix[[12]].toarray().tolist()
    )
    assert_same(table, load_corpus(corpus))


def vocabulary_of(metadata: dict) -> list:
    """The index's vocabulary (zstd-compressed JSON, base64, in the file's metadata)."""
    raw = base64.b64decode(metadata[b"opseq.vocabulary"])
    size = json.loads(metadata[b"opseq.corpus_index"])["vocabulary"]["bytes"]
    return json.loads(pa.decompress(raw, decompressed_size=size, codec="zstd", asbytes=True))


def _truncate(index: Path) -> None:
    data = index.read_bytes()
    index.write_bytes(data[: len(data) // 2])


def _rewrite(index: Path, edit) -> None:
    table = pq.read_table(index)
    header = json.loads(table.schema.metadata[b"opseq.corpus_index"])
    table = edit(table, header)
    pq.write_table(table, index)


def _schema_99(table, header):
    header["index_schema"] = 99
    return table.replace_schema_metadata(
        {**table.schema.metadata, b"opseq.corpus_index": json.dumps(header)}
    )


def _wrong_columns(table, header):
    return pa.table(
        {"digest": table.column("digest"), "count": pa.array(range(table.num_rows))},
        metadata={b"opseq.corpus_index": json.dumps(header)},
    )


def _wrong_types(table, header):
    nodes = pa.array([str(n) for n in table.column("nodes").to_pylist()])
    return table.set_column(table.schema.get_field_index("nodes"), "nodes", nodes)


def _ids_out_of_range(table, header):
    words = json.dumps(vocabulary_of(table.schema.metadata)[:3]).encode()
    header["vocabulary"]["bytes"] = len(words)
    packed = base64.b64encode(pa.compress(words, codec="zstd", asbytes=True))
    metadata = {b"opseq.corpus_index": json.dumps(header), b"opseq.vocabulary": packed}
    return table.replace_schema_metadata(metadata)


def _vocabulary_bomb(table, header):
    header["vocabulary"]["bytes"] = 10  # smaller than it inflates to
    metadata = {**table.schema.metadata, b"opseq.corpus_index": json.dumps(header)}
    return table.replace_schema_metadata(metadata)


def _bad_digest(table, header):
    digests = pa.array(["../../etc/passwd"] * table.num_rows)
    return table.set_column(0, "digest", digests)


def _null_nodes_of_a_readable_model(table, header):
    nodes = pa.array([None, *table.column("nodes").to_pylist()[1:]], pa.int64())
    return table.set_column(table.schema.get_field_index("nodes"), "nodes", nodes)


def _no_metadata(table, header):
    return table.replace_schema_metadata(None)


CORRUPTIONS = {
    "garbage bytes": lambda index: index.write_bytes(b"\x00garbage" * 100),
    "empty file": lambda index: index.write_bytes(b""),
    "truncated Parquet": _truncate,
    "another schema version": lambda index: _rewrite(index, _schema_99),
    "valid Parquet, wrong columns": lambda index: _rewrite(index, _wrong_columns),
    "rows of the wrong types": lambda index: _rewrite(index, _wrong_types),
    "n-gram ids out of range": lambda index: _rewrite(index, _ids_out_of_range),
    "vocabulary inflating past its stated size": lambda index: _rewrite(index, _vocabulary_bomb),
    "digests that are not hashes": lambda index: _rewrite(index, _bad_digest),
    "no opseq metadata": lambda index: _rewrite(index, _no_metadata),
    "null nodes of a readable model": lambda index: _rewrite(
        index, _null_nodes_of_a_readable_model
    ),
    "oversized (sparse) file": lambda index: os.truncate(index, MAX_INDEX_BYTES + 1),
}


@pytest.mark.parametrize("corrupt", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_an_unusable_index_is_a_warning_and_is_rebuilt(corpus, tmp_path, caplog, corrupt):
    index = tmp_path / "structure.parquet"
    cold = load_corpus(corpus, index=index)
    corrupt(index)
    with caplog.at_level(logging.WARNING, logger="opseq.mining.index"):
        rebuilt = load_corpus(corpus, index=index)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unusable" in warnings[0].getMessage()
    assert_same(cold, rebuilt)
    assert stats(corpus, index).mined == 0  # the rebuilt index is whole again


def test_other_mining_parameters_rebuild_the_index(corpus: Path, tmp_path: Path, caplog):
    index = tmp_path / "structure.parquet"
    load_corpus(corpus, index=index, n_max=4)
    with caplog.at_level(logging.WARNING, logger="opseq.mining.index"):
        three = load_corpus(corpus, index=index, n_max=3)
    assert "other mining parameters" in caplog.text
    assert_same(three, load_corpus(corpus, n_max=3))
    assert stats(corpus, index, MiningParams(n_max=3, ignore_ops=PARAMS.ignore_ops)).mined == 0


def test_an_index_that_cannot_be_written_is_only_a_warning(corpus: Path, tmp_path: Path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="opseq.mining.index"):
        table = load_corpus(corpus, index=blocker / "structure.parquet")
    assert "could not write the corpus index" in caplog.text
    assert_same(table, load_corpus(corpus))


def test_cli_writes_the_index_where_asked_and_reads_it(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPSEQ_CACHE_DIR", str(tmp_path / "cache"))
    index = tmp_path / "where" / "i.parquet"
    fast = ("--min-support", "2", "--repeats", "2", "--no-sweep", "--no-prediction", "-q")
    outputs = []
    for extra in (("--index", index), ("--index", index), ("--no-index",), ()):
        code = main(["hypotheses", str(corpus), *map(str, extra), "--format", "json", *fast])
        out, err = capsys.readouterr()
        assert code == 0, err
        outputs.append(out)
    assert index.is_file() and len(set(outputs)) == 1
    cached = list((tmp_path / "cache" / "corpus-index").glob("*/structure.parquet"))
    assert len(cached) == 1  # the default location, not the corpus directory
    assert sorted(p.name for p in corpus.iterdir()) == ["manifest.jsonl", "models"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--index", "I", "--no-index"],
        ["--index", "DIR"],
        ["--scheduler", "not an address"],
        ["--dask", "0"],
        ["--dask", "2", "--scheduler", "tcp://127.0.0.1:8786"],
    ],
)
def test_cli_refuses_bad_index_and_cluster_options(corpus, tmp_path, capsys, argv):
    argv = [str(tmp_path) if a == "DIR" else str(tmp_path / "i") if a == "I" else a for a in argv]
    code = main(["hypotheses", str(corpus), *argv, "-q"])
    _, err = capsys.readouterr()
    assert code == 2
    assert_one_error_line(err)
