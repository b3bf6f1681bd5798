"""Values of a gate policy, validated the same way from a file and from the command line.

Each ``check_*`` function takes a parsed value (a TOML value, or a converted option) and returns
it typed, or raises `InvalidValue` saying what was expected; the caller adds where the value came
from (the file, table and key, or the flag). The allowlist's entries are checked here too: an
n-gram is 2..4 labels, ``"A>B>C"`` or a list; an op is a label or ``domain:op@version``; a label
is an ONNX op type identifier, optionally ``domain:``-prefixed; every entry has a reason.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from opseq.untrusted import escape_controls

__all__ = [
    "NGRAM_LENGTHS",
    "REQUIREMENTS",
    "AllowEntry",
    "InvalidValue",
    "check_allow",
    "check_count",
    "check_ngram_length",
    "check_path_text",
    "check_ratio",
    "check_requirements",
    "quote",
    "string_list",
    "suggestion",
    "type_name",
]

REQUIREMENTS = ("valid", "runnable", "behaves")
NGRAM_LENGTHS = (2, 3, 4)

_DEFAULT_DOMAIN_PREFIX = "ai.onnx:"
_OP_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOMAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_VERSION = re.compile(r"[0-9]+|\?")
_QUOTED_MAX = 60  # characters of a quoted value in an error line
_ENTRY_KEYS = ("ngram", "op", "reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class AllowEntry:
    """One allowlisted item: accepted on purpose, with the reason a reviewer gave.

    ``kind`` is ``"ngram"`` (``item`` holds its 2..4 labels) or ``"op"`` (``item`` holds one
    label, ``com.microsoft:FusedMatMul``, or one versioned op, ``ai.onnx:Conv@11``). Labels in
    the default domain are written bare (``ai.onnx:Relu`` is stored as ``Relu``) and a versioned
    op always with its domain (``Conv@11`` is stored as ``ai.onnx:Conv@11``), as the gate's
    reports write them.
    """

    kind: str
    item: tuple[str, ...]
    reason: str

    @property
    def text(self) -> str:
        """The item as the gate's reports write it (an n-gram as ``A>B>C``)."""
        return ">".join(self.item)

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {"kind": self.kind, "item": list(self.item), "reason": self.reason}


class InvalidValue(Exception):
    """A value is wrong; the caller adds the file, table and key (``at`` refines the key)."""

    def __init__(self, message: str, at: str = "") -> None:
        super().__init__(message)
        self.at = at


def quote(value: object) -> str:
    """`value` for an error line: controls escaped, cut to a readable length, strings quoted."""
    # Values are shown as TOML spells them: true, not True.
    text = escape_controls(str(value).lower() if isinstance(value, bool) else str(value))
    if len(text) > _QUOTED_MAX:
        text = text[: _QUOTED_MAX - 3] + "..."
    return repr(text) if isinstance(value, str) else text


def type_name(value: object) -> str:
    """The TOML name of a value's type, with its article (``a string``)."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names |= {list: "an array", dict: "a table"}
    return names.get(type(value), f"a {type(value).__name__}")


def check_ratio(value: object) -> float:
    """A share in [0, 1]; integers are accepted, booleans and nan are not."""
    # bool is an int in Python, but `true` is not a share of anything.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"expected a number in [0, 1], got {type_name(value)} {quote(value)}")
    if not 0 <= value <= 1:  # also refuses nan
        raise InvalidValue(f"expected a number in [0, 1], got {quote(value)}")
    return float(value)


def check_count(value: object) -> int:
    """A whole number >= 0 (not a float, not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"expected a whole number >= 0, got {type_name(value)} {quote(value)}")
    if value < 0:
        raise InvalidValue(f"expected a whole number >= 0, got {value}")
    return value


def check_ngram_length(value: object) -> int:
    """An n-gram length the gate measures: 2, 3 or 4."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in NGRAM_LENGTHS:
        raise InvalidValue(f"expected 2, 3 or 4 (the n-gram length), got {quote(value)}")
    return value


def check_requirements(names: list[str]) -> frozenset[str]:
    """Names of checks, each one of `REQUIREMENTS`."""
    for name in names:
        if name not in REQUIREMENTS:
            raise InvalidValue(
                f"unknown check {quote(name)}{suggestion(name, REQUIREMENTS)}; the checks are "
                f"{', '.join(REQUIREMENTS)}"
            )
    return frozenset(names)


def suggestion(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of `choices`, or the empty string."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def string_list(value: object, example: str) -> list[str]:
    """An array of non-empty strings; `example` shows the expected form in the error."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidValue(f"expected an array of strings, e.g. {example}, got {type_name(value)}")
    for index, item in enumerate(value):
        if not item.strip():
            raise InvalidValue(f"entry {index} is empty")
    return value


