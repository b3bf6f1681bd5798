"""`opseq coverage` on the command line: output, the JSON contract, exit codes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from opseq.cli import main
from tests.coverage.conftest import relu_exp, relu_neg, relu_neg_exp, write


@pytest.fixture
def setup(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPSEQ_CACHE_DIR", str(tmp_path / "cache"))
    reference = write(tmp_path / "ref", {"a": relu_neg(), "b": relu_exp()})
    model = tmp_path / "model.onnx"
    onnx.save(relu_neg_exp(), model)
    return model, reference


def test_text_report(setup, capsys):
    model, reference = setup
    assert main(["coverage", str(model), "--reference", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "ops: 3/5 (60.0%)" in out
    assert "2-grams: distinct 1/4 (25.0%), by paths 1/4 (25.0%), 1 novel" in out
    assert "novel: Neg > Exp" in out
    assert "uncovered: Add" in out


def test_json_contract(setup, capsys):
    model, reference = setup
    assert main(["coverage", str(model), "--reference", str(reference), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 1
    (ref,) = data["reference"]
    assert ref["models"] == 2 and len(ref["fingerprint"]) == 64 and not ref["from_cache"]
    (entry,) = data["models"]
    assert entry["ops"]["covered"] == 3 and entry["ops"]["total"] == 5
    assert sorted(entry["ops"]["uncovered"]) == ["Add", "LeakyRelu"]
    assert entry["versioned_ops"]["ratio"] == 0.6
    bigrams = entry["ngrams"]["2"]
    assert bigrams["distinct"] == {"covered": 1, "total": 4, "ratio": 0.25}
    assert bigrams["novel"] == [["Neg", "Exp"]]
    assert set(entry) >= {"dtypes", "ranks", "attributes"}
    # The second run reads the cached index.
    assert main(["coverage", str(model), "--reference", str(reference), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["reference"][0]["from_cache"]


def test_markdown(setup, capsys):
    model, reference = setup
    assert main(["coverage", str(model), "--reference", str(reference), "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "| 2-grams (distinct / by paths) | 1/4 (25.0%) / 1/4 (25.0%) | 3 | 1 |" in out


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda m, r, t: [str(m), "--reference", str(t / "missing")], "no such file or directory"),
        (lambda m, r, t: [str(m), "--reference", str(t / "empty")], "holds no models"),
        (lambda m, r, t: [str(t / "missing.onnx"), "--reference", str(r)], "missing.onnx"),
        (lambda m, r, t: [str(t / "garbage.onnx"), "--reference", str(r)], "garbage.onnx"),
        (lambda m, r, t: [str(m), "--reference", f"{r}:colour=red"], "bad filter"),
    ],
    ids=["missing-reference", "empty-reference", "missing-model", "unparsable", "filter"],
)
def test_bad_input_is_one_line_and_exit_2(setup, tmp_path, capsys, make_args, message):
    model, reference = setup
    (tmp_path / "empty").mkdir()
    (tmp_path / "garbage.onnx").write_bytes(b"\x00garbage")
    assert main(["coverage", *make_args(model, reference, tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_no_cache_writes_nothing(setup, tmp_path, capsys):
    model, reference = setup
    assert main(["coverage", str(model), "--reference", str(reference), "--no-cache"]) == 0
    assert not (tmp_path / "cache").exists()


def test_corpus_side_by_side_with_growth_and_table_12(setup, tmp_path, capsys):
    _model, reference = setup
    corpus = write(tmp_path / "c" / "models", {"a": relu_neg(), "b": relu_neg_exp()}).parent
    rows = [
        {
            "id": "a",
            "model": "models/a.onnx",
            "outcome": "ok",
            "converter": "x",
            "source": "s",
            "verdict": "ok",
        },
        {
            "id": "b",
            "model": "models/b.onnx",
            "outcome": "mismatch",
            "converter": "x",
            "source": "s",
            "verdict": "semantic",
        },
    ]
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["coverage", "--corpus", str(corpus), "--corpus", str(reference)]
    assert main([*argv, "--reference", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "bigram coverage, of type-feasible" in out and "COMET" in out
    assert "distinct 2-grams" in out and "models  distinct ops" in out  # the growth table
    assert "never exercised" in out or "unexercised" in out  # Table 12 row 3 for the manifest


def test_models_and_corpus_are_exclusive(setup, capsys):
    model, reference = setup
    assert main(["coverage", str(model), "--corpus", str(reference)]) == 2
    assert main(["coverage"]) == 2
    assert "either MODEL" in capsys.readouterr().err


def test_markdown_links_the_picture(setup, tmp_path, capsys):
    model, reference = setup
    picture = tmp_path / "uncovered.dot"
    argv = ["coverage", str(model), "--reference", str(reference), "--format", "md"]
    assert main([*argv, "--picture", str(picture)]) == 0
    assert f"![uncovered sequences]({picture})" in capsys.readouterr().out
    assert "Neg" in picture.read_text()
