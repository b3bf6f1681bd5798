"""Vectorised tests of association between feature presence and mismatch.

Every function takes one column per feature (operator or n-gram) and works on whole arrays, so a
corpus of thousands of models and tens of thousands of n-grams is tested in well under a second.

* `fisher_greater`: one-sided Fisher exact test per 2x2 table, from scipy's hypergeometric
  distribution (the same computation as `scipy.stats.fisher_exact(alternative="greater")`).
* `odds_ratios`: sample odds ratio with a Woolf 95% CI; tables with a zero cell get the
  Haldane-Anscombe correction (0.5 added to every cell).
* `benjamini_hochberg`: `scipy.stats.false_discovery_control`.
* `fit_size_model` + `score_tests`: the size-adjusted test. A logistic regression of mismatch on
  the covariates (a spline of log node count, and the converter when there are several) is fitted
  once with statsmodels; each feature is then tested by Rao's score test for adding it.
* `mantel_haenszel_odds_ratios`: the size-adjusted effect size, a common odds ratio over
  size x converter strata with a Robins-Breslow-Greenland CI.

Why logistic regression with a score test rather than Cochran-Mantel-Haenszel over size strata:
model size is continuous, and any binning of it leaves residual confounding inside the strata
that grows with the number of n-grams tested; the score test needs only the fit under the null,
so all features share one fit and reduce to two sparse matrix products; and it stays defined when
a feature occurs only in mismatching models (quasi-complete separation), where Wald and
likelihood-ratio tests on a per-feature fit break down. The score test has no effect size of its
own (its one-step estimate exp(U/V) explodes where V is small), so the adjusted odds ratio
reported beside it is the Mantel-Haenszel one over size strata.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import special, stats

from hypotheses.errors import HypothesisInputError

__all__ = [
    "ContingencyCounts",
    "SizeModel",
    "benjamini_hochberg",
    "contingency_counts",
    "extend_size_model",
    "fisher_greater",
    "fit_size_model",
    "odds_ratios",
    "mantel_haenszel_odds_ratios",
    "score_statistics",
    "score_tests",
    "score_z",
    "size_covariates",
    "size_strata",
]

# Below this score variance a feature carries no information beyond the covariates (it is
# present in all or none of the models the null model cannot already predict).
_MIN_VARIANCE = 1e-9


@dataclass(frozen=True, eq=False, kw_only=True)
class ContingencyCounts:
    """The 2x2 tables of many features: rows present/absent, columns mismatch/ok.

    Attributes:
        a: Mismatching models containing the feature.
        b: Ok models containing it.
        c: Mismatching models without it.
        d: Ok models without it.
    """

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class SizeModel:
    """Logistic regression of mismatch on covariates, fitted under the null (no feature).

    Attributes:
        covariates: The design matrix Z (models x covariates), intercept first.
        names: Name of each covariate.
        residuals: y - fitted probability, per model.
        weights: fitted p (1 - p), per model.
        information_inverse: (Z' W Z)^-1.
        params: Fitted coefficients.
        clusters: Cluster id of each model (rows of one source model), or None if independent.
        strata: Size x converter stratum of each model, for the adjusted odds ratios.
        design: Source models and their strata for the exact test (`hypotheses.clusters`);
            None: every model is its own source model, in the stratum of ``strata``.
    """

    covariates: np.ndarray
    names: tuple[str, ...]
    residuals: np.ndarray
    weights: np.ndarray
    information_inverse: np.ndarray
    params: np.ndarray
    clusters: np.ndarray | None
    strata: np.ndarray
    design: Any = None


def contingency_counts(presence: sp.csr_array, mismatch: np.ndarray) -> ContingencyCounts:
    """Count, per column of `presence`, the models in each cell of the 2x2 table.

    Examples:
        >>> x = sp.csr_array(np.array([[1, 0], [1, 1], [0, 1]]))
        >>> t = contingency_counts(x, np.array([True, True, False]))
        >>> t.a.tolist(), t.b.tolist(), t.c.tolist(), t.d.tolist()
        ([2, 1], [0, 1], [0, 1], [1, 0])
    """
    mismatch = np.asarray(mismatch, dtype=bool)
    y = mismatch.astype(np.int64)
    with_feature = np.asarray(presence.sum(axis=0), dtype=np.int64).ravel()
    a = np.asarray(presence.T @ y, dtype=np.int64).ravel()
    b = with_feature - a
    return ContingencyCounts(a=a, b=b, c=int(y.sum()) - a, d=int(len(y) - y.sum()) - b)


def fisher_greater(counts: ContingencyCounts) -> np.ndarray:
    """One-sided Fisher exact p-values: P(at least `a` mismatching models among the carriers).

    Examples:
        >>> t = ContingencyCounts(
        ...     a=np.array([8]), b=np.array([2]), c=np.array([1]), d=np.array([5])
        ... )
        >>> round(float(fisher_greater(t)[0]), 6)
        0.024476
    """
    a, b, c, d = (np.asarray(v, dtype=np.int64) for v in (counts.a, counts.b, counts.c, counts.d))
    total, events, exposed = a + b + c + d, a + c, a + b
    p = np.ones(len(a))
    if not len(a):
        return p
    # Tables of one family share their column margins: one tail table per distinct margin set.
    margins = np.stack([total, events, exposed], axis=1)
    distinct, which = np.unique(margins, axis=0, return_inverse=True)
    order = np.argsort(which.ravel(), kind="stable")
    groups = np.split(order, np.cumsum(np.bincount(which.ravel(), minlength=len(distinct)))[:-1])
    for (n, k, m), rows in zip(distinct.tolist(), groups, strict=True):
        low, high = max(0, m - (n - k)), min(m, k)
        t = np.arange(low, high + 1)
        log_pmf = (
            special.gammaln(k + 1) - special.gammaln(t + 1) - special.gammaln(k - t + 1)
            + special.gammaln(n - k + 1) - special.gammaln(m - t + 1)
            - special.gammaln(n - k - m + t + 1)
            - special.gammaln(n + 1) + special.gammaln(m + 1) + special.gammaln(n - m + 1)
        )  # fmt: skip
        tails = np.cumsum(np.exp(log_pmf)[::-1])[::-1]  # from the top: small tails keep digits
        offset = np.clip(a[rows] - low, 0, len(t))
        p[rows] = np.append(tails, 0.0)[offset]
    return np.clip(p, 0.0, 1.0)  # an empty table is no evidence: p = 1


def odds_ratios(
    counts: ContingencyCounts, *, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Odds ratios ad/bc with Woolf confidence intervals, Haldane-Anscombe corrected.

    The correction is what makes zero cells finite, at a price with very unbalanced classes: a
    feature in 5 of 2,041 mismatching and 0 of 136 ok models gets (5.5 x 136.5) / (0.5 x 2,036.5)
    = 0.74, below 1. Read such ratios with the Fisher p-value, which has no such artefact.

    Returns:
        (odds ratio, CI low, CI high), one entry per feature.

    Examples:
        >>> t = ContingencyCounts(
        ...     a=np.array([3]), b=np.array([0]), c=np.array([1]), d=np.array([4])
        ... )
        >>> [round(float(v[0]), 3) for v in odds_ratios(t)]
        [21.0, 0.639, 689.986]
    """
    cells = np.stack([counts.a, counts.b, counts.c, counts.d]).astype(float)
    cells += np.where((cells == 0).any(axis=0), 0.5, 0.0)
    a, b, c, d = cells
    log_or = np.log(a) + np.log(d) - np.log(b) - np.log(c)
    half_width = stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    return np.exp(log_or), np.exp(log_or - half_width), np.exp(log_or + half_width)


def size_strata(nodes: np.ndarray, converters: Sequence[str] = (), *, bins: int = 5) -> np.ndarray:
    """Stratum of each model: quantile bin of node count (up to `bins`) x converter.

    Examples:
        >>> size_strata(np.array([10, 20, 30, 40, 50, 60]), ["a", "b"] * 3, bins=2).tolist()
        [0, 2, 0, 3, 1, 3]
    """
    nodes = np.asarray(nodes, dtype=float)
    edges = np.unique(np.quantile(nodes, np.linspace(0, 1, bins + 1)[1:-1]))
    size_bin = np.searchsorted(edges, nodes, side="right")
    converter = np.unique(np.asarray(list(converters) or [""] * len(nodes)), return_inverse=True)[1]
    return np.unique(converter * (bins + 1) + size_bin, return_inverse=True)[1]


def mantel_haenszel_odds_ratios(
    presence: sp.csr_array,
    mismatch: np.ndarray,
    strata: np.ndarray,
    *,
    confidence: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mantel-Haenszel odds ratios over strata with Robins-Breslow-Greenland CIs, per column.

    The size-adjusted effect size: the common odds ratio of containing a feature among models of
    similar size and the same converter. Bounded where the one-step estimate of the score test is
    not (features whose carriers are almost all of one class). When every stratum lacks
    discordant cells on one side (the pooled ratio would be 0 or infinite), 0.5 is added to every
    cell of every stratum (Haldane-Anscombe), as for the unadjusted odds ratio.

    Returns:
        (odds ratio, CI low, CI high) per column.
    """
    mismatch = np.asarray(mismatch, dtype=bool)
    x = presence.astype(float)
    cells_by_stratum = []
    for stratum in np.unique(strata):
        members = strata == stratum
        counts = contingency_counts(x[members], mismatch[members])
        cells_by_stratum.append(np.stack([counts.a, counts.b, counts.c, counts.d]).astype(float))
    ratio, low, high = _pooled_odds_ratio(cells_by_stratum, confidence)
    with np.errstate(divide="ignore"):
        degenerate = ~np.isfinite(np.log(ratio))
    if degenerate.any():
        corrected = [cells[:, degenerate] + 0.5 for cells in cells_by_stratum]
        ratio[degenerate], low[degenerate], high[degenerate] = _pooled_odds_ratio(
            corrected, confidence
        )
    return ratio, low, high


def _pooled_odds_ratio(
    cells_by_stratum: list[np.ndarray], confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MH ratio R/S and the RGB variance of its log, from per-stratum (a, b, c, d) rows."""
    r = s = p_ad = pbc_qad = q_bc = 0.0
    for a, b, c, d in cells_by_stratum:
        n = np.maximum(a + b + c + d, 1.0)  # an empty stratum contributes nothing
        ad, bc = a * d / n, b * c / n
        p, q = (a + d) / n, (b + c) / n
        r, s = r + ad, s + bc
        p_ad, pbc_qad, q_bc = p_ad + p * ad, pbc_qad + p * bc + q * ad, q_bc + q * bc
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = r / s
        variance = p_ad / (2 * r**2) + pbc_qad / (2 * r * s) + q_bc / (2 * s**2)
        half_width = stats.norm.ppf(0.5 + confidence / 2) * np.sqrt(variance)
        return ratio, ratio * np.exp(-half_width), ratio * np.exp(half_width)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (empty input gives an empty array)."""
    p_values = np.asarray(p_values, dtype=float)
    if p_values.size == 0:
        return p_values.copy()
    return stats.false_discovery_control(p_values, method="bh")


def size_covariates(
    nodes: np.ndarray, converters: Sequence[str] = (), *, spline_df: int = 4
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The null model's design: a spline of log node count, and converter indicators if several.

    The size term is a natural cubic regression spline of log node count (patsy's ``cr``) with
    `spline_df` degrees of freedom, fewer when there are few distinct sizes; its columns sum to
    one, so it carries the intercept. A spline rather than a straight line because mismatch risk
    need not be logit-linear in log size (a per-node hazard, 1 - (1 - h)^nodes, is not), and a
    misspecified size curve leaves exactly the residual confounding the adjustment must remove.

    Examples:
        >>> z, names = size_covariates(np.array([1, 10, 100, 1000, 30]), ["a", "b", "a", "a", "b"])
        >>> names
        ('log nodes spline 1', 'log nodes spline 2', 'log nodes spline 3', 'log nodes spline 4', \
'converter=b')
        >>> z[:, :4].sum(axis=1).round(6).tolist(), z[:, 4].tolist()
        ([1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0, 1.0])
    """
    log_nodes = np.log(np.maximum(np.asarray(nodes, dtype=float), 1.0))
    df = min(spline_df, len(np.unique(log_nodes)))
    if df >= 3:
        from patsy import dmatrix

        size = np.asarray(dmatrix(f"cr(x, df={df}) - 1", {"x": log_nodes}))
        names = [f"log nodes spline {i + 1}" for i in range(df)]
    elif df == 2:
        size = np.column_stack([np.ones(len(log_nodes)), log_nodes])
        names = ["intercept", "log nodes"]
    else:  # one size only: it cannot confound anything
        size = np.ones((len(log_nodes), 1))
        names = ["intercept"]
    columns = [size]
    for level in sorted(set(converters))[1:]:
        columns.append(np.array([[c == level] for c in converters], dtype=float))
        names.append(f"converter={level}")
    return np.hstack(columns), tuple(names)


def fit_size_model(
    mismatch: np.ndarray,
    covariates: np.ndarray,
    names: Sequence[str],
    *,
    clusters: np.ndarray | None = None,
    strata: np.ndarray | None = None,
    design: Any = None,
) -> SizeModel:
    """Fit the null logistic regression of mismatch on `covariates` (statsmodels GLM).

    `clusters` and `strata` are carried along for the tests that use the model: a cluster-robust
    score variance, and Mantel-Haenszel odds ratios (one stratum when None).

    A covariate that separates the classes (say, a converter whose models all mismatch) drives its
    coefficient to infinity; the fitted probabilities then go to 0 or 1, those models get zero
    weight, and the score tests correctly draw no information from them.

    Raises:
        HypothesisInputError: If the design is rank deficient (e.g. every model the same size).
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    y = np.asarray(mismatch, dtype=float)
    if np.linalg.matrix_rank(covariates) < covariates.shape[1]:
        raise HypothesisInputError(f"cannot adjust for {', '.join(names)}: they are collinear")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sm.GLM(y, covariates, family=sm.families.Binomial()).fit(maxiter=100)
    fitted = np.clip(result.fittedvalues, 1e-12, 1 - 1e-12)
    weights = fitted * (1 - fitted)
    information = covariates.T @ (weights[:, None] * covariates)
    return SizeModel(
        covariates=covariates,
        names=tuple(names),
        residuals=y - fitted,
        weights=weights,
        information_inverse=np.linalg.pinv(information),
        params=np.asarray(result.params),
        clusters=clusters,
        strata=np.zeros(len(y), dtype=np.int64) if strata is None else np.asarray(strata),
        design=design,
    )


def extend_size_model(
    model: SizeModel,
    mismatch: np.ndarray,
    extra: np.ndarray,
    names: Sequence[str],
    *,
    iterations: int = 50,
) -> SizeModel:
    """Refit `model` with `extra` covariate columns, by Newton-Raphson from its own fit.

    The maximum-likelihood fit of the same logistic regression as `fit_size_model` (statsmodels
    gives the same estimates; the tests compare them), started at the null model's coefficients
    and 0 for the new columns, with step halving on the log-likelihood: a few milliseconds where a
    fresh statsmodels fit takes tens, which matters when every significant n-gram is tested given
    its parts. Columns that add no rank are left out.
    """
    y = np.asarray(mismatch, dtype=float)
    covariates, kept = model.covariates, list(model.names)
    for column, name in zip(np.asarray(extra, dtype=float).T, names, strict=True):
        candidate = np.column_stack([covariates, column])
        gram = candidate.T @ candidate
        if np.linalg.matrix_rank(gram, hermitian=True) == candidate.shape[1]:
            covariates = candidate
            kept.append(name)
    params = np.concatenate([model.params, np.zeros(covariates.shape[1] - len(model.params))])
    loglik = _log_likelihood(y, covariates @ params)
    for _ in range(iterations):
        fitted = _expit(covariates @ params)
        weights = fitted * (1 - fitted)
        step = np.linalg.lstsq(
            covariates.T @ (weights[:, None] * covariates), covariates.T @ (y - fitted), rcond=None
        )[0]
        for _ in range(30):  # halve the step until the likelihood does not fall
            trial = params + step
            trial_loglik = _log_likelihood(y, covariates @ trial)
            if trial_loglik >= loglik - 1e-12:
                break
            step /= 2
        converged = abs(trial_loglik - loglik) < 1e-10
        params, loglik = trial, trial_loglik
        if converged:
            break
    fitted = np.clip(_expit(covariates @ params), 1e-12, 1 - 1e-12)
    weights = fitted * (1 - fitted)
    return SizeModel(
        covariates=covariates,
        names=tuple(kept),
        residuals=y - fitted,
        weights=weights,
        information_inverse=np.linalg.pinv(covariates.T @ (weights[:, None] * covariates)),
        params=params,
        clusters=model.clusters,
        strata=model.strata,
        design=model.design,
    )


def _expit(eta: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(eta, -700, 700)))


def _log_likelihood(y: np.ndarray, eta: np.ndarray) -> float:
    return float((y * eta - np.logaddexp(0.0, eta)).sum())


def score_tests(model: SizeModel, presence: sp.csr_array) -> tuple[np.ndarray, np.ndarray]:
    """Rao score tests for adding each presence column to the null model, one-sided (greater).

    See `score_statistics`; returns (z statistic, one-sided p-value) per column.
    """
    return score_z(*score_statistics(model, presence))


def score_z(
    score: np.ndarray, information: np.ndarray, variance: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(z = U / sqrt(V), one-sided p-value) from `score_statistics`; z = 0, p = 1 where I ~ 0."""
    informative = information > _MIN_VARIANCE
    z = np.where(informative, score / np.sqrt(np.where(informative, variance, 1.0)), 0.0)
    return z, np.where(informative, stats.norm.sf(z), 1.0)


def score_statistics(
    model: SizeModel, presence: sp.csr_array
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The score, efficient information and score variance of adding each presence column.

    With U = x'(y - p) and V = x'Wx - x'WZ (Z'WZ)^-1 Z'Wx, the statistic is U / sqrt(V); its
    square equals statsmodels' ``GLMResults.score_test(exog_extra=x)``.

    When the model has clusters (rows of one cluster are not independent: one source model
    converted by several converters), V is replaced by max(V, V_cluster), where V_cluster is the
    cluster-robust (sandwich) variance of U with the small-sample factor C / (C - 1). The maximum
    keeps the test from ever being more liberal than the model-based one when the robust variance
    of a rare feature happens to come out small.

    Returns:
        (score U, efficient information I, variance V of U) per column; a column with I ~ 0
        carries no information beyond the covariates (in every model, or only where the null
        model is already certain), and `score_tests` gives it z = 0, p = 1.
    """
    x = presence.astype(float)
    score = np.asarray(x.T @ model.residuals).ravel()
    weighted = model.weights[:, None] * model.covariates
    cross = np.asarray(x.T @ weighted)  # x'WZ, features x covariates
    projection = cross @ model.information_inverse  # B: regression of x on Z, per feature
    information = np.asarray(x.T @ model.weights).ravel() - np.einsum("fk,fk->f", projection, cross)
    variance = information
    clusters = model.clusters
    if clusters is not None and np.bincount(clusters).max() > 1:
        robust = _cluster_score_variance(model, x, projection, clusters)
        variance = np.maximum(information, robust)
    return score, information, variance


def _cluster_score_variance(
    model: SizeModel, x: sp.csr_array, projection: np.ndarray, clusters: np.ndarray
) -> np.ndarray:
    """Sum over clusters of the squared cluster score of each feature, C/(C-1) corrected.

    The score of feature f in cluster c is sum_i (x_if - z_i'B_f) r_i = S[c, f] - (R B_f)[c],
    with S = G'diag(r)X (sparse) and R = G'diag(r)Z, so the sum of squares expands into three
    terms that never form the dense clusters x features matrix.
    """
    count = int(clusters.max()) + 1
    rows = np.arange(len(clusters))
    membership = sp.csr_array(
        (model.residuals, (clusters, rows)), shape=(count, len(clusters))
    )  # G' diag(r)
    cluster_scores = (membership @ x).tocsc()  # S, clusters x features
    cluster_covariates = np.asarray(membership @ model.covariates)  # R, clusters x covariates
    squares = np.asarray(cluster_scores.multiply(cluster_scores).sum(axis=0)).ravel()
    cross = np.einsum("fk,fk->f", np.asarray(cluster_scores.T @ cluster_covariates), projection)
    quadratic = np.einsum(
        "fk,kl,fl->f", projection, cluster_covariates.T @ cluster_covariates, projection
    )
    return (squares - 2 * cross + quadratic) * count / max(count - 1, 1)