# --- the allowlist ----------------------------------------------------------------------------


def _check_label(text: str, what: str) -> str:
    """A label: ``OpType`` or ``domain:OpType``; ``ai.onnx:`` is dropped, as labels write it."""
    if not text:
        raise InvalidValue(f"{what} is empty")
    domain, sep, op_type = text.rpartition(":")
    valid = _OP_TYPE.fullmatch(op_type) and (not sep or _DOMAIN.fullmatch(domain))
    if not valid:
        raise InvalidValue(
            f"{what} {quote(text)} is not an op label (an ONNX op type such as 'Conv', "
            "optionally with its domain, 'com.microsoft:FusedMatMul')"
        )
    return op_type if domain == "ai.onnx" else text


def _check_op(text: object) -> tuple[str, ...]:
    if not isinstance(text, str):
        raise InvalidValue(f"op: expected a string, got {type_name(text)}")
    label, at, version = text.partition("@")
    if not at:
        return (_check_label(label, "op"),)
    if not _VERSION.fullmatch(version):
        raise InvalidValue(f"op {quote(text)}: the version after '@' must be a whole number or '?'")
    label = _check_label(label, "op")
    # The profile writes every versioned op with its domain, the default one as ai.onnx.
    domain = "" if ":" in label else _DEFAULT_DOMAIN_PREFIX
    return (f"{domain}{label}@{version}",)


def _check_ngram(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        labels = value.split(">")
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        labels = value
    else:
        raise InvalidValue(f"ngram: expected 'A>B>C' or an array of labels, got {type_name(value)}")
    if not NGRAM_LENGTHS[0] <= len(labels) <= NGRAM_LENGTHS[-1]:
        plural = "" if len(labels) == 1 else "s"
        raise InvalidValue(
            f"ngram {quote(_shown(value))}: has {len(labels)} label{plural}, expected 2..4"
        )
    return tuple(
        _check_label(label, f"ngram {quote(_shown(value))}: label {i}")
        for i, label in enumerate(labels, start=1)
    )


def _shown(value: str | list[str]) -> str:
    return value if isinstance(value, str) else ">".join(value)


def _check_allow_entry(entry: object) -> AllowEntry:
    if not isinstance(entry, dict):
        raise InvalidValue(
            f"expected a table {{ngram = ..., reason = ...}}, got {type_name(entry)}"
        )
    for key in entry:
        if key not in _ENTRY_KEYS:
            raise InvalidValue(
                f"unknown key {quote(key)}{suggestion(key, _ENTRY_KEYS)}; an entry has ngram "
                "or op, and reason"
            )
    kinds = [kind for kind in ("ngram", "op") if kind in entry]
    if len(kinds) != 1:
        raise InvalidValue("an entry names exactly one of ngram or op")
    kind = kinds[0]
    item = _check_ngram(entry[kind]) if kind == "ngram" else _check_op(entry[kind])
    return AllowEntry(kind=kind, item=item, reason=_check_reason(entry.get("reason")))


def _check_reason(reason: object) -> str:
    if reason is None:
        raise InvalidValue("needs a reason: why the item is accepted")
    if not isinstance(reason, str):
        raise InvalidValue(f"reason: expected a string, got {type_name(reason)}")
    if not reason.strip():
        raise InvalidValue("reason is empty; say why the item is accepted")
    return reason.strip()


def check_allow(value: object) -> tuple[AllowEntry, ...]:
    """The allowlist: an array of entries, each named by its index (``at``) when invalid."""
    if not isinstance(value, list):
        raise InvalidValue(f"expected an array of tables, got {type_name(value)}")
    entries: list[AllowEntry] = []
    seen: dict[tuple[str, tuple[str, ...]], int] = {}
    for index, raw in enumerate(value):
        try:
            entry = _check_allow_entry(raw)
        except InvalidValue as e:
            raise InvalidValue(str(e), at=f"[{index}]") from None
        first = seen.setdefault((entry.kind, entry.item), index)
        if first != index:
            raise InvalidValue(
                f"{entry.text} is already allowed by allow[{first}]", at=f"[{index}]"
            )
        entries.append(entry)
    return tuple(entries)


def check_path_text(value: object) -> str:
    """A non-empty path string."""
    if not isinstance(value, str):
        raise InvalidValue(f"expected a path (a string), got {type_name(value)}")
    if not value.strip():
        raise InvalidValue("the path is empty")
    return value
