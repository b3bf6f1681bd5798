"""Findings: deduplicated minimal reproducers, one directory each, and ``finding.json``.

A `Reproducer` is what reducing one manifest row gives (or why it gave nothing). Reproducers with
the same `Signature` are one `Finding`, written by `write_finding` to
``<findings dir>/<slug>/``: the files of one representative reproducer (the smallest; see
`opseq.reduce.bundle`) and ``finding.json`` (`Finding.to_dict`, schema version 1): the signature,
the converter and package versions, the oracle and its numbers, the blame, ``documented`` and
``note`` (left for a human: null and empty until filled, and kept when the finding is written
again), the replay recipe, and the cases it stands for. Writing again adds cases, never drops
one. A directory is replaced whole (built beside it, then renamed), and only if it is a finding.

The numbers, the blame and the script's check come from `opseq.reduce.evidence`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from opseq.errors import ConfigError, OpseqError
from opseq.reduce.evidence import check_script
from opseq.reduce.recipe import Recipe
from opseq.reduce.replay import OracleSpec
from opseq.reduce.signature import Signature

__all__ = [
    "FINDING_FILE",
    "SCHEMA_VERSION",
    "Finding",
    "FindingRefused",
    "Reproducer",
    "read_finding",
    "write_finding",
]

SCHEMA_VERSION = 1
FINDING_FILE = "finding.json"
_MARKER = "opseq finding"


class FindingRefused(OpseqError):
    """A finding cannot be written where asked (not a finding directory, or not writable)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reproducer:
    """What reducing one manifest row gave.

    Attributes:
        row_id: The row.
        status: ``reduced`` (a synthetic graph, shrunk), ``own`` (its own reproducer: not a
            synthetic graph), ``not-reproduced`` (the replay is not semantic), ``failed``
            (the reduction could not run; `reason` says why).
        reason: Why there is no reproducer, or a note on it.
        source: The row's source.
        case: The row's case id.
        converter: The row's converter.
        signature: The minimal reproducer's signature.
        recipe: How to rebuild it.
        oracle: The oracle it was judged under.
        numbers: `oracle_numbers` of the minimal reproducer.
        blame: `finding_blame`.
        reduction: Tests, seconds, why it stopped, the steps, nodes before and after.
        versions: `installed_versions` plus the oracle's.
        staged: The directory holding its files (`opseq.reduce.bundle`).
        files: `StagedFiles.to_dict`.
    """

    row_id: str
    status: str
    reason: str | None = None
    source: str = ""
    case: str = ""
    converter: str = ""
    signature: Signature | None = None
    recipe: Recipe | None = None
    oracle: OracleSpec | None = None
    numbers: Mapping[str, Any] = field(default_factory=dict)
    blame: str | None = None
    reduction: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)
    staged: str | None = None
    files: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_reproducer(self) -> bool:
        """Whether files and a signature were produced."""
        return self.status in ("reduced", "own") and self.signature is not None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "row_id": self.row_id,
            "status": self.status,
            "reason": self.reason,
            "source": self.source,
            "case": self.case,
            "converter": self.converter,
            "signature": None if self.signature is None else self.signature.to_dict(),
            "recipe": None if self.recipe is None else self.recipe.to_dict(),
            "oracle": None if self.oracle is None else self.oracle.to_dict(),
            "numbers": dict(self.numbers),
            "blame": self.blame,
            "reduction": dict(self.reduction),
            "versions": dict(self.versions),
            "staged": self.staged,
            "files": dict(self.files),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reproducer:
        """Build a reproducer from `to_dict` output."""
        return cls(
            row_id=str(data["row_id"]),
            status=str(data["status"]),
            reason=data.get("reason"),
            source=str(data.get("source", "")),
            case=str(data.get("case", "")),
            converter=str(data.get("converter", "")),
            signature=_maybe(Signature.from_dict, data.get("signature")),
            recipe=_maybe(Recipe.from_dict, data.get("recipe")),
            oracle=_maybe(OracleSpec.from_dict, data.get("oracle")),
            numbers=dict(data.get("numbers") or {}),
            blame=data.get("blame"),
            reduction=dict(data.get("reduction") or {}),
            versions=dict(data.get("versions") or {}),
            staged=data.get("staged"),
            files=dict(data.get("files") or {}),
        )


