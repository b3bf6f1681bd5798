"""The prediction hypothesis: does structure predict mismatch beyond model size?

Three nested logistic regressions (scikit-learn, L2, liblinear on sparse features) are scored by
ROC AUC under repeated stratified k-fold cross-validation, on the same folds:

* ``size``: the same 4-df natural spline of log node count as the size-adjusted tests
  (`hypotheses.stats.size_covariates`), plus converter indicators when there are several
  converters, since converters differ both in operator vocabulary and in mismatch rate;
* ``operators``: + presence of each operator;
* ``ngrams``: + presence of each n-gram of the tested lengths with enough support.

Folds are grouped by source model (`StratifiedGroupKFold`): the same framework model converted by
two converters yields two rows with nearly the same n-grams and correlated outcomes, and letting
one into training while the other is tested would reward memorising rare n-grams.

The L2 strength is chosen by nested cross-validation (Varma & Simon 2006, BMC Bioinformatics
7:91): inside each outer training set, `INNER_FOLDS` grouped stratified folds score every C of
`C_GRID` by ROC AUC, and the best C (the smaller on ties: more regularisation) is refitted on the
whole outer training set. A fixed C = 1 over-fits 66,690 n-gram features (on the benchmark corpus
the n-gram set's AUC is 0.66 at C = 1 and 0.71 at C = 0.01), which would make "n-grams add nothing"
an artefact of the penalty. Wide designs (more features than rows) are fitted in liblinear's
dual, ten times faster there at the same solution, with a stopping tolerance of 1e-3.

Fold AUCs of repeated cross-validation are correlated (the training sets overlap), so their plain
standard error is too small. Intervals and the paired tests of the AUC gains use the corrected
resampled t statistic of Nadeau & Bengio (2003), as recommended by Bouckaert & Frank (2004):
variance (1/J + n_test/n_train) * s^2 over the J = folds x repeats results, t with J - 1 df.
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from hypotheses.features import PresenceMatrix
from hypotheses.stats import size_covariates

__all__ = [
    "C_GRID",
    "INNER_FOLDS",
    "AucEstimate",
    "AucGain",
    "PredictionResult",
    "choose_c",
    "corrected_resampled_t",
    "grouped_folds",
    "prediction_hypothesis",
]

FEATURE_SETS = ("size", "operators", "ngrams")
#: Inverse L2 strengths the inner cross-validation chooses from.
C_GRID = (0.001, 0.01, 0.1, 1.0)
INNER_FOLDS = 3
# liblinear's stopping tolerance: on the benchmark corpus the AUCs at 1e-3 equal those at the
# default 1e-4 to four digits, in a third of the time.
_TOLERANCE = 1e-3
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
        chosen_c: The C the inner cross-validation chose in each fold.
    """

    features: int
    mean: float
    ci_low: float
    ci_high: float
    fold_aucs: tuple[float, ...]
    roc: tuple[tuple[float, ...], tuple[float, ...]]
    chosen_c: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        chosen = {f"{c:g}": self.chosen_c.count(c) for c in sorted(set(self.chosen_c))}
        return {
            "features": self.features,
            "chosen_c": chosen,
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
            "model": (
                "logistic regression (L2, C chosen by nested grouped "
                f"{INNER_FOLDS}-fold CV from {', '.join(f'{c:g}' for c in C_GRID)}), "
                "repeated stratified k-fold grouped by source"
            ),
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
        jobs: Processes fitting folds in parallel (results do not depend on it).
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
    group_ids = _group_ids(groups, len(y))

    results = _run_folds(tasks, (designs, y, group_ids, seed), jobs)
    fold_aucs: dict[str, list[float]] = {name: [] for name in designs}
    chosen: dict[str, list[float]] = {name: [] for name in designs}
    first_repeat: dict[str, np.ndarray] = {name: np.zeros(len(y)) for name in designs}
    scored = np.zeros(len(y), dtype=bool)
    for ((index, _, test), name), (scores, c) in zip(tasks, results, strict=True):
        fold_aucs[name].append(_auc(y[test], scores))
        chosen[name].append(c)
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
            design.shape[1], fold_aucs[name], test_fraction, y[scored], first_repeat[name][scored],
            chosen[name],
        )
        for name, design in designs.items()
    }  # fmt: skip
    gains = tuple(
        _gain(larger, smaller, fold_aucs, test_fraction)
        for smaller, larger in itertools.pairwise(FEATURE_SETS)
    )
    return PredictionResult(folds=folds, repeats=repeats, auc=auc, gains=gains)


def _splits(
    y: np.ndarray, groups: tuple[str, ...] | None, folds: int, repeats: int, seed: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    group_ids = _group_ids(groups, len(y))
    for repeat in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        yield from splitter.split(np.zeros(len(y)), y, group_ids)


def _group_ids(groups: tuple[str, ...] | None, rows: int) -> np.ndarray:
    if groups is None:
        return np.arange(rows)
    return np.asarray(np.unique(np.asarray(groups, dtype=object), return_inverse=True)[1]).ravel()


def _designs(
    presence: PresenceMatrix,
    nodes: np.ndarray,
    converters: tuple[str, ...],
    n_range: tuple[int, int],
    min_support: int,
) -> dict[str, sp.csr_array]:
    size, _ = size_covariates(nodes, converters)
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


# What forked fold workers read: the designs are inherited, not pickled to each worker.
_FOLD_STATE: tuple | None = None


def _run_folds(tasks: list, state: tuple, jobs: int) -> list[tuple[np.ndarray, float]]:
    """`_fit_predict` of every task, in forked processes when ``jobs > 1``.

    Not threads: liblinear draws its coordinate order from one generator per process, so fits
    running side by side in threads interleave their draws and the report changes from run to
    run. A forked worker owns its generator and each fit reseeds it, so the results do not
    depend on `jobs` or on the order. Without ``fork`` (Windows, macOS) the folds run here.
    """
    global _FOLD_STATE
    _FOLD_STATE = state
    try:
        if jobs <= 1 or len(tasks) <= 1 or "fork" not in mp.get_all_start_methods():
            return [_fold_task(task) for task in tasks]
        with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=mp.get_context("fork")) as pool:
            return list(pool.map(_fold_task, tasks))
    finally:
        _FOLD_STATE = None


