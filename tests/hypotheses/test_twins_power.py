"""Twin pairs, effective units, power and the conditional (minimal n-gram) tests, checked against
independent computations: scipy's Fisher and F tests, brute-force enumeration, statsmodels' GLM."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import scipy.sparse as sp
import statsmodels.api as sm
from scipy.stats import f_oneway, fisher_exact

from hypotheses.features import PresenceMatrix
from hypotheses.power import effective_units, intraclass_correlation
from hypotheses.prediction import C_GRID, choose_c, grouped_folds
from hypotheses.sequences import sequences_hypothesis
from hypotheses.stats import extend_size_model, fit_size_model, score_tests, size_covariates
from hypotheses.twins import twin_pairs, twins_hypothesis


def _presence(columns: dict[tuple[str, ...], list[int]]) -> PresenceMatrix:
    names = sorted(columns)
    matrix = np.array([columns[n] for n in names], dtype=np.int8).T
    return PresenceMatrix(names=tuple(names), matrix=sp.csr_array(matrix))


def _pairs_table(first_has, second_has, second_mismatches):
    """Rows 2p (converter a) and 2p + 1 (converter b) of pair p, discordant by construction."""
    rows = len(first_has) * 2
    presence = np.zeros((rows, 1), dtype=np.int8)
    presence[0::2, 0], presence[1::2, 0] = first_has, second_has
    y = np.zeros(rows, dtype=bool)
    y[1::2] = second_mismatches
    y[0::2] = ~np.asarray(second_mismatches, dtype=bool)
    return presence, y, np.repeat(np.arange(len(first_has)), 2), ("a", "b") * len(first_has)


def test_twin_test_of_a_one_export_ngram_is_fishers_test_on_the_pairs():
    # 12 discordant pairs; the n-gram is in the second export of pairs 0-5 only
    second_has = [1] * 6 + [0] * 6
    second_mismatches = np.array([1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1], dtype=bool)
    presence, y, clusters, converters = _pairs_table([0] * 12, second_has, second_mismatches)
    result = twins_hypothesis(
        _presence({("X",): presence[:, 0].tolist()}), y, twin_pairs(clusters, converters)
    )
    (test,) = result.tests
    assert (result.pairs, result.discordant) == (12, 12)
    assert (test.mismatching_only, test.ok_only) == (5, 1)
    # given how many second exports mismatch (the converter effect), the pairs with the n-gram
    # vs without, by which export mismatches: scipy fisher_exact on [[5, 1], [2, 4]]
    expected = fisher_exact([[5, 1], [2, 4]], alternative="greater").pvalue
    assert test.p_value == pytest.approx(expected, rel=1e-12)


def test_twin_test_with_differences_both_ways_equals_enumeration():
    first_has = [0, 0, 0, 1, 1, 0, 0, 1, 0, 0]
    second_has = [1, 1, 1, 0, 0, 0, 1, 1, 1, 0]
    second_mismatches = np.array([1, 1, 0, 0, 1, 0, 1, 0, 1, 0], dtype=bool)
    presence, y, clusters, converters = _pairs_table(first_has, second_has, second_mismatches)
    result = twins_hypothesis(
        _presence({("X",): presence[:, 0].tolist()}), y, twin_pairs(clusters, converters)
    )
    difference = np.array(second_has) - np.array(first_has)
    observed = difference[second_mismatches].sum()
    draws = int(second_mismatches.sum())
    sums = np.array(
        [difference[list(c)].sum() for c in itertools.combinations(range(10), draws)]
    )  # every assignment of "second export mismatches" to `draws` of the 10 pairs
    assert result.tests[0].p_value == pytest.approx((sums >= observed).mean(), rel=1e-12)
    assert result.tests[0].p_min == pytest.approx((sums == sums.max()).mean(), rel=1e-12)


def test_two_discordant_pairs_are_too_few():
    presence, y, clusters, converters = _pairs_table([0, 0], [1, 1], np.array([True, False]))
    result = twins_hypothesis(
        _presence({("X",): presence[:, 0].tolist()}), y, twin_pairs(clusters, converters)
    )
    assert result.discordant == 2 and result.family.size == 0
    assert np.isinf(result.tests[0].min_detectable_or)


def test_intraclass_correlation_equals_the_anova_estimate_from_scipy():
    rng = np.random.default_rng(0)
    clusters = np.repeat(np.arange(40), rng.integers(1, 4, 40))
    effect = rng.normal(0, 1, 40)[clusters]
    y = (effect + rng.normal(0, 1, len(clusters))) > 0.3
    groups = [y[clusters == c].astype(float) for c in range(40)]
    f = f_oneway(*groups).statistic  # MSB / MSW
    sizes = np.bincount(clusters)
    n, c = len(y), 40
    m0 = (n - (sizes**2).sum() / n) / (c - 1)
    expected = (f - 1) / (f + m0 - 1)  # Donner (1986), eq. 1.4, from the F ratio
    assert intraclass_correlation(y, clusters) == pytest.approx(expected, rel=1e-9)


def test_effective_units_count_pairs_and_deflate_rows():
    y = np.array([1, 1, 0, 0, 1, 0, 1], dtype=bool)
    clusters = np.array([0, 0, 1, 1, 2, 2, 3])
    units = effective_units(y, clusters)
    assert (units.clusters, units.mismatching_clusters, units.ok_clusters) == (4, 3, 1)
    assert (units.pairs, units.concordant_mismatch, units.concordant_ok, units.discordant) == (
        3, 1, 1, 1,
    )  # fmt: skip
    weighted = (4 + 4 + 4 + 1) / 7  # sum of squared cluster sizes / rows (Kish)
    assert units.design_effect == pytest.approx(1 + (weighted - 1) * units.icc)
    assert units.effective_rows == pytest.approx(7 / units.design_effect)


def test_extended_size_model_equals_statsmodels_and_its_score_test():
    rng = np.random.default_rng(3)
    nodes = np.exp(rng.uniform(np.log(10), np.log(400), 500)).round()
    parts = (rng.random((500, 2)) < 0.3).astype(float)
    target = ((parts[:, 0] == 1) & (rng.random(500) < 0.6)).astype(float)
    logit = -1 + 0.5 * np.log(nodes / 50) + 0.8 * parts[:, 0] + 0.7 * target
    y = rng.random(500) < 1 / (1 + np.exp(-logit))
    covariates, names = size_covariates(nodes)
    extended = extend_size_model(fit_size_model(y, covariates, names), y, parts, ["p0", "p1"])
    reference = sm.GLM(
        y.astype(float), np.column_stack([covariates, parts]), family=sm.families.Binomial()
    ).fit()
    np.testing.assert_allclose(extended.params, reference.params, rtol=1e-6, atol=1e-8)
    z, _ = score_tests(extended, sp.csr_array(target[:, None]))
    statistic = float(np.squeeze(reference.score_test(exog_extra=target[:, None])[0]))
    assert z[0] ** 2 == pytest.approx(statistic, rel=1e-6)


def test_a_longer_ngram_is_minimal_only_when_it_adds_to_its_significant_part():
    rng = np.random.default_rng(7)
    models = 600
    short = rng.random(models) < 0.4  # A > B
    longer = short & (rng.random(models) < 0.5)  # A > B > C: inside A > B's models
    inherits = short & (rng.random(models) < 0.5)  # A > B > D: no effect of its own
    y = rng.random(models) < np.where(longer, 0.85, np.where(short, 0.45, 0.15))
    presence = _presence(
        {
            ("A",): [1] * models,
            ("A", "B"): short.astype(int).tolist(),
            ("A", "B", "C"): longer.astype(int).tolist(),
            ("A", "B", "D"): inherits.astype(int).tolist(),
        }
    )
    covariates, names = size_covariates(np.full(models, 30))
    result = sequences_hypothesis(
        presence, y, fit_size_model(y, covariates, names), n_range=(2, 3), min_support=5
    )
    significant = {t.feature for t in result.significant_adjusted}
    assert {("A", "B"), ("A", "B", "C"), ("A", "B", "D")} <= significant
    minimal = {t.feature for t in result.minimal}
    assert ("A", "B", "C") in minimal  # its own effect beyond A > B: kept
    assert result.explained_by[("A", "B", "D")] == ("A", "B")  # only A > B's: explained
    given = {c.ngram: c.given for c in result.conditional}
    assert given[("A", "B", "D")] == (("A", "B"),)
    json.dumps(result.to_dict(), allow_nan=False)  # the conditional tests serialise


def test_grouped_folds_keep_groups_together_and_choose_c_from_the_grid():
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(150), 2)
    y = np.repeat(rng.random(150) < 0.4, 2)
    for train, test in grouped_folds(y, groups, 3, 0):
        assert not set(groups[train]) & set(groups[test])
        assert 0.25 < y[test].mean() < 0.55
    x = sp.csr_array((rng.random((300, 40)) < 0.2).astype(float))
    assert choose_c(x, y, groups, 0) in C_GRID
    assert choose_c(x, y[:4], groups[:4], 0) == 1.0  # too few groups for the inner folds
