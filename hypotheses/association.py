"""Per-feature association tests: unadjusted (Fisher) and size-adjusted (score test), with BH.

Shared by the operators hypothesis (features = operators) and the sequences hypothesis (features =
n-grams): one call tests every column of a presence matrix and returns one record per column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hypotheses.features import PresenceMatrix, StructureTable
from hypotheses.stats import (
    SizeModel,
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
from opseq.ngrams import Ngram

__all__ = ["AssociationTest", "association_tests", "fit_adjustment", "json_float", "significant"]


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
        p_value_adjusted: One-sided score test given the size covariates.
        q_value_adjusted: Benjamini-Hochberg of the adjusted p-values.
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


def association_tests(
    presence: PresenceMatrix, mismatch: np.ndarray, size_model: SizeModel
) -> tuple[AssociationTest, ...]:
    """Test every column of `presence` as one family (its q-values are over these columns).

    Args:
        presence: Models x features.
        mismatch: Label of each model (True = mismatch).
        size_model: The null model for the adjusted test, fitted on the same models (with
            their clusters and strata). The Fisher test assumes independent models.

    Returns:
        One record per column, in column order.
    """
    counts = contingency_counts(presence.matrix, mismatch)
    p = fisher_greater(counts)
    q = benjamini_hochberg(p)
    ratio, low, high = odds_ratios(counts)
    _, p_adj = score_tests(size_model, presence.matrix)
    ratio_adj, low_adj, high_adj = mantel_haenszel_odds_ratios(
        presence.matrix, mismatch, size_model.strata
    )
    q_adj = benjamini_hochberg(p_adj)
    columns = zip(
        presence.names,
        counts.a.tolist(),
        counts.b.tolist(),
        *(v.tolist() for v in (ratio, low, high, p, q, ratio_adj, low_adj, high_adj, p_adj, q_adj)),
        strict=True,
    )
    return tuple(
        AssociationTest(**dict(zip(AssociationTest.__slots__, c, strict=True))) for c in columns
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
    when some source model has several rows); strata: node-count quintile x converter. These do
    not depend on the labels, so they are built once per table and reused by every rule of the
    tolerance sweep; only the fit is redone.
    """
    covariates, names, clusters, strata = _size_design(table)
    return fit_size_model(mismatch, covariates, names, clusters=clusters, strata=strata)


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
        )
    return cache["_size_design"]


def json_float(value: Any) -> Any:
    """A float JSON can carry: infinities and NaN become None, other values pass through.

    Examples:
        >>> json_float(float("inf")), json_float(2.5), json_float(3)
        (None, 2.5, 3)
    """
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
