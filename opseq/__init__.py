"""opseq: find the operator sequences that make converted deep-learning models misbehave."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
