"""The hypothesis report: every test on one labelled corpus, and the verdicts they support.

`build_report` runs the stages in data-flow order (label, fit the size model, operators,
sequences, prediction, tolerance sweep, Table 12) and `HypothesisReport.to_dict` is the JSON
contract of DESIGN.md that the coverage gate and external scripts read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hypotheses.association import fit_adjustment
from hypotheses.errors import HypothesisInputError
from hypotheses.features import StructureTable
from hypotheses.labels import SWEEP_TOLERANCES, Tolerance, describe_tolerance, label_mismatches
from hypotheses.operators import OperatorsResult, operators_hypothesis
from hypotheses.prediction import PredictionResult, prediction_hypothesis
from hypotheses.sequences import SequencesResult, sequences_hypothesis
from hypotheses.table12 import Table12Column, table12
from hypotheses.tolerance import SweepRow, tolerance_sweep
from opseq.ngrams import Ngram

__all__ = [
    "SCHEMA_VERSION",
    "STAGES",
    "HypothesisReport",
    "ReportConfig",
    "Verdict",
    "build_report",
]

SCHEMA_VERSION = 1
#: What `build_report` reports to its ``on_stage`` callback, in order.
STAGES = ("operators", "sequences", "prediction", "tolerance sweep", "table 12")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportConfig:
    """What to test and how.

    Attributes:
        tolerance: The rule that labels mismatches for the main tests.
        n_range: n-gram lengths of the sequences hypothesis.
        min_support: Fewest models an n-gram must occur in to be tested.
        alpha: False discovery rate of every verdict.
        folds: Cross-validation folds.
        repeats: Cross-validation repeats.
        seed: Seed of the cross-validation shuffles.
        sweep: Rules of the tolerance sweep (empty to skip it).
        prediction: Run the prediction hypothesis.
        jobs: Threads for the cross-validation fits.
    """

    tolerance: Tolerance = field(default_factory=Tolerance)
    n_range: tuple[int, int] = (2, 4)
    min_support: int = 5
    alpha: float = 0.05
    folds: int = 5
    repeats: int = 5
    seed: int = 0
    sweep: tuple[Tolerance, ...] = SWEEP_TOLERANCES
    prediction: bool = True
    jobs: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "tolerance": describe_tolerance(self.tolerance),
            "atol": self.tolerance.atol,
            "rtol": self.tolerance.rtol,
            "n": list(self.n_range),
            "min_support": self.min_support,
            "alpha": self.alpha,
            "folds": self.folds,
            "repeats": self.repeats,
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The answer to one question of the study, with the evidence in one sentence.

    Attributes:
        key: Stable identifier (``operators``, ``sequences``, ``operators_predict``,
            ``sequences_predict``, ``tolerance``).
        question: The question in words.
        answer: ``yes``, ``no`` or ``undetermined``.
        evidence: The numbers behind the answer.
    """

    key: str
    question: str
    answer: str
    evidence: str

    def to_dict(self) -> dict[str, str]:
        """Return a JSON-safe dict."""
        return {
            "key": self.key,
            "question": self.question,
            "answer": self.answer,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class HypothesisReport:
    """All results on one corpus (DESIGN.md: hypothesis report)."""

    config: ReportConfig
    corpus: dict[str, Any]
    operators: OperatorsResult
    sequences: SequencesResult
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
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
            "table12": [column.to_dict() for column in self.table12],
            "tolerance_sweep": [row.to_dict() for row in self.tolerance_sweep],
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
        }


