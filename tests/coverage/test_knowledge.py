"""The knowledge base: risky n-grams from a hypothesis report, and every bad report refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opseq.coverage.knowledge import default_knowledge, load_knowledge
from opseq.errors import ConfigError


def report(tests, *, version=2, alpha=0.05, answer="yes") -> dict:
    return {
        "schema_version": version,
        "config": {"alpha": alpha},
        "sequences": {"tests": tests},
        "verdicts": [{"key": "sequences", "answer": answer}],
    }


def entry(ngram, q, odds=4.0) -> dict:
    return {"ngram": ngram, "q_value_adjusted": q, "odds_ratio_adjusted": odds}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "kb.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_risky_ngrams_are_the_adjusted_significant_ones(tmp_path: Path):
    data = report([entry(["A", "B"], 0.01), entry(["B", "C"], 0.2), entry(["C", "D"], None)])
    kb = load_knowledge(write(tmp_path, data))
    assert list(kb.risky) == [("A", "B")]
    assert kb.risky[("A", "B")].detail() == "adjusted odds ratio 4, q 0.01"
    assert kb.tested == 3 and "1 of 3 tested" in kb.describe()


def test_nothing_significant_is_not_no_risk(tmp_path: Path):
    kb = load_knowledge(write(tmp_path, report([entry(["A", "B"], 0.5)], answer="undetermined")))
    assert not kb.risky
    assert "no evidence that the model is safe" in kb.describe()
    assert "undetermined" in kb.describe()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (report([], version=1), "schema_version 1"),
        (report([], version="2"), "schema_version '2'"),
        ({"schema_version": 2}, "not an opseq hypotheses report"),
        ([1, 2], "not an opseq hypotheses report"),
        ("{not json", "not JSON"),
        (report([], alpha=2), "config.alpha"),
        ({**report([]), "sequences": {"tests": "x"}}, "sequences.tests must be a list"),
        (report([{"ngram": "A>B", "q_value_adjusted": 0.01}]), r"tests\[0\]: ngram"),
        (report([{"ngram": ["A"], "q_value_adjusted": "low"}]), "q_value_adjusted"),
    ],
)
def test_bad_knowledge_files_are_refused(tmp_path: Path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_knowledge(write(tmp_path, data))


def test_missing_knowledge_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="knowledge base"):
        load_knowledge(tmp_path / "missing.json")


@pytest.mark.corpus
def test_the_shipped_knowledge_base_reads():
    path = default_knowledge()
    assert path is not None
    kb = load_knowledge(path)
    assert kb.tested > 1000
    # The shipped corpus is underpowered for sequences: nothing survives adjustment.
    assert not kb.risky and kb.answer == "undetermined"
