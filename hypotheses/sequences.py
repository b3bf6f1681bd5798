"""The sequences hypothesis: are particular operator n-grams associated with mismatch?

Every n-gram of the requested lengths contained in at least ``min_support`` models (and not in all
of them) is tested twice: unadjusted (one-sided Fisher) and adjusted for model size and converter
(`hypotheses.association`: the score test for common n-grams, the exact stratified test on source
models for sparse ones, Tarone's rule, Benjamini-Hochberg). Verdicts use the adjusted q-values and
the family's power (`hypotheses.power`).

Null hypothesis of each n-gram: given size and converter, containing it does not change the
chance of a mismatch; alternative (one-sided): it raises it. Units: conversions (score test) or
source models (exact test).

The minimal significant n-grams are those that add to their significant parts
(`hypotheses.minimal`): a longer n-gram is tested given its significant sub-n-grams and
operators instead of being dropped whenever one of them is significant.
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypotheses.association import AssociationTest, FamilyTests, association_tests
from hypotheses.features import PresenceMatrix
from hypotheses.minimal import ConditionalTest, conditional_tests, find_explaining_subgram
from hypotheses.power import EFFECT_THAT_MATTERS
from hypotheses.stats import SizeModel
from opseq.ngrams import Ngram

__all__ = ["SequencesResult", "find_explaining_subgram", "sequences_hypothesis"]


@dataclass(frozen=True, eq=False, kw_only=True)
class SequencesResult:
    """Association tests of n-grams and the minimal significant ones.

    Attributes:
        n_range: Inclusive range of n-gram lengths tested.
        min_support: Fewest models an n-gram must occur in to be tested.
        candidates: Distinct n-grams of those lengths in the corpus.
        family: The tests, column by column, with the family's multiplicity and power (None when
            nothing could be tested).
        conditional: The test of each significant n-gram given its significant parts.
        alpha: False discovery rate of the verdicts.
        adjustment: How the adjusted test controls for size.
        skipped: Why nothing was tested (one class only), else empty.
    """

    n_range: tuple[int, int]
    min_support: int
    candidates: int
    family: FamilyTests | None
    conditional: tuple[ConditionalTest, ...] = ()
    alpha: float = 0.05
    adjustment: str = ""
    skipped: str = ""

    @property
    def tests(self) -> tuple[AssociationTest, ...]:
        """The tests, most significant (adjusted) first."""
        return () if self.family is None else self.family.ranked

    @property
    def tested(self) -> int:
        """How many n-grams were tested."""
        return 0 if self.family is None else len(self.family)

    @property
    def significant(self) -> tuple[AssociationTest, ...]:
        """n-grams with unadjusted q <= alpha."""
        return tuple(t for t in self.tests if t.q_value <= self.alpha)

    @property
    def significant_adjusted(self) -> tuple[AssociationTest, ...]:
        """n-grams with size-adjusted q <= alpha."""
        return tuple(t for t in self.tests if t.q_value_adjusted <= self.alpha)

    def count(self, *, adjusted: bool) -> int:
        """How many n-grams are significant (without building the records)."""
        return 0 if self.family is None else self.family.count(adjusted=adjusted)

    @functools.cached_property
    def minimal(self) -> tuple[AssociationTest, ...]:
        """Significant (adjusted) n-grams that add to their parts, most significant first."""
        keep = {c.ngram for c in self.conditional if c.minimal}
        return tuple(t for t in self.significant_adjusted if t.feature in keep)

    @property
    def minimal_count(self) -> int:
        """How many n-grams are minimal (without building the records)."""
        return sum(c.minimal for c in self.conditional)

    @property
    def explained_by(self) -> dict[Ngram, Ngram]:
        """For every other significant n-gram, the part that explains it."""
        return {c.ngram: c.by for c in self.conditional if not c.minimal and c.by is not None}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (DESIGN.md: hypothesis report, ``sequences``)."""
        family = self.family
        return {
            "n": list(self.n_range),
            "min_support": self.min_support,
            "candidates": self.candidates,
            "tested": self.tested,
            "adjustment": self.adjustment,
            "skipped": self.skipped or None,
            "significant": self.count(adjusted=False),
            "significant_adjusted": self.count(adjusted=True),
            "tarone": None if family is None else family.family.to_dict(),
            "power": None if family is None else family.power.to_dict(),
            "methods": _methods(family),
            "minimal": [t.to_dict("ngram") for t in self.minimal],
            "explained_by": [
                {"ngram": list(ngram), "by": list(by)}
                for ngram, by in sorted(self.explained_by.items())
            ],
            "conditional": [c.to_dict() for c in self.conditional],
            "tests": [t.to_dict("ngram") for t in self.tests],
        }


def sequences_hypothesis(
    presence: PresenceMatrix,
    mismatch: np.ndarray,
    size_model: SizeModel,
    *,
    n_range: tuple[int, int] = (2, 4),
    min_support: int = 5,
    alpha: float = 0.05,
    adjustment: str = "",
    operators: Collection[str] = (),
    effect: float = EFFECT_THAT_MATTERS,
    effect_sizes: bool = True,
) -> SequencesResult:
    """Test every frequent n-gram and find the minimal significant ones.

    Args:
        presence: Presence of every mined n-gram (all lengths, operators included).
        mismatch: Label of each model.
        size_model: Null model for the adjusted test.
        n_range: Lengths to test.
        min_support: Fewest models an n-gram must occur in.
        alpha: False discovery rate.
        adjustment: Description of the size adjustment, for the report.
        operators: Operators significant in the operators hypothesis (parts of the n-grams
            that contain them, for the minimal set).
        effect: The odds ratio that matters (power summary).
        effect_sizes: Compute odds ratios and CIs (the sweep does without).
    """
    lengths = presence.lengths
    in_range = (lengths >= n_range[0]) & (lengths <= n_range[1])
    tested = presence.testable(n_range, min_support)
    family = association_tests(
        tested, mismatch, size_model, alpha=alpha, effect=effect, effect_sizes=effect_sizes
    )
    conditional = conditional_tests(
        family,
        presence,
        tested,
        mismatch,
        size_model,
        min_length=n_range[0],
        operators=operators,
        alpha=alpha,
    )
    return SequencesResult(
        n_range=n_range,
        min_support=min_support,
        candidates=int(in_range.sum()),
        family=family,
        conditional=conditional,
        alpha=alpha,
        adjustment=adjustment,
    )


def _methods(family: FamilyTests | None) -> dict[str, int]:
    if family is None:
        return {"score": 0, "exact": 0}
    method = family.columns["method_adjusted"]
    return {"score": int((method == "score").sum()), "exact": int((method == "exact").sum())}
