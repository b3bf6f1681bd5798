"""Verdicts say what the data can support: "no" needs power, sparse n-grams get exact tests.

The two failures of the review, on random-DAG corpora from ``bench/_planted_corpus.py``:

(a) nothing affects the outcome (planted odds ratio 1): the sequences question must not be "yes",
    even with an n-gram in 4 mismatching and 1 ok source models;
(b) three planted sequences with odds ratio 20, each in about 10 source models: it must not be
    "no" (schema 1 answered "no" on this corpus, seeds 0-3).
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.stats import fisher_exact

from hypotheses.association import association_tests, fit_adjustment
from hypotheses.features import PresenceMatrix
from hypotheses.labels import Tolerance
from hypotheses.report import ReportConfig, build_report
from hypotheses.stats import fit_size_model, score_tests, size_covariates
from tests.hypotheses.planted import planted_corpus, planted_rows, random_dag_table

FAST = ReportConfig(sweep=(), prediction=False)


@pytest.fixture(scope="module")
def null_corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("null")
    return random_dag_table(directory, models=600, planted_odds=1.0, seed=0)


@pytest.fixture(scope="module")
def rare_strong_corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rare")
    table = random_dag_table(directory, models=600, planted_odds=20.0, plant_rate=0.022, seed=0)
    return table, planted_rows(directory)


def _with_column(table, name, column):
    names = (*table.presence.names, name)
    matrix = sp.hstack([table.presence.matrix, sp.csr_array(column[:, None])], format="csr")
    return dataclasses.replace(table, presence=PresenceMatrix(names=names, matrix=matrix))


def test_a_null_corpus_is_not_a_yes(null_corpus):
    table = null_corpus
    y = table.recorded_mismatch
    single = np.bincount(table.clusters)[table.clusters] == 1
    smallest = np.argsort(table.nodes, kind="stable")
    carriers = [i for i in smallest if single[i] and y[i]][:4]
    carriers += [i for i in smallest if single[i] and not y[i]][:1]
    column = np.zeros(len(table), dtype=np.int8)
    column[carriers] = 1
    table = _with_column(table, ("Zz", "Injected"), column)
    report = build_report(table, FAST)
    answers = {v.key: v.answer for v in report.verdicts}
    assert answers["sequences"] != "yes"
    (injected,) = [t for t in report.sequences.tests if t.feature == ("Zz", "Injected")]
    assert (injected.mismatch_with, injected.ok_with) == (4, 1)
    assert injected.method_adjusted == "exact" and injected.carrier_clusters == 5
    assert injected.q_value_adjusted > 0.05
    # nothing significant, and the data could not have shown OR 3 for most n-grams
    power = report.sequences.family.power
    assert report.sequences.count(adjusted=True) == 0 and power.median > 3
    assert answers["sequences"] == "undetermined"


def test_rare_strong_sequences_are_not_a_no(rare_strong_corpus):
    table, planted = rare_strong_corpus
    carried = [
        len({g for i, g in zip(table.ids, table.groups, strict=True) if k in planted[i]})
        for k in range(3)
    ]
    assert carried == [18, 11, 10]  # source models carrying each chain (the manifest's rows)
    report = build_report(table, FAST)
    answers = {v.key: v.answer for v in report.verdicts}
    assert answers["sequences"] in {"yes", "undetermined"}
    evidence = next(v.evidence for v in report.verdicts if v.key == "sequences")
    assert "minimum detectable OR" in evidence and "source models" in evidence


def test_the_score_test_is_liberal_on_a_sparse_table_and_the_exact_test_is_not():
    # 2,000 models of one size and converter, 2% mismatch; an n-gram in 13 models, 3 mismatching
    models = 2000
    y = np.zeros(models, dtype=bool)
    y[:40] = True
    column = np.zeros(models, dtype=np.int8)
    column[[0, 1, 2, *range(100, 110)]] = 1
    presence = PresenceMatrix(names=(("A", "B"),), matrix=sp.csr_array(column[:, None]))
    covariates, names = size_covariates(np.full(models, 50))
    model = fit_size_model(y, covariates, names)
    _, score_p = score_tests(model, presence.matrix)
    result = association_tests(presence, y, model)
    # scipy fisher_exact on [[3, 10], [37, 1950]], greater: 0.0018; the score test's normal
    # tail: 2.6e-8 (z = 5.45)
    exact = fisher_exact([[3, 10], [37, 1950]], alternative="greater").pvalue
    assert score_p[0] < exact / 100
    assert result.columns["method_adjusted"][0] == "exact"
    assert result.columns["p_value_adjusted"][0] == pytest.approx(exact, rel=1e-9)


def test_one_class_gives_a_report_with_every_verdict_undetermined():
    table = planted_corpus(1, models=100, nulls=10, planted=2).table
    for atol, only in ((1.0, "ok"), (0.0, "mismatch")):
        config = ReportConfig(tolerance=Tolerance(atol=atol), repeats=1)
        report = build_report(table, config)
        assert {v.answer for v in report.verdicts if v.key != "tolerance"} == {"undetermined"}
        reason = f"all 100 labelled models are {only}"
        assert all(reason in v.evidence for v in report.verdicts if v.key != "tolerance")
        data = report.to_dict()
        assert data["sequences"]["tests"] == [] and data["sequences"]["skipped"].startswith(reason)
        json.dumps(data, allow_nan=False)


def test_labels_and_an_exclusion_mask_from_elsewhere():
    table = planted_corpus(2, models=300, nulls=20, planted=2).table
    labels = table.recorded_mismatch.copy()
    unstable = np.zeros(len(table), dtype=bool)
    unstable[:30] = True
    report = build_report(table, FAST, labels=labels, exclude=unstable, exclude_reason="unstable")
    assert report.corpus["labelled"] == 270 and report.corpus["excluded"]["unstable"] == 30
    assert report.corpus["mismatch"] == int(labels[30:].sum())


def test_report_records_power_tarone_and_effective_units():
    corpus = planted_corpus(3, models=600, nulls=60, planted=3, twins=True)
    report = build_report(corpus.table, FAST).to_dict()
    json.dumps(report, allow_nan=False)  # numpy scalars would not serialise
    assert report["schema_version"] == 2
    assert report["sequences"]["conditional"]  # significant n-grams, each with its parts
    sequences = report["sequences"]
    assert set(sequences["power"]) >= {"per_test_alpha", "mdor_quantiles", "bands", "sufficient"}
    assert sequences["tarone"]["family"] + sequences["tarone"]["excluded"] == sequences["tested"]
    units = report["corpus"]["effective_units"]
    assert units["clusters"] == 300 and units["pairs"] == 300
    assert units["effective_rows"] < 600  # twins repeat each other's outcome 90% of the time
    assert report["twins"]["discordant"] == units["discordant"]
    for test in sequences["tests"]:
        assert test["method_adjusted"] in {"score", "exact"}
        assert isinstance(test["tarone_testable"], bool)
    verdict = next(v for v in report["verdicts"] if v["key"] == "operators")
    named = [t["op"] for t in report["operators"]["tests"] if t["q_value_adjusted"] <= 0.05]
    assert all(op in verdict["evidence"] for op in named)


def test_fit_adjustment_gives_source_model_strata():
    corpus = planted_corpus(4, models=400, nulls=10, planted=2, twins=True)
    model = fit_adjustment(corpus.table, corpus.table.recorded_mismatch)
    design = model.design
    assert design.clusters == 200 and (design.sizes == 2).all()
    assert len(np.unique(design.strata)) == 8  # one composition (a+b), 200 // 25 = 8 size bins
