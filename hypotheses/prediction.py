"""The prediction hypothesis: does structure predict mismatch beyond model size?

Three nested logistic regressions (scikit-learn, L2, liblinear on sparse features) are scored by
ROC AUC under repeated stratified k-fold cross-validation, on the same folds:

* ``size``: log node count (standardised), plus converter indicators when there are several
  converters, since converters differ both in operator vocabulary and in mismatch rate;
* ``operators``: + presence of each operator;
* ``ngrams``: + presence of each n-gram of the tested lengths with enough support.

Folds are grouped by source model (`StratifiedGroupKFold`): the same framework model converted by
two converters yields two rows with nearly the same n-grams and correlated outcomes, and letting
one into training while the other is tested would reward memorising rare n-grams.

Fold AUCs of repeated cross-validation are correlated (the training sets overlap), so their plain
standard error is too small. Intervals and the paired tests of the AUC gains use the corrected
resampled t statistic of Nadeau & Bengio (2003), as recommended by Bouckaert & Frank (2004):
variance (1/J + n_test/n_train) * s^2 over the J = folds x repeats results, t with J - 1 df.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from hypotheses.features import PresenceMatrix

__all__ = [
    "AucEstimate",
    "AucGain",
    "PredictionResult",
    "corrected_resampled_t",
    "prediction_hypothesis",
]

FEATURE_SETS = ("size", "operators", "ngrams")
_ROC_POINTS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class AucEstimate:
    """Cross-validated ROC AUC of one feature set.

    Attributes:
        features: Number of features.
        mean: Mean AUC over the folds.
        ci_low: Lower end of the corrected 95% CI.
        ci_high: Upper end.
        fold_aucs: AUC of each fold of each repeat.
        roc: (false positive rates, true positive rates) of the pooled out-of-fold predictions
            of the first repeat, for plotting.
    """

    features: int
    mean: float
    ci_low: float
    ci_high: float
    fold_aucs: tuple[float, ...]
    roc: tuple[tuple[float, ...], tuple[float, ...]]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "features": self.features,
            "auc": self.mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "fold_aucs": list(self.fold_aucs),
            "roc": {"fpr": list(self.roc[0]), "tpr": list(self.roc[1])},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AucGain:
    """The AUC gain of a richer feature set over a smaller one, paired by fold.

    Attributes:
        larger: The richer feature set.
        smaller: The one it is compared with.
        gain: Mean AUC difference.
        ci_low: Lower end of the corrected 95% CI.
        ci_high: Upper end.
        t: Corrected resampled t statistic.
        p_value: One-sided p-value for gain > 0.
    """

    larger: str
    smaller: str
    gain: float
    ci_low: float
    ci_high: float
    t: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "larger": self.larger,
            "smaller": self.smaller,
            "gain": self.gain,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "t": self.t,
            "p_value": self.p_value,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionResult:
    """AUC of each feature set and the paired gains.

    Attributes:
        folds: Folds per repeat.
        repeats: Repeats of the k-fold split.
        auc: Estimate per feature set (``size``, ``operators``, ``ngrams``).
        gains: ``operators`` over ``size`` and ``ngrams`` over ``operators``.
        skipped: Why prediction was not run (empty when it was).
    """

    folds: int
    repeats: int
    auc: dict[str, AucEstimate]
    gains: tuple[AucGain, ...]
    skipped: str = ""

    def gain(self, larger: str) -> AucGain | None:
        """The gain of feature set `larger` over the one before it."""
        return next((g for g in self.gains if g.larger == larger), None)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (DESIGN.md: hypothesis report, ``prediction``)."""
        return {
            "folds": self.folds,
            "repeats": self.repeats,
            "model": "logistic regression (L2, C=1), repeated stratified k-fold grouped by source",
            "interval": "Nadeau-Bengio corrected resampled t, 95%",
            "skipped": self.skipped or None,
            "auc": {name: estimate.to_dict() for name, estimate in self.auc.items()},
            "gains": [g.to_dict() for g in self.gains],
        }


