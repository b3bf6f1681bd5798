"""Errors raised by the hypothesis tests.

`HypothesisInputError` is an `opseq.errors.OpseqError`: the CLI prints it as one line and exits 2.
"""

from __future__ import annotations

from opseq.errors import OpseqError

__all__ = ["HypothesisInputError"]


class HypothesisInputError(OpseqError, ValueError):
    """A corpus, label set or issue table the tests cannot use (e.g. one outcome class only)."""
