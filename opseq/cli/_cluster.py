"""``--scheduler ADDRESS`` / ``--dask N``: the commands that can work on a Dask cluster.

analyze, hypotheses and ``coverage --corpus`` mine or profile models on the cluster's workers;
``corpus build`` has its own options (a campaign also needs ``--store``).
"""

from __future__ import annotations

import argparse
import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

from opseq.cli._common import whole_number

__all__ = ["add_cluster_args", "cluster_from_args"]


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--scheduler ADDRESS`` and ``--dask N`` (one of them): work on a Dask cluster."""
    group = parser.add_argument_group("Dask cluster (the dask extra)")
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="work on the Dask cluster of this scheduler (tcp://host:8786)",
    )
    exclusive.add_argument(
        "--dask",
        type=whole_number(1),
        metavar="N",
        help="work on a local Dask cluster of N worker processes started for this run",
    )


@contextlib.contextmanager
def cluster_from_args(args: argparse.Namespace) -> Iterator[Any]:
    """A ``distributed.Client`` when ``--scheduler`` or ``--dask`` asks for one, else None.

    Raises:
        ConfigError: If the scheduler cannot be reached (before any model is read).
        MissingDependencyError: If the dask extra is not installed.
    """
    if args.scheduler is None and args.dask is None:
        yield None
        return
    from opseq.distributed.cluster import connect

    with warnings.catch_warnings():
        # Dask says so on stderr when another cluster holds its dashboard port; none is used.
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        with connect(args.scheduler, local_workers=args.dask) as client:
            yield client