def corrected_resampled_t(
    values: np.ndarray, test_fraction: float, *, confidence: float = 0.95
) -> tuple[float, float, float, float, float]:
    """Mean, CI and one-sided p (mean > 0) of repeated-CV results (Nadeau & Bengio, 2003).

    Args:
        values: One result per fold and repeat.
        test_fraction: n_test / n_train of one fold.
        confidence: Level of the interval.

    Returns:
        (mean, CI low, CI high, t, one-sided p-value).

    Examples:
        >>> mean, low, high, t, p = corrected_resampled_t(np.array([0.1, 0.2, 0.3, 0.2]), 0.25)
        >>> round(mean, 3), round(t, 3)
        (0.2, 3.464)
    """
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    variance = float(values.var(ddof=1)) if len(values) > 1 else 0.0
    se = np.sqrt((1 / len(values) + test_fraction) * variance)
    df = max(len(values) - 1, 1)
    if se == 0:
        t = np.inf if mean > 0 else (-np.inf if mean < 0 else 0.0)
        return mean, mean, mean, float(t), float(mean <= 0)
    t = mean / se
    half = stats.t.ppf(0.5 + confidence / 2, df) * se
    return mean, mean - half, mean + half, float(t), float(stats.t.sf(t, df))


def prediction_hypothesis(
    presence: PresenceMatrix,
    mismatch: np.ndarray,
    nodes: np.ndarray,
    converters: tuple[str, ...],
    groups: tuple[str, ...] | None = None,
    *,
    n_range: tuple[int, int] = (2, 4),
    min_support: int = 5,
    folds: int = 5,
    repeats: int = 5,
    seed: int = 0,
    jobs: int = 1,
) -> PredictionResult:
    """Cross-validate the three feature sets on the same folds and compare them pairwise.

    Args:
        presence: Presence of every mined n-gram (operators are the 1-grams).
        mismatch: Label of each model.
        nodes: Node count of each model.
        converters: Converter of each model.
        groups: Source model of each model; rows of one group stay in one fold (None: every
            row is its own group).
        n_range: n-gram lengths of the ``ngrams`` feature set.
        min_support: Fewest models an n-gram must occur in to be a feature (chosen without
            looking at labels, so selecting on it leaks nothing).
        folds: Folds per repeat (reduced to the size of the smaller class when needed).
        repeats: Repeats with different shuffles.
        seed: Seed of the shuffles.
        jobs: Threads fitting folds in parallel (results do not depend on it).
    """
    y = np.asarray(mismatch, dtype=bool)
    minority = int(min(y.sum(), (~y).sum()))
    folds = min(folds, minority)
    if folds < 2:
        return PredictionResult(
            folds=0,
            repeats=0,
            auc={},
            gains=(),
            skipped=f"the smaller class has {minority} model(s); cross-validation needs >= 2",
        )
    designs = _designs(presence, nodes, converters, n_range, min_support)
    # A grouped fold can miss a class; its AUC is undefined, so it is left out.
    splits = [
        (index, train, test)
        for index, (train, test) in enumerate(_splits(y, groups, folds, repeats, seed))
        if y[test].any() and not y[test].all()
    ]
    tasks = [(split, name) for split in splits for name in designs]
    # liblinear releases the GIL, so threads fit folds in parallel without copying the designs.
    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        all_scores = list(pool.map(lambda t: _fit_predict(designs[t[1]], y, *t[0][1:]), tasks))
    fold_aucs: dict[str, list[float]] = {name: [] for name in designs}
    first_repeat: dict[str, np.ndarray] = {name: np.zeros(len(y)) for name in designs}
    scored = np.zeros(len(y), dtype=bool)
    for ((index, _, test), name), scores in zip(tasks, all_scores, strict=True):
        fold_aucs[name].append(_auc(y[test], scores))
        if index < folds:
            first_repeat[name][test] = scores
            scored[test] = True
    if not fold_aucs["size"]:
        return PredictionResult(
            folds=folds, repeats=repeats, auc={}, gains=(),
            skipped="no fold held both classes (too few groups in the smaller class)",
        )  # fmt: skip
    test_fraction = 1 / (folds - 1)
    auc = {
        name: _estimate(
            design.shape[1], fold_aucs[name], test_fraction, y[scored], first_repeat[name][scored]
        )
        for name, design in designs.items()
    }
    gains = tuple(
        _gain(larger, smaller, fold_aucs, test_fraction)
        for smaller, larger in itertools.pairwise(FEATURE_SETS)
    )
    return PredictionResult(folds=folds, repeats=repeats, auc=auc, gains=gains)


