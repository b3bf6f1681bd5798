"""Coverage of a corpus, COMET-style: of the op space, of the feasible pairs, and its growth.

For a corpus (its models as `IndexedModel`s, e.g. a directory or manifest read as a reference):

- **op coverage**: the share of the default-domain ops at the corpus's highest opset that some
  model uses (`opseq.coverage.opset_space`); deprecated ops used, unknown default-domain labels
  and ops of other domains are listed apart. ``Constant`` and ``Identity`` are left out of the
  denominator: every OpGraph splices them out, so no model can show them.
- **sequence coverage**: distinct default-domain bigrams present over the type-feasible bigrams
  at that opset (COMET's layer-sequence coverage, on ONNX ops). A present bigram can be
  infeasible by that rule: a deprecated or unknown op, a custom type, or an implicit input of an
  If/Loop/Scan body, which is an edge into the parent node whatever the tensor's type; those are
  counted and listed, not in the numerator.
- **growth**: distinct ops and n-grams (n = 2..4) after the first k models, in a seeded random
  order, at about 20 values of k on a log scale: whether more models would still add sequences.
- **Table 12, row 3, asked directly**: which n-grams of the mismatching models the reference
  never exercises, with the same share for the consistent models beside it, under three
  labellings of the manifest rows (the calibrated verdict, the recorded outcome, the study's
  fixed rule recomputed from the stored comparisons).

Every ratio is a `Ratio`, None with a zero denominator.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from opseq.corpus import ManifestRow, study_mismatch
from opseq.coverage.index import IndexedModel, ReferenceIndex
from opseq.coverage.model_coverage import Ratio
from opseq.coverage.opset_space import default_domain_ops, highest_opset, type_feasible_bigrams
from opseq.coverage.profile import NGRAM_LENGTHS
from opseq.graph import DEFAULT_IGNORED_OPS
from opseq.ngrams import Ngram
from opseq.outcomes import Outcome

__all__ = [
    "GROWTH_KINDS",
    "LABELLINGS",
    "SCHEMA_VERSION",
    "CorpusCoverage",
    "Growth",
    "GrowthCurve",
    "NgramShare",
    "OpCoverage",
    "SequenceCoverage",
    "UnexercisedNgram",
    "UnexercisedNgrams",
    "corpus_coverage",
]

SCHEMA_VERSION = 1
GROWTH_KINDS = ("ops", *(f"{n}-grams" for n in NGRAM_LENGTHS))
NOT_MEASURED = tuple(sorted(DEFAULT_IGNORED_OPS))


@dataclass(frozen=True, slots=True, kw_only=True)
class OpCoverage:
    """Which default-domain ops at ``opset`` the corpus uses (``used``: current ops only)."""

    opset: int | None
    used: Ratio
    unused: tuple[str, ...]
    deprecated_used: tuple[str, ...]
    unknown_used: tuple[str, ...]  # default-domain labels that are no op at `opset`
    other_domains: tuple[str, ...]
    not_measured: tuple[str, ...] = NOT_MEASURED

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "opset": self.opset,
            "used": self.used.to_dict(),
            "unused": list(self.unused),
            "deprecated_used": list(self.deprecated_used),
            "unknown_used": list(self.unknown_used),
            "other_domains": list(self.other_domains),
            "not_measured": list(self.not_measured),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SequenceCoverage:
    """Distinct default-domain bigrams present that are type-feasible, over the feasible ones.

    ``present`` counts every distinct default-domain bigram of the corpus, ``not_feasible``
    lists those the type rule calls infeasible, ``other_domains`` counts the distinct bigrams
    with a label of another domain (in neither count).
    """

    opset: int | None
    feasible: Ratio
    present: int
    not_feasible: tuple[Ngram, ...]
    other_domains: int

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "opset": self.opset,
            "feasible": self.feasible.to_dict(),
            "present": self.present,
            "not_feasible": [list(ngram) for ngram in self.not_feasible],
            "other_domains": self.other_domains,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class GrowthCurve:
    """Distinct items of one kind after the first ``models[i]`` models: ``distinct[i]``."""

    kind: str
    models: tuple[int, ...]
    distinct: tuple[int, ...]

    @property
    def half_share(self) -> float | None:
        """The share of the final distinct count already seen at about half the models."""
        if not self.models or self.distinct[-1] == 0:
            return None
        half = max((i for i, k in enumerate(self.models) if k <= self.models[-1] / 2), default=0)
        return self.distinct[half] / self.distinct[-1]

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "kind": self.kind,
            "models": list(self.models),
            "distinct": list(self.distinct),
            "half_share": self.half_share,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Growth:
    """Growth curves of every kind of `GROWTH_KINDS`, models taken in a seeded random order."""

    seed: int
    scale: str
    curves: tuple[GrowthCurve, ...]

    def curve(self, kind: str) -> GrowthCurve:
        """The curve of `kind`."""
        return next(c for c in self.curves if c.kind == kind)

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "seed": self.seed,
            "scale": self.scale,
            "curves": [c.to_dict() for c in self.curves],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NgramShare:
    """Distinct n-grams of the mismatching and of the consistent models the reference exercises.

    ``n`` is None for all lengths together. The unexercised ones are ``total - covered``.
    """

    n: int | None
    mismatching: Ratio
    consistent: Ratio

    def to_dict(self) -> dict:
        """Return a JSON-safe dict, with the unexercised count and share of each side."""
        return {
            "n": self.n,
            "mismatching": _unexercised_dict(self.mismatching),
            "consistent": _unexercised_dict(self.consistent),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UnexercisedNgram:
    """One n-gram of mismatching models that no reference model contains."""

    ngram: Ngram
    mismatching_models: int
    consistent_models: int

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "ngram": list(self.ngram),
            "mismatching_models": self.mismatching_models,
            "consistent_models": self.consistent_models,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class UnexercisedNgrams:
    """Table 12 row 3 under one labelling: the mismatching models' n-grams the reference lacks.

    ``ngrams`` lists the first unexercised n-grams of the mismatching models (all of them are
    counted in the shares), by the number of mismatching models carrying them, then by the
    number of consistent models carrying them (fewest first), then by n-gram. An n-gram is
    exercised when some model of some reference contains it.
    """

    labelling: str
    description: str
    mismatching_models: int
    consistent_models: int
    left_out: int
    overall: NgramShare
    by_n: tuple[NgramShare, ...]
    ngrams: tuple[UnexercisedNgram, ...]

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "labelling": self.labelling,
            "description": self.description,
            "mismatching_models": self.mismatching_models,
            "consistent_models": self.consistent_models,
            "left_out": self.left_out,
            "overall": self.overall.to_dict(),
            "by_n": [share.to_dict() for share in self.by_n],
            "ngrams": [ngram.to_dict() for ngram in self.ngrams],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusCoverage:
    """Everything measured on one corpus (see the module docstring).

    ``unlabelled`` counts the models no manifest row names (None without rows); ``unexercised``
    is empty unless both rows and references were given.
    """

    name: str
    model_count: int
    node_count: int
    opsets: Mapping[int, int]  # default-domain opset -> models
    ops: OpCoverage
    sequences: SequenceCoverage
    growth: Growth
    unexercised: tuple[UnexercisedNgrams, ...]
    references: tuple[dict, ...]
    unlabelled: int | None
    notes: tuple[str, ...]

    def distinct(self, kind: str) -> int:
        """Distinct items of a kind of `GROWTH_KINDS` in the whole corpus."""
        curve = self.growth.curve(kind)
        return curve.distinct[-1] if curve.distinct else 0

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "schema_version": SCHEMA_VERSION,
            "name": self.name,
            "models": self.model_count,
            "nodes": self.node_count,
            "opsets": {str(k): v for k, v in sorted(self.opsets.items())},
            "distinct": {kind: self.distinct(kind) for kind in GROWTH_KINDS},
            "ops": self.ops.to_dict(),
            "sequences": self.sequences.to_dict(),
            "growth": self.growth.to_dict(),
            "unexercised": [u.to_dict() for u in self.unexercised],
            "references": list(self.references),
            "unlabelled": self.unlabelled,
            "notes": list(self.notes),
        }


def corpus_coverage(
    models: Sequence[IndexedModel],
    *,
    name: str = "corpus",
    rows: Sequence[ManifestRow] | None = None,
    references: Sequence[ReferenceIndex] = (),
    seed: int = 0,
    points: int = 20,
    top: int = 100,
) -> CorpusCoverage:
    """Measure a corpus: op and sequence coverage, growth, and Table 12 row 3.

    Args:
        models: The corpus's models (``load_reference(...).load_models()``).
        name: How reports name the corpus.
        rows: Its manifest rows, joined to models by row id (a manifest read as a reference
            names its models so); needed for Table 12 row 3.
        references: What Table 12 row 3 asks about (e.g. the default reference).
        seed: Seeds the order of models for the growth curves.
        points: About how many points each growth curve has.
        top: How many unexercised n-grams Table 12 row 3 lists (all are counted).

    Returns:
        The measurements.
    """
    opset, notes = _space_opset(models)
    labelled = None if rows is None else _join(models, rows)
    unexercised: tuple[UnexercisedNgrams, ...] = ()
    if labelled is not None and references:
        exercised = frozenset().union(*(index.ngrams.keys() for index in references))
        unexercised = tuple(
            _unexercised(labelled, labelling, exercised, top) for labelling in LABELLINGS
        )
    return CorpusCoverage(
        name=name,
        model_count=len(models),
        node_count=sum(m.node_count for m in models),
        opsets=dict(Counter(m.opset for m in models if m.opset is not None)),
        ops=_op_coverage(models, opset),
        sequences=_sequence_coverage(models, opset),
        growth=_growth(models, seed=seed, points=points),
        unexercised=unexercised,
        references=tuple(index.to_dict() for index in references),
        unlabelled=None if labelled is None else sum(row is None for _, row in labelled),
        notes=notes,
    )


def _space_opset(models: Sequence[IndexedModel]) -> tuple[int | None, tuple[str, ...]]:
    """The corpus's highest default-domain opset, within what the installed onnx knows."""
    opsets = [m.opset for m in models if m.opset is not None and m.opset >= 1]
    if not opsets:
        return None, ("no model imports the default domain: no op space to measure against",)
    if max(opsets) > highest_opset():
        return highest_opset(), (
            f"the highest opset, {max(opsets)}, is beyond the installed onnx's "
            f"{highest_opset()}; the op space is taken at {highest_opset()}",
        )
    return max(opsets), ()


