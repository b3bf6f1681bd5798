"""Import heavy optional dependencies on demand, with an install hint when they are missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from opseq.errors import MissingDependencyError

__all__ = ["import_optional"]


def import_optional(name: str, extra: str) -> ModuleType:
    """Import module `name`, or explain which extra of opseq provides it.

    Args:
        name: Dotted module name, e.g. ``"tf2onnx"``.
        extra: The opseq extra that installs it, e.g. ``"tensorflow"``.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: If the module cannot be imported.
    """
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise MissingDependencyError(
            f"{name} is not installed; install it with: pip install 'opseq[{extra}]'"
        ) from e
