"""Conversion campaigns on Dask distributed workers (``opseq corpus build --scheduler/--dask``).

The client plans the cases as a local campaign does and submits them to the Dask workers, a
bounded number at a time, so a campaign of 100,000 cases never floods the scheduler. On a worker,
each case still runs in an isolated child process (`opseq.difftest.isolate`) with the same
deadline, memory cap, thread environment and recycling as on one machine: one
``WorkerPool(workers=1)`` per worker thread, created on its first case and reused, so a converter
that segfaults kills only that child and crashes and hangs stay outcomes.

Tasks and results are JSON-safe dicts; models travel as base64 bytes, or not at all when the
workers write them to a shared ``--store``. Only the client appends to the manifest (one
`ManifestWriter`, rows as results arrive), so a killed client resumes like a local campaign.

A Dask worker lost in the middle of a case (killed, out of memory, its machine gone) makes the
scheduler run the case again elsewhere; past the scheduler's ``allowed-failures`` losses (1 on the
clusters opseq starts, so one retry) the case is recorded as ``crash`` naming the last worker lost.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import logging
import multiprocessing
import os
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from opseq._optional import import_optional
from opseq.corpus import ManifestRow, ManifestWriter
from opseq.difftest.campaign import (
    LOGS_DIR,
    WORKER_ENVIRONMENT,
    CampaignConfig,
    default_memory_cap,
    row_from_result,
    stored_model_path,
    write_model,
)
from opseq.difftest.isolate import Limits, TaskResult, TaskStatus, WorkerPool
from opseq.distributed.cluster import CONNECT_TIMEOUT_S, connect, worker_count
from opseq.errors import ConfigError, MissingDependencyError, OpseqError
from opseq.untrusted import escape_controls

__all__ = [
    "CLUSTER_CONFIG",
    "campaign_client",
    "check_store",
    "check_workers",
    "iter_dask_campaign",
    "run_on_worker",
]

logger = logging.getLogger(__name__)

#: Dask settings of the clusters opseq starts (``--dask N``); a scheduler and workers started by
#: hand get the same behaviour from ``DASK_DISTRIBUTED__WORKER__DAEMON=False`` and
#: ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1`` in their environment.
CLUSTER_CONFIG = {
    # A daemonic process may not start children, and each case runs in an isolated child.
    "distributed.worker.daemon": False,
    # A case whose worker is lost runs once more, then is recorded as a crash.
    "distributed.scheduler.allowed-failures": 1,
}
_TASK_TARGET = "opseq.difftest.campaign:run_case"
# One case per worker thread: a case waiting on a worker that dies would be charged with that
# loss too (the scheduler counts every task assigned to the worker), so none waits on a worker.
_IN_FLIGHT_PER_THREAD = 1
_THREADS_TTL_S = 5.0
_local = threading.local()
_thread_numbers = itertools.count()


@contextlib.contextmanager
def campaign_client(
    scheduler: str | None,
    *,
    local_workers: int | None,
    converter: str,
    store: Path | None = None,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> Iterator[Any]:
    """Connect (or start a `LocalCluster` set up by `CLUSTER_CONFIG`) and check the workers.

    Args:
        scheduler: A scheduler address; None starts a `LocalCluster` of `local_workers`.
        local_workers: Worker processes of the `LocalCluster`, one thread each.
        converter: The campaign's converter, whose packages the workers are asked about.
        store: The shared directory workers write models to, if any.
        timeout_s: Seconds to wait for the scheduler, and for a first worker to join it.

    Raises:
        ConfigError: An unreachable scheduler, no worker, or workers that cannot run cases.
        MissingDependencyError: The ``dask`` extra is not installed.
    """
    dask = import_optional("dask", "dask")
    with contextlib.ExitStack() as stack:
        stack.enter_context(dask.config.set(CLUSTER_CONFIG))
        with warnings.catch_warnings():
            # A LocalCluster's scheduler serves HTTP on 8787 even without a dashboard, and warns
            # on stderr when another cluster has it; it takes another port, which is all we need.
            warnings.filterwarnings("ignore", "Port .* is already in use", UserWarning)
            client = stack.enter_context(
                connect(scheduler, local_workers=local_workers, timeout_s=timeout_s)
            )
        check_workers(client, converter=converter, store=store, timeout_s=timeout_s)
        yield client


def check_store(store: Path | None, out_dir: Path) -> None:
    """Refuse a ``--store`` this machine sees as a directory other than the corpus.

    Rows name models relative to the manifest (``models/...``), and opseq's readers refuse model
    paths outside the corpus, so the store must be OUT_DIR itself as the workers see it (the same
    shared directory, possibly mounted elsewhere there). A store this machine cannot see is
    accepted: it may be the workers' path of OUT_DIR.

    Raises:
        ConfigError: If `store` exists here and is not `out_dir`.
    """
    if store is None or not store.exists():
        return
    if not out_dir.exists() or not os.path.samefile(store, out_dir):
        raise ConfigError(
            f"--store {store} is not OUT_DIR {out_dir}: give OUT_DIR's path as the Dask "
            "workers see it"
        )


def check_workers(
    client: Any, *, converter: str, store: Path | None, timeout_s: float = CONNECT_TIMEOUT_S
) -> dict[str, dict[str, Any]]:
    """Ask every worker whether it can run cases; warn about those missing a converter package.

    Returns:
        Per worker address, its answer (`_probe_worker`).

    Raises:
        ConfigError: No worker joined within `timeout_s`, a worker cannot import opseq, is a
            daemonic process, or cannot write to `store`.
    """
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except TimeoutError:
        raise ConfigError(f"no Dask worker joined the scheduler within {timeout_s:g} s") from None
    try:
        probes = client.run(_probe_worker, converter, None if store is None else str(store))
    except OpseqError:
        raise
    except Exception as e:  # e.g. opseq missing on a worker: the probe cannot be unpickled
        raise ConfigError(f"a Dask worker cannot run opseq's cases: {_first_line(e)}") from e
    for address, probe in sorted(probes.items()):
        if probe["daemon"]:
            raise ConfigError(
                f"Dask worker {address} is a daemonic process and cannot start opseq's isolated "
                "case processes; start workers with DASK_DISTRIBUTED__WORKER__DAEMON=False"
            )
        if probe["store_error"]:
            raise ConfigError(
                f"Dask worker {address} cannot write to --store {store}: {probe['store_error']}"
            )
        if probe["missing"]:
            logger.warning("Dask worker %s: %s; its cases will say so", address, probe["missing"])
    return probes


def iter_dask_campaign(
    client: Any,
    config: CampaignConfig,
    tasks: list[dict[str, Any]],
    *,
    store: Path | None = None,
) -> Iterator[ManifestRow]:
    """Run `tasks` on the Dask workers; append and yield each row as its case finishes.

    Args:
        client: A ``distributed.Client`` (`campaign_client`).
        config: The campaign (its deadline, memory cap and output directory).
        tasks: From `opseq.difftest.campaign.plan_campaign`.
        store: OUT_DIR as the workers see it, if they write models there; else they send the
            models back and this process writes them under OUT_DIR/models/.

    Raises:
        ConfigError: If the scheduler is lost, which ends the campaign (a rerun resumes it).
    """
    options = {
        "timeout_s": config.timeout_s,
        "memory_mb": config.memory_mb,
        "store": None if store is None else str(store),
    }
    warned = False
    with ManifestWriter(config.out_dir) as writer:
        for task, reply in _results(client, tasks, options):
            row = _row(config, task, reply, store=store)
            if store is not None and row.model and not warned:
                # The store should be OUT_DIR as the workers see it; a model not here says not.
                warned = not (config.out_dir / row.model).exists()
                if warned:
                    logger.warning("models in --store %s are not in %s", store, config.out_dir)
            writer.append(row)
            yield row


def _results(
    client: Any, tasks: Iterable[dict[str, Any]], options: dict[str, Any]
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Submit tasks, at most one per worker thread at a time; yield (task, reply) as they end."""
    distributed = import_optional("distributed", "dask")
    pending = iter(tasks)
    running: dict[str, tuple[Any, dict[str, Any]]] = {}
    completed = distributed.as_completed(loop=client.loop)
    threads = _ThreadCount(client)

    def fill() -> None:
        while len(running) < _IN_FLIGHT_PER_THREAD * threads.now():
            task = next(pending, None)
            if task is None:
                return
            key = f"opseq-case-{uuid.uuid4().hex}"
            future = client.submit(run_on_worker, task, options, key=key, retries=0)
            running[key] = (future, task)
            completed.add(future)

    fill()
    try:
        for future in completed:
            _, task = running.pop(future.key)
            reply = _reply(future, distributed)
            future.release()
            fill()
            yield task, reply
    finally:
        for future, _ in running.values():
            future.cancel()


