"""Source models as the unit of analysis: strata of clusters and the stratified exact test.

One source model converted by several converters gives several rows (twins) with nearly the same
n-grams and, in the shipped corpus, the same outcome 829 times in 831. Counting them as separate
models inflates every sample size, so the exact size-adjusted test works on clusters:

* a cluster (source model) *mismatches* when any of its rows does, and *carries* an n-gram when
  any of its rows contains it; twins therefore always move together;
* clusters are stratified by their composition (the converters of their rows: a twin pair and a
  single tf2onnx conversion are not exchangeable) and by size (quantile bins of the mean log node
  count within a composition, at most `max_bins`, at least `min_per_bin` clusters per bin);
* within a stratum the null hypothesis (the n-gram says nothing about mismatch once size and
  converter are fixed) makes the clusters' outcomes exchangeable: the exact conditional test of a
  common odds ratio of 1 over the strata (`hypotheses.exact`), i.e. a permutation test permuting
  whole clusters within strata, computed exactly instead of by sampling.

The asymptotic score test (`hypotheses.stats.score_tests`) adjusts for size with a spline instead
of bins, which leaves no residual confounding inside a bin, so it stays the test of the common
n-grams; `stratified_tests` marks which features need the exact test: those whose smallest expected
cell of the pooled 2 x 2 table of clusters (informative strata) is below `min_expected`, Cochran's
(1954, Biometrics 10:417) rule for when the normal approximation of a count statistic fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from hypotheses.exact import (
    NullDistributions,
    convolve,
    hypergeometric_kernels,
    log_hypergeometric_max,
)

__all__ = [
    "ClusterDesign",
    "StratifiedTests",
    "cluster_design",
    "stratified_tests",
]

MIN_EXPECTED = 5.0


@dataclass(frozen=True, eq=False, kw_only=True)
class ClusterDesign:
    """Which rows form which source model, and the stratum of each source model.

    Attributes:
        row_cluster: Cluster of each row.
        strata: Stratum of each cluster.
        membership: Clusters x rows, 1 where the row belongs to the cluster.
        sizes: Rows per cluster.
    """

    row_cluster: np.ndarray
    strata: np.ndarray
    membership: sp.csr_array
    sizes: np.ndarray

    @property
    def clusters(self) -> int:
        """Number of clusters."""
        return len(self.strata)

    def outcome(self, rows: np.ndarray) -> np.ndarray:
        """Per cluster: does any of its rows have the (boolean) row outcome?"""
        return np.asarray(self.membership @ np.asarray(rows, dtype=np.int64)).ravel() > 0

    def presence(self, matrix: sp.csr_array) -> sp.csr_array:
        """Clusters x features: 1 where any row of the cluster contains the feature."""
        counts = (self.membership @ matrix.astype(np.int32)).tocsr()
        counts.data = np.ones_like(counts.data, dtype=np.int8)
        return counts


def cluster_design(
    nodes: np.ndarray,
    converters: Sequence[str],
    row_cluster: np.ndarray,
    *,
    max_bins: int = 10,
    min_per_bin: int = 25,
) -> ClusterDesign:
    """Strata of clusters: composition (converters of the rows) x quantile bin of mean log size.

    Examples:
        >>> d = cluster_design(np.array([10, 12, 50, 400]), ["a", "b", "a", "a"],
        ...                    np.array([0, 0, 1, 2]), min_per_bin=1, max_bins=2)
        >>> d.strata.tolist(), d.sizes.tolist()
        ([2, 0, 1], [2, 1, 1])
    """
    row_cluster = np.asarray(row_cluster, dtype=np.int64)
    count = int(row_cluster.max(initial=-1)) + 1
    rows = np.arange(len(row_cluster))
    membership = sp.csr_array(
        (np.ones(len(rows), dtype=np.int32), (row_cluster, rows)), shape=(count, len(rows))
    )
    sizes = np.bincount(row_cluster, minlength=count)
    log_nodes = np.log(np.maximum(np.asarray(nodes, dtype=float), 1.0))
    mean_size = np.bincount(row_cluster, weights=log_nodes, minlength=count) / np.maximum(sizes, 1)
    members: list[list[str]] = [[] for _ in range(count)]
    for cluster, converter in zip(row_cluster.tolist(), converters, strict=True):
        members[cluster].append(converter)
    compositions = np.unique(
        np.array(["+".join(sorted(m)) for m in members], dtype=object), return_inverse=True
    )[1]
    strata = np.zeros(count, dtype=np.int64)
    offset = 0
    for composition in range(int(compositions.max(initial=-1)) + 1):
        inside = compositions == composition
        bins = int(np.clip(inside.sum() // min_per_bin, 1, max_bins))
        edges = np.quantile(mean_size[inside], np.linspace(0, 1, bins + 1)[1:-1])
        size_bin = np.searchsorted(np.unique(edges), mean_size[inside], side="right")
        strata[inside] = offset + size_bin
        offset += bins
    strata = np.unique(strata, return_inverse=True)[1]
    return ClusterDesign(row_cluster=row_cluster, strata=strata, membership=membership, sizes=sizes)


@dataclass(frozen=True, eq=False, kw_only=True)
class StratifiedTests:
    """The stratified exact test of each feature, on clusters.

    Attributes:
        carriers: Clusters carrying the feature.
        mismatching: Carrier clusters that mismatch (the test statistic).
        expected_min: Smallest expected cell of the pooled table over informative strata.
        log_min_p: log of the minimum attainable one-sided p-value (all strata at their maximum).
        exact: Features that need the exact test (``expected_min`` < the threshold).
        p_values: Exact one-sided p-values where ``exact``, NaN elsewhere.
        null: Null distributions of the ``exact`` features (indexed as ``np.flatnonzero(exact)``).
    """

    carriers: np.ndarray
    mismatching: np.ndarray
    expected_min: np.ndarray
    log_min_p: np.ndarray
    exact: np.ndarray
    p_values: np.ndarray
    null: NullDistributions


def stratified_tests(
    strata: np.ndarray,
    outcome: np.ndarray,
    presence: sp.csr_array,
    *,
    min_expected: float = MIN_EXPECTED,
    exact: np.ndarray | None = None,
) -> StratifiedTests:
    """Exact stratified tests of every column of `presence` (units x features).

    Null hypothesis: within each stratum, carrying the feature is independent of the outcome
    (common odds ratio 1); alternative: a common odds ratio > 1. Unit of analysis: the rows of
    `presence` (clusters, for the size-adjusted test). Method: the exact conditional test given
    every stratum's margins (Mehta, Patel & Gray 1985).

    Args:
        strata: Stratum of each unit.
        outcome: Outcome of each unit (True = mismatch).
        presence: Units x features, 0/1.
        min_expected: Features whose smallest expected cell is below this get the exact test.
        exact: Which features get the exact test, overriding `min_expected`.
    """
    strata = np.asarray(strata, dtype=np.int64)
    outcome = np.asarray(outcome, dtype=bool)
    k = int(strata.max(initial=-1)) + 1
    total = np.bincount(strata, minlength=k)
    events = np.bincount(strata, weights=outcome, minlength=k).astype(np.int64)
    indicator = sp.csr_array(
        (np.ones(len(strata)), (strata, np.arange(len(strata)))), shape=(k, len(strata))
    )
    x = presence.astype(np.float64)
    exposed = (indicator @ x).tocoo()
    hits = (indicator @ (x * outcome[:, None].astype(float))).tocsr()
    stratum, feature = exposed.row, exposed.col
    exposed_count = np.rint(exposed.data).astype(np.int64)
    features = presence.shape[1]
    n_total, n_events = total[stratum], events[stratum]
    informative = (n_events > 0) & (n_events < n_total)
    expected = _expected_cells(
        feature[informative],
        exposed_count[informative],
        n_total[informative],
        n_events[informative],
        total,
        events,
        features,
    )
    log_min_p = np.bincount(
        feature,
        weights=log_hypergeometric_max(n_total, n_events, exposed_count),
        minlength=features,
    )
    carriers = np.asarray(x.sum(axis=0)).ravel().astype(np.int64)
    mismatching = np.asarray(hits.sum(axis=0)).ravel().astype(np.int64)
    chosen = expected < min_expected if exact is None else np.asarray(exact, dtype=bool)
    index = np.flatnonzero(chosen)
    position = np.full(features, -1)
    position[index] = np.arange(len(index))
    keep = chosen[feature]
    kernels = hypergeometric_kernels(
        position[feature[keep]], n_total[keep], n_events[keep], exposed_count[keep]
    )
    null = convolve(kernels, len(index))
    p_values = np.full(features, np.nan)
    p_values[index] = null.upper_tail(mismatching[index])
    return StratifiedTests(
        carriers=carriers,
        mismatching=mismatching,
        expected_min=expected,
        log_min_p=np.minimum(log_min_p, 0.0),
        exact=chosen,
        p_values=p_values,
        null=null,
    )


def _expected_cells(
    feature: np.ndarray,
    exposed: np.ndarray,
    n_total: np.ndarray,
    n_events: np.ndarray,
    total: np.ndarray,
    events: np.ndarray,
    features: int,
) -> np.ndarray:
    """Smallest expected cell of the pooled table over the strata that have both outcomes."""
    both = (events > 0) & (events < total)
    units, cases = float(total[both].sum()), float(events[both].sum())
    rate = n_events / n_total
    a = np.bincount(feature, weights=exposed * rate, minlength=features)
    carriers = np.bincount(feature, weights=exposed, minlength=features).astype(float)
    b = carriers - a
    c = cases - a
    d = (units - cases) - b
    return np.minimum(np.minimum(a, b), np.minimum(c, d))
