"""Model sources for Dask campaign tests, named ``tests.dask.sources:NAME`` on the command line.

``KILLER`` has a case whose building kills the Dask worker process running it (the isolated
child's parent), as the kernel's OOM killer or a lost machine would, between two normal cases.
Only for Dask campaigns: in a local campaign the parent is opseq itself.
"""

from __future__ import annotations

import os
import signal
import time

from opseq.sources import ModelCase
from tests.campaign.sources import _conv, _mlp, _TestSource


def _kill_dask_worker(seed: int) -> ModelCase:
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(60)  # the child dies with its parent (PR_SET_PDEATHSIG) before this ends
    raise AssertionError("the Dask worker survived SIGKILL")


KILLER = _TestSource("killer", {"mlp": _mlp, "kill": _kill_dask_worker, "conv": _conv})