class _ThreadCount:
    """The cluster's worker threads, asked of the scheduler at most every few seconds.

    Workers come and go (scaling, restarts), so the bound on cases in flight follows them; but
    each question is a round trip carrying every worker's record, too much once per case.
    """

    def __init__(self, client: Any) -> None:
        self.client, self.asked, self.threads = client, -_THREADS_TTL_S, 1

    def now(self) -> int:
        if time.monotonic() - self.asked >= _THREADS_TTL_S:
            self.threads, self.asked = worker_count(self.client), time.monotonic()
        return self.threads


def _reply(future: Any, distributed: Any) -> dict[str, Any]:
    """The worker's reply, or a crash naming the worker lost running the case."""
    try:
        return future.result()
    except distributed.KilledWorker as e:
        tries = e.allowed_failures + 1
        return _failure(
            TaskStatus.CRASH,
            f"Dask worker {e.last_worker.address} was lost while running this case "
            f"(tried on {tries} worker{'s' if tries > 1 else ''})",
        )
    except distributed.client.FutureCancelledError as e:
        raise ConfigError(
            f"lost the Dask scheduler or the case was cancelled ({_first_line(e)}); "
            "rerun to resume the campaign"
        ) from e
    except Exception as e:  # run_on_worker failed around the case: recorded, reported as a bug
        return _failure(TaskStatus.ERROR, f"{type(e).__name__}: {_first_line(e)}")


