"""Exact conditional tests of many features at once: stratified permutation distributions.

The unit of analysis is whatever the caller counts (a source model for the size-adjusted test, a
discordant twin pair for the within-source test). Units fall into strata; within a stratum the
null hypothesis makes the units' outcomes exchangeable, so conditioning on how many units of each
stratum have the outcome (the margins) leaves a permutation distribution that involves no nuisance
parameter. A feature's statistic is a sum over strata, its null distribution the convolution of
the strata's distributions:

* `hypergeometric_kernels`: binary exposure, binary outcome: the number of exposed units with the
  outcome is hypergeometric in each stratum. Summed over strata this is the exact conditional test
  of a common odds ratio of 1 in a 2 x 2 x K table (Birch 1964; Mehta, Patel & Gray 1985, JASA
  80:969; R's ``mantelhaen.test(exact=TRUE)``); with one stratum it is Fisher's exact test.
* `three_valued_kernels`: an exposure of -1, 0 or +1 per unit (a within-pair difference): the sum
  of the exposures of the units with the outcome, a sample without replacement. This is the exact
  conditional test of conditional logistic regression for matched pairs (Breslow & Day 1980,
  ch. 7; for a binary difference it is the exact McNemar test).

`convolve` turns the kernels of every feature into its null distribution in one batched dynamic
programme (features of similar support width together, one numpy operation per kernel offset), so
tens of thousands of sparse features cost a fraction of a second. `NullDistributions` then gives

* the one-sided p-value P(T >= t_observed);
* the minimum attainable p-value P(T = T_max), what Tarone's rule needs (`hypotheses.multiplicity`);
* the minimum detectable odds ratio: the smallest psi at which the level-alpha test has the wanted
  power, the alternative being the exponential tilt P_psi(t) ~ P_0(t) psi^t. For the 2 x 2 x K
  tables that tilt is exactly the conditional distribution under a common odds ratio psi (Fisher's
  noncentral hypergeometric, convolved); for matched pairs it is the conditional-logistic one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = [
    "Kernels",
    "NullDistributions",
    "convolve",
    "hypergeometric_kernels",
    "log_hypergeometric_max",
    "three_valued_kernels",
]

# No more than this many floats in one block of the dynamic programme (16 MB).
_BLOCK = 2_000_000
# A minimum detectable odds ratio above this is reported as infinite.
_LARGEST_ODDS_RATIO = 1e6


@dataclass(frozen=True, eq=False, kw_only=True)
class Kernels:
    """The null distribution of each (stratum, feature) term of a sum, one row per term.

    Attributes:
        feature: The feature each term belongs to.
        low: Smallest value the term can take.
        pmf: Probabilities of ``low, low + 1, ...`` (padded with zeros), terms x width.
        width: Largest offset with positive probability, per term.
    """

    feature: np.ndarray
    low: np.ndarray
    pmf: np.ndarray
    width: np.ndarray


@dataclass(frozen=True, eq=False, kw_only=True)
class NullDistributions:
    """The exact null distribution of one statistic per feature.

    Attributes:
        low: Smallest value of each feature's statistic.
        blocks: (feature indices, pmf over ``low .. low + width``) per block of similar widths.
        features: Number of features.
    """

    low: np.ndarray
    blocks: tuple[tuple[np.ndarray, np.ndarray], ...]
    features: int

    def upper_tail(self, observed: np.ndarray) -> np.ndarray:
        """One-sided p-values P(T >= observed), per feature."""
        p = np.ones(self.features)
        for index, pmf in self.blocks:
            tails = _upper_tails(pmf)
            offset = np.clip(np.asarray(observed)[index] - self.low[index], 0, pmf.shape[1])
            padded = np.hstack([tails, np.zeros((len(index), 1))])
            p[index] = padded[np.arange(len(index)), offset]
        return np.clip(p, 0.0, 1.0)

    def min_p(self) -> np.ndarray:
        """The smallest attainable p-value, P(T = T_max), per feature."""
        p = np.ones(self.features)
        for index, pmf in self.blocks:
            last = _last_positive(pmf)
            p[index] = pmf[np.arange(len(index)), last]
        return p

    def min_detectable_odds_ratio(self, alpha: float, power: float = 0.8) -> np.ndarray:
        """The smallest odds ratio the level-`alpha` test detects with probability `power`.

        Infinite when no odds ratio will do (the minimum attainable p-value exceeds `alpha`).
        """
        result = np.full(self.features, np.inf)
        for index, pmf in self.blocks:
            result[index] = _detectable(pmf, alpha, power)
        return result


def hypergeometric_kernels(
    feature: np.ndarray, total: np.ndarray, events: np.ndarray, exposed: np.ndarray
) -> Kernels:
    """Kernels of the exposed units with the outcome, one hypergeometric per term.

    Args:
        feature: Feature of each term.
        total: Units in the term's stratum.
        events: Units with the outcome in the stratum.
        exposed: Exposed units (feature present) in the stratum.

    Examples:
        >>> k = hypergeometric_kernels(np.array([0]), np.array([4]), np.array([2]), np.array([2]))
        >>> k.low.tolist(), np.round(k.pmf, 4).tolist()
        ([0], [[0.1667, 0.6667, 0.1667]])
    """
    total, events, exposed = (np.asarray(v, dtype=np.int64) for v in (total, events, exposed))
    low = np.maximum(0, exposed - (total - events))
    high = np.minimum(exposed, events)
    width = high - low
    offsets = np.arange(int(width.max(initial=0)) + 1)
    t = low[:, None] + offsets[None, :]
    valid = offsets[None, :] <= width[:, None]
    t = np.where(valid, t, low[:, None])
    log_pmf = (
        _log_choose(events[:, None], t)
        + _log_choose((total - events)[:, None], exposed[:, None] - t)
        - _log_choose(total, exposed)[:, None]
    )
    pmf = np.where(valid, np.exp(log_pmf), 0.0)
    return Kernels(feature=np.asarray(feature), low=low, pmf=_normalised(pmf), width=width)


def log_hypergeometric_max(
    total: np.ndarray, events: np.ndarray, exposed: np.ndarray
) -> np.ndarray:
    """Log P(the exposed units hold as many outcomes as they can), per term.

    The probability of the largest value of a hypergeometric count: the term's factor of the
    minimum attainable p-value of the stratified test (Tarone 1990, Biometrics 46:515).

    Examples:
        >>> round(float(np.exp(log_hypergeometric_max(np.array([4]), np.array([2]),
        ...                                           np.array([2])))[0]), 4)
        0.1667
    """
    total, events, exposed = (np.asarray(v, dtype=np.int64) for v in (total, events, exposed))
    high = np.minimum(exposed, events)
    return (
        _log_choose(events, high)
        + _log_choose(total - events, exposed - high)
        - _log_choose(total, exposed)
    )


def three_valued_kernels(
    feature: np.ndarray,
    minus: np.ndarray,
    zero: np.ndarray,
    plus: np.ndarray,
    draws: np.ndarray,
) -> Kernels:
    """Kernels of the sum of `draws` exposures drawn without replacement from -1, 0, +1 values.

    Args:
        feature: Feature of each term.
        minus: Units of the stratum with exposure -1.
        zero: Units with exposure 0.
        plus: Units with exposure +1.
        draws: Units with the outcome (the sample), per stratum.

    The term's value is (+1 drawn) - (-1 drawn); its pmf sums the multivariate hypergeometric
    over the number of -1 units drawn.

    Examples:
        >>> k = three_valued_kernels(*(np.array([v]) for v in (0, 1, 1, 1, 1)))
        >>> k.low.tolist(), np.round(k.pmf * 3, 6).tolist()
        ([-1], [[1.0, 1.0, 1.0]])
    """
    minus, zero, plus, draws = (np.asarray(v, dtype=np.int64) for v in (minus, zero, plus, draws))
    total = minus + zero + plus
    low = -np.minimum(minus, draws)
    high = np.minimum(plus, draws)
    width = high - low
    offsets = np.arange(int(width.max(initial=0)) + 1)
    pmf = np.zeros((len(total), len(offsets)))
    denominator = _log_choose(total, draws)
    most_minus = np.minimum(minus, draws)
    for d in range(int(most_minus.max(initial=0)) + 1):  # -1 units drawn
        rows = np.flatnonzero(most_minus >= d)
        u = low[rows, None] + offsets[None, :] + d  # +1 units drawn for the value s = u - d
        rest = draws[rows, None] - u - d
        valid = (u >= 0) & (u <= plus[rows, None]) & (rest >= 0) & (rest <= zero[rows, None])
        u, rest = np.where(valid, u, 0), np.where(valid, rest, 0)
        log_term = (
            _log_choose(minus[rows], d)[:, None]
            + _log_choose(plus[rows, None], u)
            + _log_choose(zero[rows, None], rest)
            - denominator[rows, None]
        )
        pmf[rows] += np.where(valid, np.exp(log_term), 0.0)
    return Kernels(feature=np.asarray(feature), low=low, pmf=_normalised(pmf), width=width)


def convolve(kernels: Kernels, features: int) -> NullDistributions:
    """The null distribution of each feature's statistic: its terms' kernels convolved.

    A feature without terms has the point distribution at 0 (it cannot vary).
    """
    low = np.bincount(kernels.feature, weights=kernels.low, minlength=features).astype(np.int64)
    width = np.bincount(kernels.feature, weights=kernels.width, minlength=features).astype(np.int64)
    informative = np.flatnonzero(kernels.width > 0)
    by_feature = informative[np.argsort(kernels.feature[informative], kind="stable")]
    starts = np.searchsorted(kernels.feature[by_feature], np.arange(features + 1))
    order = np.argsort(width, kind="stable")
    blocks = []
    position = 0
    while position < features:
        stop = _block_end(width[order], position)
        index = order[position:stop]
        blocks.append((index, _convolve_block(kernels, by_feature, starts, index, width[index])))
        position = stop
    return NullDistributions(low=low, blocks=tuple(blocks), features=features)


def _block_end(sorted_width: np.ndarray, start: int) -> int:
    """End of the block from `start`: widths within a factor 1.5 (+ 8) and `_BLOCK` floats."""
    ceiling = int(sorted_width[start] * 1.5 + 8)
    stop = int(np.searchsorted(sorted_width, ceiling, side="right"))
    rows = max(1, _BLOCK // (ceiling + 1))
    return min(stop, start + rows, len(sorted_width))


def _convolve_block(
    kernels: Kernels, by_feature: np.ndarray, starts: np.ndarray, index: np.ndarray, width
) -> np.ndarray:
    size = int(width.max(initial=0)) + 1
    pmf = np.zeros((len(index), size))
    pmf[:, 0] = 1.0
    counts = starts[index + 1] - starts[index]
    for rank in range(int(counts.max(initial=0))):
        rows = np.flatnonzero(counts > rank)
        terms = by_feature[starts[index[rows]] + rank]
        kernel = kernels.pmf[terms]
        reach = int(kernels.width[terms].max()) + 1
        current = pmf[rows]
        updated = np.zeros_like(current)
        for shift in range(reach):
            weight = kernel[:, shift : shift + 1]
            updated[:, shift:] += weight * current[:, : size - shift]
        pmf[rows] = updated
    return pmf


def _upper_tails(pmf: np.ndarray) -> np.ndarray:
    """P(offset >= s) for every s, summed from the top so small tails keep their digits."""
    return np.cumsum(pmf[:, ::-1], axis=1)[:, ::-1]


def _last_positive(pmf: np.ndarray) -> np.ndarray:
    positive = pmf > 0
    return pmf.shape[1] - 1 - np.argmax(positive[:, ::-1], axis=1)


def _detectable(pmf: np.ndarray, alpha: float, power: float) -> np.ndarray:
    """Bisection on log psi of the tilted power P_psi(T >= t_alpha) = power, per row."""
    tails = _upper_tails(pmf)
    rejects = tails <= alpha * (1 + 1e-9)
    possible = rejects.any(axis=1)
    critical = np.where(possible, np.argmax(rejects, axis=1), pmf.shape[1])
    result = np.full(len(pmf), np.inf)
    if not possible.any():
        return result
    rows = np.flatnonzero(possible)
    with np.errstate(divide="ignore"):
        log_pmf = np.log(pmf[rows])
    offsets = np.arange(pmf.shape[1])
    in_region = offsets[None, :] >= critical[rows, None]

    def tilted_power(theta: np.ndarray) -> np.ndarray:
        log_weight = log_pmf + theta[:, None] * offsets[None, :]
        top = log_weight.max(axis=1, keepdims=True)
        weight = np.exp(log_weight - top)
        return (weight * in_region).sum(axis=1) / weight.sum(axis=1)

    low = np.zeros(len(rows))
    high = np.full(len(rows), np.log(_LARGEST_ODDS_RATIO))
    reachable = tilted_power(high) >= power
    already = tilted_power(low) >= power
    for _ in range(60):
        middle = (low + high) / 2
        enough = tilted_power(middle) >= power
        high = np.where(enough, middle, high)
        low = np.where(enough, low, middle)
    detected = np.where(already, 1.0, np.exp(high))
    result[rows] = np.where(reachable, detected, np.inf)
    return result


def _normalised(pmf: np.ndarray) -> np.ndarray:
    total = pmf.sum(axis=1, keepdims=True)
    return pmf / np.where(total > 0, total, 1.0)


def _log_choose(n, k) -> np.ndarray:
    n, k = np.asarray(n, dtype=float), np.asarray(k, dtype=float)
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
