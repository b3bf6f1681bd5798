"""Outcome labels under a tolerance rule, recomputed from the raw differences a corpus stores.

The manifest's ``outcome`` is one labelling of raw differences (DESIGN.md: Tolerance). Relabelling
uses the same rule as the harness (`opseq.difftest.compare.is_mismatch`), output by output, so a
report at the recorded tolerance reproduces the recorded outcomes exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from opseq.difftest.compare import OutputComparison
from opseq.tolerance import Tolerance, is_mismatch

__all__ = ["SWEEP_TOLERANCES", "Tolerance", "describe_tolerance", "label_mismatches"]

#: The absolute tolerances of the sweep: the study's 1e-7 up to 1e-2 (NNSmith uses 1e-3), plus
#: a relative rule: at least 1e-5 absolute *and* 1e-3 relative (torch.testing's float32 scale).
SWEEP_TOLERANCES: tuple[Tolerance, ...] = (
    *(Tolerance(atol=10.0**-k) for k in range(7, 1, -1)),
    Tolerance(atol=1e-5, rtol=1e-3),
)


def label_mismatches(
    outputs: Sequence[Sequence[OutputComparison]], tolerance: Tolerance
) -> np.ndarray:
    """Label each conversion test: True when its outputs mismatch under `tolerance`.

    Args:
        outputs: Per test, the comparison of each output.
        tolerance: The rule.

    Returns:
        A boolean array, one entry per test.
    """
    return np.fromiter(
        (is_mismatch(comparisons, tolerance) for comparisons in outputs),
        dtype=bool,
        count=len(outputs),
    )


def describe_tolerance(tolerance: Tolerance) -> str:
    """A short name of a rule.

    Examples:
        >>> describe_tolerance(Tolerance(atol=1e-7))
        'abs >= 1e-07'
        >>> describe_tolerance(Tolerance(atol=1e-5, rtol=1e-3))
        'abs >= 1e-05 and rel >= 0.001'
    """
    text = f"abs >= {tolerance.atol:g}"
    return text if tolerance.rtol is None else f"{text} and rel >= {tolerance.rtol:g}"
