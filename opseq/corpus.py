"""The corpus manifest: one JSON object per line per conversion test (DESIGN.md: Manifest).

A manifest is append-only while a campaign runs: each finished test is written as one line,
flushed and synced, so a killed campaign loses at most the line being written. Readers tolerate a
truncated last line; writers cut it off before appending. Keys this version does not know are
kept on every row and written back unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from opseq.errors import ConfigError, OpseqError
from opseq.outcomes import Outcome

__all__ = [
    "MANIFEST_NAME",
    "TABLE_OUTCOMES",
    "TABLE_VERDICTS",
    "CorpusError",
    "ManifestRow",
    "ManifestWriter",
    "OutcomeTable",
    "manifest_path",
    "read_manifest",
    "study_mismatch",
    "tabulate_outcomes",
]

MANIFEST_NAME = "manifest.jsonl"
COMPRESSED_SUFFIX = ".gz"
# A compressed manifest inflates in memory; past this it is refused, so a small bomb stays small.
MAX_INFLATED_MANIFEST_BYTES = 2 << 30
_KNOWN_KEYS = (
    "id",
    "model",
    "outcome",
    "converter",
    "source",
    "max_abs_diff",
    "max_rel_diff",
    "error",
)
_REQUIRED_KEYS = ("id", "outcome", "converter", "source")

logger = logging.getLogger(__name__)


class CorpusError(OpseqError, ValueError):
    """A manifest line is not a valid row (other than a truncated last line)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestRow:
    """One conversion test. ``extra`` holds every other key, preserved on rewrite."""

    id: str
    outcome: Outcome
    converter: str
    source: str
    model: str | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of this row: the contract's keys first, then the others."""
        row = {
            "id": self.id,
            "model": self.model,
            "outcome": self.outcome.value,
            "converter": self.converter,
            "source": self.source,
            "max_abs_diff": _contract_float(self.max_abs_diff),
            "max_rel_diff": _contract_float(self.max_rel_diff),
            "error": self.error,
        }
        row.update((k, v) for k, v in self.extra.items() if k not in row)
        return row

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ManifestRow:
        """Parse a row.

        Raises:
            CorpusError: If a required key is missing or the outcome is unknown.
        """
        missing = [key for key in _REQUIRED_KEYS if data.get(key) is None]
        if missing:
            raise CorpusError(f"missing {', '.join(missing)}")
        try:
            outcome = Outcome(data["outcome"])
        except (ValueError, TypeError) as e:
            raise CorpusError(f"unknown outcome {data['outcome']!r}") from e
        if not isinstance(data.get("model"), (str, type(None))):
            raise CorpusError(f"model must be a path or null, got {data['model']!r}")
        return cls(
            id=str(data["id"]),
            outcome=outcome,
            converter=str(data["converter"]),
            source=str(data["source"]),
            model=data.get("model"),
            max_abs_diff=_parse_float(data.get("max_abs_diff"), "max_abs_diff"),
            max_rel_diff=_parse_float(data.get("max_rel_diff"), "max_rel_diff"),
            error=data.get("error"),
            extra={k: v for k, v in data.items() if k not in _KNOWN_KEYS},
        )


def manifest_path(corpus: Path) -> Path:
    """The manifest of a corpus directory (plain, else gzip-compressed), or the file itself."""
    if corpus.is_file() or corpus.name.endswith((".jsonl", COMPRESSED_SUFFIX)):
        return corpus
    plain = corpus / MANIFEST_NAME
    compressed = corpus / (MANIFEST_NAME + COMPRESSED_SUFFIX)
    return compressed if not plain.exists() and compressed.exists() else plain


def is_compressed(path: Path) -> bool:
    """Whether a manifest is stored gzip-compressed (read-only: campaigns append to plain ones)."""
    return path.name.endswith(COMPRESSED_SUFFIX)


def read_manifest(path: Path) -> list[ManifestRow]:
    """Read every row; a truncated last line (a campaign killed mid-write) is skipped.

    Args:
        path: A corpus directory or its manifest file.

    Returns:
        The rows in file order.

    Raises:
        ConfigError: If the manifest does not exist or cannot be read.
        CorpusError: If a complete line is not a valid row (names the line).
    """
    path = manifest_path(path)
    try:
        text = _read_text(path)
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such manifest") from e
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from e
    return list(_parse_lines(path, text))


