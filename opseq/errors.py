"""Exceptions and warnings raised by opseq.

`OpseqError` and its subclasses describe a problem with the user's input or environment: the CLI
prints them as one line and exits 2. `InternalError` is deliberately not an `OpseqError`: it means
opseq itself is wrong, and the CLI asks for a bug report.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InternalError",
    "InvalidModelError",
    "LimitExceededError",
    "LowCountWarning",
    "MissingDependencyError",
    "ModelLoadError",
    "OpseqError",
    "OpseqWarning",
    "UnsupportedModelError",
]


class OpseqError(Exception):
    """Base class of every error caused by input or environment, not by opseq."""


class ModelLoadError(OpseqError, ValueError):
    """A file is missing, unreadable, or not an ONNX model."""


class InvalidModelError(OpseqError, ValueError):
    """An ONNX model parses but its graph is not valid dataflow (cycle, undefined tensor)."""


class UnsupportedModelError(OpseqError, ValueError):
    """A valid ONNX model that opseq cannot analyse."""


class LimitExceededError(UnsupportedModelError):
    """A model exceeds a resource limit of `opseq.limits.Limits`; the message names the flag."""


class ConfigError(OpseqError, ValueError):
    """An option or configuration value is invalid."""


class MissingDependencyError(OpseqError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class InternalError(Exception):
    """A bug in opseq. Deliberately not an `OpseqError`."""


class OpseqWarning(UserWarning):
    """Base class of opseq's non-fatal warnings."""


class LowCountWarning(OpseqWarning):
    """A statistic rests on too few observations to be trusted."""
