"""The vectorised statistics agree with scipy and statsmodels, table by table."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests

from hypotheses.stats import (
    ContingencyCounts,
    benjamini_hochberg,
    contingency_counts,
    fisher_greater,
    fit_size_model,
    mantel_haenszel_odds_ratios,
    odds_ratios,
    score_tests,
    size_covariates,
    size_strata,
)

cells = st.integers(min_value=0, max_value=40)


def _counts(tables: list[tuple[int, int, int, int]]) -> ContingencyCounts:
    a, b, c, d = (np.array(column) for column in zip(*tables, strict=True))
    return ContingencyCounts(a=a, b=b, c=c, d=d)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(cells, cells, cells, cells), min_size=1, max_size=20))
def test_fisher_equals_scipy_fisher_exact(tables):
    ours = fisher_greater(_counts(tables))
    for (a, b, c, d), p in zip(tables, ours, strict=True):
        expected = fisher_exact([[a, b], [c, d]], alternative="greater").pvalue
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-300)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(cells, cells, cells, cells), min_size=1, max_size=20))
def test_odds_ratio_and_woolf_ci_equal_statsmodels_on_the_corrected_table(tables):
    ratio, low, high = odds_ratios(_counts(tables))
    for i, cells_ in enumerate(tables):
        table = np.array(cells_, dtype=float).reshape(2, 2)
        if (table == 0).any():
            table += 0.5  # Haldane-Anscombe
        reference = sm.stats.Table2x2(table)
        assert ratio[i] == pytest.approx(reference.oddsratio, rel=1e-9)
        assert (low[i], high[i]) == pytest.approx(reference.oddsratio_confint(0.05), rel=1e-9)


def test_zero_cells_give_finite_odds_ratios():
    counts = ContingencyCounts(a=np.array([5, 0]), b=np.array([0, 5]), c=np.array([5, 5]),
                               d=np.array([5, 0]))  # fmt: skip
    ratio, low, high = odds_ratios(counts)
    assert np.isfinite(ratio).all() and np.isfinite(low).all() and np.isfinite(high).all()
    assert ratio[0] == pytest.approx((5.5 * 5.5) / (0.5 * 5.5))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=300))
def test_benjamini_hochberg_equals_statsmodels(p_values):
    p = np.array(p_values)
    expected = multipletests(p, method="fdr_bh")[1]
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=1e-12, atol=1e-15)


def test_benjamini_hochberg_of_nothing_is_nothing():
    assert benjamini_hochberg(np.array([])).size == 0


def test_contingency_counts_by_hand():
    presence = sp.csr_array(np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [1, 0, 1]], dtype=np.int8))
    counts = contingency_counts(presence, np.array([True, True, False, False]))
    assert counts.a.tolist() == [2, 1, 0]
    assert counts.b.tolist() == [1, 1, 2]
    assert counts.c.tolist() == [0, 1, 2]
    assert counts.d.tolist() == [1, 1, 0]


def _random_design(seed: int, models: int = 400):
    rng = np.random.default_rng(seed)
    nodes = np.exp(rng.uniform(np.log(10), np.log(500), models)).round()
    converters = rng.choice(["tf2onnx", "torch.onnx-dynamo"], models).tolist()
    y = rng.random(models) < 1 / (1 + np.exp(-(np.log(nodes) - 4)))
    presence = (rng.random((models, 12)) < np.linspace(0.02, 0.6, 12)).astype(np.int8)
    presence[:, 0] = y & (rng.random(models) < 0.4)  # a real effect
    return nodes, converters, y, presence


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_score_statistic_equals_statsmodels_glm_score_test(seed):
    nodes, converters, y, presence = _random_design(seed)
    covariates, names = size_covariates(nodes, converters)
    model = fit_size_model(y, covariates, names)
    z, p = score_tests(model, sp.csr_array(presence))
    null_fit = sm.GLM(y.astype(float), covariates, family=sm.families.Binomial()).fit()
    for j in range(presence.shape[1]):
        result = null_fit.score_test(exog_extra=presence[:, [j]].astype(float))
        statistic, two_sided = result[0], result[1]
        assert z[j] ** 2 == pytest.approx(float(np.squeeze(statistic)), rel=1e-6)
        # one-sided p is half the two-sided one in the direction of the effect
        expected = (
            float(np.squeeze(two_sided)) / 2 if z[j] > 0 else 1 - float(np.squeeze(two_sided)) / 2
        )
        assert p[j] == pytest.approx(expected, rel=1e-6)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")
@pytest.mark.parametrize("seed", [0, 1])
def test_mantel_haenszel_equals_statsmodels_stratified_table(seed):
    nodes, converters, y, presence = _random_design(seed)
    strata = size_strata(nodes, converters)
    assert len(np.unique(strata)) == 10  # 5 size bins x 2 converters
    ratio, low, high = mantel_haenszel_odds_ratios(sp.csr_array(presence), y, strata)
    for j in range(presence.shape[1]):
        tables = []
        for stratum in np.unique(strata):
            x, labels = presence[strata == stratum, j] == 1, y[strata == stratum]
            tables.append([[(x & labels).sum(), (x & ~labels).sum()],
                           [(~x & labels).sum(), (~x & ~labels).sum()]])  # fmt: skip
        reference = sm.stats.StratifiedTable(np.array(tables, dtype=float).transpose(1, 2, 0))
        if not np.isfinite(reference.oddsratio_pooled) or reference.oddsratio_pooled == 0:
            continue  # degenerate: corrected below
        assert ratio[j] == pytest.approx(reference.oddsratio_pooled, rel=1e-9)
        assert (low[j], high[j]) == pytest.approx(reference.oddsratio_pooled_confint(), rel=1e-9)


def test_mantel_haenszel_without_ok_carriers_is_corrected_not_infinite():
    nodes, converters, y, presence = _random_design(2)
    presence[:, 0] = y & (np.arange(len(y)) % 3 == 0)  # carriers all mismatch
    ratio, low, high = mantel_haenszel_odds_ratios(
        sp.csr_array(presence), y, size_strata(nodes, converters)
    )
    assert np.isfinite([ratio[0], low[0], high[0]]).all() and ratio[0] > 5


def test_cluster_robust_variance_equals_brute_force_and_never_lowers_it():
    nodes, converters, y, presence = _random_design(5)
    clusters = np.arange(len(y)) // 2
    covariates, names = size_covariates(nodes, converters)
    plain = fit_size_model(y, covariates, names)
    clustered = fit_size_model(y, covariates, names, clusters=clusters)
    z_plain, _ = score_tests(plain, sp.csr_array(presence))
    z, _ = score_tests(clustered, sp.csr_array(presence))
    assert (np.abs(z) <= np.abs(z_plain) + 1e-12).all()
    w, r = clustered.weights, clustered.residuals
    count = clusters.max() + 1
    for j in range(presence.shape[1]):
        x = presence[:, j].astype(float)
        projection = clustered.information_inverse @ (covariates.T @ (w * x))
        residual_x = x - covariates @ projection
        per_cluster = np.bincount(clusters, weights=residual_x * r)
        robust = (per_cluster**2).sum() * count / (count - 1)
        information = x @ (w * x) - (covariates.T @ (w * x)) @ projection
        assert z[j] == pytest.approx((x @ r) / np.sqrt(max(information, robust)), rel=1e-9)


def test_a_feature_in_every_model_carries_no_information():
    nodes, converters, y, presence = _random_design(3)
    presence[:, 1] = 1
    covariates, names = size_covariates(nodes, converters)
    z, p = score_tests(fit_size_model(y, covariates, names), sp.csr_array(presence))
    assert (z[1], p[1]) == (0.0, 1.0)


def test_size_covariates_shrink_with_few_distinct_sizes():
    z, names = size_covariates(np.array([20, 20, 20]), ["a", "b", "a"])
    assert names == ("intercept", "converter=b")
    z, names = size_covariates(np.array([20, 40, 20]))
    assert names == ("intercept", "log nodes")
    z, names = size_covariates(np.array([20, 40, 80, 160, 320, 640]))
    assert len(names) == 4 and np.allclose(z.sum(axis=1), 1.0)


def test_a_separating_converter_does_not_break_the_fit():
    nodes, _, y, presence = _random_design(4)
    converters = ["a" if m else "b" for m in y]  # converter a: every model mismatches
    covariates, names = size_covariates(nodes, converters)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = fit_size_model(y, covariates, names)
        z, p = score_tests(model, sp.csr_array(presence))
    assert np.isfinite(z).all() and ((p >= 0) & (p <= 1)).all()
    # converter identity explains every label: nothing is left for the features to explain
    assert (p > 0.01).all()
