"""The exact tests, Tarone's rule and the power computations agree with independent computations.

Independent references: scipy's ``fisher_exact`` and ``nchypergeom_fisher`` (one stratum), brute
force enumeration of every permutation of whole clusters within strata (several strata), and
statsmodels' ``multipletests`` (Benjamini-Hochberg on the Tarone family).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact, nchypergeom_fisher
from statsmodels.stats.multitest import multipletests

from hypotheses.clusters import cluster_design, stratified_tests
from hypotheses.exact import convolve, hypergeometric_kernels, three_valued_kernels
from hypotheses.multiplicity import tarone_bh, tarone_family


@st.composite
def tables(draw):
    total = draw(st.integers(1, 40))
    events = draw(st.integers(0, total))
    exposed = draw(st.integers(0, total))
    low, high = max(0, exposed - (total - events)), min(exposed, events)
    return total, events, exposed, draw(st.integers(low, high))


@settings(max_examples=150, deadline=None)
@given(st.lists(tables(), min_size=1, max_size=15))
def test_one_stratum_is_fishers_exact_test(cases):
    total, events, exposed, observed = (np.array(v) for v in zip(*cases, strict=True))
    null = convolve(
        hypergeometric_kernels(np.arange(len(cases)), total, events, exposed), len(cases)
    )
    p = null.upper_tail(observed)
    for (n, k, m, a), ours in zip(cases, p, strict=True):
        expected = fisher_exact([[a, m - a], [k - a, n - k - m + a]], alternative="greater").pvalue
        assert ours == pytest.approx(expected, rel=1e-9, abs=1e-15)


def _brute_force(strata, outcome, carriers):
    """Every permutation of the outcomes within each stratum, and the statistic of each."""
    per_stratum = []
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        values = outcome[members]
        sums = [
            int(np.dot(carriers[members], permuted)) for permuted in itertools.permutations(values)
        ]
        per_stratum.append(sums)
    return np.array([sum(combo) for combo in itertools.product(*per_stratum)])


@pytest.mark.parametrize("seed", range(6))
def test_stratified_test_equals_the_enumeration_of_cluster_permutations(seed):
    rng = np.random.default_rng(seed)
    strata = np.repeat([0, 1, 2], [5, 4, 5])
    outcome = rng.random(len(strata)) < 0.45
    carriers = (rng.random((len(strata), 3)) < 0.4).astype(np.int8)
    result = stratified_tests(strata, outcome, sp.csr_array(carriers), exact=np.ones(3, dtype=bool))
    for j in range(3):
        statistics = _brute_force(strata, outcome, carriers[:, j])
        observed = int(carriers[outcome, j].sum())
        assert result.mismatching[j] == observed
        assert result.p_values[j] == pytest.approx((statistics >= observed).mean(), rel=1e-12)
        # the minimum attainable p-value: the largest statistic's share of the permutations
        top = statistics.max()
        assert np.exp(result.log_min_p[j]) == pytest.approx((statistics == top).mean(), rel=1e-9)
        assert result.null.min_p()[j] == pytest.approx((statistics == top).mean(), rel=1e-9)


def test_twins_move_together_in_the_cluster_test():
    """Rows of one source model are one unit: the test is on clusters, whatever the twins hold."""
    nodes = np.array([20, 20, 30, 30, 40, 40, 50, 50, 60, 70])
    converters = ["a", "b"] * 4 + ["a", "a"]
    row_cluster = np.array([0, 0, 1, 1, 2, 2, 3, 3, 4, 5])
    design = cluster_design(nodes, converters, row_cluster, min_per_bin=100)
    y = np.array([1, 1, 0, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    x = sp.csr_array(np.array([[1, 1, 0, 0, 1, 0, 0, 0, 1, 0]], dtype=np.int8).T)
    assert design.outcome(y).tolist() == [True, False, True, False, True, False]
    assert design.presence(x).toarray().ravel().tolist() == [1, 0, 1, 0, 1, 0]
    # strata: the four twin pairs (a+b), the two single conversions (a): each one stratum
    assert design.strata.tolist() == [1, 1, 1, 1, 0, 0]
    result = stratified_tests(
        design.strata, design.outcome(y), design.presence(x), exact=np.array([True])
    )
    # twins: 2 of 4 pairs mismatch, both carry; singles: 1 of 2, it carries. fisher_exact on
    # [[2, 0], [0, 2]] greater = 1/6, on [[1, 0], [0, 1]] greater = 1/2: the product 1/12
    assert result.p_values[0] == pytest.approx(1 / 12)


@pytest.mark.parametrize(("total", "events", "exposed"), [(40, 12, 9), (200, 30, 25), (30, 15, 10)])
def test_minimum_detectable_odds_ratio_has_the_wanted_power(total, events, exposed):
    alpha, power = 1e-3, 0.8
    null = convolve(
        hypergeometric_kernels(np.array([0]), np.array([total]), np.array([events]),
                               np.array([exposed])), 1,
    )  # fmt: skip
    mdor = null.min_detectable_odds_ratio(alpha, power)[0]
    low = max(0, exposed - (total - events))
    support = np.arange(low, min(exposed, events) + 1)
    tail = nchypergeom_fisher.sf(support - 1, total, events, exposed, 1.0)
    critical = support[np.argmax(tail <= alpha)]
    # scipy's Fisher noncentral hypergeometric at the MDOR: exactly the wanted power
    achieved = nchypergeom_fisher.sf(critical - 1, total, events, exposed, mdor)
    assert achieved == pytest.approx(power, abs=1e-6)
    assert nchypergeom_fisher.sf(critical - 1, total, events, exposed, mdor * 0.98) < power


def test_no_odds_ratio_is_detectable_when_the_minimum_p_is_too_large():
    null = convolve(hypergeometric_kernels(np.array([0]), np.array([50]), np.array([20]),
                                           np.array([3])), 1)  # fmt: skip
    # P(all 3 carriers mismatch) = C(20,3)/C(50,3) = 1140/19600 = 0.058 > 0.05
    assert null.min_p()[0] == pytest.approx(1140 / 19600)
    assert np.isinf(null.min_detectable_odds_ratio(0.05)[0])


@pytest.mark.parametrize("seed", range(5))
def test_three_valued_kernel_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    values = rng.choice([-1, 0, 1], size=int(rng.integers(3, 9)))
    draws = int(rng.integers(0, len(values) + 1))
    sums = np.array([values[list(c)].sum() for c in itertools.combinations(range(len(values)),
                                                                           draws)])  # fmt: skip
    counts = [(values == v).sum() for v in (-1, 0, 1)]
    kernel = three_valued_kernels(np.array([0]), *(np.array([c]) for c in counts),
                                  np.array([draws]))  # fmt: skip
    null = convolve(kernel, 1)
    for observed in range(-len(values), len(values) + 1):
        expected = (sums >= observed).mean()
        assert null.upper_tail(np.array([observed]))[0] == pytest.approx(expected, abs=1e-12)


def _tarone_brute_force(min_p, alpha):
    for k in range(1, len(min_p) + 1):
        if (min_p <= alpha / k).sum() <= k:
            return k
    raise AssertionError("m(M) <= M always")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-12, 1.0), min_size=1, max_size=60), st.sampled_from([0.01, 0.05]))
def test_tarone_family_equals_brute_force(min_p, alpha):
    min_p = np.array(min_p)
    family = tarone_family(min_p, alpha)
    k = _tarone_brute_force(min_p, alpha)
    assert family.k == k
    assert family.testable.tolist() == (min_p <= alpha / k * (1 + 1e-12)).tolist()


def test_tarone_bh_is_bh_on_the_family_only():
    min_p = np.array([1e-8, 1e-6, 0.5, 0.9, 1e-7, 0.2])
    p = np.array([1e-6, 0.004, 0.5, 0.9, 0.03, 0.2])
    family = tarone_family(min_p, 0.05)
    q = tarone_bh(p, family)
    assert family.k == 3 and family.testable.tolist() == [True, True, False, False, True, False]
    expected = multipletests(p[family.testable], method="fdr_bh")[1]
    np.testing.assert_allclose(q[family.testable], expected)
    assert (q[~family.testable] == 1).all()
