"""The answers a report gives: yes, no, or undetermined, and the numbers behind each.

The rule for a family of association tests (operators, sequences, twin pairs):

* **yes** when some feature is significant (q <= alpha within the Tarone family);
* **no** only when nothing is significant *and* the family could have seen an effect that matters:
  the median minimum detectable odds ratio over the tested features (80% power at alpha / K,
  `hypotheses.power`) is at most `EFFECT_THAT_MATTERS` (OR 3, justified there);
* **undetermined** otherwise: nothing is significant but most features could not have shown even
  OR 3 (too rare, too few source models or discordant pairs), no feature can reach significance
  at all (the Tarone family is empty), or one class is missing.

"No" is a claim about effects, so it needs power; "not significant" alone is not evidence of
absence (Altman & Bland 1995, BMJ 311:485).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hypotheses.association import FamilyTests
from hypotheses.labels import describe_rule
from hypotheses.operators import OperatorsResult
from hypotheses.power import EffectiveUnits, answer_for
from hypotheses.prediction import PredictionResult
from hypotheses.sequences import SequencesResult
from hypotheses.tolerance import SweepRow
from hypotheses.twins import TwinsResult

__all__ = ["QUESTIONS", "Verdict", "answer_for", "one_class_verdicts", "verdicts"]

QUESTIONS = {
    "operators": "Are particular operators associated with mismatch, beyond model size?",
    "sequences": "Are particular operator sequences associated with mismatch, beyond model size?",
    "twins": (
        "Within a source model converted twice, do the n-grams that differ between the two "
        "exports go with the one that mismatches?"
    ),
    "operators_predict": "Do operator types predict mismatch beyond model size?",
    "sequences_predict": "Do operator sequences add beyond operator types?",
    "tolerance": "Is the sequences verdict the same at every tolerance of the sweep?",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """The answer to one question of the study, with the evidence in one sentence.

    Attributes:
        key: Stable identifier (a key of `QUESTIONS`).
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


def verdicts(
    operators: OperatorsResult,
    sequences: SequencesResult,
    twins: TwinsResult,
    prediction: PredictionResult | None,
    sweep: Sequence[SweepRow],
    units: EffectiveUnits,
    alpha: float,
) -> tuple[Verdict, ...]:
    """Every verdict of a report on a corpus with both classes."""
    found = [
        _operators_verdict(operators, units, alpha),
        _sequences_verdict(sequences, units, alpha),
        _twins_verdict(twins, alpha),
    ]
    if prediction is not None:
        found += _prediction_verdicts(prediction, alpha)
    if sweep:
        found.append(_tolerance_verdict(sweep))
    return tuple(found)


def one_class_verdicts(reason: str, *, prediction: bool, sweep: Sequence[SweepRow]) -> tuple:
    """Every verdict undetermined, for a corpus with one class only under the rule."""
    keys = ["operators", "sequences", "twins"]
    if prediction:
        keys += ["operators_predict", "sequences_predict"]
    found = [
        Verdict(key=key, question=QUESTIONS[key], answer="undetermined", evidence=reason)
        for key in keys
    ]
    if sweep:
        found.append(_tolerance_verdict(sweep))
    return tuple(found)


def _power_text(family: FamilyTests, units: EffectiveUnits, what: str) -> str:
    power, tarone = family.power, family.family
    q10, q50, q90 = (_ratio(v) for v in power.quantiles)
    return (
        f"{tarone.size:,} of {len(family):,} {what} can reach significance "
        f"({tarone.excluded:,} left out by Tarone's rule); minimum detectable OR at "
        f"{power.power:.0%} power and per-test alpha {power.per_test_alpha:.2g}: median {q50} "
        f"(10%: {q10}, 90%: {q90}), {power.powered:,} of {power.tested:,} could show OR "
        f"{power.effect:g}; {units.clusters:,} source models ({units.mismatching_clusters:,} "
        f"mismatching, {units.ok_clusters:,} ok), effective sample {units.effective_rows:,.0f} of "
        f"{units.rows:,} conversions (ICC {units.icc:.2f})"
    )