def build_report(
    table: StructureTable,
    config: ReportConfig = ReportConfig(),
    *,
    reference: frozenset[Ngram] | None = None,
    reference_info: dict[str, Any] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> HypothesisReport:
    """Run every hypothesis on a corpus.

    Args:
        table: The labelled models (`hypotheses.features.load_corpus`).
        config: What to test and how.
        reference: n-grams of a reference corpus, for Table 12's row ③.
        reference_info: What the reference corpus was (recorded in the report).
        on_stage: Called with the name of each stage (`STAGES`) as it starts, for progress.

    Raises:
        HypothesisInputError: If there are no labelled models, or only one class under the rule.
    """
    started = on_stage or (lambda _: None)
    mismatch = _labels(table, config.tolerance)
    started("operators")
    size_model = fit_adjustment(table, mismatch)
    adjustment = _describe_adjustment(size_model.names, clustered=size_model.clusters is not None)
    operators = operators_hypothesis(
        table.presence.columns(table.presence.lengths == 1),
        mismatch,
        size_model,
        min_support=config.min_support,
        alpha=config.alpha,
    )
    started("sequences")
    sequences = sequences_hypothesis(
        table.presence,
        mismatch,
        size_model,
        n_range=config.n_range,
        min_support=config.min_support,
        alpha=config.alpha,
        adjustment=adjustment,
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
    )
    started("table 12")
    shared = table12(table.presence, mismatch, table.converters, reference=reference)
    return HypothesisReport(
        config=config,
        corpus=_describe_corpus(table, mismatch, reference_info),
        operators=operators,
        sequences=sequences,
        prediction=prediction,
        table12=shared,
        tolerance_sweep=sweep,
        verdicts=_verdicts(operators, sequences, prediction, sweep, config.alpha),
    )


def _describe_adjustment(names: Sequence[str], *, clustered: bool) -> str:
    """Say in words what the adjusted test controls for.

    Examples:
        >>> _describe_adjustment(["log nodes spline 1", "log nodes spline 2"], clustered=True)
        'Rao score test in one logistic regression of mismatch on a 2-df spline of log node \
count; variance robust to clustering by source model'
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
    return text + ("; variance robust to clustering by source model" if clustered else "")


def _labels(table: StructureTable, tolerance: Tolerance) -> np.ndarray:
    if len(table) == 0:
        excluded = ", ".join(f"{k}: {v}" for k, v in sorted(table.excluded.items())) or "none"
        raise HypothesisInputError(
            f"no labelled models: the tests need ok or mismatch rows with a model file "
            f"(excluded rows: {excluded})"
        )
    mismatch = label_mismatches(table.outputs, tolerance)
    if mismatch.all() or not mismatch.any():
        only = "mismatch" if mismatch.all() else "ok"
        raise HypothesisInputError(
            f"all {len(mismatch)} labelled models are {only} under "
            f"{describe_tolerance(tolerance)}; "
            "the tests need both ok and mismatching models (try another --atol)"
        )
    return mismatch


def _describe_corpus(
    table: StructureTable, mismatch: np.ndarray, reference_info: dict[str, Any] | None
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
        "median_nodes": {
            "mismatch": float(np.median(table.nodes[mismatch])),
            "ok": float(np.median(table.nodes[~mismatch])),
        },
        "distinct_operators": int((table.presence.lengths == 1).sum()),
        "distinct_ngrams": int((table.presence.lengths >= 2).sum()),
        "reference": reference_info,
    }


def _verdicts(
    operators: OperatorsResult,
    sequences: SequencesResult,
    prediction: PredictionResult | None,
    sweep: Sequence[SweepRow],
    alpha: float,
) -> tuple[Verdict, ...]:
    verdicts = [_operators_verdict(operators, alpha), _sequences_verdict(sequences, alpha)]
    if prediction is not None:
        verdicts += _prediction_verdicts(prediction, alpha)
    if sweep:
        verdicts.append(_tolerance_verdict(sweep))
    return tuple(verdicts)


def _operators_verdict(operators: OperatorsResult, alpha: float) -> Verdict:
    adjusted = operators.significant_adjusted
    top = ", ".join(t.feature[0] for t in adjusted[:5])
    return Verdict(
        key="operators",
        question="Are particular operators associated with mismatch, beyond model size?",
        answer="yes" if adjusted else "no",
        evidence=(
            f"{len(operators.shared)} of {len(set(operators.mismatch_ops) | set(operators.ok_ops))}"
            f" operators are shared by mismatching and ok models "
            f"({len(operators.mismatch_only)} mismatch-only, {len(operators.ok_only)} ok-only); "
            f"{len(operators.significant)} of {len(operators.tests)} tested are significant at "
            f"q <= {alpha:g} unadjusted, {len(adjusted)} after adjusting for size"
            + (f" ({top})" if top else "")
        ),
    )


def _sequences_verdict(sequences: SequencesResult, alpha: float) -> Verdict:
    adjusted = sequences.significant_adjusted
    top = "; ".join(" > ".join(t.feature) for t in sequences.minimal[:3])
    return Verdict(
        key="sequences",
        question="Are particular operator sequences associated with mismatch, beyond model size?",
        answer="yes" if adjusted else "no",
        evidence=(
            f"{len(sequences.significant)} of {len(sequences.tests)} n-grams tested are "
            f"significant at q <= {alpha:g} unadjusted, {len(adjusted)} after adjusting for size; "
            f"{len(sequences.minimal)} minimal" + (f" (most significant: {top})" if top else "")
        ),
    )


def _prediction_verdicts(prediction: PredictionResult, alpha: float) -> list[Verdict]:
    questions = {
        "operators": (
            "operators_predict",
            "Do operator types predict mismatch beyond model size?",
        ),
        "ngrams": ("sequences_predict", "Do operator sequences add beyond operator types?"),
    }
    verdicts = []
    for larger, (key, question) in questions.items():
        gain = prediction.gain(larger)
        if gain is None:
            verdicts.append(
                Verdict(
                    key=key,
                    question=question,
                    answer="undetermined",
                    evidence=prediction.skipped or "not run",
                )
            )
            continue
        auc_small, auc_large = prediction.auc[gain.smaller], prediction.auc[gain.larger]
        verdicts.append(
            Verdict(
                key=key,
                question=question,
                answer="yes" if gain.gain > 0 and gain.p_value <= alpha else "no",
                evidence=(
                    f"AUC {auc_large.mean:.3f} [{auc_large.ci_low:.3f}, {auc_large.ci_high:.3f}] "
                    f"with {gain.larger} vs {auc_small.mean:.3f} "
                    f"[{auc_small.ci_low:.3f}, {auc_small.ci_high:.3f}] with {gain.smaller}: "
                    f"gain {gain.gain:+.3f} [{gain.ci_low:+.3f}, {gain.ci_high:+.3f}], "
                    f"corrected resampled t, one-sided p = {gain.p_value:.3g}"
                ),
            )
        )
    return verdicts


def _tolerance_verdict(sweep: Sequence[SweepRow]) -> Verdict:
    tested = [row for row in sweep if row.sequences_associated is not None]
    holds = [describe_tolerance(row.tolerance) for row in tested if row.sequences_associated]
    fails = [describe_tolerance(row.tolerance) for row in tested if not row.sequences_associated]
    answer = "undetermined" if not tested else ("no" if holds and fails else "yes")
    return Verdict(
        key="tolerance",
        question="Is the sequences verdict the same at every tolerance of the sweep?",
        answer=answer,
        evidence=(
            f"sequences associated beyond size at {len(holds)} of {len(tested)} rules"
            + (f" ({', '.join(holds)})" if holds else "")
            + (f"; not at {', '.join(fails)}" if fails else "")
            + (
                f"; {len(sweep) - len(tested)} rule(s) leave one class only"
                if len(tested) < len(sweep)
                else ""
            )
        ),
    )
