"""Connect to a Dask scheduler, or start a `LocalCluster`, before any work starts.

opseq's own worker pool (`opseq.difftest.isolate`) is the default on one machine. Beyond it,
campaigns and mining run on Dask distributed: ``--scheduler tcp://host:8786`` connects to a
scheduler started elsewhere (by hand, SSH, dask-jobqueue, Kubernetes), ``--dask N`` starts a
`LocalCluster` of N single-threaded worker processes for this run. An address that cannot be
reached is one `ConfigError` (exit 2) raised before any case is planned or any model is read.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from opseq._optional import import_optional
from opseq.errors import ConfigError
from opseq.untrusted import escape_controls

__all__ = ["CONNECT_TIMEOUT_S", "connect", "worker_count"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
# "tcp://host:port", "tls://...", "inproc://..." or a bare "host:port" (Dask adds tcp://).
_ADDRESS = re.compile(r"^(?:(?:tcp|tls|ws|wss|inproc|ucx)://)?[^\s/]+(?::\d{1,5})?/?$")


@contextlib.contextmanager
def connect(
    scheduler: str | None = None,
    *,
    local_workers: int | None = None,
    timeout_s: float = CONNECT_TIMEOUT_S,
) -> Iterator[Any]:
    """Yield a ``distributed.Client``: to `scheduler`, or to a new `LocalCluster`.

    Args:
        scheduler: A scheduler address; None starts a `LocalCluster`.
        local_workers: Worker processes of the `LocalCluster` (one thread each).
        timeout_s: Seconds to wait for the scheduler to answer.

    Raises:
        MissingDependencyError: If the ``dask`` extra is not installed.
        ConfigError: If the address is malformed or the scheduler does not answer in time.
    """
    distributed = import_optional("distributed", "dask")
    if scheduler is None:
        workers = max(1, local_workers or 1)
        with (
            _quiet_dask(),
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            yield client
        return
    if not _ADDRESS.match(scheduler):
        raise ConfigError(f"not a scheduler address: {escape_controls(scheduler)!r}")
    try:
        client = distributed.Client(scheduler, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {escape_controls(scheduler)} within "
            f"{timeout_s:g} s: {escape_controls(_first_line(e))}"
        ) from e
    try:
        yield client
    finally:
        client.close()


def worker_count(client: Any) -> int:
    """Worker threads the scheduler knows of now (at least 1, for sizing the queue)."""
    info = client.scheduler_info()
    return max(1, sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values()))


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask logs every worker start and stop at INFO; opseq's stderr is for its own lines."""
    names = ("distributed", "distributed.scheduler", "distributed.nanny", "distributed.worker")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
