"""Per-feature association tests: unadjusted (Fisher) and size-adjusted, with the family's power.

Shared by the operators hypothesis (features = operators) and the sequences hypothesis (features =
n-grams): one call tests every column of a presence matrix as one family.

The size-adjusted test of a feature, null hypothesis "given model size and converter, containing
the feature does not change the chance of a mismatch", one-sided alternative "it raises it":

* features whose pooled 2 x 2 table of source models has every expected cell >= 5 get Rao's score
  test in the spline logistic regression (`hypotheses.stats`), unit = conversion, variance robust
  to clustering by source model;
* the others (sparse features) get the exact stratified test on source models
  (`hypotheses.clusters`), which is neither liberal (the score test's normal tail is, on sparse
  tables) nor untestable (the robust score z of a feature in c source models is bounded by about
  sqrt(c));
* Tarone's rule (`hypotheses.multiplicity`) leaves out the features whose minimum attainable exact
  p-value cannot reach alpha / K, then Benjamini-Hochberg runs on the rest;
* every feature gets its minimum detectable odds ratio at alpha / K (`hypotheses.power`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hypotheses.clusters import (
    MIN_EXPECTED,
    ClusterDesign,
    StratifiedTests,
    cluster_design,
    stratified_tests,
)
from hypotheses.features import PresenceMatrix, StructureTable
from hypotheses.multiplicity import TaroneFamily, tarone_bh, tarone_family
from hypotheses.power import (
    EFFECT_THAT_MATTERS,
    POWER,
    PowerSummary,
    asymptotic_detectable_odds_ratio,
    power_summary,
)
from hypotheses.stats import (
    SizeModel,
    benjamini_hochberg,
    contingency_counts,
    fisher_greater,
    fit_size_model,
    mantel_haenszel_odds_ratios,
    odds_ratios,
    score_statistics,
    score_z,
    size_covariates,
    size_strata,
)
from opseq.ngrams import Ngram

__all__ = [
    "AssociationTest",
    "FamilyTests",
    "association_tests",
    "design_of",
    "fit_adjustment",
    "json_float",
    "significant",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class AssociationTest:
    """The tests of one feature: does containing it raise the chance of a mismatch?

    Attributes:
        feature: The n-gram (an operator is a 1-gram).
        mismatch_with: Mismatching models containing it.
        ok_with: Ok models containing it.
        odds_ratio: Sample odds ratio (Haldane-Anscombe corrected when a cell is zero).
        ci_low: Lower end of its 95% CI (Woolf).
        ci_high: Upper end.
        p_value: One-sided Fisher exact test.
        q_value: Benjamini-Hochberg over the family tested together.
        odds_ratio_adjusted: Mantel-Haenszel odds ratio over size x converter strata.
        ci_low_adjusted: Lower end of its 95% CI (Robins-Breslow-Greenland).
        ci_high_adjusted: Upper end.
        p_value_adjusted: One-sided size-adjusted p-value (score test, or exact; see
            ``method_adjusted``).
        q_value_adjusted: Benjamini-Hochberg of the adjusted p-values within the Tarone family;
            1 for features outside it.
        method_adjusted: ``score`` (asymptotic, conversions) or ``exact`` (source models).
        carrier_clusters: Source models with a conversion containing the feature.
        mismatching_carrier_clusters: Those of them with a mismatching conversion.
        expected_min_cell: Smallest expected cell of the source-model table (informative strata).
        p_min_adjusted: Smallest p-value the exact test could give with these margins.
        tarone_testable: In the Tarone family (``p_min_adjusted`` <= alpha / K).
        min_detectable_or: Odds ratio detected with 80% power at alpha / K (inf: none).
    """

    feature: Ngram
    mismatch_with: int
    ok_with: int
    odds_ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    q_value: float
    odds_ratio_adjusted: float
    ci_low_adjusted: float
    ci_high_adjusted: float
    p_value_adjusted: float
    q_value_adjusted: float
    method_adjusted: str
    carrier_clusters: int
    mismatching_carrier_clusters: int
    expected_min_cell: float
    p_min_adjusted: float
    tarone_testable: bool
    min_detectable_or: float

    def rank(self) -> tuple:
        """Sort key: most significant after adjustment first, then unadjusted, then by name."""
        return (self.q_value_adjusted, self.p_value_adjusted, self.q_value, self.feature)

    def to_dict(self, key: str = "ngram") -> dict[str, Any]:
        """Return a JSON-safe dict; `key` is ``"op"`` (a label) or ``"ngram"`` (a label list)."""
        name: str | list[str] = self.feature[0] if key == "op" else list(self.feature)
        record: dict[str, Any] = {key: name}
        for attribute in self.__slots__[1:]:
            record[attribute] = json_float(getattr(self, attribute))
        return record


_ARRAYS = AssociationTest.__slots__[1:]


@dataclass(frozen=True, eq=False, kw_only=True)
class FamilyTests:
    """Every test of one family, column by column, with the family's multiplicity and power.

    Attributes:
        names: The feature of each column.
        columns: One array per `AssociationTest` attribute (after ``feature``), column order.
        family: Tarone's family of the adjusted tests.
        power: Minimum detectable odds ratios of the adjusted tests, summarised.
        alpha: The false discovery rate.
        exact: The stratified exact tests (with the null distributions of the sparse features).
    """

    names: tuple[Ngram, ...]
    columns: dict[str, np.ndarray]
    family: TaroneFamily
    power: PowerSummary
    alpha: float
    exact: StratifiedTests | None = None

    def __len__(self) -> int:
        return len(self.names)

    @functools.cached_property
    def order(self) -> np.ndarray:
        """Columns in `AssociationTest.rank` order (columns are sorted by name already)."""
        c = self.columns
        return np.lexsort(
            (np.arange(len(self.names)), c["q_value"], c["p_value_adjusted"], c["q_value_adjusted"])
        )

    @functools.cached_property
    def ranked(self) -> tuple[AssociationTest, ...]:
        """One record per column, most significant (adjusted) first."""
        order = self.order
        names = [self.names[j] for j in order.tolist()]
        values = [self.columns[name][order].tolist() for name in _ARRAYS]
        fields = AssociationTest.__slots__
        return tuple(
            AssociationTest(**dict(zip(fields, row, strict=True)))
            for row in zip(names, *values, strict=True)
        )

    def record(self, j: int) -> AssociationTest:
        """The record of column `j`."""
        values = {name: _python(self.columns[name][j]) for name in _ARRAYS}
        return AssociationTest(feature=self.names[j], **values)

    def significant_columns(self, *, adjusted: bool) -> np.ndarray:
        """Columns with q <= alpha, most significant first."""
        key = "q_value_adjusted" if adjusted else "q_value"
        return np.asarray([j for j in self.order if self.columns[key][j] <= self.alpha], dtype=int)

    def count(self, *, adjusted: bool) -> int:
        """How many columns have q <= alpha."""
        key = "q_value_adjusted" if adjusted else "q_value"
        return int((self.columns[key] <= self.alpha).sum())


def association_tests(
    presence: PresenceMatrix,
    mismatch: np.ndarray,
    size_model: SizeModel,
    *,
    alpha: float = 0.05,
    effect: float = EFFECT_THAT_MATTERS,
    power: float = POWER,
    effect_sizes: bool = True,
    min_expected: float = MIN_EXPECTED,
) -> FamilyTests:
    """Test every column of `presence` as one family (its q-values are over these columns).

    Args:
        presence: Models x features.
        mismatch: Label of each model (True = mismatch).
        size_model: The null model for the adjusted test, fitted on the same models (with
            their clusters, strata and source-model design). The Fisher test assumes
            independent models.
        alpha: False discovery rate (Tarone's rule depends on it).
        effect: The odds ratio that matters, for the power summary.
        power: The power of the minimum detectable odds ratios.
        effect_sizes: Compute the odds ratios and their CIs (NaN when False, for the sweep).
        min_expected: Smallest expected cell for the asymptotic test.
    """
    matrix = presence.matrix
    counts = contingency_counts(matrix, mismatch)
    columns: dict[str, np.ndarray] = {"mismatch_with": counts.a, "ok_with": counts.b}
    columns["p_value"] = fisher_greater(counts)
    columns["q_value"] = benjamini_hochberg(columns["p_value"])
    nan = np.full(len(presence.names), np.nan)
    if effect_sizes:
        columns["odds_ratio"], columns["ci_low"], columns["ci_high"] = odds_ratios(counts)
        adjusted = mantel_haenszel_odds_ratios(matrix, mismatch, size_model.strata)
        (
            columns["odds_ratio_adjusted"],
            columns["ci_low_adjusted"],
            columns["ci_high_adjusted"],
        ) = adjusted
    else:
        for name in ("odds_ratio", "ci_low", "ci_high"):
            columns[name] = columns[f"{name}_adjusted"] = nan
    design = design_of(size_model, matrix.shape[0])
    exact = stratified_tests(
        design.strata,
        design.outcome(mismatch),
        _cluster_presence(presence, design),
        min_expected=min_expected,
    )
    score, information, variance = score_statistics(size_model, matrix)
    _, p_score = score_z(score, information, variance)
    p_adjusted = np.where(exact.exact, exact.p_values, p_score)
    min_p = np.exp(exact.log_min_p)
    family = tarone_family(min_p, alpha)
    mdor = asymptotic_detectable_odds_ratio(information, variance, family.per_test_alpha, power)
    mdor[exact.exact] = exact.null.min_detectable_odds_ratio(family.per_test_alpha, power)
    mdor[~family.testable] = np.inf
    columns["p_value_adjusted"] = p_adjusted
    columns["q_value_adjusted"] = tarone_bh(p_adjusted, family)
    columns["method_adjusted"] = np.where(exact.exact, "exact", "score").astype(object)
    columns["carrier_clusters"] = exact.carriers
    columns["mismatching_carrier_clusters"] = exact.mismatching
    columns["expected_min_cell"] = exact.expected_min
    columns["p_min_adjusted"] = min_p
    columns["tarone_testable"] = family.testable
    columns["min_detectable_or"] = mdor
    prevalence = exact.carriers / max(design.clusters, 1)
    return FamilyTests(
        names=presence.names,
        columns=columns,
        family=family,
        power=power_summary(mdor, prevalence, family, effect=effect, power=power),
        alpha=alpha,
        exact=exact,
    )


def significant(
    tests: tuple[AssociationTest, ...], alpha: float, *, adjusted: bool
) -> tuple[AssociationTest, ...]:
    """The tests with q <= alpha, on the size-adjusted q-values or the unadjusted ones."""
    if adjusted:
        return tuple(t for t in tests if t.q_value_adjusted <= alpha)
    return tuple(t for t in tests if t.q_value <= alpha)


def fit_adjustment(table: StructureTable, mismatch: np.ndarray) -> SizeModel:
    """The null model of the adjusted tests for `table` labelled by `mismatch`.

    Covariates: a spline of log node count and the converter; clusters: the source models (only
    when some source model has several rows); strata: node-count quintile x converter; design:
    source models stratified by composition x size (`hypotheses.clusters`). These do not depend on
    the labels, so they are built once per table and reused by every rule of the tolerance sweep;
    only the fit is redone.
    """
    covariates, names, clusters, strata, design = _size_design(table)
    return fit_size_model(
        mismatch, covariates, names, clusters=clusters, strata=strata, design=design
    )


def design_of(size_model: SizeModel, rows: int) -> ClusterDesign:
    """The model's source-model design, or one source model per row in its row strata."""
    if size_model.design is not None:
        return size_model.design
    cache = size_model.__dict__ if hasattr(size_model, "__dict__") else {}
    if "_default_design" not in cache:
        index = np.arange(rows)
        membership = sp.csr_array(
            (np.ones(rows, dtype=np.int32), (index, index)), shape=(rows,) * 2
        )
        design = ClusterDesign(
            row_cluster=index,
            strata=np.unique(size_model.strata, return_inverse=True)[1],
            membership=membership,
            sizes=np.ones(rows, dtype=np.int64),
        )
        cache["_default_design"] = design
    return cache["_default_design"]


def _cluster_presence(presence: PresenceMatrix, design: ClusterDesign) -> sp.csr_array:
    """Clusters x features, cached on the presence matrix for its design (the sweep reuses it)."""
    cache = presence.__dict__.setdefault("_cluster_presence", {})
    entry = cache.get(id(design))
    if entry is None or entry[0] is not design:
        entry = (design, design.presence(presence.matrix))
        cache[id(design)] = entry
    return entry[1]


def _size_design(table: StructureTable) -> tuple:
    cache = table.__dict__
    if "_size_design" not in cache:
        covariates, names = size_covariates(table.nodes, table.converters)
        clusters = table.clusters
        cache["_size_design"] = (
            covariates,
            names,
            clusters if np.bincount(clusters).max(initial=0) > 1 else None,
            size_strata(table.nodes, table.converters),
            cluster_design(table.nodes, table.converters, clusters),
        )
    return cache["_size_design"]


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def json_float(value: Any) -> Any:
    """A float JSON can carry: infinities and NaN become None, other values pass through.

    Examples:
        >>> json_float(float("inf")), json_float(2.5), json_float(3)
        (None, 2.5, 3)
    """
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
