"""Twins as matched pairs: which n-grams differ between the export that mismatches and the other?

A source model converted by two converters gives two exports of the same computation. When one
export mismatches and the other does not (a *discordant* pair), everything about the source model
(its architecture, weights, inputs) is held fixed, so what differs between the exports is what the
converters made of it. This is the matched-pairs design of case-control studies (Breslow & Day
1980, ch. 7): per pair, the "case" is the mismatching export, the "control" the ok one.

* Unit of analysis: a discordant pair (a source model with exactly two labelled exports, from
  different converters, one mismatching). Concordant pairs carry no information on within-pair
  effects and drop out of the conditional likelihood.
* Model: conditional logistic regression, logit P(the second export mismatches | pair) =
  gamma_k + beta (x_second - x_first), with gamma_k the effect of the converter pair k (the
  converter itself differs within every pair, so it must be adjusted for) and beta the log odds
  ratio of carrying the n-gram within a source model.
* Null hypothesis: beta = 0; alternative (one-sided): beta > 0, the export carrying the n-gram is
  the likelier to mismatch.
* Test: exact, conditional on the sufficient statistic of every gamma_k (how many pairs of type k
  have their second export mismatching): the pairs' outcomes are permuted within converter-pair
  types (`hypotheses.exact.three_valued_kernels`). With one converter pair and an n-gram present
  in one export only, this is the exact McNemar test on the pairs where it differs.
* Tarone's rule and Benjamini-Hochberg over the n-grams that differ within some discordant pair,
  and each n-gram's minimum detectable odds ratio at alpha / K.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hypotheses.exact import convolve, three_valued_kernels
from hypotheses.features import PresenceMatrix
from hypotheses.multiplicity import TaroneFamily, tarone_bh, tarone_family
from hypotheses.power import EFFECT_THAT_MATTERS, POWER, PowerSummary, power_summary
from opseq.ngrams import Ngram

__all__ = ["TwinPairs", "TwinTest", "TwinsResult", "twin_pairs", "twins_hypothesis"]


@dataclass(frozen=True, eq=False, kw_only=True)
class TwinPairs:
    """The twin pairs of a table: rows of each pair, ordered by converter name.

    Attributes:
        first: Row of the pair's first export (the converter that sorts first).
        second: Row of its second export.
        kind: Converter-pair type of each pair (an index into ``kinds``).
        kinds: The converter pairs, as ``"a+b"``.
    """

    first: np.ndarray
    second: np.ndarray
    kind: np.ndarray
    kinds: tuple[str, ...]


def twin_pairs(row_cluster: np.ndarray, converters: tuple[str, ...]) -> TwinPairs:
    """Source models with exactly two rows from two different converters.

    Examples:
        >>> p = twin_pairs(np.array([0, 0, 1, 2, 2]), ("b", "a", "a", "a", "a"))
        >>> p.first.tolist(), p.second.tolist(), p.kinds
        ([1], [0], ('a+b',))
    """
    row_cluster = np.asarray(row_cluster, dtype=np.int64)
    order = np.argsort(row_cluster, kind="stable")
    sizes = np.bincount(row_cluster)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    firsts, seconds, names = [], [], []
    for cluster in np.flatnonzero(sizes == 2).tolist():
        a, b = order[starts[cluster]], order[starts[cluster] + 1]
        if converters[a] == converters[b]:
            continue
        if converters[b] < converters[a]:
            a, b = b, a
        firsts.append(a)
        seconds.append(b)
        names.append(f"{converters[a]}+{converters[b]}")
    kinds, kind = np.unique(np.array(names, dtype=object), return_inverse=True)
    return TwinPairs(
        first=np.array(firsts, dtype=np.int64),
        second=np.array(seconds, dtype=np.int64),
        kind=np.asarray(kind, dtype=np.int64).ravel(),
        kinds=tuple(str(k) for k in kinds),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TwinTest:
    """The matched-pairs test of one n-gram.

    Attributes:
        feature: The n-gram (an operator is a 1-gram).
        mismatching_only: Discordant pairs where only the mismatching export contains it.
        ok_only: Discordant pairs where only the ok export contains it.
        odds_ratio: mismatching_only / ok_only, 0.5 added to both when one is 0 (the conditional
            maximum-likelihood odds ratio of matched pairs, before the converter adjustment).
        p_value: One-sided exact conditional p-value (converter pair adjusted).
        q_value: Benjamini-Hochberg within the Tarone family; 1 outside it.
        p_min: Smallest attainable p-value with these pairs.
        tarone_testable: In the Tarone family.
        min_detectable_or: Odds ratio detected with 80% power at alpha / K (inf: none).
    """

    feature: Ngram
    mismatching_only: int
    ok_only: int
    odds_ratio: float
    p_value: float
    q_value: float
    p_min: float
    tarone_testable: bool
    min_detectable_or: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        record: dict[str, Any] = {"ngram": list(self.feature)}
        for name in self.__slots__[1:]:
            value = getattr(self, name)
            record[name] = None if isinstance(value, float) and not np.isfinite(value) else value
        return record


@dataclass(frozen=True, eq=False, kw_only=True)
class TwinsResult:
    """The within-source analysis.

    Attributes:
        pairs: Twin pairs (two exports of one source model by two converters).
        concordant_mismatch: Pairs whose two exports mismatch.
        concordant_ok: Pairs whose two exports are ok.
        discordant: Pairs with one mismatching export.
        by_kind: Per converter pair: discordant pairs and those whose second export mismatches.
        tests: Tests of the n-grams that differ within some discordant pair, most significant
            first.
        family: Tarone's family of the tests.
        power: Minimum detectable odds ratios, summarised.
        alpha: False discovery rate.
    """

    pairs: int
    concordant_mismatch: int
    concordant_ok: int
    discordant: int
    by_kind: dict[str, dict[str, int]]
    tests: tuple[TwinTest, ...]
    family: TaroneFamily
    power: PowerSummary
    alpha: float

    @property
    def significant(self) -> tuple[TwinTest, ...]:
        """Tests with q <= alpha."""
        return tuple(t for t in self.tests if t.q_value <= self.alpha)

    def to_dict(self, *, top: int | None = None) -> dict[str, Any]:
        """Return a JSON-safe dict; `top` bounds the tests listed (all when None)."""
        return {
            "pairs": self.pairs,
            "concordant_mismatch": self.concordant_mismatch,
            "concordant_ok": self.concordant_ok,
            "discordant": self.discordant,
            "by_converters": self.by_kind,
            "tested": len(self.tests),
            "significant": len(self.significant),
            "tarone": self.family.to_dict(),
            "power": self.power.to_dict(),
            "method": (
                "exact conditional logistic regression on discordant twin pairs, adjusted for the "
                "converter pair (exact McNemar when one converter pair)"
            ),
            "tests": [t.to_dict() for t in self.tests[:top]],
        }


def twins_hypothesis(
    presence: PresenceMatrix,
    mismatch: np.ndarray,
    pairs: TwinPairs,
    *,
    alpha: float = 0.05,
    effect: float = EFFECT_THAT_MATTERS,
    power: float = POWER,
) -> TwinsResult:
    """Test every column of `presence` on the discordant twin pairs.

    Args:
        presence: Rows x features (the features to test).
        mismatch: Label of each row.
        pairs: The twin pairs of the rows (`twin_pairs`).
        alpha: False discovery rate.
        effect: The odds ratio that matters.
        power: Power of the minimum detectable odds ratios.
    """
    y = np.asarray(mismatch, dtype=bool)
    y_first, y_second = y[pairs.first], y[pairs.second]
    discordant = y_first != y_second
    counts = {
        "pairs": len(pairs.first),
        "concordant_mismatch": int((y_first & y_second).sum()),
        "concordant_ok": int((~y_first & ~y_second).sum()),
        "discordant": int(discordant.sum()),
    }
    kind = pairs.kind[discordant]
    outcome = y_second[discordant]  # the second export is the mismatching one
    by_kind = {
        name: {
            "discordant": int((kind == k).sum()),
            "second_mismatching": int(outcome[kind == k].sum()),
        }
        for k, name in enumerate(pairs.kinds)
        if (kind == k).any()
    }
    matrix = presence.matrix
    difference = (
        matrix[pairs.second[discordant]].astype(np.int8)
        - matrix[pairs.first[discordant]].astype(np.int8)
    ).tocsc()
    differs = np.flatnonzero(np.diff(difference.indptr) > 0)
    difference = difference[:, differs].tocsc()
    tests, family, mdor = _tests(difference, kind, outcome, len(pairs.kinds), alpha, power)
    names = [presence.names[j] for j in differs.tolist()]
    records = [
        TwinTest(feature=name, **{k: v[i] for k, v in tests.items()})
        for i, name in enumerate(names)
    ]
    records.sort(key=lambda t: (t.q_value, t.p_value, t.feature))
    differing = np.add(tests["mismatching_only"], tests["ok_only"])
    prevalence = differing / max(int(discordant.sum()), 1)
    return TwinsResult(
        **counts,
        by_kind=by_kind,
        tests=tuple(records),
        family=family,
        power=power_summary(
            np.asarray(mdor, dtype=float), prevalence, family, effect=effect, power=power
        ),
        alpha=alpha,
    )


def _tests(
    difference: sp.csc_array, kind: np.ndarray, outcome: np.ndarray, kinds: int, alpha, power
) -> tuple[dict[str, list], TaroneFamily, np.ndarray]:
    """Per feature: counts, exact p, minimum p, Tarone family, q and MDOR."""
    features = difference.shape[1]
    if features == 0 or kinds == 0:
        empty = np.zeros(0)
        family = tarone_family(empty, alpha)
        return {name: [] for name in TwinTest.__slots__[1:]}, family, empty
    coo = difference.tocoo()
    value, pair, feature = coo.data.astype(np.int64), coo.row, coo.col
    hit = outcome[pair]
    mismatching_only = np.bincount(feature, weights=(value == 1) & hit, minlength=features)
    mismatching_only += np.bincount(feature, weights=(value == -1) & ~hit, minlength=features)
    ok_only = np.bincount(feature, minlength=features) - mismatching_only
    observed = np.bincount(feature, weights=value * hit, minlength=features).astype(np.int64)
    term = kind[pair] * features + feature
    plus = np.bincount(term, weights=value == 1, minlength=kinds * features).reshape(kinds, -1)
    minus = np.bincount(term, weights=value == -1, minlength=kinds * features).reshape(kinds, -1)
    units = np.bincount(kind, minlength=kinds)
    draws = np.bincount(kind, weights=outcome, minlength=kinds).astype(np.int64)
    k_index, f_index = np.nonzero((plus + minus) > 0)
    plus_t = plus[k_index, f_index].astype(np.int64)
    minus_t = minus[k_index, f_index].astype(np.int64)
    kernels = three_valued_kernels(
        f_index, minus_t, units[k_index] - plus_t - minus_t, plus_t, draws[k_index]
    )
    null = convolve(kernels, features)
    p = null.upper_tail(observed)
    min_p = null.min_p()
    family = tarone_family(min_p, alpha)
    mdor = null.min_detectable_odds_ratio(family.per_test_alpha, power)
    mdor[~family.testable] = np.inf
    corrected = np.where((mismatching_only == 0) | (ok_only == 0), 0.5, 0.0)
    with np.errstate(divide="ignore"):
        ratio = (mismatching_only + corrected) / (ok_only + corrected)
    columns = {
        "mismatching_only": mismatching_only.astype(int).tolist(),
        "ok_only": ok_only.astype(int).tolist(),
        "odds_ratio": ratio.tolist(),
        "p_value": p.tolist(),
        "q_value": tarone_bh(p, family).tolist(),
        "p_min": min_p.tolist(),
        "tarone_testable": family.testable.tolist(),
        "min_detectable_or": mdor.tolist(),
    }
    return columns, family, mdor
