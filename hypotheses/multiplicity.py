"""Multiple testing of discrete tests: Tarone's rule, then Benjamini-Hochberg on what is left.

An exact test of a rare feature has a smallest attainable p-value (all its carriers mismatch,
say): an n-gram in 3 of 13 mismatching source models can never reach p = 1e-5 whatever its effect.
Counting such features in the family only makes the correction stricter for the others. Tarone
(1990, Biometrics 46:515) leaves them out: with K the smallest integer such that at most K
features have a minimum attainable p-value <= alpha / K, only those m(K) <= K features can be
rejected at level alpha / K, so testing them alone keeps the family-wise error rate. Gilbert (2005,
Applied Statistics 54:143) applies the same screen before Benjamini-Hochberg, which then controls
the false discovery rate over the whole family (the screened-out features cannot be discovered).

Null hypothesis of each feature: no association with mismatch (given what the test conditions
on); the screen uses only the margins, never the observed association, so it costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hypotheses.stats import benjamini_hochberg

__all__ = ["TaroneFamily", "tarone_bh", "tarone_family"]


@dataclass(frozen=True, eq=False, kw_only=True)
class TaroneFamily:
    """Which features can reach significance, and the level that defines them.

    Attributes:
        k: Tarone's K (0 when nothing was tested).
        testable: Per feature, True when its minimum attainable p-value is <= alpha / K.
        alpha: The error rate of the family.
    """

    k: int
    testable: np.ndarray
    alpha: float

    @property
    def size(self) -> int:
        """Features left in the family, m(K)."""
        return int(self.testable.sum())

    @property
    def excluded(self) -> int:
        """Features that cannot reach significance at any effect size."""
        return int(len(self.testable) - self.testable.sum())

    @property
    def per_test_alpha(self) -> float:
        """Alpha / K: the level a lone effect must reach (BH's first step is Bonferroni's)."""
        return self.alpha / max(self.k, 1)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "k": self.k,
            "family": self.size,
            "excluded": self.excluded,
            "per_test_alpha": self.per_test_alpha,
        }


def tarone_family(min_p: np.ndarray, alpha: float) -> TaroneFamily:
    """Tarone's K and the features it keeps, from each feature's minimum attainable p-value.

    Examples:
        >>> f = tarone_family(np.array([1e-6, 1e-3, 0.02, 0.3, 0.6]), 0.05)
        >>> f.k, f.testable.tolist()  # K = 3: 2 minimum p-values <= 0.05 / 3
        (3, [True, True, False, False, False])
    """
    min_p = np.asarray(min_p, dtype=float)
    if min_p.size == 0:
        return TaroneFamily(k=0, testable=np.zeros(0, dtype=bool), alpha=alpha)
    ordered = np.sort(min_p)
    candidates = np.arange(1, len(min_p) + 1)
    # m(K) as K grows: how many minimum p-values are at most alpha / K (with a relative slack
    # for floating point); the first K with m(K) <= K always exists since m(M) <= M.
    counts = np.searchsorted(ordered, alpha / candidates * (1 + 1e-12), side="right")
    k = int(candidates[np.argmax(counts <= candidates)])
    return TaroneFamily(k=k, testable=min_p <= alpha / k * (1 + 1e-12), alpha=alpha)


def tarone_bh(p_values: np.ndarray, family: TaroneFamily) -> np.ndarray:
    """Benjamini-Hochberg q-values within the Tarone family; 1 for the features outside it."""
    q = np.ones(len(p_values))
    if family.testable.any():
        q[family.testable] = benjamini_hochberg(np.asarray(p_values)[family.testable])
    return q
