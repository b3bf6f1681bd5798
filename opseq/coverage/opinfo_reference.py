"""The ``torch-opinfo`` reference: the ``opinfo`` source's cases through the TorchScript exporter.

Each member is one case of `opseq.sources.opinfo`, exported by ``torch.onnx-torchscript``
(`opseq.difftest.convert`, opset 17) when the index build loads it. The export runs in one
isolated worker process (`opseq.difftest.isolate.WorkerPool`), not in the caller's: the exporter
is native code and can kill its process (a SIGFPE in its shape inference on
``nn.functional.unfold`` at torch 2.13), and one such case must not end ``opseq coverage``. A
case that does not convert, or whose export crashes or times out, is `MemberUnavailable`: not a
model of the reference, and not a failure either. The worker's output (the exporter prints a
graph dump for every export that fails) goes to a log in a temporary directory, removed with the
exported files once the last member is loaded.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any

from opseq.coverage.references import Member, MemberUnavailable

__all__ = ["ONLY_OPS", "OPSET", "export_case", "fingerprint_parts", "members"]

logger = logging.getLogger(__name__)

OPSET = 17
TIMEOUT_S = 300.0
ONLY_OPS: tuple[str, ...] | None = None
"""fnmatch patterns of ``op[.variant]`` restricting the reference (tests use a few ops); part of
its fingerprint, so that a restricted index is never taken for the whole one."""
_TARGET = "opseq.coverage.opinfo_reference:export_case"


def fingerprint_parts() -> list[str]:
    """The torch version, the opset, the op filter and the source of opseq's opinfo modules.

    Raises:
        MissingDependencyError: If torch is not installed.
    """
    from opseq.sources import opinfo, opinfo_catalogue, opinfo_samples
    from opseq.sources.opinfo_catalogue import torch_version

    parts = [f"torch {torch_version()}", f"opset {OPSET}", f"ops {ONLY_OPS!r}"]
    for module in (opinfo, opinfo_catalogue, opinfo_samples, sys.modules[__name__]):
        assert module.__file__ is not None
        parts.append(hashlib.sha256(Path(module.__file__).read_bytes()).hexdigest())
    return parts


def members() -> list[Member]:
    """One member per opinfo case (of `ONLY_OPS` when set), each exported when loaded.

    Raises:
        MissingDependencyError: If torch or expecttest is not installed.
    """
    from opseq.sources.opinfo import SOURCE

    ids = list(SOURCE.case_ids()) if ONLY_OPS is None else SOURCE.case_ids_matching(ONLY_OPS)
    exporter = _Exporter(total=len(ids))
    return [Member(case_id, None, functools.partial(exporter.export, case_id)) for case_id in ids]


class _Exporter:
    """One worker exporting cases one at a time; stopped after the last of `total` loads."""

    def __init__(self, *, total: int) -> None:
        self.remaining = total
        self.pool: Any = None
        self.folder: Path | None = None
        self._finalizer: Any = None

    def export(self, case_id: str) -> bytes:
        """The case's ONNX model, serialised.

        Raises:
            MemberUnavailable: If the case does not convert, or its export crashes or hangs.
            ReferenceError: If the worker's own code failed (a bug, with its traceback logged).
        """
        from opseq.coverage.references import ReferenceError
        from opseq.difftest.isolate import TaskStatus

        try:
            pool, folder = self._open()
            target = folder / f"{self.remaining}.onnx"
            (result,) = list(pool.map_unordered([{"case": case_id, "out": str(target)}]))
            if result.status is TaskStatus.ERROR:
                logger.error("exporting %s failed in opseq:\n%s", case_id, result.error)
                raise ReferenceError(f"{case_id}: internal error while exporting")
            if result.status is TaskStatus.CRASH and "exited with code" in (result.error or ""):
                # Not the exporter dying of a signal: the worker itself could not run.
                raise ReferenceError(f"{case_id}: the export worker failed: {result.error}")
            if result.status is not TaskStatus.DONE:
                raise MemberUnavailable(f"{case_id}: {result.status.value}: {result.error}")
            payload = result.payload or {}
            if "unavailable" in payload:
                raise MemberUnavailable(f"{case_id} does not convert: {payload['unavailable']}")
            data = target.read_bytes()
            target.unlink()
            return data
        finally:
            self.remaining -= 1
            if self.remaining <= 0:
                self.close()

    def _open(self) -> tuple[Any, Path]:
        from opseq.difftest.campaign import WORKER_ENVIRONMENT
        from opseq.difftest.isolate import Limits, WorkerPool

        if self.pool is None or self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="opseq-torch-opinfo-"))
            self.pool = WorkerPool(
                _TARGET,
                workers=1,
                limits=Limits(timeout_s=TIMEOUT_S),
                log_dir=self.folder,
                environment=WORKER_ENVIRONMENT,
            ).__enter__()
            self._finalizer = weakref.finalize(self, _stop, self.pool, self.folder)
        return self.pool, self.folder

    def close(self) -> None:
        """Stop the worker and remove the temporary directory."""
        if self._finalizer is not None:
            self._finalizer()
        self.pool = self.folder = self._finalizer = None


def _stop(pool: Any, folder: Path) -> None:
    pool.__exit__(None, None, None)
    shutil.rmtree(folder, ignore_errors=True)


def export_case(task: dict[str, Any]) -> dict[str, Any]:
    """Export one case to ``task["out"]`` (in the worker); say why when it does not convert."""
    from opseq.difftest.convert import get_converter
    from opseq.sources.opinfo import SOURCE

    try:
        case = SOURCE.build(task["case"], seed=0)
        model = get_converter("torch.onnx-torchscript").convert(case, opset=OPSET)
    except MemoryError:
        raise
    except Exception as e:  # a case that does not convert is not a model of the reference
        lines = f"{type(e).__name__}: {e}".strip().splitlines()
        return {"unavailable": lines[0][:300] if lines else type(e).__name__}
    Path(task["out"]).write_bytes(model.SerializeToString())
    return {"path": task["out"]}