def _is_default(label: str) -> bool:
    return ":" not in label  # other domains' labels are domain:op_type (DESIGN.md: Words)


def _op_coverage(models: Sequence[IndexedModel], opset: int | None) -> OpCoverage:
    used = set().union(*(m.items["ops"] for m in models))
    default = {label for label in used if _is_default(label)}
    current, deprecated = default_domain_ops(opset) if opset else (frozenset(), frozenset())
    measured = current - DEFAULT_IGNORED_OPS
    return OpCoverage(
        opset=opset,
        used=Ratio(covered=len(default & measured), total=len(measured)),
        unused=tuple(sorted(measured - default)),
        deprecated_used=tuple(sorted(default & deprecated)),
        unknown_used=tuple(sorted(default - current - deprecated)),
        other_domains=tuple(sorted(used - default)),
    )


def _sequence_coverage(models: Sequence[IndexedModel], opset: int | None) -> SequenceCoverage:
    bigrams = {g for m in models for g in m.ngrams if len(g) == 2}
    default = {g for g in bigrams if all(_is_default(label) for label in g)}
    if opset is None:
        feasible, total = set(), 0
    else:
        space = type_feasible_bigrams(opset)
        feasible = {g for g in default if space.is_feasible(*g)}
        total = space.count_without(DEFAULT_IGNORED_OPS)
    return SequenceCoverage(
        opset=opset,
        feasible=Ratio(covered=len(feasible), total=total),
        present=len(default),
        not_feasible=tuple(sorted(default - feasible)),
        other_domains=len(bigrams) - len(default),
    )


