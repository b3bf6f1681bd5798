"""The operators hypothesis: do mismatching models use operators that ok models do not?

The study compared operator sets ("all but 1-2 operators are shared"); this module reports the
same sets and adds, per operator, the association tests of `hypotheses.association` (null
hypothesis: given size and converter, using the operator does not change the chance of a mismatch;
one-sided alternative: it raises it), with the family's power to see an effect that matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hypotheses.association import AssociationTest, FamilyTests, association_tests, significant
from hypotheses.features import PresenceMatrix
from hypotheses.power import EFFECT_THAT_MATTERS
from hypotheses.stats import SizeModel

__all__ = ["OperatorsResult", "operators_hypothesis"]


@dataclass(frozen=True, eq=False, kw_only=True)
class OperatorsResult:
    """Operator sets by class and one association test per operator.

    Attributes:
        mismatch_ops: Operators used by at least one mismatching model.
        ok_ops: Operators used by at least one ok model.
        tests: One test per operator used by at least ``min_support`` models but not all, most
            significant first.
        untestable: Operators in every model (no contrast to test).
        alpha: The false discovery rate the verdicts use.
        family: The tests with the family's multiplicity and power (None when not tested).
        skipped: Why nothing was tested (one class only), else empty.
    """

    mismatch_ops: tuple[str, ...]
    ok_ops: tuple[str, ...]
    tests: tuple[AssociationTest, ...]
    untestable: tuple[str, ...]
    alpha: float
    family: FamilyTests | None = None
    skipped: str = ""

    @property
    def shared(self) -> tuple[str, ...]:
        """Operators used by both classes."""
        return tuple(sorted(set(self.mismatch_ops) & set(self.ok_ops)))

    @property
    def mismatch_only(self) -> tuple[str, ...]:
        """Operators used only by mismatching models."""
        return tuple(sorted(set(self.mismatch_ops) - set(self.ok_ops)))

    @property
    def ok_only(self) -> tuple[str, ...]:
        """Operators used only by ok models."""
        return tuple(sorted(set(self.ok_ops) - set(self.mismatch_ops)))

    @property
    def significant(self) -> tuple[AssociationTest, ...]:
        """Operators with q <= alpha, unadjusted."""
        return significant(self.tests, self.alpha, adjusted=False)

    @property
    def significant_adjusted(self) -> tuple[AssociationTest, ...]:
        """Operators with q <= alpha after adjusting for size."""
        return significant(self.tests, self.alpha, adjusted=True)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (DESIGN.md: hypothesis report, ``operators``)."""
        return {
            "sets": {
                "mismatch": len(self.mismatch_ops),
                "ok": len(self.ok_ops),
                "shared": len(self.shared),
                "mismatch_only": list(self.mismatch_only),
                "ok_only": list(self.ok_only),
            },
            "untestable": list(self.untestable),
            "skipped": self.skipped or None,
            "significant": len(self.significant),
            "significant_adjusted": len(self.significant_adjusted),
            "tarone": None if self.family is None else self.family.family.to_dict(),
            "power": None if self.family is None else self.family.power.to_dict(),
            "tests": [t.to_dict("op") for t in self.tests],
        }


def operators_hypothesis(
    operators: PresenceMatrix,
    mismatch: np.ndarray,
    size_model: SizeModel,
    *,
    min_support: int = 1,
    alpha: float = 0.05,
    effect: float = EFFECT_THAT_MATTERS,
    effect_sizes: bool = True,
) -> OperatorsResult:
    """Compare the operator sets of mismatching and ok models and test each operator.

    Args:
        operators: Presence of each operator (1-gram columns) in each model.
        mismatch: Label of each model.
        size_model: Null model for the size-adjusted test.
        min_support: Fewest models an operator must occur in to be tested.
        alpha: False discovery rate for the significance counts.
        effect: The odds ratio that matters (power summary).
        effect_sizes: Compute odds ratios and CIs (the sweep does without).
    """
    support = operators.support
    mismatch_support = np.asarray(operators.matrix.T @ mismatch.astype(np.int64)).ravel()
    ok_support = support - mismatch_support
    labels = [name[0] for name in operators.names]
    family = association_tests(
        operators.testable((1, 1), min_support),
        mismatch,
        size_model,
        alpha=alpha,
        effect=effect,
        effect_sizes=effect_sizes,
    )
    return OperatorsResult(
        mismatch_ops=tuple(op for op, k in zip(labels, mismatch_support, strict=True) if k > 0),
        ok_ops=tuple(op for op, k in zip(labels, ok_support, strict=True) if k > 0),
        tests=family.ranked,
        untestable=tuple(
            op for op, k in zip(labels, support, strict=True) if k == operators.matrix.shape[0]
        ),
        alpha=alpha,
        family=family,
    )
