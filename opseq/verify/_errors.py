"""One-line descriptions of exceptions raised by code opseq does not control."""

from __future__ import annotations

__all__ = ["describe"]


def describe(error: BaseException) -> str:
    r"""``Type: first line of the message``, at most 300 characters.

    Examples:
        >>> describe(ValueError("bad\nmore"))
        'ValueError: bad'
        >>> describe(KeyError())
        'KeyError'
    """
    lines = str(error).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return (f"{type(error).__name__}: {first}" if first else type(error).__name__)[:300]
