"""The shipped corpus/ keeps its contract: valid rows, unique ids, the models it names, its size."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from opseq.corpus import read_manifest
from opseq.outcomes import Outcome
from opseq.strip import is_structure_only

pytestmark = pytest.mark.corpus

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.fixture(scope="module")
def rows():
    return read_manifest(CORPUS)


def test_shipped_corpus_rows_unique_and_models_present(rows):
    assert len({row.id for row in rows}) == len(rows)
    for row in rows:
        if row.outcome in (
            Outcome.CONVERT_FAIL,
            Outcome.GENERATE_FAIL,
            Outcome.TIMEOUT,
            Outcome.CRASH,
        ):
            assert row.model is None, row.id
        else:
            assert row.model is not None and (CORPUS / row.model).is_file(), row.id


def test_shipped_corpus_has_800_synthetic_tests_per_converter(rows):
    synthetic = Counter(row.converter for row in rows if row.source.startswith("synthetic"))
    assert sum(synthetic.values()) >= 2400
    assert all(
        synthetic[c] >= 800 for c in ("torch.onnx-dynamo", "torch.onnx-torchscript", "tf2onnx")
    )
    assert {row.source for row in rows} >= {"zoo-keras", "zoo-transformers", "zoo-torch"}


def test_shipped_corpus_synthetic_families_cover_the_vocabulary(rows):
    from opseq.sources.synthetic import vocabulary

    for source, framework in (("synthetic-torch", "torch"), ("synthetic-tf", "tensorflow")):
        seen = {op for row in rows if row.source == source for op in row.extra["metadata"]["ops"]}
        assert seen >= set(vocabulary(framework)), source


def test_shipped_corpus_models_structure_only_and_within_budget(rows):
    import onnx

    sample = [row for row in rows if row.model][::97]
    for row in sample:
        assert is_structure_only(onnx.load(CORPUS / row.model, load_external_data=False)), row.id
    files = [
        p for p in CORPUS.rglob("*") if p.is_file() and not {"logs", "__pycache__"} & set(p.parts)
    ]
    main = [p for p in files if not p.name.endswith(".gz") and "findings" not in p.parts]
    # 40 MB of structure-only models; the manifest keeps every calibrated measurement (per output
    # and input set, 9 of its 23 MB, 3 MB compressed) so that verdicts are re-derivable.
    assert sum(p.stat().st_size for p in main) < 70e6
    # The whole of corpus/ (hunting corpora compressed, the findings ledger): the budget.
    assert sum(p.stat().st_size for p in files) < 120e6


def test_shipped_knowledge_base_describes_this_manifest(rows):
    report = json.loads((CORPUS / "hypotheses.json").read_text(encoding="utf-8"))
    assert report["schema_version"] == 2
    assert report["corpus"]["rows"] == len(rows)
    labelled = sum(row.outcome in (Outcome.OK, Outcome.MISMATCH) for row in rows)
    assert report["config"]["rule"]["kind"] == "calibrated"  # mismatch = semantic
    unstable = sum(row.extra.get("verdict") == "unstable" for row in rows)
    assert report["corpus"]["labelled"] + unstable == labelled
    assert {v["key"] for v in report["verdicts"]} >= {"operators", "sequences"}
    assert "## Verdicts" in (CORPUS / "hypotheses.md").read_text(encoding="utf-8")


def test_shipped_issue_table_runs_through_the_evolution_test():
    from hypotheses.evolution import opset_evolution, read_issues

    issues = read_issues(CORPUS / "issues" / "converter_issues.csv")
    assert len(issues) == 315
    result = opset_evolution(issues)
    assert result.overall.n_groups >= 20 and result.overall.rho is not None
    assert {"incompatibility", "type"} <= set(result.by_cause)


@pytest.mark.parametrize(
    ("directory", "converters"),
    [
        ("guided-edge", {"torch.onnx-torchscript": 2000, "torch.onnx-dynamo": 200}),
        ("guided-edge-tf", {"tf2onnx": 2000}),
    ],
)
def test_shipped_hunting_corpora_are_compressed_guided_edge_campaigns(directory, converters):
    from opseq.corpus import manifest_path
    from opseq.loader import load_model

    corpus = CORPUS / directory
    assert manifest_path(corpus).name == "manifest.jsonl.gz"
    rows = read_manifest(corpus)
    assert len({row.id for row in rows}) == len(rows)
    counts = Counter(row.converter for row in rows)
    assert all(counts[c] >= n for c, n in converters.items()), counts
    assert all(r.extra["guided"] and r.extra["input_strategy"] == "edge" for r in rows)
    for row in rows:
        if row.model is not None:
            assert row.model.endswith(".onnx.gz") and (corpus / row.model).is_file(), row.id
    for row in [row for row in rows if row.model][::211]:
        assert is_structure_only(load_model(corpus / row.model)), row.id


def test_shipped_corpus_stays_under_120_mb():
    size = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file() and "logs" not in p.parts)
    assert size < 120e6
