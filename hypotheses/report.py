"""The hypothesis report: every test on one labelled corpus, and the verdicts they support.

`build_report` runs the stages in data-flow order (label, fit the size model, operators,
sequences, twin pairs, prediction, tolerance sweep, Table 12) and `HypothesisReport.to_dict` is
the JSON contract of DESIGN.md that the coverage gate and external scripts read. The verdicts
(`hypotheses.verdicts`) answer yes / no / undetermined, "no" only where the tests had the power to
see an effect that matters.

The labels are any boolean array (the tolerance rule's by default) with an optional exclusion mask
(rows that are neither, e.g. unstable ones); how they were made is not this module's business. A
corpus with no labelled rows is an error; one with a single class under the labels gets a report
whose every verdict is undetermined, with the reason.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypotheses.association import fit_adjustment
from hypotheses.errors import HypothesisInputError
from hypotheses.features import PresenceMatrix, StructureTable
from hypotheses.labels import SWEEP_RULES, Rule, describe_rule, label_rows, rule_to_dict
from hypotheses.operators import OperatorsResult, operators_hypothesis
from hypotheses.power import EFFECT_THAT_MATTERS, EffectiveUnits, effective_units
from hypotheses.prediction import PredictionResult, prediction_hypothesis
from hypotheses.sequences import SequencesResult, sequences_hypothesis
from hypotheses.table12 import Table12Column, table12
from hypotheses.tolerance import SweepRow, tolerance_sweep
from hypotheses.twins import TwinsResult, twin_pairs, twins_hypothesis
from hypotheses.verdicts import Verdict, one_class_verdicts, verdicts
from opseq.ngrams import Ngram
from opseq.tolerance import STUDY_TOLERANCE, AllClose, CalibratedRule, allclose_key

__all__ = [
    "SCHEMA_VERSION",
    "STAGES",
    "HypothesisReport",
    "ReportConfig",
    "Verdict",
    "build_report",
]

SCHEMA_VERSION = 2
#: What `build_report` reports to its ``on_stage`` callback, in order.
STAGES = ("operators", "sequences", "twins", "prediction", "tolerance sweep", "table 12")
#: Twin-pair tests listed in the JSON report (the counts cover all of them).
TWIN_TESTS_LISTED = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportConfig:
    """What to test and how.

    Attributes:
        tolerance: The rule that labels mismatches for the main tests; None (the default): the
            float64-calibrated rule (mismatch = semantic, unstable rows left out) where the corpus
            has calibrated measurements, else the study's fixed rule.
        n_range: n-gram lengths of the sequences hypothesis.
        min_support: Fewest models an n-gram must occur in to be tested.
        alpha: False discovery rate of every verdict.
        folds: Cross-validation folds.
        repeats: Cross-validation repeats.
        seed: Seed of the cross-validation shuffles.
        sweep: Rules of the tolerance sweep (empty to skip it).
        prediction: Run the prediction hypothesis.
        jobs: Threads for the cross-validation fits.
        effect: The odds ratio that matters: "no" needs the power to see it
            (`hypotheses.power.EFFECT_THAT_MATTERS`).
    """

    tolerance: Rule | None = None
    n_range: tuple[int, int] = (2, 4)
    min_support: int = 5
    alpha: float = 0.05
    folds: int = 5
    repeats: int = 5
    seed: int = 0
    sweep: tuple[Rule, ...] = SWEEP_RULES
    prediction: bool = True
    jobs: int = 1
    effect: float = EFFECT_THAT_MATTERS

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        rule = self.tolerance
        return {
            "tolerance": "auto" if rule is None else describe_rule(rule),
            "rule": None if rule is None else rule_to_dict(rule),
            "atol": getattr(rule, "atol", None),
            "rtol": getattr(rule, "rtol", None),
            "n": list(self.n_range),
            "min_support": self.min_support,
            "alpha": self.alpha,
            "folds": self.folds,
            "repeats": self.repeats,
            "seed": self.seed,
            "effect_that_matters": self.effect,
            "power": 0.8,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HypothesisReport:
    """All results on one corpus (DESIGN.md: hypothesis report)."""

    config: ReportConfig
    corpus: dict[str, Any]
    operators: OperatorsResult
    sequences: SequencesResult
    twins: TwinsResult
    prediction: PredictionResult | None
    table12: tuple[Table12Column, ...]
    tolerance_sweep: tuple[SweepRow, ...]
    verdicts: tuple[Verdict, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON report."""
        return {
            "schema_version": SCHEMA_VERSION,
            "config": self.config.to_dict(),
            "corpus": self.corpus,
            "operators": self.operators.to_dict(),
            "sequences": self.sequences.to_dict(),
            "twins": self.twins.to_dict(top=TWIN_TESTS_LISTED),
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "table12": [column.to_dict() for column in self.table12],
            "tolerance_sweep": [row.to_dict() for row in self.tolerance_sweep],
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
        }


