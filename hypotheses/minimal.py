"""Minimal n-grams: does a significant n-gram add anything beyond its significant parts?

Every model containing A > B > C contains A > B, so when A > B goes with mismatch, A > B > C does
too, whether or not the longer sequence matters. The study reduced such sets to the smallest
shared subsequences; dropping the longer n-gram whenever a part is significant would also drop
the case where the longer sequence is the real cause and its part is significant only through it.
So each significant n-gram with significant parts is tested *given* those parts:

* null hypothesis: given size, converter and the presence of its significant proper sub-n-grams
  and significant constituent operators, containing the n-gram does not change the chance of a
  mismatch; alternative (one-sided): it raises it;
* a feature tested by the score test gets the score test of adding it to the logistic regression
  that already contains its parts (unit = conversion, cluster-robust variance);
* a sparse feature tested exactly gets the exact stratified test on source models with the strata
  refined by which of its parts each source model carries (a conditional exact test given the
  parts, Mehta, Patel & Gray 1985);
* Benjamini-Hochberg over these conditional tests; the n-gram is minimal when q <= alpha, else it
  is explained by its parts (reported with the part that is most significant itself).

An n-gram contained in exactly the models of one of its sub-n-grams (an operator included) has
exactly that sub-n-gram's tests and is explained by it without a test.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hypotheses.association import FamilyTests, design_of
from hypotheses.clusters import stratified_tests
from hypotheses.features import PresenceMatrix
from hypotheses.stats import SizeModel, benjamini_hochberg, extend_size_model, score_tests
from opseq.ngrams import Ngram

__all__ = ["ConditionalTest", "conditional_tests", "find_explaining_subgram", "parts"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ConditionalTest:
    """The test of one significant n-gram given its significant parts.

    Attributes:
        ngram: The n-gram.
        given: Its significant sub-n-grams and constituent operators (empty: nothing to test).
        identical: A sub-n-gram contained in exactly the same models (then no test is run).
        method: ``score`` or ``exact`` (as the n-gram's own adjusted test), or ``none``.
        p_value: One-sided p-value given the parts (NaN when not tested).
        q_value: Benjamini-Hochberg over the conditional tests (NaN when not tested).
        minimal: The n-gram adds to its parts (or has none), so it is in the minimal set.
        by: The part that explains it when it is not minimal.
    """

    ngram: Ngram
    given: tuple[Ngram, ...]
    identical: Ngram | None
    method: str
    p_value: float
    q_value: float
    minimal: bool
    by: Ngram | None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "ngram": list(self.ngram),
            "given": [list(g) for g in self.given],
            "identical": None if self.identical is None else list(self.identical),
            "method": self.method,
            "p_value": None if np.isnan(self.p_value) else self.p_value,
            "q_value": None if np.isnan(self.q_value) else self.q_value,
            "minimal": self.minimal,
            "by": None if self.by is None else list(self.by),
        }


def parts(
    ngram: Ngram, significant: Collection[Ngram], operators: Collection[str], min_length: int
) -> tuple[Ngram, ...]:
    """The significant proper contiguous sub-n-grams (length >= `min_length`) and operators.

    Examples:
        >>> parts(("A", "B", "C"), {("A", "B"), ("B", "C", "D")}, {"C"}, 2)
        (('C',), ('A', 'B'))
    """
    found = [(op,) for op in dict.fromkeys(ngram) if op in operators]
    for length in range(min_length, len(ngram)):
        for start in range(len(ngram) - length + 1):
            sub = ngram[start : start + length]
            if sub in significant and sub not in found:
                found.append(sub)
    return tuple(found)


def conditional_tests(
    family: FamilyTests,
    presence: PresenceMatrix,
    tested: PresenceMatrix,
    mismatch: np.ndarray,
    size_model: SizeModel,
    *,
    min_length: int,
    operators: Collection[str] = (),
    alpha: float = 0.05,
) -> tuple[ConditionalTest, ...]:
    """Test every significant n-gram of `family` given its significant parts.

    Args:
        family: The n-gram tests (adjusted q-values decide what is significant).
        presence: Every mined n-gram (the parts are looked up here).
        tested: The tested columns, in `family`'s order.
        mismatch: Label of each model.
        size_model: The null model of the unconditional tests.
        min_length: Shortest sub-n-gram that counts as a part.
        operators: Operators significant in the operators hypothesis.
        alpha: False discovery rate of the conditional tests.

    Returns:
        One record per significant n-gram, most significant first.
    """
    hits = family.significant_columns(adjusted=True)
    names = [family.names[j] for j in hits]
    significant = set(names)
    keys = _ColumnKeys(presence)
    pending: list[tuple[int, Ngram, tuple[Ngram, ...], Ngram | None]] = []
    for j, ngram in zip(hits.tolist(), names, strict=True):
        identical = find_explaining_subgram(ngram, keys)
        given = () if identical is not None else parts(ngram, significant, operators, min_length)
        pending.append((j, ngram, given, identical))
    p = np.full(len(pending), np.nan)
    for i, (j, _, given, identical) in enumerate(pending):
        if given and identical is None:
            p[i] = _conditional_p(j, given, family, presence, tested, mismatch, size_model)
    q = np.full(len(pending), np.nan)
    run = ~np.isnan(p)
    q[run] = benjamini_hochberg(p[run])
    adjusted_p = dict(zip(family.names, family.columns["p_value_adjusted"].tolist(), strict=True))
    records = []
    for i, (j, ngram, given, identical) in enumerate(pending):
        minimal = bool(identical is None and (not given or q[i] <= alpha))
        by = identical
        if not minimal and by is None:
            by = min(given, key=lambda g: (adjusted_p.get(g, 1.0), -len(g), g))
        records.append(
            ConditionalTest(
                ngram=ngram,
                given=given,
                identical=identical,
                method=str(family.columns["method_adjusted"][j]) if run[i] else "none",
                p_value=float(p[i]),
                q_value=float(q[i]),
                minimal=minimal,
                by=by,
            )
        )
    return tuple(records)


def _conditional_p(
    j: int,
    given: tuple[Ngram, ...],
    family: FamilyTests,
    presence: PresenceMatrix,
    tested: PresenceMatrix,
    mismatch: np.ndarray,
    size_model: SizeModel,
) -> float:
    columns = [presence.column_of[g] for g in given if g in presence.column_of]
    parts_matrix = presence.csc[:, columns].tocsr() if columns else None
    target = tested.matrix[:, [j]].tocsr()
    if parts_matrix is None:
        return float(family.columns["p_value_adjusted"][j])
    if family.columns["method_adjusted"][j] == "exact":
        design = design_of(size_model, target.shape[0])
        carried = design.presence(parts_matrix).toarray().astype(np.int64)
        pattern = carried @ (1 << np.arange(carried.shape[1], dtype=np.int64))
        strata = np.unique(
            design.strata.astype(np.int64) * (1 << carried.shape[1]) + pattern,
            return_inverse=True,
        )[1]
        result = stratified_tests(
            strata, design.outcome(mismatch), design.presence(target), exact=np.array([True])
        )
        return float(result.p_values[0])
    model = extend_size_model(
        size_model, mismatch, parts_matrix.toarray(), [" > ".join(g) for g in given]
    )
    return float(score_tests(model, sp.csr_array(target))[1][0])


def find_explaining_subgram(ngram: Ngram, column_keys: _ColumnKeys) -> Ngram | None:
    """The shortest proper sub-n-gram contained in exactly the same models as `ngram`, if any.

    Checking prefix and suffix suffices: the set of models containing an n-gram can only grow as
    it is shortened, so if a shorter sub-n-gram has the same set, so does every one in between.
    """
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
