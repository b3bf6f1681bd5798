"""Issue tables for the opset-evolution hypothesis: one reported converter failure per row.

A CSV with a header: ``created_at`` (required, ISO 8601 date or datetime) and ``cause``
(optional). Every problem with the file is a `HypothesisInputError` naming the file and line.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from hypotheses.errors import HypothesisInputError

__all__ = ["Issue", "read_issues"]

_DATE_EXAMPLE = "e.g. 2021-03-04 or 2021-03-04T10:22:00Z"


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """One reported failure.

    Attributes:
        created_at: The day it was reported (UTC).
        cause: Its cause category, or None when the table gives none.
    """

    created_at: date
    cause: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {"created_at": self.created_at.isoformat(), "cause": self.cause}


def read_issues(path: str | os.PathLike[str]) -> tuple[Issue, ...]:
    """Read an issue table: a CSV with a header, one issue per row.

    Columns: ``created_at`` (required; an ISO 8601 date or datetime, e.g. ``2021-03-04`` or
    ``2021-03-04T10:22:00Z``; datetimes with an offset are converted to UTC) and ``cause``
    (optional free text; empty means no cause). Other columns are ignored; a UTF-8 BOM is fine.

    Args:
        path: The CSV file.

    Returns:
        The issues, in file order.

    Raises:
        HypothesisInputError: The file is missing or unreadable, is not a UTF-8 CSV, has no
            header or no ``created_at`` column, has a row whose date cannot be parsed (the
            message names the line), or has no rows.
    """
    path = Path(path)
    header, rows = _read_csv(path)
    names = [name.strip() for name in header]
    if "created_at" not in names:
        found = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
        raise HypothesisInputError(f"{path}: no 'created_at' column in the header (found {found})")
    date_at = names.index("created_at")
    cause_at = names.index("cause") if "cause" in names else None
    issues = tuple(_row_issue(path, line, row, date_at, cause_at) for line, row in rows)
    if not issues:
        raise HypothesisInputError(f"{path}: no issues (the table has a header but no rows)")
    return issues


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            return _parse_csv(path, stream)
    except FileNotFoundError as e:
        raise HypothesisInputError(f"{path}: no such file") from e
    except UnicodeDecodeError as e:
        raise HypothesisInputError(f"{path}: not a UTF-8 CSV file ({e.reason})") from e
    except OSError as e:
        raise HypothesisInputError(f"{path}: cannot read ({e.strerror or e})") from e


def _parse_csv(path: Path, stream: TextIO) -> tuple[list[str], list[tuple[int, list[str]]]]:
    reader = csv.reader(stream, strict=True)
    try:
        header = next(reader, None)
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except csv.Error as e:
        raise HypothesisInputError(f"{path}:{reader.line_num}: not a valid CSV ({e})") from e
    if header is None or not any(c.strip() for c in header):
        raise HypothesisInputError(
            f"{path}: empty file; expected a CSV header with a 'created_at' column"
        )
    return header, rows


def _row_issue(path: Path, line: int, row: list[str], date_at: int, cause_at: int | None) -> Issue:
    text = row[date_at].strip() if date_at < len(row) else ""
    try:
        created = _parse_day(text)
    except ValueError as e:
        shown = repr(text) if text else "an empty value"
        raise HypothesisInputError(
            f"{path}:{line}: created_at is {shown}, not an ISO 8601 date ({_DATE_EXAMPLE})"
        ) from e
    cause = row[cause_at].strip() if cause_at is not None and cause_at < len(row) else ""
    return Issue(created_at=created, cause=cause or None)


def _parse_day(text: str) -> date:
    """The UTC day of an ISO 8601 date or datetime (a naive datetime is taken as UTC).

    Examples:
        >>> _parse_day("2021-03-04"), _parse_day("2021-03-04T23:30:00-02:00")
        (datetime.date(2021, 3, 4), datetime.date(2021, 3, 5))
    """
    if len(text) == len("2021-03-04"):
        return date.fromisoformat(text)
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.date()
