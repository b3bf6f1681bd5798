"""Every resource limit opseq applies to untrusted models, in one place.

A model that opseq reads may come from a pull request, so a small file must not make it read
without end, inline without end, mine without end or allocate without end. Each limit below is
checked before the work it bounds (or, for memory, enforced by the operating system while the work
runs) and, when exceeded, raises `LimitExceededError` with one line naming the limit and the CLI
flag that raises it. Every subcommand that reads models takes the same flags
(`opseq.cli._common.add_limit_args`).

The defaults sit far above real models: the largest models in ``bench/analyze_bench.py`` (GPT-2,
BERT-base, DenseNet-121) have at most 942 nodes, hold at most 2,852 n-gram windows at n <= 4
(8,919 at n <= 8) and nest no subgraphs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from opseq.errors import LimitExceededError

__all__ = [
    "DEFAULT_LIMITS",
    "PROTOBUF_MAX_BYTES",
    "PROTOBUF_MAX_NESTING",
    "Limits",
    "format_bytes",
    "limit_error",
    "memory_cap",
]

# Protobuf refuses to parse a message of 2 GiB or more (its sizes are signed 32-bit ints).
PROTOBUF_MAX_BYTES = 2**31 - 1
# The deepest If/Loop/Scan nesting that protobuf's decoder accepts (its recursion limit is 100
# nested messages; each subgraph level costs three: attribute, graph, node).
PROTOBUF_MAX_NESTING = 31

_MiB = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Resource limits for reading and analysing one model.

    Attributes:
        max_model_bytes: Largest model file read (``--max-model-size``); files are measured
            before they are read. Protobuf cannot parse more than `PROTOBUF_MAX_BYTES` anyway.
        max_nodes: Most operator nodes in one model, subgraphs included, counted after local
            functions are inlined and checked before inlining (``--max-nodes``).
        max_ngram_windows: Most n-gram windows the n-gram count may build for one model: the
            (node, n-gram ending there) pairs, all lengths together (``--max-ngrams``). Memory and
            time of the count are proportional to it.
        max_nesting: Deepest nesting of If/Loop/Scan bodies (``--max-nesting``); the main graph
            is level 0.
        max_memory_bytes: How much a model's parsing and analysis may grow the process's address
            space beyond twice the file's size, which parsing large tensors needs
            (``--max-memory``). Enforced with ``RLIMIT_AS`` where the platform has it.
    """

    max_model_bytes: int = PROTOBUF_MAX_BYTES
    max_nodes: int = 200_000
    max_ngram_windows: int = 1_000_000
    max_nesting: int = 16
    max_memory_bytes: int = 1536 * _MiB

    def memory_budget(self, model_bytes: int) -> int:
        """Address space one model may add: ``max_memory_bytes`` plus twice its file size."""
        return self.max_memory_bytes + 2 * model_bytes

    def to_dict(self) -> dict[str, int]:
        """Return a JSON-safe dict."""
        return {name: getattr(self, name) for name in _FLAGS}


DEFAULT_LIMITS = Limits()

_FLAGS = {
    "max_model_bytes": "--max-model-size",
    "max_nodes": "--max-nodes",
    "max_ngram_windows": "--max-ngrams",
    "max_nesting": "--max-nesting",
    "max_memory_bytes": "--max-memory",
}


def limit_error(limit: str, what: str, value: int) -> LimitExceededError:
    """Build the error for exceeding `limit` (a `Limits` field) whose value is `value`.

    Examples:
        >>> str(limit_error("max_nodes", "more than 200,000 nodes", 200_000))
        'more than 200,000 nodes: over the limit of 200,000 (raise it with --max-nodes)'
    """
    shown = format_bytes(value) if limit.endswith("_bytes") else f"{value:,}"
    return LimitExceededError(f"{what}: over the limit of {shown} (raise it with {_FLAGS[limit]})")


def format_bytes(size: int) -> str:
    """Format a byte count for a limit message.

    Examples:
        >>> format_bytes(3 * 2**30), format_bytes(1536 * 2**10), format_bytes(12)
        ('3.0 GiB', '1.5 MiB', '12 B')
    """
    for unit, scale in (("GiB", 1 << 30), ("MiB", _MiB), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@contextlib.contextmanager
def memory_cap(extra_bytes: int, *, what: str) -> Iterator[None]:
    """Let the process's address space grow by at most `extra_bytes` inside the block.

    An allocation beyond it fails: Python raises MemoryError, which becomes a
    `LimitExceededError` naming `what` and ``--max-memory``; protobuf reports "Arena alloc
    failed" (`opseq.loader` translates it). The previous limit is restored on exit. A no-op where
    the platform has no ``RLIMIT_AS`` or no ``/proc/self/statm`` to measure the space in use.

    Raises:
        LimitExceededError: If the block runs out of its memory.
    """
    in_use = _address_space_in_use()
    try:
        import resource
    except ImportError:  # Windows
        resource = None  # type: ignore[assignment]
    if resource is None or in_use is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = in_use + extra_bytes
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            cap = min(cap, bound)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    except MemoryError:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        raise limit_error("max_memory_bytes", f"{what}: out of memory", extra_bytes) from None
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space_in_use() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")
