"""The sequences hypothesis: are particular operator n-grams associated with mismatch?

Every n-gram of the requested lengths contained in at least ``min_support`` models (and not in all
of them) is tested twice: unadjusted (one-sided Fisher) and adjusted for model size (score test
given log node count and converter; see `hypotheses.stats`). Verdicts use the adjusted q-values.

Redundancy, as the study reduced to the smallest shared subsequences: a significant n-gram is
explained, and left out of the minimal set, when

* one of its proper contiguous sub-n-grams (of a tested length) is itself significant: every
  model containing the longer one contains the shorter one, so the shorter one already names
  the models; or
* a sub-n-gram, an operator included, occurs in exactly the same models: then it has exactly the
  same tests. Checking prefix and suffix suffices here: the set of models containing an n-gram
  can only grow as it is shortened, so if a shorter sub-n-gram has the same set, so does every
  sub-n-gram in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hypotheses.association import AssociationTest, association_tests, significant
from hypotheses.features import PresenceMatrix
from hypotheses.stats import SizeModel
from opseq.ngrams import Ngram

__all__ = ["SequencesResult", "find_explaining_subgram", "sequences_hypothesis"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SequencesResult:
    """Association tests of n-grams and the minimal significant ones.

    Attributes:
        n_range: Inclusive range of n-gram lengths tested.
        min_support: Fewest models an n-gram must occur in to be tested.
        candidates: Distinct n-grams of those lengths in the corpus.
        tests: The tests, most significant (adjusted) first.
        minimal: Significant (adjusted) n-grams that no sub-n-gram explains, most significant first.
        explained_by: For every other significant n-gram, the sub-n-gram that explains it.
        alpha: False discovery rate of the verdicts.
        adjustment: How the adjusted test controls for size.
    """

    n_range: tuple[int, int]
    min_support: int
    candidates: int
    tests: tuple[AssociationTest, ...]
    minimal: tuple[AssociationTest, ...]
    explained_by: dict[Ngram, Ngram]
    alpha: float
    adjustment: str

    @property
    def significant(self) -> tuple[AssociationTest, ...]:
        """n-grams with unadjusted q <= alpha."""
        return significant(self.tests, self.alpha, adjusted=False)

    @property
    def significant_adjusted(self) -> tuple[AssociationTest, ...]:
        """n-grams with size-adjusted q <= alpha."""
        return significant(self.tests, self.alpha, adjusted=True)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (DESIGN.md: hypothesis report, ``sequences``)."""
        return {
            "n": list(self.n_range),
            "min_support": self.min_support,
            "candidates": self.candidates,
            "tested": len(self.tests),
            "adjustment": self.adjustment,
            "significant": len(self.significant),
            "significant_adjusted": len(self.significant_adjusted),
            "minimal": [t.to_dict("ngram") for t in self.minimal],
            "explained_by": [
                {"ngram": list(ngram), "by": list(by)}
                for ngram, by in sorted(self.explained_by.items())
            ],
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
) -> SequencesResult:
    """Test every frequent n-gram and reduce the significant ones to the minimal set.

    Args:
        presence: Presence of every mined n-gram (all lengths, operators included).
        mismatch: Label of each model.
        size_model: Null model for the adjusted test.
        n_range: Lengths to test.
        min_support: Fewest models an n-gram must occur in.
        alpha: False discovery rate.
        adjustment: Description of the size adjustment, for the report.
    """
    lengths = presence.lengths
    in_range = (lengths >= n_range[0]) & (lengths <= n_range[1])
    tests = association_tests(presence.testable(n_range, min_support), mismatch, size_model)
    ranked = tuple(sorted(tests, key=AssociationTest.rank))
    hits = significant(ranked, alpha, adjusted=True)
    hit_names = {t.feature for t in hits}
    column_keys = _ColumnKeys(presence)
    explained_by = {}
    minimal = []
    for test in hits:
        explaining = _significant_subgram(test.feature, hit_names, n_range[0])
        if explaining is None:
            explaining = find_explaining_subgram(test.feature, column_keys)
        if explaining is None:
            minimal.append(test)
        else:
            explained_by[test.feature] = explaining
    return SequencesResult(
        n_range=n_range,
        min_support=min_support,
        candidates=int(in_range.sum()),
        tests=ranked,
        minimal=tuple(minimal),
        explained_by=explained_by,
        alpha=alpha,
        adjustment=adjustment,
    )


def find_explaining_subgram(ngram: Ngram, column_keys: _ColumnKeys) -> Ngram | None:
    """The shortest proper sub-n-gram contained in exactly the same models as `ngram`, if any."""
    key = column_keys.get(ngram)
    if key is None:
        return None
    best = None
    frontier = [ngram]
    while frontier:
        shorter = []
        for current in frontier:
            for sub in (current[:-1], current[1:]):
                if sub and column_keys.get(sub) == key:
                    shorter.append(sub)
        if shorter:
            best = min(shorter)
        frontier = list(dict.fromkeys(shorter))
    return best


def _significant_subgram(ngram: Ngram, significant: set[Ngram], min_length: int) -> Ngram | None:
    """The shortest (then first) proper contiguous sub-n-gram of `ngram` that is significant."""
    for length in range(min_length, len(ngram)):
        for start in range(len(ngram) - length + 1):
            if ngram[start : start + length] in significant:
                return ngram[start : start + length]
    return None


class _ColumnKeys:
    """The set of models of each n-gram as a hashable key, computed on first use."""

    def __init__(self, presence: PresenceMatrix) -> None:
        self._presence = presence
        self._keys: dict[Ngram, bytes | None] = {}

    def get(self, ngram: Ngram) -> bytes | None:
        if ngram not in self._keys:
            j = self._presence.column_of.get(ngram)
            if j is None:
                self._keys[ngram] = None
            else:
                csc = self._presence.csc
                start, stop = csc.indptr[j], csc.indptr[j + 1]
                self._keys[ngram] = np.sort(csc.indices[start:stop]).tobytes()
        return self._keys[ngram]
