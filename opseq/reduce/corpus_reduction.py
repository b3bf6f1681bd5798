"""Reduce a corpus's semantic rows, each in an isolated worker, and write the findings.

The parent reads the manifest, picks the semantic rows (or those asked for), and hands each to a
worker process (`opseq.difftest.isolate`; one pool per framework, torch and TensorFlow never
share a process) running `opseq.reduce.reducer.reduce_task`: a converter that crashes or hangs
ends that case only, and the crash is its result. The reproducers are grouped by signature and
one finding is written per signature (`opseq.reduce.finding`). ``cases.jsonl`` in the findings
directory holds the last result of every case reduced there (one JSON object per line, by row
id), so a case that does not reproduce is kept on record; ``.logs/`` there holds the workers'
output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from opseq.corpus import ManifestRow, read_manifest
from opseq.difftest.campaign import WORKER_ENVIRONMENT, default_memory_cap
from opseq.difftest.isolate import Limits, TaskResult, TaskStatus, WorkerPool
from opseq.errors import ConfigError, OpseqError
from opseq.outcomes import Outcome
from opseq.reduce.finding import Finding, FindingRefused, Reproducer, write_finding
from opseq.reduce.replay import source_of
from opseq.reduce.shrink import Budget
from opseq.tolerance import Verdict
from opseq.untrusted import escape_controls

__all__ = ["CASES_FILE", "ReduceReport", "reduce_corpus", "select_rows"]

logger = logging.getLogger(__name__)

CASES_FILE = "cases.jsonl"
STAGING_DIR = ".staging"
LOGS_DIR = ".logs"  # worker output (converters' chatter), beside the findings
_WORKER_TARGET = "opseq.reduce.reducer:reduce_task"
_GRACE_S = 600.0  # replay, the final judgement and saving the model, beyond the search deadline


@dataclass(frozen=True, slots=True, kw_only=True)
class ReduceReport:
    """The findings a reduction wrote, and what became of every case.

    Attributes:
        out_dir: The findings directory.
        findings: The findings written or updated by this run.
        reproducers: Every case's result, in row order.
    """

    out_dir: Path
    findings: tuple[Finding, ...]
    reproducers: tuple[Reproducer, ...]

    def across_converters(self) -> dict[str, list[Finding]]:
        """Findings of one behaviour (ops and dtypes) reached through several converters."""
        groups: dict[str, list[Finding]] = {}
        for finding in self.findings:
            groups.setdefault(finding.signature.behaviour_digest(), []).append(finding)
        return {k: v for k, v in groups.items() if len({f.converter for f in v}) > 1}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "out_dir": str(self.out_dir),
            "findings": [f.to_dict() for f in self.findings],
            "cases": [r.to_dict() for r in self.reproducers],
            "across_converters": {
                k: [f.slug for f in v] for k, v in self.across_converters().items()
            },
        }


def select_rows(rows: Sequence[ManifestRow], row_ids: Sequence[str] | None) -> list[ManifestRow]:
    """The named rows, or every semantic row.

    Raises:
        ConfigError: If a named row is not in the manifest.
    """
    if row_ids:
        by_id = {row.id: row for row in rows}
        unknown = [r for r in row_ids if r not in by_id]
        if unknown:
            raise ConfigError(f"no row {escape_controls(unknown[0])!r} in the manifest")
        return [by_id[r] for r in dict.fromkeys(row_ids)]
    return [
        row
        for row in rows
        if row.outcome is Outcome.MISMATCH and row.extra.get("verdict") == Verdict.SEMANTIC.value
    ]


def reduce_corpus(
    corpus: Path,
    *,
    out_dir: Path | None = None,
    row_ids: Sequence[str] | None = None,
    budget: Budget = Budget(),  # noqa: B008 -- frozen
    workers: int = 1,
    check_scripts: bool = True,
    on_case: Callable[[Reproducer], None] | None = None,
) -> ReduceReport:
    """Reduce the semantic rows of a corpus (module docstring) into ``out_dir``.

    Args:
        corpus: A corpus directory or its manifest.
        out_dir: The findings directory (default ``<corpus>/findings``).
        row_ids: Rows to reduce instead of every semantic row.
        budget: Per case: candidate tests and search seconds.
        workers: Worker processes.
        check_scripts: Run each finding's ``reproduce.py`` once and record how it ended.
        on_case: Called with each case's result as it arrives (progress).

    Returns:
        The report.

    Raises:
        ConfigError: No manifest, an unknown row id, or an unwritable findings directory.
    """
    rows = read_manifest(corpus)
    selected = select_rows(rows, row_ids)
    corpus_dir = corpus if corpus.is_dir() else corpus.parent
    out_dir = out_dir if out_dir is not None else corpus_dir / "findings"
    _check_writable(out_dir)
    staging = out_dir / STAGING_DIR / f"run-{os.getpid()}-{int(time.time())}"
    order = {row.id: i for i, row in enumerate(selected)}
    reproducers = []
    try:
        for reproducer in _run_all(selected, staging, budget, workers, out_dir):
            reproducers.append(reproducer)
            if on_case is not None:
                on_case(reproducer)
        reproducers.sort(key=lambda r: order.get(r.row_id, len(order)))
        findings, reproducers = _write_findings(out_dir, reproducers, check_scripts)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_if_empty(out_dir / STAGING_DIR)
    _record_cases(out_dir, reproducers, findings)
    return ReduceReport(out_dir=out_dir, findings=tuple(findings), reproducers=tuple(reproducers))


def _run_all(rows, staging: Path, budget: Budget, workers: int, out_dir: Path):
    """Reduce rows in isolated workers, one pool per framework (they never share a process)."""
    by_framework: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        try:
            framework = source_of(row).framework.value
        except OpseqError as e:
            yield Reproducer(row_id=row.id, status="failed", reason=str(e), source=row.source,
                             converter=row.converter)  # fmt: skip
            continue
        by_framework.setdefault(framework, []).append(
            {
                "id": row.id,
                "row": row.to_dict(),
                "staging": str(staging),
                "max_tests": budget.max_tests,
                "deadline_s": budget.deadline_s,
            }
        )
    limits = Limits(timeout_s=budget.deadline_s + _GRACE_S, memory_mb=default_memory_cap(workers))
    for tasks in by_framework.values():
        with WorkerPool(
            _WORKER_TARGET,
            workers=min(workers, len(tasks)),
            limits=limits,
            log_dir=out_dir / LOGS_DIR,
            environment=WORKER_ENVIRONMENT,
        ) as pool:
            for result in pool.map_unordered(tasks):
                yield _from_task_result(result)


def _from_task_result(result: TaskResult) -> Reproducer:
    task = result.task
    row = task.get("row", {})
    if result.status is TaskStatus.DONE and result.payload is not None:
        return Reproducer.from_dict(result.payload)
    if result.status is TaskStatus.ERROR:
        logger.error("internal error reducing %s, please report:\n%s", task.get("id"), result.error)
        lines = (result.error or "").strip().splitlines()
        reason = "internal error in opseq: " + (lines[-1] if lines else "")
    else:
        reason = f"the reduction {result.status.value}: {result.error}"
    return Reproducer(
        row_id=str(task.get("id")),
        status="failed",
        reason=reason,
        source=str(row.get("source", "")),
        case=str(row.get("case", "")),
        converter=str(row.get("converter", "")),
    )


def _write_findings(out_dir: Path, reproducers: Sequence[Reproducer], check: bool):
    """One finding per signature; a finding that cannot be written fails its cases instead."""
    groups: dict[str, list[Reproducer]] = {}
    for reproducer in reproducers:
        if reproducer.has_reproducer:
            groups.setdefault(reproducer.signature.digest(), []).append(reproducer)
    findings, refused = [], {}
    for group in groups.values():
        try:
            findings.append(write_finding(out_dir, group, check=check))
        except FindingRefused as e:
            logger.error("%s", e)
            refused.update((r.row_id, f"the finding cannot be written: {e}") for r in group)
    kept = [
        replace(r, status="failed", reason=refused[r.row_id]) if r.row_id in refused else r
        for r in reproducers
    ]
    return findings, kept


def _record_cases(out_dir: Path, reproducers: Sequence[Reproducer], findings) -> None:
    """Rewrite ``cases.jsonl``: earlier entries, replaced by this run's for the same rows."""
    slug_of = {case: f.slug for f in findings for case in f.cases}
    path = out_dir / CASES_FILE
    entries: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed run
            if isinstance(entry, dict) and "row_id" in entry:
                entries[str(entry["row_id"])] = entry
    for r in reproducers:
        entries[r.row_id] = {
            "row_id": r.row_id,
            "status": r.status,
            "reason": r.reason,
            "finding": slug_of.get(r.row_id) if r.has_reproducer else None,
            "tests": r.reduction.get("tests"),
            "seconds": r.reduction.get("total_seconds"),
            "nodes_before": r.reduction.get("nodes_before"),
            "nodes_after": r.reduction.get("nodes_after"),
        }
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    text = "".join(json.dumps(e, allow_nan=False) + "\n" for e in entries.values())
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".opseq-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"cannot write to {out_dir}: {e.strerror or e}") from e


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):
        directory.rmdir()
