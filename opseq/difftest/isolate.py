"""Run tasks in worker processes that may crash, hang or exhaust memory.

Converters and runtimes are native code: a test can segfault, abort, loop forever or allocate
without bound. Each task therefore runs in a worker process, with a deadline and a memory cap; a
worker that dies or is killed becomes a `TaskResult` with status ``crash`` or ``timeout`` and is
replaced, and the other tasks go on. Workers are long-lived (a framework is imported once per
worker, not once per task) and started with ``spawn``, so no framework state leaks in by ``fork``.

Tasks and results are JSON objects: nothing is unpickled from a worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

__all__ = ["Limits", "TaskResult", "TaskStatus", "WorkerPool", "rss_mb"]

logger = logging.getLogger(__name__)

_POLL_S = 0.1
_GRACE_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Per-task limits: wall-clock seconds, and the worker's resident memory in MiB (None: no cap).

    The memory cap is on resident memory, watched by the parent every 0.1 s. Address-space or
    data-segment limits (``RLIMIT_AS``, ``RLIMIT_DATA``) are not used: TensorFlow reserves far more
    virtual memory than it touches, and under such a limit tf2onnx segfaults instead of failing
    cleanly (seen converting ResNet50).
    """

    timeout_s: float = 600.0
    memory_mb: int | None = 8192


class TaskStatus(str, Enum):
    """How a task ended."""

    DONE = "done"
    ERROR = "error"  # the task function raised: a bug in the task, reported with its traceback
    TIMEOUT = "timeout"
    CRASH = "crash"  # the worker died (signal, abort) or went over its memory cap


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskResult:
    """The end of one task: its JSON result when done, else why it has none."""

    task: dict[str, Any]
    status: TaskStatus
    payload: dict[str, Any] | None
    error: str | None
    peak_rss_mb: float | None
    duration_s: float


class WorkerPool:
    """A fixed number of worker processes running a task function; use as a context manager.

    Args:
        target: ``"module:function"``; the function takes a task dict and returns a JSON-safe
            dict. It is imported in each worker.
        workers: Number of worker processes.
        limits: Deadline and memory cap per task.
        log_dir: If given, each worker's stdout and stderr (native libraries' output too) go to
            ``worker-<n>.log`` there instead of the terminal.
        environment: Variables set in each worker before it imports `target`.
    """

    def __init__(
        self,
        target: str,
        *,
        workers: int,
        limits: Limits,
        log_dir: Path | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.target, self.limits, self.log_dir = target, limits, log_dir
        self.environment = dict(environment or {})
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(index) for index in range(max(1, workers))]

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for slot in self._slots:
            slot.stop(graceful=slot.task is None)

    def map_unordered(self, tasks: Iterable[dict[str, Any]]) -> Iterator[TaskResult]:
        """Run every task; yield each result as soon as it is known."""
        pending = iter(tasks)
        exhausted = False
        while True:
            for slot in self._slots:
                if slot.task is None and not exhausted:
                    task = next(pending, None)
                    if task is None:
                        exhausted = True
                    else:
                        self._dispatch(slot, task)
            busy = [slot for slot in self._slots if slot.task is not None]
            if not busy:
                return
            wait([s.connection for s in busy] + [s.process.sentinel for s in busy], timeout=_POLL_S)
            for slot in busy:
                result = self._check(slot)
                if result is not None:
                    yield result

    def _dispatch(self, slot: _Slot, task: dict[str, Any]) -> None:
        if slot.process is None or not slot.process.is_alive():
            log = None if self.log_dir is None else self.log_dir / f"worker-{slot.index}.log"
            slot.start(self._context, self.target, log, self.environment)
        slot.task, slot.started = task, time.monotonic()
        slot.connection.send_bytes(json.dumps(task).encode())

    def _check(self, slot: _Slot) -> TaskResult | None:
        """The slot's result if its task has ended (replying, dying, or over a limit)."""
        if slot.connection.poll():
            try:
                reply = json.loads(slot.connection.recv_bytes())
            except (EOFError, OSError):
                return self._end(slot, TaskStatus.CRASH, _death_message(slot), kill=True)
            return self._finish(slot, reply)
        if not slot.process.is_alive():
            return self._end(slot, TaskStatus.CRASH, _death_message(slot), kill=True)
        elapsed = time.monotonic() - slot.started
        if elapsed > self.limits.timeout_s:
            message = f"worker exceeded the {self.limits.timeout_s:g} s timeout"
            return self._end(slot, TaskStatus.TIMEOUT, message, kill=True)
        rss = rss_mb(slot.process.pid)
        if self.limits.memory_mb is not None and rss is not None and rss > self.limits.memory_mb:
            message = f"worker exceeded the {self.limits.memory_mb} MiB memory cap"
            return self._end(slot, TaskStatus.CRASH, message, kill=True, peak=rss)
        return None

    def _finish(self, slot: _Slot, reply: dict[str, Any]) -> TaskResult:
        peak = reply.get("peak_rss_mb")
        if reply.get("out_of_memory"):
            message = f"worker ran out of memory under its {self.limits.memory_mb} MiB cap"
            return self._end(slot, TaskStatus.CRASH, message, kill=True, peak=peak)
        if "error" in reply:
            return self._end(slot, TaskStatus.ERROR, reply["error"], peak=peak)
        result = self._end(slot, TaskStatus.DONE, None, payload=reply["payload"], peak=peak)
        self._recycle_if_bloated(slot)
        return result

    def _recycle_if_bloated(self, slot: _Slot) -> None:
        """Replace a worker that keeps over half the cap between tasks.

        Frameworks keep memory after a task (TensorFlow never returns a converted graph's), so a
        long-lived worker would charge one case's leftovers to the next; seen on the Keras zoo,
        where four conversions left a worker holding several GiB before ResNet50 began.
        """
        rss = rss_mb(slot.process.pid)
        if (
            self.limits.memory_mb is not None
            and rss is not None
            and rss > self.limits.memory_mb / 2
        ):
            logger.debug("recycling worker %d: %.0f MiB resident between tasks", slot.index, rss)
            slot.stop(graceful=True)

    @staticmethod
    def _end(
        slot: _Slot,
        status: TaskStatus,
        error: str | None,
        *,
        kill: bool = False,
        payload: dict[str, Any] | None = None,
        peak: float | None = None,
    ) -> TaskResult:
        result = TaskResult(
            task=slot.task or {},
            status=status,
            payload=payload,
            error=error,
            peak_rss_mb=peak,
            duration_s=time.monotonic() - slot.started,
        )
        if kill:  # a worker that died, hung or blew its cap is not reused
            slot.stop()
        slot.task = None
        return result