def build_report(
    table: StructureTable,
    config: ReportConfig = ReportConfig(),
    *,
    labels: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    exclude_reason: str = "excluded by the labels",
    reference: frozenset[Ngram] | None = None,
    reference_info: dict[str, Any] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> HypothesisReport:
    """Run every hypothesis on a corpus.

    Args:
        table: The labelled models (`hypotheses.features.load_corpus`).
        config: What to test and how.
        labels: Mismatch label of each row (True = mismatch); default: the rows relabelled
            under ``config.tolerance``.
        exclude: Rows to leave out of every test (e.g. unstable ones), counted in the corpus
            summary under `exclude_reason`.
        exclude_reason: Why the excluded rows are left out.
        reference: n-grams of a reference corpus, for Table 12's row ③.
        reference_info: What the reference corpus was (recorded in the report).
        on_stage: Called with the name of each stage (`STAGES`) as it starts, for progress.

    Raises:
        HypothesisInputError: If there are no labelled models.
    """
    started = on_stage or (lambda _: None)
    config = dataclasses.replace(
        config,
        tolerance=config.tolerance or default_rule(table),
        sweep=tuple(rule for rule in config.sweep if is_measured(table, rule)),
    )
    table, mismatch = _labelled(table, config.tolerance, labels, exclude, exclude_reason)
    pairs = twin_pairs(table.clusters, table.converters)
    units = effective_units(mismatch, table.clusters)
    one_class = _one_class_reason(mismatch, config)
    operator_columns = table.presence.columns(table.presence.lengths == 1)
    started("operators")
    if one_class:
        operators = _untested_operators(operator_columns, mismatch, config, one_class)
        sequences = SequencesResult(
            n_range=config.n_range,
            min_support=config.min_support,
            candidates=_candidates(table.presence, config.n_range),
            family=None,
            alpha=config.alpha,
            skipped=one_class,
        )
    else:
        size_model = fit_adjustment(table, mismatch)
        operators = operators_hypothesis(
            operator_columns,
            mismatch,
            size_model,
            min_support=config.min_support,
            alpha=config.alpha,
            effect=config.effect,
        )
        started("sequences")
        sequences = sequences_hypothesis(
            table.presence,
            mismatch,
            size_model,
            n_range=config.n_range,
            min_support=config.min_support,
            alpha=config.alpha,
            adjustment=_describe_adjustment(
                size_model.names, clustered=size_model.clusters is not None
            ),
            operators={t.feature[0] for t in operators.significant_adjusted},
            effect=config.effect,
        )
    if one_class:
        started("sequences")
    started("twins")
    twins = twins_hypothesis(
        table.presence.testable((1, config.n_range[1]), config.min_support),
        mismatch,
        pairs,
        alpha=config.alpha,
        effect=config.effect,
    )
    prediction = None
    started("prediction")
    if config.prediction:
        prediction = prediction_hypothesis(
            table.presence,
            mismatch,
            table.nodes,
            table.converters,
            table.groups,
            n_range=config.n_range,
            min_support=config.min_support,
            folds=config.folds,
            repeats=config.repeats,
            seed=config.seed,
            jobs=config.jobs,
        )
    started("tolerance sweep")
    sweep = tolerance_sweep(
        table,
        config.sweep,
        n_range=config.n_range,
        min_support=config.min_support,
        alpha=config.alpha,
        effect=config.effect,
    )
    started("table 12")
    shared = table12(table.presence, mismatch, table.converters, reference=reference)
    if one_class:
        found = one_class_verdicts(one_class, prediction=config.prediction, sweep=sweep)
    else:
        found = verdicts(operators, sequences, twins, prediction, sweep, units, config.alpha)
    return HypothesisReport(
        config=config,
        corpus=_describe_corpus(table, mismatch, reference_info, units),
        operators=operators,
        sequences=sequences,
        twins=twins,
        prediction=prediction,
        table12=shared,
        tolerance_sweep=sweep,
        verdicts=found,
    )


def _describe_adjustment(names: Sequence[str], *, clustered: bool) -> str:
    """Say in words what the adjusted test controls for.

    Examples:
        >>> _describe_adjustment(["log nodes spline 1", "log nodes spline 2"], clustered=True)
        'Rao score test in one logistic regression of mismatch on a 2-df spline of log node \
count; variance robust to clustering by source model; exact stratified test on source models \
(composition x size strata) where an expected cell is below 5'
    """
    spline = sum(name.startswith("log nodes spline") for name in names)
    if spline:
        terms = [f"a {spline}-df spline of log node count"]
    elif "log nodes" in names:
        terms = ["log node count"]
    else:
        terms = ["an intercept (every model has the same size)"]
    if any(name.startswith("converter=") for name in names):
        terms.append("converter")
    text = "Rao score test in one logistic regression of mismatch on " + " + ".join(terms)
    text += "; variance robust to clustering by source model" if clustered else ""
    return text + (
        "; exact stratified test on source models (composition x size strata) where an expected "
        "cell is below 5"
    )


def default_rule(table: StructureTable) -> Rule:
    """The calibrated rule where the corpus has calibrated measurements, else the study's."""
    if any(c is not None for c in table.calibrations):
        return CalibratedRule()
    return STUDY_TOLERANCE


def is_measured(table: StructureTable, rule: Rule) -> bool:
    """Whether the corpus stores what `rule` judges (calibrations, element-wise excesses)."""
    if isinstance(rule, CalibratedRule):
        return any(c is not None for c in table.calibrations)
    if isinstance(rule, AllClose):
        key = allclose_key(rule.atol, rule.rtol)
        return any(key in c.allclose for comparisons in table.outputs for c in comparisons)
    return True


def _labelled(
    table: StructureTable,
    tolerance: Rule,
    labels: np.ndarray | None,
    exclude: np.ndarray | None,
    exclude_reason: str,
) -> tuple[StructureTable, np.ndarray]:
    """The rows the tests use and their labels; raises when there are none."""
    if labels is None:
        ruled = label_rows(table.outputs, table.calibrations, tolerance)
        mismatch = ruled.mismatch
        if not ruled.usable.all():
            keep = ruled.usable
            excluded = dict(table.excluded)
            for reason, count in ruled.left_out.items():
                excluded[reason] = excluded.get(reason, 0) + count
            table = dataclasses.replace(table.subset(keep), excluded=excluded)
            mismatch = mismatch[keep]
            if exclude is not None:
                exclude = np.asarray(exclude, dtype=bool)[keep]
    else:
        mismatch = np.asarray(labels, dtype=bool)
    if len(mismatch) != len(table):
        raise HypothesisInputError(f"{len(mismatch)} labels for {len(table)} labelled models")
    if exclude is not None and np.asarray(exclude, dtype=bool).any():
        keep = ~np.asarray(exclude, dtype=bool)
        excluded = dict(table.excluded)
        excluded[exclude_reason] = excluded.get(exclude_reason, 0) + int((~keep).sum())
        table = dataclasses.replace(table.subset(keep), excluded=excluded)
        mismatch = mismatch[keep]
    if len(table) == 0:
        excluded_text = ", ".join(f"{k}: {v}" for k, v in sorted(table.excluded.items())) or "none"
        raise HypothesisInputError(
            f"no labelled models: the tests need ok or mismatch rows with a model file "
            f"(excluded rows: {excluded_text})"
        )
    return table, mismatch


def _one_class_reason(mismatch: np.ndarray, config: ReportConfig) -> str:
    """Why nothing can be tested (every row in one class), or empty."""
    if mismatch.any() and not mismatch.all():
        return ""
    only = "mismatch" if mismatch.all() else "ok"
    return (
        f"all {len(mismatch)} labelled models are {only} under "
        f"{describe_rule(config.tolerance)}: an association needs both classes "
        "(try another rule: --label fixed --atol, or --headroom)"
    )


def _untested_operators(
    operators: PresenceMatrix, mismatch: np.ndarray, config: ReportConfig, reason: str
) -> OperatorsResult:
    support = operators.support
    labels = [name[0] for name in operators.names]
    present = [op for op, k in zip(labels, support, strict=True) if k > 0]
    everywhere = tuple(
        op for op, k in zip(labels, support, strict=True) if k == operators.matrix.shape[0]
    )
    return OperatorsResult(
        mismatch_ops=tuple(present) if mismatch.all() else (),
        ok_ops=() if mismatch.all() else tuple(present),
        tests=(),
        untestable=everywhere,
        alpha=config.alpha,
        skipped=reason,
    )


def _candidates(presence: PresenceMatrix, n_range: tuple[int, int]) -> int:
    lengths = presence.lengths
    return int(((lengths >= n_range[0]) & (lengths <= n_range[1])).sum())


def _describe_corpus(
    table: StructureTable,
    mismatch: np.ndarray,
    reference_info: dict[str, Any] | None,
    units: EffectiveUnits,
) -> dict[str, Any]:
    converters = Counter(table.converters)
    return {
        "rows": sum(table.outcomes.values()),
        "outcomes": dict(sorted(table.outcomes.items())),
        "labelled": len(table),
        "mismatch": int(mismatch.sum()),
        "ok": int((~mismatch).sum()),
        "recorded_mismatch": int(table.recorded_mismatch.sum()),
        "excluded": dict(sorted(table.excluded.items())),
        "converters": dict(sorted(converters.items())),
        "source_models": len(set(table.groups)),
        "effective_units": units.to_dict(),
        "median_nodes": {
            "mismatch": _median(table.nodes[mismatch]),
            "ok": _median(table.nodes[~mismatch]),
        },
        "distinct_operators": int((table.presence.lengths == 1).sum()),
        "distinct_ngrams": int((table.presence.lengths >= 2).sum()),
        "reference": reference_info,
    }


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if len(values) else None
