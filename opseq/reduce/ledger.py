"""The findings ledger: a directory of findings, its table, and its replay under today's versions.

`replay` rebuilds every finding's case from its recipe (a minimal synthetic graph, or a source
case), judges it again under the finding's oracle in an isolated worker, and says per finding:
``reproduces``, ``stopped`` (no longer semantic: the versions then and now are reported, so a
fix shows which upgrade brought it), or ``cannot-replay`` (why). No finding is ever dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opseq.difftest.campaign import WORKER_ENVIRONMENT, default_memory_cap
from opseq.difftest.isolate import Limits, TaskStatus, WorkerPool
from opseq.errors import ConfigError, OpseqError
from opseq.reduce.evidence import installed_versions
from opseq.reduce.finding import FINDING_FILE, Finding, read_finding
from opseq.reduce.replay import judge, resolve_converter
from opseq.sources import get_source
from opseq.tolerance import Verdict
from opseq.untrusted import escape_controls

__all__ = [
    "CANNOT_REPLAY",
    "REPRODUCES",
    "STOPPED",
    "LedgerEntry",
    "ReplayVerdict",
    "findings_table",
    "format_findings",
    "read_ledger",
    "replay",
    "replay_task",
]

logger = logging.getLogger(__name__)

REPRODUCES, STOPPED, CANNOT_REPLAY = "reproduces", "stopped", "cannot-replay"
_WORKER_TARGET = "opseq.reduce.ledger:replay_task"


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerEntry:
    """One directory of the ledger: its finding, or why it cannot be read."""

    directory: Path
    finding: Finding | None = None
    error: str | None = None


def read_ledger(directory: Path) -> list[LedgerEntry]:
    """Every finding directory under `directory` (those holding ``finding.json``), by name.

    Raises:
        ConfigError: If `directory` is not a readable directory.
    """
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a findings directory")
    try:
        children = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
    except OSError as e:
        raise ConfigError(f"{directory}: cannot read ({e.strerror or e})") from e
    entries = []
    for child in children:
        if not (child.is_dir() and (child / FINDING_FILE).is_file()):
            continue
        try:
            entries.append(LedgerEntry(directory=child, finding=read_finding(child)))
        except ConfigError as e:
            entries.append(LedgerEntry(directory=child, error=str(e)))
    return entries


def format_findings(findings: Sequence[Finding]) -> str:
    """A text table of findings: slug, converter, ops, cases, blame, how the script ended."""
    if not findings:
        return "no findings\n"
    rows = [("finding", "converter", "ops", "cases", "blame", "script")]
    for f in findings:
        ops = " -> ".join(f.signature.labels)
        ops = ops if len(ops) <= 48 else ops[:45] + "..."
        check = f.script_check or {}
        script = check.get("status", "not run")
        if check.get("status") == "fails":
            script += f": {check.get('line', '')}"[:80]
        rows.append((f.slug, f.converter, ops, str(f.count), f.blame, script))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip()
        for r in rows
    ]
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.signature.behaviour_digest(), []).append(f)
    shared = [g for g in groups.values() if len({f.converter for f in g}) > 1]
    if shared:
        lines += ["", "the same behaviour through several converters:"]
        for group in shared:
            first = group[0].signature
            what = f"{' -> '.join(first.labels)} [{', '.join(first.input_dtypes)}]"
            lines.append(f"  {what}: " + ", ".join(f"{f.slug} ({f.converter})" for f in group))
    return escape_controls_lines(lines)


def escape_controls_lines(lines: Sequence[str]) -> str:
    """Join lines, each with control characters escaped (names come from manifests)."""
    return "".join(escape_controls(line) + "\n" for line in lines)


def findings_table(directory: Path) -> str:
    """The table of the findings under `directory` (`format_findings`), unreadable ones named.

    Raises:
        ConfigError: If `directory` is not a readable directory.
    """
    entries = read_ledger(directory)
    table = format_findings([e.finding for e in entries if e.finding is not None])
    broken = [f"unreadable: {e.directory.name}: {e.error}" for e in entries if e.error]
    return table + escape_controls_lines(broken)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayVerdict:
    """What replaying one finding gave.

    Attributes:
        slug: The finding's directory name.
        status: ``reproduces``, ``stopped`` or ``cannot-replay``.
        reason: Why it stopped or cannot be replayed.
        verdict: The replay's verdict, when it ran.
        versions_then: The versions recorded in the finding.
        versions_now: The versions it was replayed with.
    """

    slug: str
    status: str
    reason: str | None = None
    verdict: str | None = None
    versions_then: Mapping[str, str] = field(default_factory=dict)
    versions_now: Mapping[str, str] = field(default_factory=dict)

    def changed_versions(self) -> dict[str, tuple[str | None, str | None]]:
        """Packages whose version differs between then and now."""
        names = sorted(set(self.versions_then) | set(self.versions_now))
        return {
            n: (self.versions_then.get(n), self.versions_now.get(n))
            for n in names
            if self.versions_then.get(n) != self.versions_now.get(n)
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "slug": self.slug,
            "status": self.status,
            "reason": self.reason,
            "verdict": self.verdict,
            "versions_then": dict(self.versions_then),
            "versions_now": dict(self.versions_now),
        }


def replay(
    directory: Path,
    *,
    converters: Mapping[str, str] | None = None,
    workers: int = 1,
    timeout_s: float = 1800.0,
) -> list[ReplayVerdict]:
    """Replay every finding under `directory` (module docstring), each in an isolated worker.

    Args:
        directory: The findings directory.
        converters: Converter to use instead of a finding's, by the finding's converter name
            (e.g. a fixed build of it).
        workers: Worker processes.
        timeout_s: Per finding.

    Returns:
        One verdict per finding directory, by name; unreadable ones are ``cannot-replay``.

    Raises:
        ConfigError: If `directory` is not a readable directory.
    """
    entries = read_ledger(directory)
    verdicts: dict[str, ReplayVerdict] = {}
    tasks = []
    for entry in entries:
        if entry.finding is None:
            verdicts[entry.directory.name] = ReplayVerdict(
                slug=entry.directory.name, status=CANNOT_REPLAY, reason=entry.error
            )
            continue
        converter = (converters or {}).get(entry.finding.converter, entry.finding.converter)
        tasks.append({"id": entry.directory.name, "dir": str(entry.directory),
                      "converter": converter})  # fmt: skip
    by_framework: dict[str, list[dict[str, Any]]] = {}
    for task, entry in zip(tasks, [e for e in entries if e.finding is not None], strict=True):
        by_framework.setdefault(_framework(entry.finding), []).append(task)
    limits = Limits(timeout_s=timeout_s, memory_mb=default_memory_cap(workers))
    for group in by_framework.values():
        with WorkerPool(
            _WORKER_TARGET,
            workers=min(workers, len(group)),
            limits=limits,
            log_dir=_log_dir(directory),
            environment=WORKER_ENVIRONMENT,
        ) as pool:
            for result in pool.map_unordered(group):
                slug = str(result.task["id"])
                if result.status is TaskStatus.DONE and result.payload is not None:
                    verdicts[slug] = _from_payload(result.payload)
                else:
                    if result.status is TaskStatus.ERROR:
                        logger.error("internal error replaying %s:\n%s", slug, result.error)
                    reason = f"the replay {result.status.value}: {_last_line(result.error)}"
                    verdicts[slug] = ReplayVerdict(slug=slug, status=CANNOT_REPLAY, reason=reason)
    return [verdicts[name] for name in sorted(verdicts)]


def _log_dir(directory: Path) -> Path | None:
    """``.logs/`` in the findings directory for the workers' output, if it can be written."""
    logs = directory / ".logs"
    try:
        logs.mkdir(exist_ok=True)
    except OSError:
        return None  # a read-only ledger: the output goes to the terminal
    return logs