def _operators_verdict(operators: OperatorsResult, units: EffectiveUnits, alpha: float) -> Verdict:
    adjusted = operators.significant_adjusted
    family = operators.family
    assert family is not None
    named = ", ".join(t.feature[0] for t in adjusted)
    return Verdict(
        key="operators",
        question=QUESTIONS["operators"],
        answer=answer_for(len(adjusted), family.family.size, family.power),
        evidence=(
            f"{len(operators.shared)} of {len(set(operators.mismatch_ops) | set(operators.ok_ops))}"
            f" operators are shared by mismatching and ok models "
            f"({len(operators.mismatch_only)} mismatch-only, {len(operators.ok_only)} ok-only); "
            f"{len(operators.significant)} of {len(operators.tests)} tested are significant at "
            f"q <= {alpha:g} unadjusted, {len(adjusted)} after adjusting for size"
            + (f" ({named})" if named else "")
            + "; "
            + _power_text(family, units, "operators")
        ),
    )


def _sequences_verdict(sequences: SequencesResult, units: EffectiveUnits, alpha: float) -> Verdict:
    family = sequences.family
    assert family is not None
    adjusted = sequences.count(adjusted=True)
    top = "; ".join(" > ".join(t.feature) for t in sequences.minimal[:3])
    return Verdict(
        key="sequences",
        question=QUESTIONS["sequences"],
        answer=answer_for(adjusted, family.family.size, family.power),
        evidence=(
            f"{sequences.count(adjusted=False):,} of {sequences.tested:,} n-grams tested are "
            f"significant at q <= {alpha:g} unadjusted, {adjusted:,} after adjusting for size; "
            f"{sequences.minimal_count:,} minimal"
            + (f" (most significant: {top})" if top else "")
            + "; "
            + _power_text(family, units, "n-grams")
        ),
    )


def _twins_verdict(twins: TwinsResult, alpha: float) -> Verdict:
    power = twins.power
    pairs = (
        f"{twins.discordant:,} discordant twin pairs of {twins.pairs:,} "
        f"({twins.concordant_mismatch:,} mismatch in both exports, {twins.concordant_ok:,} in "
        f"neither)"
    )
    if twins.family.size == 0:
        evidence = (
            f"{pairs}: too few for any of the {len(twins.tests):,} n-grams that differ within "
            "them to reach significance"
        )
    else:
        evidence = (
            f"{pairs}; {len(twins.tests):,} n-grams differ within them, {twins.family.size:,} can "
            f"reach significance, {len(twins.significant):,} significant at q <= {alpha:g}; "
            f"minimum detectable OR (80%, alpha {power.per_test_alpha:.2g}): median "
            f"{_ratio(power.median)}, {power.powered:,} could show OR {power.effect:g}"
        )
    return Verdict(
        key="twins",
        question=QUESTIONS["twins"],
        answer=answer_for(len(twins.significant), twins.family.size, power),
        evidence=evidence,
    )


def _prediction_verdicts(prediction: PredictionResult, alpha: float) -> list[Verdict]:
    verdicts_ = []
    for larger, key in (("operators", "operators_predict"), ("ngrams", "sequences_predict")):
        gain = prediction.gain(larger)
        if gain is None:
            verdicts_.append(
                Verdict(
                    key=key,
                    question=QUESTIONS[key],
                    answer="undetermined",
                    evidence=prediction.skipped or "not run",
                )
            )
            continue
        auc_small, auc_large = prediction.auc[gain.smaller], prediction.auc[gain.larger]
        verdicts_.append(
            Verdict(
                key=key,
                question=QUESTIONS[key],
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
    return verdicts_


def _tolerance_verdict(sweep: Sequence[SweepRow]) -> Verdict:
    tested = [row for row in sweep if row.answer is not None]
    by_answer: dict[str, list[str]] = {}
    for row in tested:
        by_answer.setdefault(row.answer or "", []).append(describe_rule(row.tolerance))
    if not tested:
        answer = "undetermined"
    elif "yes" in by_answer and "no" in by_answer:
        answer = "no"
    elif "undetermined" in by_answer:
        answer = "undetermined"
    else:
        answer = "yes"
    parts = [f"{key} at {', '.join(rules)}" for key, rules in sorted(by_answer.items())]
    one_class = len(sweep) - len(tested)
    return Verdict(
        key="tolerance",
        question=QUESTIONS["tolerance"],
        answer=answer,
        evidence=(
            f"sequences verdict over {len(tested)} rules: " + ("; ".join(parts) or "none")
            + (f"; {one_class} rule(s) leave one class only" if one_class else "")
        ),
    )  # fmt: skip


def _ratio(value: float) -> str:
    return "inf" if value == float("inf") else f"{value:.3g}"
