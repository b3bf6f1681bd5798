r"""The study's Table 12: operator sequences shared by mismatching models, by set.

On n-grams of length >= 3 (the study's sequences were 3-5 operators after reduction):

* ① shared by mismatching models: contained in at least two mismatching models;
* ② mismatch ∩ ok: in at least one mismatching and at least one ok model;
* ③ mismatch ∩ reference: in at least one mismatching model and in the reference corpus;
* ① \ ② mismatch only: in ①, in no ok model;
* mismatching models that contain a ① \ ② sequence;
* ① \ ② sequences shared by more than 3 models.

"Reduced" counts keep only the smallest sequences of a set: a sequence is dropped when one of its
proper contiguous sub-sequences (of length >= 3) is in the same set, as the study reduced to the
smallest shared subsequences. The table is computed per converter, as in the study: pooling
converters would count one source model converted twice as two models sharing its sequences.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypotheses.features import PresenceMatrix
from opseq.ngrams import Ngram

__all__ = ["Table12Column", "reduce_to_smallest", "table12", "table12_column"]

MIN_LENGTH = 3
_SHARED_BY_MORE_THAN = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Table12Column:
    """One column group of Table 12 (one converter, or all models).

    Attributes:
        group: Converter name.
        mismatching_models: Mismatching models in the group.
        rows: Row name -> (unique, reduced) sequence counts; reduced is None where the study
            reports none.
        models_with_mismatch_only: Mismatching models containing a mismatch-only sequence.
        examples: The most shared mismatch-only sequences, reduced, with their model counts.
    """

    group: str
    mismatching_models: int
    rows: dict[str, tuple[int, int | None]]
    models_with_mismatch_only: int
    examples: tuple[tuple[Ngram, int], ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "group": self.group,
            "mismatching_models": self.mismatching_models,
            "rows": {
                name: {"unique": unique, "reduced": reduced}
                for name, (unique, reduced) in self.rows.items()
            },
            "models_with_mismatch_only": self.models_with_mismatch_only,
            "examples": [{"ngram": list(n), "models": k} for n, k in self.examples],
        }


def reduce_to_smallest(sequences: Iterable[Ngram], *, min_length: int = MIN_LENGTH) -> set[Ngram]:
    """Drop every sequence that has a proper contiguous sub-sequence in the set.

    Examples:
        >>> members = {("A", "B", "C"), ("A", "B", "C", "D"), ("X", "B", "C", "D")}
        >>> sorted(reduce_to_smallest(members))
        [('A', 'B', 'C'), ('X', 'B', 'C', 'D')]
    """
    members = set(sequences)
    return {s for s in members if not _has_member_subsequence(s, members, min_length)}


def table12_column(
    presence: PresenceMatrix,
    mismatch: np.ndarray,
    *,
    group: str = "all",
    reference: frozenset[Ngram] | None = None,
    examples: int = 10,
) -> Table12Column:
    """Compute one column group of Table 12 from the models of one group.

    Args:
        presence: n-gram presence of the group's models (all mined lengths).
        mismatch: Label of each of those models.
        group: Name of the group.
        reference: n-grams of the reference corpus (row ③ is left out when None).
        examples: How many of the most shared mismatch-only sequences to keep.
    """
    mismatch = np.asarray(mismatch, dtype=bool)
    long = presence.columns(presence.lengths >= MIN_LENGTH)
    in_mismatch = np.asarray(long.matrix.T @ mismatch.astype(np.int64)).ravel()
    in_ok = long.support - in_mismatch

    def names(mask: np.ndarray) -> set[Ngram]:
        return {long.names[j] for j in np.flatnonzero(mask)}

    shared = in_mismatch >= 2
    with_ok = (in_mismatch >= 1) & (in_ok >= 1)
    only = shared & (in_ok == 0)
    sets = {
        "mismatch ∩ mismatch": names(shared),
        "mismatch ∩ ok": names(with_ok),
    }
    if reference is not None:
        sets["mismatch ∩ reference"] = names(in_mismatch >= 1) & reference
    sets["mismatch only"] = names(only)
    rows: dict[str, tuple[int, int | None]] = {
        name: (len(members), len(reduce_to_smallest(members))) for name, members in sets.items()
    }
    rows[f"mismatch only, in > {_SHARED_BY_MORE_THAN} models"] = (
        int((only & (in_mismatch > _SHARED_BY_MORE_THAN)).sum()),
        None,
    )
    only_columns = long.matrix[:, np.flatnonzero(only)]
    carriers = np.asarray(only_columns.sum(axis=1)).ravel() > 0
    reduced_only = reduce_to_smallest(sets["mismatch only"])
    column_of = {name: j for j, name in enumerate(long.names)}
    ranked = sorted(reduced_only, key=lambda n: (-int(in_mismatch[column_of[n]]), n))
    return Table12Column(
        group=group,
        mismatching_models=int(mismatch.sum()),
        rows=rows,
        models_with_mismatch_only=int((carriers & mismatch).sum()),
        examples=tuple((n, int(in_mismatch[column_of[n]])) for n in ranked[:examples]),
    )


def table12(
    presence: PresenceMatrix,
    mismatch: np.ndarray,
    converters: tuple[str, ...],
    *,
    reference: frozenset[Ngram] | None = None,
) -> tuple[Table12Column, ...]:
    """Table 12, one column group per converter."""
    columns = []
    for converter in sorted(set(converters)):
        keep = np.array([c == converter for c in converters])
        columns.append(
            table12_column(
                presence.rows(keep), mismatch[keep], group=converter, reference=reference
            )
        )
    return tuple(columns)


def _has_member_subsequence(sequence: Ngram, members: set[Ngram], min_length: int) -> bool:
    for length in range(min_length, len(sequence)):
        for start in range(len(sequence) - length + 1):
            if sequence[start : start + length] in members:
                return True
    return False
