"""Pause Python's cyclic garbage collector around allocation-heavy analysis steps.

Building an OpGraph allocates a few objects per node, which triggers collections; each full
collection also traverses the loaded protobuf model and costs 10-30 ms on real models, more than
the whole analysis. The steps create no garbage cycles worth collecting early, so the collector is
paused while they run and restored afterwards (nesting is safe).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["collector_paused"]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block, restoring its previous state after."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