def _growth(models: Sequence[IndexedModel], *, seed: int, points: int) -> Growth:
    order = np.random.default_rng(seed).permutation(len(models))
    marks = set(_growth_points(len(models), points))
    seen: dict[str, set] = {kind: set() for kind in GROWTH_KINDS}
    values: dict[str, list[int]] = {kind: [] for kind in GROWTH_KINDS}
    for k, position in enumerate(order, start=1):
        model = models[int(position)]
        seen["ops"].update(model.items["ops"])
        for ngram in model.ngrams:
            seen.get(f"{len(ngram)}-grams", set()).add(ngram)  # other lengths are not curves
        if k in marks:
            for kind in GROWTH_KINDS:
                values[kind].append(len(seen[kind]))
    ks = tuple(sorted(marks))
    curves = tuple(
        GrowthCurve(kind=kind, models=ks, distinct=tuple(values[kind])) for kind in GROWTH_KINDS
    )
    return Growth(seed=seed, scale="log", curves=curves)


def _growth_points(count: int, points: int) -> tuple[int, ...]:
    """About `points` model counts from 1 to `count`, evenly spaced on a log scale.

    Examples:
        >>> _growth_points(5, 20), _growth_points(0, 20)
        ((1, 2, 3, 4, 5), ())
        >>> _growth_points(1000, 5)
        (1, 6, 32, 178, 1000)
    """
    if count < 1:
        return ()
    marks = np.unique(np.rint(np.geomspace(1, count, max(points, 2))).astype(int))
    return tuple(int(k) for k in marks)


