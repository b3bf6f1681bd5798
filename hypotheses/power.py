"""What a test could have seen: minimum detectable odds ratios and effective sample sizes.

A family of tests that finds nothing supports "no association" only if it could have found an
association that matters. For every tested feature the report gives the *minimum detectable odds
ratio* (MDOR): the smallest odds ratio the feature's test detects with probability `POWER` (80%)
at the per-test level a lone effect must reach after multiplicity (alpha / K, Tarone's K; see
`hypotheses.multiplicity`). Exact tests get it from their own null distribution
(`hypotheses.exact`); the asymptotic score test from the local-alternative formula
``log MDOR = (z_{1-alpha} + z_{power}) sqrt(V) / I``, with I the efficient information of the
feature given the covariates and V the (cluster-robust) variance of its score (e.g. Self & Mauritsen
1988, Biometrics 44:79, for score-test power in GLMs).

`EFFECT_THAT_MATTERS` (an odds ratio of 3) is the smallest effect the verdicts insist on seeing
before they answer "no". A sequence worth a check of its own must at least triple the odds of a
mismatch: at the shipped corpus's 26% mismatch rate that is 26% -> 51%. An odds ratio of 3 is about
Cohen's d = 0.6 (ln OR x sqrt(3) / pi, Chinn 2000, Statistics in Medicine 19:3127), a medium
effect; an odds ratio of 2 (d = 0.38) in a rare sequence would not justify a gate. `EffectiveUnits`
counts the independent units behind the tests: source models, and the rows deflated by the design
effect of the outcome's intraclass correlation within source models (Kish 1965).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from hypotheses.multiplicity import TaroneFamily

__all__ = [
    "EFFECT_THAT_MATTERS",
    "POWER",
    "EffectiveUnits",
    "PowerBand",
    "PowerSummary",
    "answer_for",
    "asymptotic_detectable_odds_ratio",
    "effective_units",
    "intraclass_correlation",
    "power_summary",
]

POWER = 0.8
EFFECT_THAT_MATTERS = 3.0
#: Prevalence bands (share of source models carrying the feature) of the power table.
BANDS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0)
_QUANTILES = (0.1, 0.5, 0.9)
_MIN_INFORMATION = 1e-9


def asymptotic_detectable_odds_ratio(
    information: np.ndarray, variance: np.ndarray, alpha: float, power: float = POWER
) -> np.ndarray:
    """exp((z_{1-alpha} + z_power) sqrt(V) / I) per feature; infinite without information.

    Examples:
        >>> round(float(asymptotic_detectable_odds_ratio(np.array([4.0]), np.array([4.0]),
        ...                                              0.025)[0]), 3)  # exp(2.8016 / 2)
        4.058
    """
    information = np.asarray(information, dtype=float)
    z = stats.norm.isf(alpha) + stats.norm.ppf(power)
    informative = information > _MIN_INFORMATION
    safe = np.where(informative, information, 1.0)
    with np.errstate(over="ignore"):
        ratio = np.exp(z * np.sqrt(np.maximum(variance, 0.0)) / safe)
    return np.where(informative, ratio, np.inf)


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerBand:
    """Minimum detectable odds ratios of the features in one prevalence band.

    Attributes:
        low: Smallest share of source models carrying a feature of the band (inclusive).
        high: Largest share (exclusive, except for the last band).
        features: Tested features in the band.
        median: Median MDOR (None when infinite or empty).
        powered: Features whose MDOR is at most the effect that matters.
    """

    low: float
    high: float
    features: int
    median: float
    powered: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "prevalence": [self.low, self.high],
            "features": self.features,
            "median_mdor": _finite(self.median),
            "powered": self.powered,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerSummary:
    """The power of one family of tests to see an effect that matters.

    Attributes:
        power: The power the MDORs are computed for.
        effect: The odds ratio that matters (`EFFECT_THAT_MATTERS`).
        per_test_alpha: The level of a lone effect, alpha / K.
        tested: Features tested.
        quantiles: MDOR at the 10%, 50% and 90% quantiles over the tested features.
        powered: Features whose MDOR is at most `effect`.
        bands: MDOR by prevalence band.
    """

    power: float
    effect: float
    per_test_alpha: float
    tested: int
    quantiles: tuple[float, float, float]
    powered: int
    bands: tuple[PowerBand, ...]

    @property
    def median(self) -> float:
        """The median MDOR over the tested features (infinite when there are none)."""
        return self.quantiles[1]

    @property
    def sufficient(self) -> bool:
        """Could the family see the effect that matters in the median feature?"""
        return self.tested > 0 and self.median <= self.effect

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "power": self.power,
            "effect_that_matters": self.effect,
            "per_test_alpha": self.per_test_alpha,
            "tested": self.tested,
            "mdor_quantiles": {
                f"{int(q * 100)}%": _finite(v)
                for q, v in zip(_QUANTILES, self.quantiles, strict=True)
            },
            "powered": self.powered,
            "sufficient": self.sufficient,
            "bands": [band.to_dict() for band in self.bands],
        }


def power_summary(
    mdor: np.ndarray,
    prevalence: np.ndarray,
    family: TaroneFamily,
    *,
    effect: float = EFFECT_THAT_MATTERS,
    power: float = POWER,
) -> PowerSummary:
    """Summarise the MDORs of a family: quantiles, the powered count, and by prevalence band.

    Args:
        mdor: Minimum detectable odds ratio of each tested feature (inf where none).
        prevalence: Share of source models carrying each feature.
        family: The Tarone family (for the per-test level).
        effect: The odds ratio that matters.
        power: The power of the MDORs.
    """
    mdor = np.asarray(mdor, dtype=float)
    quantiles = (
        tuple(float(np.quantile(mdor, q, method="lower")) for q in _QUANTILES)
        if mdor.size
        else (np.inf, np.inf, np.inf)
    )
    bands = []
    for i, (low, high) in enumerate(itertools.pairwise(BANDS)):
        last = i == len(BANDS) - 2
        inside = (prevalence >= low) & ((prevalence <= high) if last else (prevalence < high))
        values = mdor[inside]
        if values.size:
            bands.append(
                PowerBand(
                    low=low,
                    high=high,
                    features=int(values.size),
                    median=float(np.quantile(values, 0.5, method="lower")),
                    powered=int((values <= effect).sum()),
                )
            )
    return PowerSummary(
        power=power,
        effect=effect,
        per_test_alpha=family.per_test_alpha,
        tested=int(mdor.size),
        quantiles=quantiles,  # type: ignore[arg-type]
        powered=int((mdor <= effect).sum()),
        bands=tuple(bands),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectiveUnits:
    """How many independent units the tests rest on.

    Attributes:
        rows: Labelled rows (conversions).
        clusters: Source models.
        mismatching_clusters: Source models with a mismatching row.
        ok_clusters: Source models without one.
        icc: Intraclass correlation of the mismatch label within source models (ANOVA).
        design_effect: 1 + (m - 1) icc, m the size-weighted mean rows per source model.
        effective_rows: rows / design_effect.
        pairs: Source models with exactly two rows (twin pairs).
        concordant_mismatch: Pairs whose two rows mismatch.
        concordant_ok: Pairs whose two rows are ok.
        discordant: Pairs with one mismatching and one ok row.
    """

    rows: int
    clusters: int
    mismatching_clusters: int
    ok_clusters: int
    icc: float
    design_effect: float
    effective_rows: float
    pairs: int
    concordant_mismatch: int
    concordant_ok: int
    discordant: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {name: getattr(self, name) for name in self.__slots__}


def intraclass_correlation(y: np.ndarray, row_cluster: np.ndarray) -> float:
    """One-way ANOVA estimate of the intraclass correlation of y within clusters, in [0, 1].

    rho = (MSB - MSW) / (MSB + (m0 - 1) MSW), m0 = (N - sum m_c^2 / N) / (C - 1) (Donner 1986,
    International Statistical Review 54:67); 0 when no cluster has two rows.

    Examples:
        >>> y, clusters = np.array([1, 1, 0, 0, 1, 0]), np.array([0, 0, 1, 1, 2, 2])
        >>> round(intraclass_correlation(y, clusters), 12)  # MSB 0.5, MSW 1/6, m0 2
        0.5
    """
    y = np.asarray(y, dtype=float)
    row_cluster = np.asarray(row_cluster, dtype=np.int64)
    n, c = len(y), int(row_cluster.max(initial=-1)) + 1
    if n == c or c < 2:
        return 0.0
    sizes = np.bincount(row_cluster, minlength=c).astype(float)
    means = np.bincount(row_cluster, weights=y, minlength=c) / np.maximum(sizes, 1)
    between = float((sizes * (means - y.mean()) ** 2).sum()) / (c - 1)
    within = float(((y - means[row_cluster]) ** 2).sum()) / (n - c)
    m0 = (n - float((sizes**2).sum()) / n) / (c - 1)
    denominator = between + (m0 - 1) * within
    if denominator <= 0:
        return 0.0
    return float(np.clip((between - within) / denominator, 0.0, 1.0))


def effective_units(y: np.ndarray, row_cluster: np.ndarray) -> EffectiveUnits:
    """Count the source models, the design effect of the label and the twin pairs."""
    y = np.asarray(y, dtype=bool)
    row_cluster = np.asarray(row_cluster, dtype=np.int64)
    c = int(row_cluster.max(initial=-1)) + 1
    sizes = np.bincount(row_cluster, minlength=c)
    hits = np.bincount(row_cluster, weights=y, minlength=c)
    icc = intraclass_correlation(y, row_cluster)
    weighted_size = float((sizes**2).sum() / max(len(y), 1))
    design_effect = 1.0 + (weighted_size - 1.0) * icc
    pair = sizes == 2
    return EffectiveUnits(
        rows=len(y),
        clusters=c,
        mismatching_clusters=int((hits > 0).sum()),
        ok_clusters=int((hits == 0).sum()),
        icc=icc,
        design_effect=design_effect,
        effective_rows=len(y) / design_effect,
        pairs=int(pair.sum()),
        concordant_mismatch=int((pair & (hits == 2)).sum()),
        concordant_ok=int((pair & (hits == 0)).sum()),
        discordant=int((pair & (hits == 1)).sum()),
    )


def answer_for(significant: int, family_size: int, power: PowerSummary) -> str:
    """Yes / no / undetermined for a family of tests.

    yes: something is significant; no: nothing is, and the median feature's MDOR is at most the
    effect that matters; undetermined: nothing is, and the family could not have seen such an
    effect (or no feature can reach significance at all). See `hypotheses.verdicts`.

    Examples:
        >>> weak = PowerSummary(power=0.8, effect=3.0, per_test_alpha=1e-4, tested=10,
        ...                     quantiles=(2.0, 5.0, 9.0), powered=2, bands=())
        >>> answer_for(1, 3, weak), answer_for(0, 3, weak), answer_for(0, 0, weak)
        ('yes', 'undetermined', 'undetermined')
    """
    if significant > 0:
        return "yes"
    if family_size == 0:
        return "undetermined"
    return "no" if power.sufficient else "undetermined"


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
