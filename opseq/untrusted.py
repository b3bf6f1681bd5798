r"""Strings from untrusted models: decoded without failing, printed without control characters.

Protobuf hands back ``bytes`` instead of ``str`` for a string field that is not valid UTF-8, so
every string opseq reads from a model goes through `decode_text`. Invalid bytes become backslash
escapes (``b"p\xf2torch"`` becomes the text ``p\xf2torch``), which keeps two distinct tensor
names distinct (U+FFFD would merge them and turn a valid graph into an invalid one).

Every string opseq prints (text reports, error lines, log records) goes through
`escape_controls`, so a producer name cannot clear the screen, move the cursor, reverse the text
direction or forge an ``opseq: error:`` line: one line stays one line. JSON output needs no
escaping here; the json module already escapes control characters.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["decode_text", "decode_texts", "escape_controls", "escape_lines"]

# C0 controls, DEL and C1 controls, plus the format characters that reorder or hide text
# (bidirectional embeddings, overrides and isolates; line and paragraph separators; BOM).
_UNSAFE = (
    *range(0x00, 0x20),
    *range(0x7F, 0xA0),
    *(0x200E, 0x200F, 0x2028, 0x2029, 0xFEFF),
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)
_ESCAPES = {code: (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}") for code in _UNSAFE}


def decode_text(value: str | bytes) -> str:
    r"""Return `value` as text; invalid UTF-8 becomes backslash escapes.

    Examples:
        >>> decode_text(b"p\xf2torch")
        'p\\xf2torch'
        >>> decode_text("Relu")
        'Relu'
    """
    if type(value) is str:
        return value
    return bytes(value).decode("utf-8", errors="backslashreplace")


def decode_texts(values: Iterable[str | bytes]) -> tuple[str, ...]:
    """Decode every item of a repeated string field (see `decode_text`)."""
    items = tuple(values)
    try:
        "".join(items)  # type: ignore[arg-type]  # fails fast on bytes; 10x quicker than a loop
    except TypeError:
        return tuple(decode_text(item) for item in items)
    return items  # type: ignore[return-value]


def escape_controls(text: str) -> str:
    r"""Escape control and direction-changing characters so that `text` prints as one safe line.

    Examples:
        >>> escape_controls("a\nopseq: error: forged\x1b[2J")
        'a\\x0aopseq: error: forged\\x1b[2J'
        >>> escape_controls("Conv > Relu")
        'Conv > Relu'
    """
    return text.translate(_ESCAPES)


def escape_lines(text: str) -> str:
    r"""Escape each line of a multi-line text (a traceback), keeping its line breaks.

    Examples:
        >>> escape_lines("Traceback:\n  a\x1b[2J\n")
        'Traceback:\n  a\\x1b[2J\n'
    """
    return "\n".join(escape_controls(line) for line in text.split("\n"))