def _read_text(path: Path) -> str:
    if not is_compressed(path):
        return path.read_text(encoding="utf-8")
    stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = stream.decompress(path.read_bytes(), MAX_INFLATED_MANIFEST_BYTES + 1)
    except zlib.error as e:
        raise CorpusError(f"{path}: not a valid gzip stream ({e})") from None
    if len(data) > MAX_INFLATED_MANIFEST_BYTES:
        raise CorpusError(f"{path}: inflates past {MAX_INFLATED_MANIFEST_BYTES >> 30} GiB")
    if not stream.eof:
        raise CorpusError(f"{path}: gzip stream is truncated")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _parse_lines(path: Path, text: str) -> Iterator[ManifestRow]:
    lines = text.split("\n")
    complete, last = lines[:-1], lines[-1]  # `last` is non-empty only if unterminated
    for number, line in enumerate(complete, start=1):
        if line.strip():
            yield _parse_line(path, number, line)
    if last.strip():
        try:
            yield _parse_line(path, len(complete) + 1, last)
        except CorpusError:
            logger.warning("%s: skipping the truncated last line %d", path, len(complete) + 1)


def _parse_line(path: Path, number: int, line: str) -> ManifestRow:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise CorpusError(f"{path}:{number}: not JSON ({e.msg})") from e
    if not isinstance(data, dict):
        raise CorpusError(f"{path}:{number}: not a JSON object")
    try:
        return ManifestRow.from_dict(data)
    except CorpusError as e:
        raise CorpusError(f"{path}:{number}: {e}") from e