def _failure(status: TaskStatus, error: str) -> dict[str, Any]:
    return {"status": status.value, "payload": None, "error": error, "worker": None}


def _row(
    config: CampaignConfig, task: dict[str, Any], reply: dict[str, Any], *, store: Path | None
) -> ManifestRow:
    """The manifest row of a reply, its model (if sent) written where a local run puts it."""
    result = TaskResult(
        task=task,
        status=TaskStatus(reply["status"]),
        payload=reply.get("payload"),
        error=reply.get("error"),
        peak_rss_mb=reply.get("peak_rss_mb"),
        duration_s=float(reply.get("duration_s") or 0.0),
    )
    row = row_from_result(result).to_dict()
    if store is None and row["model"] is not None:
        row["model"] = None
        if reply.get("model") is not None:
            row["model"] = stored_model_path(task)  # never a path the worker chose
            write_model(config.out_dir / row["model"], base64.b64decode(reply["model"]))
    return ManifestRow.from_dict({**row, "dask_worker": reply.get("worker")})


def run_on_worker(task: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Run one case in this Dask worker thread's isolated child; return a JSON-safe reply.

    Args:
        task: A campaign task (`opseq.difftest.campaign.plan_campaign`).
        options: ``timeout_s``, ``memory_mb`` (None: this worker's share of its memory limit)
            and ``store`` (None: send the model back).

    Returns:
        ``status``, ``payload`` (the row), ``error``, ``peak_rss_mb``, ``duration_s``,
        ``worker`` (this worker's address) and ``model`` (base64 bytes, or None).
    """
    distributed = import_optional("distributed", "dask")
    worker = distributed.get_worker()
    runner = _runner(options, worker)
    (result,) = runner.pool.map_unordered([{**task, "out_dir": runner.out_dir}])
    reply: dict[str, Any] = {
        "status": result.status.value,
        "payload": result.payload,
        "error": result.error,
        "peak_rss_mb": result.peak_rss_mb,
        "duration_s": result.duration_s,
        "worker": worker.address,
        "model": None,
    }
    path = Path(runner.out_dir) / stored_model_path(task)
    if options["store"] is None and (result.payload or {}).get("model") and path.exists():
        reply["model"] = base64.b64encode(path.read_bytes()).decode("ascii")
        path.unlink()  # the worker's copy was only on its way to the client
    return reply


class _Runner:
    """One worker thread's isolated child process, and where its models and logs go."""

    def __init__(self, options: dict[str, Any], worker: Any) -> None:
        self.key = (options["timeout_s"], options["memory_mb"], options["store"])
        local_dir = Path(worker.local_directory)
        if options["store"] is None:
            self.out_dir = tempfile.mkdtemp(prefix="opseq-models-", dir=local_dir)
            logs = local_dir / "opseq-logs"
        else:
            self.out_dir = options["store"]
            logs = Path(options["store"]) / LOGS_DIR
        # Unique among the workers sharing a --store: host, worker process, thread.
        name = f"dask-{_safe(socket.gethostname())}-{os.getpid()}-{next(_thread_numbers)}"
        memory_mb = options["memory_mb"] or _memory_share(worker)
        self.pool = WorkerPool(
            _TASK_TARGET,
            workers=1,
            limits=Limits(timeout_s=options["timeout_s"], memory_mb=memory_mb),
            log_dir=logs / name,
            environment=WORKER_ENVIRONMENT,
        )

    def close(self) -> None:
        self.pool.__exit__(None, None, None)


def _runner(options: dict[str, Any], worker: Any) -> _Runner:
    """This thread's runner, made on its first case (again if another campaign's limits differ)."""
    runner: _Runner | None = getattr(_local, "runner", None)
    key = (options["timeout_s"], options["memory_mb"], options["store"])
    if runner is None or runner.key != key:
        if runner is not None:
            runner.close()
        runner = _local.runner = _Runner(options, worker)
    return runner


def _memory_share(worker: Any) -> int:
    """80% of this Dask worker's memory limit per thread, as a local campaign divides the host's."""
    limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    threads = max(1, int(getattr(worker.state, "nthreads", 1)))
    if not limit:
        return default_memory_cap(threads)
    return max(1024, int(0.8 * limit / 2**20 / threads))


def _probe_worker(converter: str, store: str | None) -> dict[str, Any]:
    """On a worker: is it daemonic, which converter packages are missing, is `store` writable."""
    from opseq.difftest.convert import get_converter

    missing = ""
    try:
        get_converter(converter)
    except MissingDependencyError as e:
        missing = str(e)
    store_error = ""
    if store is not None:
        probe = Path(store) / f".opseq-write-test-{uuid.uuid4().hex}"
        try:
            Path(store).mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            store_error = e.strerror or str(e)
    return {
        "daemon": bool(multiprocessing.current_process().daemon),
        "missing": missing,
        "store_error": store_error,
    }


def _safe(name: object) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def _first_line(error: BaseException) -> str:
    text = escape_controls(str(error).strip() or type(error).__name__)
    return text.splitlines()[0][:300]
