"""Coverage of one model against one or more references.

An item of the model is *covered* when at least one model of at least one reference contains
it. For every item kind: distinct coverage (share of the model's distinct items covered) and
the uncovered items with the nodes where they occur. For n-grams also the occurrence-weighted
coverage (share of the model's node paths realising a covered n-gram) and the *novel
combinations*: uncovered n-grams whose every (n-1)-sub-gram is covered (for bigrams: both ops),
i.e. known pieces put together in a way the reference never exercises. A ratio with a zero
denominator is None, never 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opseq.coverage.index import ReferenceIndex
from opseq.coverage.profile import FINER_KINDS, ITEM_KINDS, NGRAM_LENGTHS, ModelProfile
from opseq.ngrams import Ngram, to_decimal

__all__ = [
    "SCHEMA_VERSION",
    "ItemCoverage",
    "ModelCoverage",
    "NgramCoverage",
    "Ratio",
    "ReferenceUnion",
    "model_coverage",
]

SCHEMA_VERSION = 1
_JSON_SAFE_INT = 2**53


@dataclass(frozen=True, slots=True, kw_only=True)
class Ratio:
    """``covered`` of ``total``; ``ratio`` is None when ``total`` is 0.

    Examples:
        >>> Ratio(covered=1, total=4).to_dict(), Ratio(covered=0, total=0).ratio is None
        ({'covered': 1, 'total': 4, 'ratio': 0.25}, True)
    """

    covered: int
    total: int

    @property
    def ratio(self) -> float | None:
        """The share covered, or None for an empty denominator."""
        return None if self.total == 0 else self.covered / self.total

    def to_dict(self) -> dict:
        """Return a JSON-safe dict; counts beyond 2^53 as decimal strings."""
        return {
            "covered": _json_int(self.covered),
            "total": _json_int(self.total),
            "ratio": self.ratio,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemCoverage:
    """Coverage of one string kind (ops, versioned ops, a finer label)."""

    kind: str
    distinct: Ratio
    uncovered: tuple[str, ...]
    nodes: Mapping[str, tuple[str, ...]]  # uncovered item -> node ids (a few)

    def to_dict(self) -> dict:
        """Return the contract's ``{covered, total, ratio, uncovered: [...]}``."""
        return {
            **self.distinct.to_dict(),
            "uncovered": list(self.uncovered),
            "uncovered_nodes": {item: list(self.nodes.get(item, ())) for item in self.uncovered},
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NgramCoverage:
    """Coverage of the model's n-grams of one length."""

    n: int
    distinct: Ratio
    weighted: Ratio
    uncovered: tuple[Ngram, ...]  # by descending count in the model
    novel: tuple[Ngram, ...]

    def to_dict(self) -> dict:
        """Return the contract's ``{distinct, weighted, uncovered, novel}``."""
        return {
            "distinct": self.distinct.to_dict(),
            "weighted": self.weighted.to_dict(),
            "uncovered": [list(ngram) for ngram in self.uncovered],
            "novel": [list(ngram) for ngram in self.novel],
        }


@dataclass(frozen=True, slots=True)
class ReferenceUnion:
    """Several reference indexes seen as one: an item is covered if any of them contains it."""

    indexes: tuple[ReferenceIndex, ...]

    def contains(self, kind: str, item) -> bool:
        """Whether some model of some reference contains `item` of `kind`."""
        if kind == "ngrams":
            return any(item in index.ngrams for index in self.indexes)
        return any(item in index.items[kind] for index in self.indexes)

    @property
    def model_count(self) -> int:
        """Reference models, all references together."""
        return sum(index.model_count for index in self.indexes)

    def to_dicts(self) -> list[dict]:
        """Each reference's name, fingerprint and model count."""
        return [index.to_dict() for index in self.indexes]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCoverage:
    """Coverage of one model: ops, versioned ops, n-grams n = 2..4, finer labels."""

    model: str
    node_count: int
    items: Mapping[str, ItemCoverage]
    ngrams: Mapping[int, NgramCoverage]
    references: tuple[dict, ...]

    def to_dict(self) -> dict:
        """Return the JSON contract of one model (DESIGN.md, "Coverage")."""
        return {
            "model": self.model,
            "nodes": self.node_count,
            "ops": self.items["ops"].to_dict(),
            "versioned_ops": self.items["versioned_ops"].to_dict(),
            "ngrams": {str(n): coverage.to_dict() for n, coverage in self.ngrams.items()},
            **{kind: self.items[kind].to_dict() for kind in FINER_KINDS},
        }


def model_coverage(profile: ModelProfile, reference: ReferenceUnion) -> ModelCoverage:
    """Measure `profile`'s coverage against `reference`."""
    items = {kind: _item_coverage(kind, profile, reference) for kind in ITEM_KINDS}
    ngrams = {n: _ngram_coverage(n, profile, reference) for n in NGRAM_LENGTHS}
    return ModelCoverage(
        model=profile.name,
        node_count=profile.node_count,
        items=items,
        ngrams=ngrams,
        references=tuple(reference.to_dicts()),
    )


def _item_coverage(kind: str, profile: ModelProfile, reference: ReferenceUnion) -> ItemCoverage:
    present = profile.items[kind]
    uncovered = tuple(
        sorted(
            (i for i in present if not reference.contains(kind, i)), key=lambda i: (-present[i], i)
        )
    )
    nodes = profile.nodes.get(kind, {})
    return ItemCoverage(
        kind=kind,
        distinct=Ratio(covered=len(present) - len(uncovered), total=len(present)),
        uncovered=uncovered,
        nodes={item: nodes.get(item, ()) for item in uncovered},
    )


def _ngram_coverage(n: int, profile: ModelProfile, reference: ReferenceUnion) -> NgramCoverage:
    counts = {ngram: count for ngram, count in profile.ngrams.items() if len(ngram) == n}
    uncovered = [ngram for ngram in counts if not reference.contains("ngrams", ngram)]
    uncovered.sort(key=lambda ngram: (-counts[ngram], ngram))
    weight_total = sum(counts.values())
    weight_uncovered = sum(counts[ngram] for ngram in uncovered)
    return NgramCoverage(
        n=n,
        distinct=Ratio(covered=len(counts) - len(uncovered), total=len(counts)),
        weighted=Ratio(covered=weight_total - weight_uncovered, total=weight_total),
        uncovered=tuple(uncovered),
        novel=tuple(ngram for ngram in uncovered if _pieces_covered(ngram, reference)),
    )


def _pieces_covered(ngram: Ngram, reference: ReferenceUnion) -> bool:
    """Whether both (n-1)-sub-grams of `ngram` are covered (for a bigram: both ops)."""
    if len(ngram) == 2:
        return all(reference.contains("ops", label) for label in ngram)
    return all(reference.contains("ngrams", piece) for piece in (ngram[:-1], ngram[1:]))


def _json_int(value: int) -> int | str:
    return value if value < _JSON_SAFE_INT else to_decimal(value)