class _Slot:
    """One worker process, its pipe, and the task it is running."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None
        self.connection: Connection = None  # type: ignore[assignment]
        self.task: dict[str, Any] | None = None
        self.started = 0.0

    def start(
        self, context: Any, target: str, log: Path | None, environment: dict[str, str]
    ) -> None:
        parent_end, child_end = context.Pipe()
        log_path = None if log is None else str(log)
        self.process = context.Process(
            target=_worker_main, args=(child_end, target, log_path, environment), daemon=True
        )
        self.process.start()
        child_end.close()
        self.connection = parent_end

    def stop(self, *, graceful: bool = False) -> None:
        """End the worker: an idle one by closing its pipe (it exits cleanly), else by SIGKILL."""
        if self.process is None:
            return
        with contextlib.suppress(OSError):
            self.connection.close()
        if graceful:
            self.process.join(timeout=_GRACE_S)
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.process = None


def _death_message(slot: _Slot) -> str:
    slot.process.join(timeout=1)
    code = slot.process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker died from {name}"
    return f"worker exited with code {code} before replying"


def rss_mb(pid: int) -> float | None:
    """Resident set of process `pid` in MiB (``VmRSS``); None where /proc cannot tell."""
    return _status_field_mb(f"/proc/{pid}/status", "VmRSS:")


def _status_field_mb(path: str, field: str) -> float | None:
    try:
        with open(path, encoding="ascii") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def _worker_main(
    connection: Connection, target: str, log_path: str | None, environment: dict[str, str]
) -> None:
    """Serve tasks until the pipe closes. Runs in the worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops workers
    _die_with_parent()
    os.environ.update(environment)
    if log_path is not None:
        _redirect_output(log_path)
    function = _import_target(target)
    while True:
        try:
            task = json.loads(connection.recv_bytes())
        except EOFError:
            return
        connection.send_bytes(json.dumps(_run_task(function, task)).encode())


def _run_task(function: Callable[[dict[str, Any]], dict[str, Any]], task: dict[str, Any]) -> dict:
    _reset_peak_rss()
    try:
        reply: dict[str, Any] = {"payload": function(task)}
    except MemoryError:
        reply = {"out_of_memory": True}
    except Exception:  # a bug in the task function; the campaign records it and goes on
        reply = {"error": traceback.format_exc()}
    reply["peak_rss_mb"] = _status_field_mb("/proc/self/status", "VmHWM:")
    return reply


def _redirect_output(log_path: str) -> None:
    """Send file descriptors 1 and 2 to the log, so converters' C++ output goes there too."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when its parent dies, even by SIGKILL.

    Without it, a worker stuck in a hanging conversion would outlive a killed campaign forever.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0), so the peak is this task's own.
    with contextlib.suppress(OSError), open(f"/proc/{os.getpid()}/clear_refs", "w") as refs:
        refs.write("5")


def _import_target(target: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)