def _framework(finding: Finding | None) -> str:
    """The framework of a finding's case, so torch and TensorFlow never share a worker."""
    if finding is None:
        return ""
    if finding.recipe.graph is not None:
        return finding.recipe.graph.framework
    try:
        return get_source(finding.recipe.source).framework.value
    except OpseqError:
        return finding.recipe.source  # the worker reports it as cannot-replay


def _from_payload(payload: Mapping[str, Any]) -> ReplayVerdict:
    return ReplayVerdict(
        slug=str(payload["slug"]),
        status=str(payload["status"]),
        reason=payload.get("reason"),
        verdict=payload.get("verdict"),
        versions_then=dict(payload.get("versions_then") or {}),
        versions_now=dict(payload.get("versions_now") or {}),
    )


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else ""


def replay_task(task: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point: replay the finding in ``task["dir"]`` with ``task["converter"]``."""
    directory = Path(task["dir"])
    finding = read_finding(directory)
    return replay_finding(finding, converter=task.get("converter")).to_dict()


def replay_finding(finding: Finding, *, converter: str | None = None) -> ReplayVerdict:
    """Rebuild one finding's case, judge it under its oracle; never raises for the finding."""
    base = {"slug": finding.slug, "versions_then": dict(finding.versions)}
    name = converter or finding.oracle.converter
    try:
        chosen = resolve_converter(name)
    except OpseqError as e:
        return ReplayVerdict(status=CANNOT_REPLAY, reason=str(e), **base)
    try:
        case = finding.recipe.build()
    except MemoryError:
        raise
    except Exception as e:  # a recipe that no longer builds is a result of the replay
        text = str(e).strip()
        reason = (
            f"cannot build the case: {type(e).__name__}: {text.splitlines()[0] if text else ''}"
        )
        return ReplayVerdict(status=CANNOT_REPLAY, reason=reason[:300], **base)
    result = judge(case, finding.oracle, converter=chosen)
    now = {**installed_versions(), **result.versions}
    verdict = None if result.verdict is None else result.verdict.value
    if result.verdict is Verdict.SEMANTIC:
        return ReplayVerdict(status=REPRODUCES, verdict=verdict, versions_now=now, **base)
    if result.failure is not None:
        reason = f"{result.outcome.value}: {result.failure.message}"
        return ReplayVerdict(
            status=CANNOT_REPLAY, reason=reason, verdict=verdict, versions_now=now, **base
        )
    reason = f"the verdict is now {verdict}" + (f" with {name}" if converter else "")
    return ReplayVerdict(status=STOPPED, reason=reason, verdict=verdict, versions_now=now, **base)
