"""On corpora with a planted truth, the tests find the planted sequences and control the FDR.

Size confounds every null n-gram (bigger models contain more of them and mismatch more often), so
the unadjusted test reports mostly false discoveries; the size-adjusted test must not.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.sparse as sp

from hypotheses.association import fit_adjustment
from hypotheses.errors import HypothesisInputError
from hypotheses.features import PresenceMatrix
from hypotheses.labels import Tolerance
from hypotheses.report import STAGES, ReportConfig, build_report
from hypotheses.sequences import sequences_hypothesis
from hypotheses.stats import fit_size_model, size_covariates
from tests.hypotheses.planted import planted_corpus

ALPHA = 0.05
REPLICATES = 20


def _sequences(corpus, *, min_support: int = 5):
    table = corpus.table
    mismatch = table.recorded_mismatch
    return sequences_hypothesis(
        table.presence,
        mismatch,
        fit_adjustment(table, mismatch),
        n_range=(2, 3),
        min_support=min_support,
        alpha=ALPHA,
    )


def _false_discovery_proportion(tests, corpus) -> float:
    found = {t.feature for t in tests}
    return len(found & corpus.nulls) / max(len(found), 1)


def test_size_adjustment_keeps_the_false_discovery_proportion_at_the_nominal_level():
    adjusted, unadjusted, power = [], [], []
    for seed in range(REPLICATES):
        corpus = planted_corpus(seed)
        result = _sequences(corpus)
        adjusted.append(_false_discovery_proportion(result.significant_adjusted, corpus))
        unadjusted.append(_false_discovery_proportion(result.significant, corpus))
        found = {t.feature for t in result.significant_adjusted}
        power.append(len(found & corpus.planted) / len(corpus.planted))
    # FDR is an expectation: the mean FDP over the replicates estimates it.
    assert np.mean(adjusted) <= ALPHA
    assert np.mean(unadjusted) > 0.5  # confounding by size: most unadjusted findings are false
    assert np.mean(power) > 0.6


def test_twin_conversions_need_the_cluster_robust_variance():
    """One source model converted twice is not two independent observations."""
    robust, naive = [], []
    for seed in range(REPLICATES):
        corpus = planted_corpus(seed, models=3000, twins=True)
        table, mismatch = corpus.table, corpus.table.recorded_mismatch
        clustered = fit_adjustment(table, mismatch)
        assert clustered.clusters is not None
        independent = dataclasses.replace(clustered, clusters=None)
        for model, found in ((clustered, robust), (independent, naive)):
            result = sequences_hypothesis(
                table.presence, mismatch, model, n_range=(2, 3), min_support=5
            )
            found.append(_false_discovery_proportion(result.significant_adjusted, corpus))
    # within Monte Carlo error of the nominal level, while ignoring the twins is far above it
    assert np.mean(robust) - 2 * _standard_error(robust) <= ALPHA
    assert np.mean(naive) - 2 * _standard_error(naive) > 4 * ALPHA


def _standard_error(values: list[float]) -> float:
    return float(np.std(values, ddof=1) / np.sqrt(len(values)))


def test_strong_planted_sequences_are_all_found_and_are_minimal():
    corpus = planted_corpus(100, planted=8, planted_odds=6.0, hazard=0.002)
    result = _sequences(corpus)
    found = {t.feature for t in result.significant_adjusted}
    assert corpus.planted <= found
    assert corpus.planted <= {t.feature for t in result.minimal}
    for test in result.tests:
        if test.feature in corpus.planted:
            assert test.odds_ratio_adjusted > 2 and test.ci_low_adjusted > 1


def _tiny_presence(columns: dict[tuple[str, ...], list[int]]) -> PresenceMatrix:
    names = sorted(columns)
    matrix = np.array([columns[n] for n in names], dtype=np.int8).T
    return PresenceMatrix(names=tuple(names), matrix=sp.csr_array(matrix))


def test_an_ngram_containing_a_significant_sub_ngram_is_explained_by_it():
    mismatch = np.array([1] * 12 + [0] * 12, dtype=bool)
    carriers = [1] * 10 + [0] * 2 + [1] + [0] * 11
    other = [1] * 6 + [0] * 6 + [1] * 6 + [0] * 6
    presence = _tiny_presence(
        {
            ("A",): [1] * 24,
            ("B",): [1] * 24,
            ("C",): [1] * 24,
            ("A", "B"): carriers,
            ("A", "B", "C"): carriers,  # same models as A > B: redundant
            ("B", "C"): [1] * 11 + [0] + [1] * 2 + [0] * 10,  # superset of A > B C's models
            ("X", "Y"): other,
            ("P", "Q"): [1] * 11 + [0] + [0] * 12,
            ("P", "Q", "R"): [1] * 9 + [0] * 3 + [0] * 12,  # inside P > Q's models, fewer of them
        }
    )
    covariates, names = size_covariates(np.full(24, 30))
    result = sequences_hypothesis(
        presence, mismatch, fit_size_model(mismatch, covariates, names), n_range=(2, 3),
        min_support=3,
    )  # fmt: skip
    significant = {t.feature for t in result.significant_adjusted}
    assert {("A", "B"), ("A", "B", "C"), ("P", "Q"), ("P", "Q", "R")} <= significant
    assert result.explained_by == {("A", "B", "C"): ("A", "B"), ("P", "Q", "R"): ("P", "Q")}
    minimal = {t.feature for t in result.minimal}
    assert {("A", "B"), ("P", "Q")} <= minimal
    assert not {("A", "B", "C"), ("P", "Q", "R")} & minimal


def test_an_ngram_in_exactly_the_models_of_an_operator_is_explained_by_it():
    mismatch = np.array([1] * 10 + [0] * 10, dtype=bool)
    carriers = [1] * 9 + [0] + [0] * 10
    presence = _tiny_presence(
        {
            ("Erf",): carriers,
            ("Relu",): [1] * 20,
            ("Erf", "Relu"): carriers,
            ("Relu", "Erf"): [1] * 5 + [0] * 15,
        }
    )
    covariates, names = size_covariates(np.full(20, 30))
    result = sequences_hypothesis(
        presence, mismatch, fit_size_model(mismatch, covariates, names), min_support=3
    )
    assert result.explained_by[("Erf", "Relu")] == ("Erf",)
    assert ("Erf", "Relu") not in {t.feature for t in result.minimal}


def test_zero_cells_give_finite_json_numbers():
    corpus = planted_corpus(5, models=300, nulls=30, planted=3, planted_odds=50.0)
    table = corpus.table
    mismatch = table.recorded_mismatch
    only_mismatch = np.where(mismatch, 1, 0).astype(np.int8)[:, None]
    # one n-gram in mismatching models only: an empty ok cell
    names = (*table.presence.names, ("Zero", "Cell"))
    matrix = sp.hstack([table.presence.matrix, sp.csr_array(only_mismatch)], format="csr")
    table = type(table)(
        **{**table.__dict__, "presence": PresenceMatrix(names=names, matrix=matrix)}
    )
    report = build_report(table, ReportConfig(repeats=1, sweep=(), prediction=False))
    (zero,) = [t for t in report.sequences.tests if t.feature == ("Zero", "Cell")]
    assert zero.ok_with == 0 and np.isfinite([zero.odds_ratio, zero.ci_low, zero.ci_high]).all()
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert '"Zero", "Cell"' in text


def test_no_labelled_models_is_a_clear_error():
    table = planted_corpus(1, models=100, nulls=10, planted=2).table.subset(np.zeros(100, bool))
    with pytest.raises(HypothesisInputError, match="no labelled models"):
        build_report(table)


def test_a_rule_with_one_class_is_a_row_of_the_sweep_not_a_crash():
    table = planted_corpus(2, models=300, nulls=20, planted=2).table
    config = ReportConfig(sweep=(Tolerance(atol=1e-7), Tolerance(atol=1.0)), prediction=False)
    rows = build_report(table, config).tolerance_sweep
    assert rows[0].note == "" and rows[0].ngrams_tested > 0
    assert rows[1].note == "one class only" and rows[1].mismatch == 0 and rows[1].ok == 300
    assert rows[1].sequences_associated is None and rows[1].answer is None
    assert rows[0].answer in {"yes", "no", "undetermined"} and rows[0].ngrams_family is not None


def test_build_report_announces_every_stage_in_order():
    table = planted_corpus(4, models=200, nulls=10, planted=2).table
    seen: list[str] = []
    build_report(table, ReportConfig(repeats=1), on_stage=seen.append)
    assert tuple(seen) == STAGES
