"""Task functions for worker-pool tests, in a module of their own that spawned workers import."""

from __future__ import annotations

import os
import time


def echo(task: dict) -> dict:
    return {"value": task["value"], "pid": os.getpid()}


def abort(task: dict) -> dict:
    os.abort()


def hang(task: dict) -> dict:
    while True:
        time.sleep(1)


def allocate(task: dict) -> dict:
    """Allocate and touch `megabytes` of memory, 64 MiB at a time."""
    chunks = []
    for _ in range(task["megabytes"] // 64):
        chunk = bytearray(64 * 2**20)
        chunk[::4096] = b"x" * len(chunk[::4096])
        chunks.append(chunk)
    return {"allocated": len(chunks) * 64}


def fail(task: dict) -> dict:
    raise ValueError("a bug in the task")


def dispatch(task: dict) -> dict:
    """Run the function named in the task, so one pool can mix good and bad tasks."""
    return globals()[task["function"]](task)


def shout(task: dict) -> dict:
    """Write to stdout from Python and to fd 2 directly, as native code does."""
    print("from python", flush=True)
    os.write(2, b"from native code\n")
    return {}


_kept: list[bytearray] = []


def keep(task: dict) -> dict:
    """Allocate `megabytes` and keep it after returning, as frameworks keep graphs."""
    chunk = bytearray(task["megabytes"] * 2**20)
    chunk[::4096] = b"x" * len(chunk[::4096])
    _kept.append(chunk)
    return {"pid": os.getpid()}


def environment(task: dict) -> dict:
    return {name: os.environ.get(name) for name in task["names"]}