# --- Table 12, row 3 --------------------------------------------------------------------------

Judge = Callable[[ManifestRow], bool | None]  # True: mismatching, False: consistent, None: out


def _by_verdict(row: ManifestRow) -> bool | None:
    verdict = row.extra.get("verdict")
    if not isinstance(verdict, str):  # a manifest is untrusted: any JSON value may be here
        return None
    return {"semantic": True, "ok": False, "numerical": False}.get(verdict)


def _by_outcome(row: ManifestRow) -> bool | None:
    return {Outcome.MISMATCH: True, Outcome.OK: False}.get(row.outcome)


LABELLINGS: tuple[tuple[str, str, Judge], ...] = (
    (
        "verdict",
        "calibrated verdict: semantic vs ok or numerical (unstable and unjudged rows left out)",
        _by_verdict,
    ),
    ("outcome", "recorded outcome: mismatch vs ok (failures left out)", _by_outcome),
    (
        "study-rule",
        "the study's rule, max abs diff >= 1e-7 or a shape/dtype/NaN disagreement, from the "
        "stored comparisons (models that did not run left out)",
        study_mismatch,
    ),
)


def _join(
    models: Sequence[IndexedModel], rows: Sequence[ManifestRow]
) -> list[tuple[IndexedModel, ManifestRow | None]]:
    """Each model with its manifest row: a manifest read as a reference names models by row id."""
    by_id = {row.id: row for row in rows}
    return [(model, by_id.get(model.name)) for model in models]


def _unexercised(
    labelled: Iterable[tuple[IndexedModel, ManifestRow | None]],
    labelling: tuple[str, str, Judge],
    exercised: frozenset[Ngram],
    top: int,
) -> UnexercisedNgrams:
    name, description, judge = labelling
    groups: dict[bool | None, list[IndexedModel]] = {True: [], False: [], None: []}
    for model, row in labelled:
        if row is not None:
            groups[judge(row)].append(model)
    mismatching = Counter(g for m in groups[True] for g in m.ngrams)
    consistent = Counter(g for m in groups[False] for g in m.ngrams)
    unexercised = (g for g in mismatching if g not in exercised)
    listed = heapq.nsmallest(top, unexercised, key=lambda g: (-mismatching[g], consistent[g], g))
    shares = _shares(mismatching, consistent, exercised)
    return UnexercisedNgrams(
        labelling=name,
        description=description,
        mismatching_models=len(groups[True]),
        consistent_models=len(groups[False]),
        left_out=len(groups[None]),
        overall=shares[None],
        by_n=tuple(shares[n] for n in NGRAM_LENGTHS),
        ngrams=tuple(
            UnexercisedNgram(
                ngram=g, mismatching_models=mismatching[g], consistent_models=consistent[g]
            )
            for g in listed
        ),
    )


def _shares(
    mismatching: Iterable[Ngram], consistent: Iterable[Ngram], exercised: frozenset[Ngram]
) -> dict[int | None, NgramShare]:
    """Exercised shares per n-gram length (and all lengths together, key None), both sides."""
    sides = [
        Counter((len(g), g in exercised) for g in ngrams) for ngrams in (mismatching, consistent)
    ]

    def ratio(side: Counter, n: int | None) -> Ratio:
        cells = [(k, count) for k, count in side.items() if n is None or k[0] == n]
        return Ratio(covered=sum(c for k, c in cells if k[1]), total=sum(c for _, c in cells))

    return {
        n: NgramShare(n=n, mismatching=ratio(sides[0], n), consistent=ratio(sides[1], n))
        for n in (None, *NGRAM_LENGTHS)
    }


def _unexercised_dict(ratio: Ratio) -> dict:
    share = None if ratio.ratio is None else 1 - ratio.ratio
    return {
        "exercised": ratio.to_dict(),
        "unexercised": ratio.total - ratio.covered,
        "unexercised_share": share,
    }