def _splits(
    y: np.ndarray, groups: tuple[str, ...] | None, folds: int, repeats: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    group_ids = np.arange(len(y)) if groups is None else np.unique(groups, return_inverse=True)[1]
    for repeat in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        yield from splitter.split(np.zeros(len(y)), y, group_ids)


def _designs(
    presence: PresenceMatrix,
    nodes: np.ndarray,
    converters: tuple[str, ...],
    n_range: tuple[int, int],
    min_support: int,
) -> dict[str, sp.csr_array]:
    log_nodes = np.log(np.maximum(np.asarray(nodes, dtype=float), 1.0))
    spread = log_nodes.std()
    levels = sorted(set(converters))[1:]
    size = np.column_stack(
        [
            (log_nodes - log_nodes.mean()) / (spread if spread > 0 else 1.0),
            *(np.array([c == level for c in converters], dtype=float) for level in levels),
        ]
    )
    lengths, support = presence.lengths, presence.support
    operators = presence.matrix[:, np.flatnonzero((lengths == 1) & (support > 0))]
    in_range = (lengths >= n_range[0]) & (lengths <= n_range[1]) & (support >= min_support)
    ngrams = presence.matrix[:, np.flatnonzero(in_range)]
    base = sp.csr_array(size)
    with_ops = sp.hstack([base, operators], format="csr")
    designs = {
        "size": base,
        "operators": with_ops,
        "ngrams": sp.hstack([with_ops, ngrams], format="csr"),
    }
    for design in designs.values():  # liblinear refuses 64-bit sparse indices
        design.indices = design.indices.astype(np.int32)
        design.indptr = design.indptr.astype(np.int32)
    return designs


def _fit_predict(design: sp.csr_array, y: np.ndarray, train: np.ndarray, test: np.ndarray):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, solver="liblinear", max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(design[train], y[train])
    return model.decision_function(design[test])


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def _estimate(
    features: int, aucs: list[float], test_fraction: float, y: np.ndarray, scores: np.ndarray
) -> AucEstimate:
    from sklearn.metrics import roc_curve

    mean, low, high, _, _ = corrected_resampled_t(np.array(aucs), test_fraction)
    fpr, tpr, _ = roc_curve(y, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), _ROC_POINTS)).round().astype(int))
    return AucEstimate(
        features=features,
        mean=mean,
        ci_low=max(low, 0.0),
        ci_high=min(high, 1.0),
        fold_aucs=tuple(round(a, 6) for a in aucs),
        roc=(tuple(np.round(fpr[keep], 5).tolist()), tuple(np.round(tpr[keep], 5).tolist())),
    )


def _gain(larger: str, smaller: str, aucs: dict[str, list[float]], test_fraction: float) -> AucGain:
    differences = np.array(aucs[larger]) - np.array(aucs[smaller])
    mean, low, high, t, p = corrected_resampled_t(differences, test_fraction)
    return AucGain(
        larger=larger, smaller=smaller, gain=mean, ci_low=low, ci_high=high, t=t, p_value=p
    )