def _maybe(parse, value):
    return None if value is None else parse(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One deduplicated finding: ``finding.json`` (module docstring)."""

    slug: str
    signature: Signature
    converter: str
    versions: Mapping[str, str]
    oracle: OracleSpec
    numbers: Mapping[str, Any]
    blame: str
    recipe: Recipe
    cases: tuple[str, ...]
    reduction: Mapping[str, Any] = field(default_factory=dict)
    reproduce: Mapping[str, Any] = field(default_factory=dict)
    script_check: Mapping[str, Any] | None = None
    documented: Any = None
    note: str = ""

    @property
    def count(self) -> int:
        """How many cases the finding stands for."""
        return len(self.cases)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of ``finding.json``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": _MARKER,
            "slug": self.slug,
            "signature": self.signature.to_dict(),
            "signature_digest": self.signature.digest(),
            "behaviour_digest": self.signature.behaviour_digest(),
            "converter": self.converter,
            "versions": dict(self.versions),
            "oracle": self.oracle.to_dict(),
            "numbers": dict(self.numbers),
            "blame": self.blame,
            "documented": self.documented,
            "note": self.note,
            "recipe": self.recipe.to_dict(),
            "count": self.count,
            "cases": list(self.cases),
            "reduction": dict(self.reduction),
            "reproduce": dict(self.reproduce),
            "script_check": None if self.script_check is None else dict(self.script_check),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Build a finding from ``finding.json``.

        Raises:
            ConfigError: If it is not a finding of a schema this version reads.
        """
        if not isinstance(data, Mapping) or data.get("tool") != _MARKER:
            raise ConfigError("not an opseq finding.json")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"finding schema {data.get('schema_version')!r} is not supported")
        try:
            return cls(
                slug=str(data["slug"]),
                signature=Signature.from_dict(data["signature"]),
                converter=str(data["converter"]),
                versions=dict(data.get("versions") or {}),
                oracle=OracleSpec.from_dict(data["oracle"]),
                numbers=dict(data.get("numbers") or {}),
                blame=str(data.get("blame") or "unknown"),
                recipe=Recipe.from_dict(data["recipe"]),
                cases=tuple(str(c) for c in data.get("cases", ())),
                reduction=dict(data.get("reduction") or {}),
                reproduce=dict(data.get("reproduce") or {}),
                script_check=data.get("script_check"),
                documented=data.get("documented"),
                note=str(data.get("note") or ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"malformed finding.json: {type(e).__name__}: {e}") from e


def read_finding(directory: Path) -> Finding:
    """Read ``<directory>/finding.json``.

    Raises:
        ConfigError: If it is missing, unreadable or malformed.
    """
    path = directory / FINDING_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no such file") from e
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    try:
        return Finding.from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e


def write_finding(
    findings_dir: Path, group: Sequence[Reproducer], *, check: bool = True
) -> Finding:
    """Write (or update) the finding that the reproducers of `group` share.

    Args:
        findings_dir: The ledger directory.
        group: Reproducers with one signature, in row order; the smallest is kept.
        check: Run ``reproduce.py`` once and record how it ended (``script_check``).

    Returns:
        The finding as written.

    Raises:
        FindingRefused: If the target exists and is not a finding, or cannot be written.
    """
    representative = min(group, key=lambda r: (r.reduction.get("nodes_after") or 0, group.index(r)))
    signature = representative.signature
    if signature is None or representative.recipe is None or representative.oracle is None:
        raise ValueError("write_finding needs reproducers with files")
    target = findings_dir / signature.slug()
    previous = _previous(target)
    cases = tuple(
        dict.fromkeys([*(previous.cases if previous else ()), *(r.row_id for r in group)])
    )
    finding = Finding(
        slug=signature.slug(),
        signature=signature,
        converter=representative.converter,
        versions=dict(representative.versions),
        oracle=representative.oracle,
        numbers=dict(representative.numbers),
        blame=representative.blame or "unknown",
        recipe=representative.recipe,
        cases=cases,
        reduction={**representative.reduction, "representative": representative.row_id},
        reproduce={"script": "reproduce.py", **representative.files},
        documented=None if previous is None else previous.documented,
        note="" if previous is None else previous.note,
    )
    _install(target, Path(representative.staged or ""), finding)
    if check:
        finding = replace(finding, script_check=check_script(target))
        _write_json(target / FINDING_FILE, finding.to_dict())
    return finding


def _previous(target: Path) -> Finding | None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise FindingRefused(f"{target} exists and is not a directory")
    if not target.exists() or not any(target.iterdir()):
        return None
    try:
        return read_finding(target)
    except ConfigError as e:
        raise FindingRefused(f"{target} exists and is not a finding ({e}); not replacing it") from e


def _install(target: Path, staged: Path, finding: Finding) -> None:
    """Copy the staged files and ``finding.json`` beside `target`, then rename into place."""
    try:
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                        dir=target.parent))  # fmt: skip
        shutil.copytree(staged, partial, dirs_exist_ok=True)
        _write_json(partial / FINDING_FILE, finding.to_dict())
        if target.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old / "finding")
            os.replace(partial, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, target)
    except OSError as e:
        raise FindingRefused(f"cannot write {target}: {e.strerror or e}") from e


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, path)
