"""The tolerance sweep: relabel the corpus under each rule and see how counts and verdicts move.

A mismatch is a labelling of raw differences (DESIGN.md: Tolerance). At the study's 1e-7 nearly
every float32 conversion "mismatches" from summation order alone; at NNSmith's 1e-3 only real
disagreements remain. The association tests are rerun at every rule, on the same models, with the
same methods as the main report (score or exact test, Tarone's rule, the minimal n-grams given
their parts) and the same yes / no / undetermined rule (`hypotheses.power.answer_for`); the odds
ratios and their intervals, which no count of the sweep uses, are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypotheses.association import fit_adjustment
from hypotheses.features import StructureTable
from hypotheses.labels import Rule, describe_rule, label_rows, rule_kind
from hypotheses.operators import operators_hypothesis
from hypotheses.power import EFFECT_THAT_MATTERS, answer_for
from hypotheses.sequences import sequences_hypothesis

__all__ = ["SweepRow", "tolerance_sweep"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepRow:
    """Counts and test results under one tolerance rule.

    Attributes:
        tolerance: The rule (fixed, element-wise or calibrated).
        mismatch: Models labelled mismatch (semantic, under a calibrated rule).
        ok: Models labelled ok.
        left_out: Models the rule cannot label (unstable, or without calibration).
        operators_significant: Operators with unadjusted q <= alpha.
        operators_significant_adjusted: Operators with size-adjusted q <= alpha.
        ngrams_tested: n-grams tested.
        ngrams_significant: n-grams with unadjusted q <= alpha.
        ngrams_significant_adjusted: n-grams with size-adjusted q <= alpha.
        ngrams_minimal: Minimal significant (adjusted) n-grams.
        top_ngram: The most significant minimal n-gram, if any.
        ngrams_family: n-grams in the Tarone family (that can reach significance).
        ngrams_exact: n-grams tested by the exact test.
        mdor_median: Median minimum detectable odds ratio of the tested n-grams.
        answer: The sequences verdict at this rule (None when not tested).
        note: Why the tests were not run (one class only), else empty.
    """

    tolerance: Rule
    mismatch: int
    ok: int
    left_out: int = 0
    operators_significant: int | None = None
    operators_significant_adjusted: int | None = None
    ngrams_tested: int | None = None
    ngrams_significant: int | None = None
    ngrams_significant_adjusted: int | None = None
    ngrams_minimal: int | None = None
    top_ngram: tuple[str, ...] | None = None
    ngrams_family: int | None = None
    ngrams_exact: int | None = None
    mdor_median: float | None = None
    answer: str | None = None
    note: str = ""

    @property
    def sequences_associated(self) -> bool | None:
        """The sequences verdict at this rule: some n-gram significant after adjustment."""
        if self.ngrams_significant_adjusted is None:
            return None
        return self.ngrams_significant_adjusted > 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "rule": describe_rule(self.tolerance),
            "kind": rule_kind(self.tolerance),
            "atol": getattr(self.tolerance, "atol", None),
            "rtol": getattr(self.tolerance, "rtol", None),
            "mismatch": self.mismatch,
            "ok": self.ok,
            "left_out": self.left_out,
            "operators_significant": self.operators_significant,
            "operators_significant_adjusted": self.operators_significant_adjusted,
            "ngrams_tested": self.ngrams_tested,
            "ngrams_significant": self.ngrams_significant,
            "ngrams_significant_adjusted": self.ngrams_significant_adjusted,
            "ngrams_minimal": self.ngrams_minimal,
            "top_ngram": None if self.top_ngram is None else list(self.top_ngram),
            "sequences_associated": self.sequences_associated,
            "ngrams_family": self.ngrams_family,
            "ngrams_exact": self.ngrams_exact,
            "mdor_median": (
                None
                if self.mdor_median is None or self.mdor_median == float("inf")
                else self.mdor_median
            ),
            "answer": self.answer,
            "note": self.note or None,
        }


def tolerance_sweep(
    table: StructureTable,
    tolerances: Sequence[Rule],
    *,
    n_range: tuple[int, int] = (2, 4),
    min_support: int = 5,
    alpha: float = 0.05,
    effect: float = EFFECT_THAT_MATTERS,
) -> tuple[SweepRow, ...]:
    """Relabel `table` under each rule and rerun the operator and sequence tests.

    A rule under which all models fall in one class gets a row with the counts and a note.
    """
    full = table
    rows = []
    for tolerance in tolerances:
        labels = label_rows(full.outputs, full.calibrations, tolerance)
        table = full if labels.usable.all() else full.subset(labels.usable)
        mismatch = labels.mismatch[labels.usable]
        counts = {
            "mismatch": int(mismatch.sum()),
            "ok": int((~mismatch).sum()),
            "left_out": int((~labels.usable).sum()),
        }
        if min(counts["mismatch"], counts["ok"]) == 0:
            rows.append(SweepRow(tolerance=tolerance, **counts, note="one class only"))
            continue
        operators = table.presence.columns(table.presence.lengths == 1)
        size_model = fit_adjustment(table, mismatch)
        ops = operators_hypothesis(
            operators,
            mismatch,
            size_model,
            min_support=min_support,
            alpha=alpha,
            effect=effect,
            effect_sizes=False,
        )
        seqs = sequences_hypothesis(
            table.presence,
            mismatch,
            size_model,
            n_range=n_range,
            min_support=min_support,
            alpha=alpha,
            operators={t.feature[0] for t in ops.significant_adjusted},
            effect=effect,
            effect_sizes=False,
        )
        family = seqs.family
        assert family is not None
        minimal = [c for c in seqs.conditional if c.minimal]
        rows.append(
            SweepRow(
                tolerance=tolerance,
                **counts,
                operators_significant=len(ops.significant),
                operators_significant_adjusted=len(ops.significant_adjusted),
                ngrams_tested=seqs.tested,
                ngrams_significant=seqs.count(adjusted=False),
                ngrams_significant_adjusted=seqs.count(adjusted=True),
                ngrams_minimal=len(minimal),
                top_ngram=minimal[0].ngram if minimal else None,
                ngrams_family=family.family.size,
                ngrams_exact=int((family.columns["method_adjusted"] == "exact").sum()),
                mdor_median=family.power.median,
                answer=answer_for(seqs.count(adjusted=True), family.family.size, family.power),
            )
        )
    return tuple(rows)