def _fold_task(task) -> tuple[np.ndarray, float]:
    designs, y, group_ids, seed = _FOLD_STATE
    (index, train, test), name = task
    return _fit_predict(designs[name], y, train, test, group_ids, seed + index)


def _fit_predict(
    design: sp.csr_array,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    group_ids: np.ndarray,
    seed: int,
) -> tuple[np.ndarray, float]:
    """Choose C on `train` by inner grouped CV, refit there, and score `test`."""
    x_train, y_train = design[train], y[train]
    c = choose_c(x_train, y_train, group_ids[train], seed)
    return _fit(x_train, y_train, c).decision_function(design[test]), c


def choose_c(x: sp.csr_array, y: np.ndarray, group_ids: np.ndarray, seed: int) -> float:
    """The C of `C_GRID` with the best mean inner-fold AUC (the smaller on ties).

    Inner folds are grouped by source model and stratified by whether the source model has a
    mismatching row (`grouped_folds`); with too few source models of either kind for
    `INNER_FOLDS` folds, C = 1 (scikit-learn's default) is used. The grid is walked from the
    strongest penalty up and stops at the first C whose mean AUC does not improve: the validation
    AUC of an L2 path rises to one peak and falls as the model over-fits, and the weakest
    penalties are the slowest fits (on the benchmark's 66,690 n-grams C = 1 costs ten times C =
    0.001), so the fits past the peak are skipped.
    """
    splits = [
        (x[train], y[train], x[test], y[test])
        for train, test in grouped_folds(y, group_ids, INNER_FOLDS, seed)
        if y[test].any() and not y[test].all() and y[train].any() and not y[train].all()
    ]
    if not splits:
        return 1.0
    best_c, best_auc = C_GRID[0], -np.inf
    for c in C_GRID:  # strongest penalty first
        mean_auc = float(
            np.mean([_auc(y_test, _fit(x_train, y_train, c).decision_function(x_test))
                     for x_train, y_train, x_test, y_test in splits])
        )  # fmt: skip
        if mean_auc <= best_auc:
            break  # past the peak: weaker penalties over-fit further (and cost the most)
        best_c, best_auc = c, mean_auc
    return float(best_c)


def grouped_folds(
    y: np.ndarray, group_ids: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds of whole groups, stratified by whether a group has a positive row.

    `StratifiedKFold` on the groups (labelled by any positive row), mapped back to rows: every
    group in one fold, each fold with about the same share of positive groups. Empty when either
    kind of group is too rare for `folds` folds. (`StratifiedGroupKFold` balances rows instead,
    with a Python loop over groups: a third of a second per split on 3,750 groups.)

    Examples:
        >>> y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
        >>> groups = np.array([0, 0, 1, 1, 2, 3, 4, 4, 5, 6])
        >>> folds = grouped_folds(y, groups, 2, 0)
        >>> all(not set(groups[a]) & set(groups[b]) for a, b in folds)
        True
    """
    from sklearn.model_selection import StratifiedKFold

    group_ids = np.asarray(group_ids)
    unique, row_group = np.unique(group_ids, return_inverse=True)
    positive = np.bincount(row_group, weights=y, minlength=len(unique)) > 0
    if min(positive.sum(), (~positive).sum()) < folds:
        return []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.empty(len(unique), dtype=np.int64)
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(unique)), positive)):
        fold_of[held] = fold
    row_fold = fold_of[row_group]
    return [(np.flatnonzero(row_fold != k), np.flatnonzero(row_fold == k)) for k in range(folds)]


def _fit(x: sp.csr_array, y: np.ndarray, c: float):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    # liblinear's coordinate descent visits rows in a random order; a fixed state makes the
    # same corpus give the same report byte for byte (None drew from numpy's global state).
    model = LogisticRegression(
        C=c,
        solver="liblinear",
        tol=_TOLERANCE,
        max_iter=1000,
        dual=x.shape[1] > x.shape[0],
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    return model


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def _estimate(
    features: int,
    aucs: list[float],
    test_fraction: float,
    y: np.ndarray,
    scores: np.ndarray,
    chosen: list[float],
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
        chosen_c=tuple(chosen),
    )


def _gain(larger: str, smaller: str, aucs: dict[str, list[float]], test_fraction: float) -> AucGain:
    differences = np.array(aucs[larger]) - np.array(aucs[smaller])
    mean, low, high, t, p = corrected_resampled_t(differences, test_fraction)
    return AucGain(
        larger=larger, smaller=smaller, gain=mean, ci_low=low, ci_high=high, t=t, p_value=p
    )
