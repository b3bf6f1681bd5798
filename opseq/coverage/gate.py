"""The deployment gate: coverage thresholds and checks, decided as criteria with offenders.

Criteria, each evaluated only when the policy asks for it:

- ``valid``, ``runnable`` (`opseq.coverage.checks`), ``behaves`` (`opseq verify`'s verdict);
- ``op_coverage``, ``versioned_op_coverage``: the share of the model's distinct ops (versioned
  ops) that the reference covers, at least the threshold; offenders: the uncovered ones;
- ``ngram_coverage``: the same for distinct n-grams of length ``n``;
- ``novel``: at most K novel n-grams of length ``n`` (uncovered, every piece covered);
- ``risky``: at most K n-grams that the knowledge base marks as associated with mismatch.

An allowlisted item (accepted on purpose, with a reason) counts as covered and is reported apart.
With a baseline (the previous version of the model), only what is new fails: a coverage
criterion below its threshold passes when every uncovered item was uncovered in the baseline
too, and the counted criteria count only items the baseline did not have.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from opseq.coverage.criteria import Criterion, Offender
from opseq.coverage.knowledge import KnowledgeBase
from opseq.coverage.model_coverage import ModelCoverage, Ratio
from opseq.coverage.profile import ModelProfile
from opseq.ngrams import Ngram

__all__ = ["GateInputs", "coverage_criteria", "format_ngram_item", "gate_passed"]

_OFFENDERS_KEPT = 200  # per criterion; counts are exact, the list is for people


def format_ngram_item(ngram: Ngram) -> str:
    """An n-gram as the gate writes it: ``A>B>C``."""
    return ">".join(ngram)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateInputs:
    """What the coverage criteria are computed from.

    ``ngram_nodes`` maps an n-gram to the node names of its occurrences (a few), for reports;
    ``allowed_ops`` / ``allowed_ngrams`` map allowlisted items to their reasons; ``baseline`` is
    the previous version's profile and coverage, or None.
    """

    coverage: ModelCoverage
    profile: ModelProfile
    ngram_nodes: Callable[[Iterable[Ngram]], Mapping[Ngram, tuple[str, ...]]]
    allowed_ops: Mapping[str, str]
    allowed_ngrams: Mapping[Ngram, str]
    baseline: tuple[ModelProfile, ModelCoverage] | None = None
    knowledge: KnowledgeBase | None = None


def gate_passed(criteria: Sequence[Criterion], required: Iterable[str]) -> bool:
    """Whether the gate passes: no criterion failed, and every required one was evaluated."""
    required = set(required)
    return all(c.passed is True or (c.passed is None and c.name not in required) for c in criteria)


def coverage_criteria(
    inputs: GateInputs,
    *,
    min_op_coverage: float | None,
    min_versioned_op_coverage: float | None,
    min_ngram_coverage: float | None,
    n: int,
    max_novel: int | None,
    max_risky: int | None,
) -> list[Criterion]:
    """The coverage, novel and risky criteria the thresholds ask for, in that order."""
    criteria = []
    if min_op_coverage is not None:
        criteria.append(_item_criterion("op_coverage", "ops", inputs, min_op_coverage))
    if min_versioned_op_coverage is not None:
        criteria.append(
            _item_criterion(
                "versioned_op_coverage", "versioned_ops", inputs, min_versioned_op_coverage
            )
        )
    if min_ngram_coverage is not None:
        criteria.append(_ngram_criterion(inputs, n, min_ngram_coverage))
    if max_novel is not None:
        criteria.append(_novel_criterion(inputs, n, max_novel))
    if max_risky is not None:
        criteria.append(_risky_criterion(inputs, max_risky))
    return criteria


def _item_criterion(name: str, kind: str, inputs: GateInputs, threshold: float) -> Criterion:
    items = inputs.coverage.items[kind]
    allowed_map = (
        inputs.allowed_ops if kind == "ops" else _versioned_allowed(inputs, items.uncovered)
    )
    offenders, allowed = [], []
    for item in items.uncovered:
        target = allowed if item in allowed_map else offenders
        detail = allowed_map.get(item)
        target.append(Offender(item=item, nodes=items.nodes.get(item, ())[:5], detail=detail))
    old = _baseline_uncovered(inputs, kind)
    return _ratio_criterion(name, items.distinct, threshold, offenders, allowed, old)


def _versioned_allowed(inputs: GateInputs, uncovered: Sequence[str]) -> dict[str, str]:
    """A versioned op is allowed when it, or its label, is on the allowlist."""
    allowed = {}
    for item in uncovered:
        label = _label_of_versioned(item)
        reason = inputs.allowed_ops.get(item) or inputs.allowed_ops.get(label)
        if reason is not None:
            allowed[item] = reason
    return allowed


def _label_of_versioned(item: str) -> str:
    domain_op = item.rpartition("@")[0]
    domain, _, op = domain_op.rpartition(":")
    return op if domain in ("", "ai.onnx") else f"{domain}:{op}"


def _ngram_criterion(inputs: GateInputs, n: int, threshold: float) -> Criterion:
    ngrams = inputs.coverage.ngrams[n]
    offenders, allowed = _ngram_offenders(inputs, ngrams.uncovered)
    old = _baseline_uncovered(inputs, "ngrams", n)
    return _ratio_criterion(
        f"ngram_coverage_{n}", ngrams.distinct, threshold, offenders, allowed, old
    )


def _ratio_criterion(
    name: str,
    ratio: Ratio,
    threshold: float,
    offenders: list[Offender],
    allowed: list[Offender],
    baseline_uncovered: frozenset[str] | None,
) -> Criterion:
    # Allowlisted items count as covered: they were accepted on purpose.
    effective = Ratio(covered=ratio.covered + len(allowed), total=ratio.total)
    value = effective.ratio
    note = None
    if value is None:
        return Criterion(
            name=name,
            passed=None,
            threshold=threshold,
            value=None,
            note="the model has no such items: the ratio is undefined",
        )
    passed = value >= threshold
    if baseline_uncovered is not None:
        new = [o for o in offenders if o.item not in baseline_uncovered]
        if not passed and not new:
            note = (
                f"below the threshold, but all {len(offenders)} uncovered items were uncovered "
                "in the baseline too"
            )
        passed = passed or not new
        offenders = new
    return Criterion(
        name=name,
        passed=passed,
        threshold=threshold,
        value=value,
        offenders=tuple(offenders[:_OFFENDERS_KEPT]),
        allowed=tuple(allowed[:_OFFENDERS_KEPT]),
        note=note,
    )


def _ngram_offenders(
    inputs: GateInputs, ngrams: Sequence[Ngram]
) -> tuple[list[Offender], list[Offender]]:
    nodes = inputs.ngram_nodes(ngrams[:_OFFENDERS_KEPT])
    offenders, allowed = [], []
    for ngram in ngrams:
        reason = inputs.allowed_ngrams.get(ngram)
        entry = Offender(item=format_ngram_item(ngram), nodes=nodes.get(ngram, ()), detail=reason)
        (allowed if reason is not None else offenders).append(entry)
    return offenders, allowed


def _novel_criterion(inputs: GateInputs, n: int, limit: int) -> Criterion:
    novel = inputs.coverage.ngrams[n].novel
    offenders, allowed = _ngram_offenders(inputs, novel)
    note = None
    if inputs.baseline is not None:
        old = {format_ngram_item(g) for g in inputs.baseline[1].ngrams[n].novel}
        offenders = [o for o in offenders if o.item not in old]
        note = f"counting only novel {n}-grams the baseline did not have"
    return Criterion(
        name=f"novel_{n}",
        passed=len(offenders) <= limit,
        threshold=limit,
        value=len(offenders),
        offenders=tuple(offenders[:_OFFENDERS_KEPT]),
        allowed=tuple(allowed[:_OFFENDERS_KEPT]),
        note=note,
    )


def _risky_criterion(inputs: GateInputs, limit: int) -> Criterion:
    knowledge = inputs.knowledge
    if knowledge is None:
        return Criterion(
            name="risky", passed=None, threshold=limit, note="no knowledge base was given"
        )
    present = [g for g in knowledge.risky if g in inputs.profile.ngrams]
    if inputs.baseline is not None:  # only what the previous version did not have
        present = [g for g in present if g not in inputs.baseline[0].ngrams]
    present.sort(key=lambda g: knowledge.risky[g].q_value)
    nodes = inputs.ngram_nodes(present[:_OFFENDERS_KEPT])
    offenders, allowed = [], []
    for ngram in present:
        risk = knowledge.risky[ngram]
        reason = inputs.allowed_ngrams.get(ngram)
        detail = risk.detail() if reason is None else f"{risk.detail()}; allowed: {reason}"
        entry = Offender(item=format_ngram_item(ngram), nodes=nodes.get(ngram, ()), detail=detail)
        (allowed if reason is not None else offenders).append(entry)
    return Criterion(
        name="risky",
        passed=len(offenders) <= limit,
        threshold=limit,
        value=len(offenders),
        offenders=tuple(offenders[:_OFFENDERS_KEPT]),
        allowed=tuple(allowed[:_OFFENDERS_KEPT]),
        note=knowledge.describe(),
    )


def _baseline_uncovered(inputs: GateInputs, kind: str, n: int = 0) -> frozenset[str] | None:
    if inputs.baseline is None:
        return None
    coverage = inputs.baseline[1]
    if kind == "ngrams":
        return frozenset(format_ngram_item(g) for g in coverage.ngrams[n].uncovered)
    return frozenset(coverage.items[kind].uncovered)
