"""Conversion campaigns: every case of a source through one converter, into a corpus directory.

The parent process plans the cases (skipping those the manifest already records), hands them to
isolated workers (`opseq.difftest.isolate`), and appends one manifest row per finished case, so a
campaign killed at any point resumes where it stopped, with nothing lost or duplicated. Each worker
builds the case, runs the differential test, and stores the converted model (structure only unless
asked to keep weights) under ``models/``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from opseq.corpus import (
    ManifestRow,
    ManifestWriter,
    is_compressed,
    manifest_path,
    read_manifest,
)
from opseq.difftest.isolate import Limits, TaskResult, TaskStatus, WorkerPool
from opseq.errors import ConfigError, MissingDependencyError
from opseq.outcomes import Outcome, Stage
from opseq.sources import Source, get_source
from opseq.sources.base import check_strategy
from opseq.strip import strip_weights
from opseq.tolerance import CalibratedRule, Tolerance

__all__ = [
    "CampaignConfig",
    "check_campaign",
    "configured_source",
    "iter_campaign",
    "plan_campaign",
    "row_from_result",
    "run_case",
    "stored_model_path",
    "write_model",
]

logger = logging.getLogger(__name__)

MODELS_DIR = "models"
LOGS_DIR = "logs"
GUIDANCE_FILE = "guidance.json"
# One compute thread per worker, like the oracle's ONNX Runtime sessions: framework and runtime
# latencies compare like with like, and W workers do not oversubscribe W cores.
WORKER_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
_WORKER_TARGET = "opseq.difftest.campaign:run_case"


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignConfig:
    """Everything that defines a campaign; recorded on every row it writes."""

    out_dir: Path
    source: str
    converter: str
    count: int | None = None
    seed: int = 0
    opset: int = 17
    n_inputs: int = 10
    workers: int = 1
    timeout_s: float = 600.0
    memory_mb: int | None = None  # resident MiB per worker; None: `default_memory_cap`
    keep_weights: bool = False
    atol: float = 1e-7
    rtol: float | None = None
    rule: CalibratedRule | None = field(default_factory=CalibratedRule)  # None: atol/rtol label
    attribute_blame: bool = True
    input_strategy: str = "normal"
    guided: bool = False  # choose synthetic cases by the coverage of those chosen before
    ops: tuple[str, ...] = ()  # restrict a synthetic source's vocabulary (fnmatch patterns)


def default_memory_cap(workers: int) -> int:
    """80% of physical memory divided among the workers, in MiB (at least 1 GiB).

    Examples:
        >>> default_memory_cap(1) >= default_memory_cap(2) >= 1024
        True
    """
    physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1024, int(0.8 * physical / 2**20 / max(1, workers)))


def check_campaign(config: CampaignConfig, *, local: bool = True) -> None:
    """Fail early, in the parent, on what would make every case fail the same way.

    Args:
        config: The campaign.
        local: Whether the cases run on this machine; if not (Dask workers), the converter's
            framework need not be installed here.

    Raises:
        ConfigError: Unknown source or converter, or a converter that does not apply to the
            source's framework, or an unwritable output directory.
        MissingDependencyError: The converter's framework is not installed (checked if local).
    """
    from opseq.difftest.convert import CONVERTERS, get_converter

    source = configured_source(config.source, config.ops)
    if local:
        converter = get_converter(config.converter)
    else:  # the framework must be on the Dask workers, not here; an unknown name still raises
        converter = CONVERTERS.get(config.converter) or get_converter(config.converter)
    check_strategy(config.input_strategy)
    if config.guided and config.count is None:
        raise ConfigError("--guided needs --count: guidance chooses cases one after another")
    if config.guided and not hasattr(source, "graph"):
        raise ConfigError(f"--guided applies to synthetic sources, not {config.source!r}")
    if converter.framework != source.framework:
        raise ConfigError(
            f"converter {converter.name!r} converts {converter.framework.value} models; "
            f"source {source.name!r} builds {source.framework.value} models"
        )
    _check_writable(config.out_dir)


def plan_campaign(config: CampaignConfig) -> tuple[list[dict[str, Any]], int]:
    """Return the worker tasks still to run, and how many cases the manifest already records."""
    source = configured_source(config.source, config.ops)
    done = _recorded_ids(config.out_dir, config)
    tasks, skipped = [], 0
    for case_id in _case_ids(source, config):
        row_id = _row_id(config, case_id)
        if row_id in done:
            skipped += 1
            continue
        tasks.append(_task(config, case_id, row_id))
    return tasks, skipped


def iter_campaign(config: CampaignConfig, tasks: list[dict[str, Any]]) -> Iterator[ManifestRow]:
    """Run `tasks` in isolated workers; append and yield each row as its case finishes."""
    memory_mb = config.memory_mb or default_memory_cap(config.workers)
    limits = Limits(timeout_s=config.timeout_s, memory_mb=memory_mb)
    with (
        ManifestWriter(config.out_dir) as writer,
        WorkerPool(
            _WORKER_TARGET,
            workers=config.workers,
            limits=limits,
            log_dir=config.out_dir / LOGS_DIR,
            environment=WORKER_ENVIRONMENT,
        ) as pool,
    ):
        for result in pool.map_unordered(tasks):
            row = row_from_result(result)
            writer.append(row)
            yield row


def configured_source(name: str, ops: tuple[str, ...] = ()) -> Source:
    """Return the source `name`, its vocabulary restricted to `ops` when given.

    Raises:
        ConfigError: Unknown source, a source without a vocabulary to restrict, or patterns no
            op matches.
    """
    source = get_source(name)
    if not ops:
        return source
    restricted = getattr(source, "restricted", None)
    if restricted is None:
        raise ConfigError(f"--ops applies to synthetic sources, not {name!r}")
    return restricted(list(ops))


def _case_ids(source: Source, config: CampaignConfig) -> list[str]:
    if not config.guided:
        return list(source.case_ids(count=config.count, seed=config.seed))
    from opseq.sources.synthetic.guided import guided_case_ids

    return guided_case_ids(
        source, count=config.count, seed=config.seed, state_path=config.out_dir / GUIDANCE_FILE
    )


def _recorded_ids(out_dir: Path, config: CampaignConfig) -> set[str]:
    """The row ids already recorded; refuse rows of this campaign recorded with other inputs.

    Row ids name source, case and converter only, so a rerun with another input strategy would
    otherwise skip every case as done.
    """
    manifest = manifest_path(out_dir)
    if not manifest.exists():
        return set()
    if is_compressed(manifest):
        raise ConfigError(
            f"{manifest} is compressed and read-only; gunzip it (and keep the models) to extend "
            "this corpus, or give another output directory"
        )
    rows = read_manifest(out_dir)
    for row in rows:
        if row.source != config.source or row.converter != config.converter:
            continue
        strategy = row.extra.get("input_strategy", "normal")
        if strategy != config.input_strategy:
            raise ConfigError(
                f"{out_dir} holds this campaign with --input-strategy {strategy}; "
                "give another output directory"
            )
    return {row.id for row in rows}


def _row_id(config: CampaignConfig, case_id: str) -> str:
    return f"{config.source}/{case_id}/{config.converter}"


def _task(config: CampaignConfig, case_id: str, row_id: str) -> dict[str, Any]:
    return {
        "id": row_id,
        "case": case_id,
        "source": config.source,
        "converter": config.converter,
        "out_dir": str(config.out_dir),
        "seed": config.seed,
        "opset": config.opset,
        "n_inputs": config.n_inputs,
        "keep_weights": config.keep_weights,
        "atol": config.atol,
        "rtol": config.rtol,
        "attribute_blame": config.attribute_blame,
        "rule": None if config.rule is None else config.rule.to_dict(),
        "input_strategy": config.input_strategy,
        "guided": config.guided,
        "ops": list(config.ops),
    }


def row_from_result(result: TaskResult) -> ManifestRow:
    """The manifest row of a finished task: its payload when done, else a timeout or crash row."""
    task = result.task
    measured = {"peak_rss_mb": result.peak_rss_mb, "duration_s": round(result.duration_s, 3)}
    if result.status is TaskStatus.DONE and result.payload is not None:
        row = ManifestRow.from_dict(result.payload)
        return ManifestRow.from_dict({**row.to_dict(), **measured})
    outcome = Outcome.TIMEOUT if result.status is TaskStatus.TIMEOUT else Outcome.CRASH
    error = result.error or ""
    if result.status is TaskStatus.ERROR:
        logger.error("internal error on %s, please report:\n%s", task["id"], error)
        error = "internal error in opseq: " + error.strip().splitlines()[-1]
    return ManifestRow(
        id=task["id"],
        outcome=outcome,
        converter=task["converter"],
        source=task["source"],
        error=error,
        extra={**_provenance(task), **measured},
    )


def _provenance(task: dict[str, Any]) -> dict[str, Any]:
    keys = ("case", "seed", "n_inputs", "atol", "rtol", "rule", "input_strategy", "guided", "ops")
    # "opset" is the one the converted model really has (the oracle's); this is the one asked.
    return {**{key: task.get(key) for key in keys}, "opset_requested": task["opset"]}


def run_case(task: dict[str, Any]) -> dict[str, Any]:
    """Build a case, test its conversion, store the model; return its manifest row (in a worker)."""
    from opseq.difftest.convert import get_converter
    from opseq.difftest.oracle import run_difftest

    source = configured_source(task["source"], tuple(task.get("ops", ())))
    start = time.perf_counter()
    try:
        case = source.build(task["case"], seed=task["seed"])
    except MemoryError:
        raise
    except Exception as e:  # a source that cannot build a case is an outcome of the campaign
        return _generate_failure(task, e, time.perf_counter() - start)
    generate_s = time.perf_counter() - start
    try:
        converter = get_converter(task["converter"])
    except MissingDependencyError as e:  # on a Dask worker; a local campaign checks before
        return _missing_converter(task, e, generate_s)
    result = run_difftest(
        case,
        converter,
        opset=task["opset"],
        n_inputs=task["n_inputs"],
        seed=task["seed"],
        tolerance=Tolerance(atol=task["atol"], rtol=task["rtol"]),
        rule=None if task.get("rule") is None else CalibratedRule.from_dict(task["rule"]),
        attribute_blame=task["attribute_blame"],
        input_strategy=task.get("input_strategy", "normal"),
    )
    model_path = None
    if result.model is not None:
        model_path = _store_model(result.model, task)
    details = {
        k: v
        for k, v in result.to_dict().items()
        if k not in ("schema_version", "outcome", "max_abs_diff", "max_rel_diff")
    }
    details["durations"] = {"generate": generate_s, **details["durations"]}
    return ManifestRow(
        id=task["id"],
        model=model_path,
        outcome=result.outcome,
        converter=task["converter"],
        source=task["source"],
        max_abs_diff=result.max_abs_diff,
        max_rel_diff=result.max_rel_diff,
        error=result.failure.message if result.failure else None,
        extra={
            **_provenance(task),
            # With the seed, these regenerate the exact inputs (opseq.sources.make_inputs).
            "input_specs": [spec.to_dict() for spec in case.inputs],
            "metadata": case.metadata,
            **details,
        },
    ).to_dict()


def _generate_failure(task: dict[str, Any], error: Exception, seconds: float) -> dict[str, Any]:
    message = f"{type(error).__name__}: {error}".strip().splitlines()[0][:500]
    return ManifestRow(
        id=task["id"],
        outcome=Outcome.GENERATE_FAIL,
        converter=task["converter"],
        source=task["source"],
        error=message,
        extra={
            **_provenance(task),
            "stage": Stage.GENERATE.value,
            "durations": {"generate": seconds},
        },
    ).to_dict()


def _missing_converter(
    task: dict[str, Any], error: MissingDependencyError, seconds: float
) -> dict[str, Any]:
    return ManifestRow(
        id=task["id"],
        outcome=Outcome.CONVERT_FAIL,
        converter=task["converter"],
        source=task["source"],
        error=f"MissingDependencyError: {error}",
        extra={
            **_provenance(task),
            "stage": Stage.CONVERT.value,
            "durations": {"generate": seconds},
        },
    ).to_dict()


def _store_model(model: onnx.ModelProto, task: dict[str, Any]) -> str:
    """Write the converted model under models/ (atomically); return its manifest-relative path."""
    stored = model if task["keep_weights"] else strip_weights(model)
    relative = stored_model_path(task)
    write_model(Path(task["out_dir"]) / relative, stored.SerializeToString())
    return relative


def stored_model_path(task: dict[str, Any]) -> str:
    """Where a task's converted model is stored, relative to the corpus directory."""
    relative = (
        Path(MODELS_DIR)
        / _safe(task["source"])
        / _safe(task["converter"])
        / f"{_safe(task['case'])}.onnx"
    )
    return relative.as_posix()


def write_model(target: Path, data: bytes) -> None:
    """Write a model file atomically: a reader never sees half of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    partial.write_bytes(data)
    os.replace(partial, target)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".opseq-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ConfigError(f"cannot write to {out_dir}: {e.strerror or e}") from e
