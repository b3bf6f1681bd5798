"""Profiling a reference's models for its index: here or on a Dask cluster, reusing known ones.

Building a reference's index (`opseq.coverage.index`) means loading and profiling every model;
for a corpus of thousands that is the whole cost of a cold ``opseq coverage --corpus``. Two
things cut it. A model whose content digest was profiled by the reference's previous index is
taken from there (renamed if it moved), so a corpus that gained or changed a few models profiles
only those. And with a ``distributed.Client`` the rest are profiled on the cluster's workers: the
client reads each model's bytes (the workers need no shared filesystem) and sends them in small
chunks, a bounded number in flight, and gets back only each model's distinct items and n-grams.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from opseq.coverage.profile import profile_model
from opseq.coverage.references import Member, MemberUnavailable
from opseq.errors import OpseqError
from opseq.graph import build_opgraph
from opseq.limits import Limits, memory_cap
from opseq.loader import load_model

__all__ = ["profile_bytes", "profile_members"]

logger = logging.getLogger(__name__)

_CHUNK = 16  # models per cluster task: small models, so a task is a fraction of a second

# (models profiled, in member order; (name, reason) of those that could not be)
Profiled = tuple[list[Any], list[tuple[str, str]]]


def profile_bytes(item: tuple[str, str | None, bytes], limits: Limits) -> Any:
    """One model's `IndexedModel`, or the first line of why it cannot be profiled.

    Runs on a cluster worker as well as here, so it never raises for a bad model.
    """
    from opseq.coverage.index import IndexedModel

    name, digest, data = item
    try:
        model = load_model(data, limits=limits)
        with memory_cap(limits.memory_budget(len(data)), what=name):
            graph = build_opgraph(model, infer_shapes=True, limits=limits)
            profile = profile_model(model, graph, name=name, digest=digest, limits=limits)
        return IndexedModel.of(profile)
    except OpseqError as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    except MemoryError:
        return f"{name}: out of memory while profiling"


def profile_members(
    members: Sequence[Member],
    limits: Limits,
    *,
    progress: Callable[[Iterable, int], Iterable] | None = None,
    reuse: Mapping[str, Any] | None = None,
    client: Any = None,
) -> Profiled:
    """Profile `members` (reusing `reuse[digest]` where it holds a member's content).

    Args:
        members: The reference's models.
        limits: Held to each model, as to any untrusted model.
        progress: Wraps the members being profiled (e.g. a progress bar).
        reuse: `IndexedModel` by content digest, from the reference's previous index.
        client: A ``distributed.Client``: profile on its workers instead of here.

    Returns:
        The profiles in member order, and (name, reason) for each model that failed; generated
        members that turn out not to exist are left out of both.
    """
    reuse = reuse or {}
    known: dict[int, Any] = {}
    fresh: list[tuple[int, Member]] = []
    for position, member in enumerate(members):
        found = reuse.get(member.digest) if member.digest is not None else None
        if found is not None:
            known[position] = dataclasses.replace(found, name=member.name)
        else:
            fresh.append((position, member))
    if known:
        logger.info("%d of %d models taken from the previous index", len(known), len(members))
    wrapped = fresh if progress is None else progress(fresh, len(fresh))
    results = _on_cluster(wrapped, limits, client) if client else _here(wrapped, limits)
    failures: list[tuple[int, str, str]] = []
    unavailable = 0
    for (position, member), result in results:
        if result is None:
            unavailable += 1
        elif isinstance(result, str):
            failures.append((position, member.name, result))
        else:
            known[position] = result
    failed = [(name, reason) for _, name, reason in sorted(failures)]
    if unavailable:
        logger.info("%d of %d generated reference models do not exist", unavailable, len(members))
    if failed:
        name, reason = failed[0]
        logger.warning(
            "%d reference models could not be read, e.g. %s: %s", len(failed), name, reason
        )
    return [known[p] for p in sorted(known)], failed


def _read(member: Member) -> bytes | None:
    """The member's bytes; None for a generated member that does not exist."""
    try:
        return member.load()
    except MemberUnavailable:
        return None


def _here(fresh: Iterable[tuple[int, Member]], limits: Limits) -> Iterator:
    for position, member in fresh:
        try:
            data = _read(member)
        except OpseqError as e:
            yield (position, member), str(e).splitlines()[0] or type(e).__name__
            continue
        result = None if data is None else profile_bytes((member.name, member.digest, data), limits)
        yield (position, member), result


def _on_cluster(fresh: Iterable[tuple[int, Member]], limits: Limits, client: Any) -> Iterator:
    """Profile on the cluster; members that cannot be read are answered here, after the rest."""
    from opseq.mining.dask_mining import map_ordered

    sent: list[tuple[int, Member]] = []
    unread: list[tuple[tuple[int, Member], str | None]] = []

    def items() -> Iterator[tuple[str, str | None, bytes]]:
        for position, member in fresh:
            try:
                data = _read(member)
            except OpseqError as e:
                unread.append(((position, member), str(e).splitlines()[0] or type(e).__name__))
                continue
            if data is None:
                unread.append(((position, member), None))
                continue
            sent.append((position, member))
            yield member.name, member.digest, data

    # Answers come in the order the items were sent, and `sent` grows before each is sent.
    for k, answer in enumerate(
        map_ordered(client, profile_bytes, items(), chunk=_CHUNK, limits=limits)
    ):
        yield sent[k], answer
    yield from unread