class ManifestWriter:
    """Append rows to a manifest, one synced line each. Use as a context manager.

    Opening cuts off a truncated last line left by a killed campaign, so the next row starts on a
    line of its own; complete rows are never rewritten.
    """

    def __init__(self, path: Path) -> None:
        self.path = manifest_path(path)
        self._stream: IO[str] | None = None

    def __enter__(self) -> ManifestWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _drop_truncated_tail(self.path)
            self._stream = self.path.open("a", encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write {self.path}: {e.strerror or e}") from e
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def append(self, row: ManifestRow) -> None:
        """Write one row and make it durable before returning."""
        if self._stream is None:
            raise RuntimeError("ManifestWriter used outside its with-block")
        self._stream.write(json.dumps(row.to_dict(), allow_nan=False) + "\n")
        self._stream.flush()
        os.fsync(self._stream.fileno())

    def extend(self, rows: Iterable[ManifestRow]) -> None:
        """Append several rows."""
        for row in rows:
            self.append(row)


# The study's Table 11 rows, then the failures it did not have (its harness did not isolate).
TABLE_OUTCOMES = (
    Outcome.CONVERT_FAIL,
    Outcome.LOAD_FAIL,
    Outcome.RUN_FAIL,
    Outcome.MISMATCH,
    Outcome.OK,
    Outcome.TIMEOUT,
    Outcome.CRASH,
    Outcome.GENERATE_FAIL,
)


#: The calibrated verdicts, in the order the extended Table 11 lists them.
TABLE_VERDICTS = ("ok", "numerical", "semantic", "unstable")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeTable:
    """Outcome counts per (converter, source), and the max abs diffs of the run models.

    ``verdicts`` counts the float64-calibrated verdicts of the models that ran, and
    ``study_mismatch`` the models that mismatch under the study's rule (max abs diff >= 1e-7, or
    a shape, dtype or NaN/Inf disagreement), derived from the stored raw numbers.
    """

    groups: tuple[tuple[str, str], ...]
    counts: Mapping[tuple[str, str], Mapping[Outcome, int]]
    max_abs_diffs: Mapping[tuple[str, str], tuple[float, ...]]
    verdicts: Mapping[tuple[str, str], Mapping[str, int]] = field(default_factory=dict)
    study_mismatch: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def total(self, group: tuple[str, str]) -> int:
        """Number of tests in `group`."""
        return sum(self.counts[group].values())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict: one entry per group with counts and diff quantiles."""
        return {
            "schema_version": 1,
            "groups": [
                {
                    "converter": converter,
                    "source": source,
                    "total": self.total((converter, source)),
                    "outcomes": {
                        o.value: self.counts[converter, source].get(o, 0) for o in TABLE_OUTCOMES
                    },
                    "max_abs_diff": _quantiles(self.max_abs_diffs[converter, source]),
                    "verdicts": {
                        v: self.verdicts.get((converter, source), {}).get(v, 0)
                        for v in TABLE_VERDICTS
                    },
                    "study_mismatch": self.study_mismatch.get((converter, source), 0),
                }
                for converter, source in self.groups
            ],
        }


def tabulate_outcomes(rows: Iterable[ManifestRow]) -> OutcomeTable:
    """Count outcomes per (converter, source), groups sorted by name."""
    counts: dict[tuple[str, str], dict[Outcome, int]] = {}
    diffs: dict[tuple[str, str], list[float]] = {}
    verdicts: dict[tuple[str, str], Counter[str]] = {}
    study: Counter[tuple[str, str]] = Counter()
    for row in rows:
        group = (row.converter, row.source)
        per_group = counts.setdefault(group, {})
        per_group[row.outcome] = per_group.get(row.outcome, 0) + 1
        if row.max_abs_diff is not None:
            diffs.setdefault(group, []).append(row.max_abs_diff)
        verdict = row.extra.get("verdict")
        if verdict in TABLE_VERDICTS:
            verdicts.setdefault(group, Counter())[verdict] += 1
        study[group] += bool(study_mismatch(row))
    groups = tuple(sorted(counts))
    return OutcomeTable(
        groups=groups,
        counts=counts,
        max_abs_diffs={g: tuple(sorted(diffs.get(g, ()))) for g in groups},
        verdicts={g: dict(v) for g, v in verdicts.items()},
        study_mismatch=dict(study),
    )


def study_mismatch(row: ManifestRow) -> bool | None:
    """Whether a model that ran mismatches under the study's rule, from its stored numbers.

    None for a row whose model did not run (no numbers to judge).
    """
    if row.outcome not in (Outcome.OK, Outcome.MISMATCH):
        return None
    from opseq.difftest.compare import OutputComparison
    from opseq.tolerance import STUDY_TOLERANCE, is_mismatch

    recorded = row.extra.get("comparisons")
    if isinstance(recorded, list) and recorded:
        with contextlib.suppress(AttributeError, KeyError, TypeError, ValueError):
            comparisons = [OutputComparison.from_dict(c) for c in recorded]
            return is_mismatch(comparisons, STUDY_TOLERANCE)
    # No comparisons: the row-level maximum (null when not finite, which disagrees).
    return row.max_abs_diff is None or row.max_abs_diff >= STUDY_TOLERANCE.atol


def _quantiles(values: tuple[float, ...]) -> dict[str, float | str | None]:
    if not values:
        return {"n": 0, "min": None, "median": None, "max": None}
    return {
        "n": len(values),
        "min": _json_float(values[0]),
        "median": _json_float(values[len(values) // 2]),
        "max": _json_float(values[-1]),
    }


def _drop_truncated_tail(path: Path) -> None:
    if not path.exists():
        return
    with path.open("rb+") as stream:
        data = stream.read()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            logger.warning("%s: removing a truncated last line (%d bytes)", path, len(data) - cut)
            stream.truncate(cut)


def _json_float(value: float | None) -> float | str | None:
    """Finite floats as they are; inf and nan (no JSON for them) as strings, for quantiles."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


def _contract_float(value: float | None) -> float | None:
    """Write a diff column of the contract, "float or null".

    A non-finite difference (a shape or NaN/Inf disagreement) is written as null; the row's
    per-output comparisons say which.
    """
    return value if value is not None and math.isfinite(value) else None


def _parse_float(value: Any, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CorpusError(f"{key} must be a number or null, got {value!r}")
    try:
        return float(value)  # other writers may spell non-finite values "inf"
    except ValueError:
        raise CorpusError(f"{key} must be a number or null, got {value!r}") from None
