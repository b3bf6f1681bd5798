"""Mining models in chunks, in this process, in a process pool, or on a Dask cluster.

The kernel, `mine_model`, turns one model's bytes into its node count and the n-grams (lengths
1..n_max) it contains, or the reason it is left out, exactly as `hypotheses.features` does for one
model, so that a corpus mined anywhere gives the same table.

On a cluster (`mine_on_cluster`) the *client reads the files and sends their bytes* with each
chunk: the workers need no shared filesystem and never open a path a manifest names, and the
digest of what was mined is the digest of what the client read. What comes back per chunk is
sparse: the chunk's own n-gram vocabulary, and per model its node count and the ids of its
n-grams in that vocabulary (an int32 array), or its reason. At most a few chunks are in flight,
so the client holds a bounded number of model bytes whatever the corpus size.

`map_ordered` runs any picklable function over items on the cluster, in chunks, yielding results
in input order; `opseq analyze --scheduler` uses it with paths (its report names each file, so
there the workers read the models from the path, which a `LocalCluster` or a cluster on a shared
filesystem can).

`mine_corpus` is what `hypotheses.features.load_corpus` calls: hash every file, take what the
corpus index (`opseq.mining.index`) holds for those hashes, mine the rest here, in a pool or on
the cluster, and write the index back when something changed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from opseq.errors import ConfigError, OpseqError
from opseq.graph import build_opgraph, iter_graphs
from opseq.limits import memory_cap
from opseq.loader import load_model, read_model_file
from opseq.mining.index import Entry, MiningParams, Store, read_store, write_store
from opseq.ngrams import Ngram, mine_ngrams

__all__ = [
    "INTERNAL_REASON",
    "MinedCorpus",
    "MinedModel",
    "MiningStats",
    "file_digest",
    "map_ordered",
    "mine_corpus",
    "mine_model",
    "mine_on_cluster",
    "mine_path",
]

logger = logging.getLogger(__name__)

# A reason starting with this is a bug (or a lost worker), not a property of the model: it is
# reported again on every run rather than remembered in the index.
INTERNAL_REASON = "model failed"
_CHUNK_MODELS = 64
_CHUNK_BYTES = 8 << 20  # bytes of models per task: well below Dask's large-graph warning
_IN_FLIGHT_PER_WORKER = 2
# Below this many models to mine a process pool costs more to start than it saves.
_MIN_MODELS_FOR_POOL = 50

# One model's result: (nodes, sorted n-gram ids into the vocabulary) or the reason it is out.
Result = tuple[int, np.ndarray] | str


@dataclass(frozen=True, slots=True, kw_only=True)
class MinedModel:
    """One model's structure: its operator nodes and the n-grams it contains."""

    nodes: int
    ngrams: frozenset[Ngram]


def mine_model(data: bytes, params: MiningParams, *, where: str = "<bytes>") -> MinedModel | str:
    """Mine one model from its bytes (plain or gzip), or say why it is left out.

    The reasons are those of `hypotheses.features` (``unreadable model (ModelLoadError)``, ...):
    one model never costs the others.
    """
    try:
        model = load_model(data, limits=params.limits)
        with memory_cap(params.limits.memory_budget(len(data)), what="analysis"):
            graph = build_opgraph(
                model, ignore_ops=params.ignore_ops, infer_shapes=False, limits=params.limits
            )
            nodes = sum(g.number_of_nodes() for g in iter_graphs(graph))
            ngrams = mine_ngrams(graph, n=(1, params.n_max), limits=params.limits).present
        return MinedModel(nodes=nodes, ngrams=ngrams)
    except OpseqError as e:
        return f"unreadable model ({type(e).__name__})"
    except MemoryError:
        return "unreadable model (MemoryError)"
    except Exception:  # a bug in opseq: say so, and go on with the other models
        logger.exception("%s: internal error, please report", where)
        return f"{INTERNAL_REASON}: internal error"


def mine_path(path: str, params: MiningParams) -> tuple[str | None, MinedModel | str]:
    """Read, hash and mine one file: (sha256 of the bytes mined or None if unreadable, result)."""
    try:
        data = read_model_file(Path(path), limits=params.limits)
    except OpseqError as e:
        return None, f"unreadable model ({type(e).__name__})"
    return hashlib.sha256(data).hexdigest(), mine_model(data, params, where=path)


# What a chunk sends back: its vocabulary, and per model (nodes, n-gram ids) or a reason.
ChunkResult = tuple[tuple[Ngram, ...], list[tuple[int, np.ndarray] | str]]


def _mine_chunk(datas: list[bytes], params: MiningParams) -> ChunkResult:
    """Runs on a worker: mine each model, encode the n-grams as ids into the chunk's vocabulary."""
    column: dict[Ngram, int] = {}
    results: list[tuple[int, np.ndarray] | str] = []
    for data in datas:
        mined = mine_model(data, params)
        if isinstance(mined, str):
            results.append(mined)
            continue
        ids = np.fromiter(
            (column.setdefault(g, len(column)) for g in mined.ngrams),
            dtype=np.int32,
            count=len(mined.ngrams),
        )
        results.append((mined.nodes, ids))
    return tuple(column), results


def mine_on_cluster(
    client: Any,
    paths: Sequence[str],
    params: MiningParams,
    *,
    on_done: Callable[[int], None] | None = None,
) -> Iterator[tuple[str | None, MinedModel | str]]:
    """Mine `paths` on the cluster behind `client`; yield (digest, result) in input order.

    The client reads each file (within ``params.limits``) and sends its bytes; a file it cannot
    read is a reason at once, with digest None. A chunk whose task fails (a worker lost twice)
    is a reason for each of its models, which is not remembered.

    Args:
        client: A ``distributed.Client`` (`opseq.distributed.cluster.connect`).
        paths: Model files.
        params: Mining parameters.
        on_done: Called with the number of models each finished chunk held (progress).
    """

    def chunks() -> Iterator[list[tuple[str | None, bytes | str]]]:
        # Per model (digest, bytes), or (None, reason) where the client cannot read the file:
        # that one stays in its place in the chunk, so results keep the input order.
        chunk: list[tuple[str | None, bytes | str]] = []
        size = 0
        for path in paths:
            try:
                data = read_model_file(Path(path), limits=params.limits)
            except OpseqError as e:
                chunk.append((None, f"unreadable model ({type(e).__name__})"))
                continue
            chunk.append((hashlib.sha256(data).hexdigest(), data))
            size += len(data)
            if len(chunk) >= _CHUNK_MODELS or size >= _CHUNK_BYTES:
                yield chunk
                chunk, size = [], 0
        if chunk:
            yield chunk

    def submit(chunk: list[tuple[str | None, bytes | str]]):
        datas = [data for digest, data in chunk if digest is not None]
        future = client.submit(_mine_chunk, datas, params, pure=False) if datas else None
        return chunk, future

    def collect(pending) -> Iterator[tuple[str | None, MinedModel | str]]:
        chunk, future = pending
        results: list = []
        vocabulary: tuple[Ngram, ...] = ()
        if future is not None:
            try:
                vocabulary, results = future.result()
            except Exception as e:  # KilledWorker, a lost connection: not the models' fault
                logger.warning("a mining task failed (%s); its models are left out", e)
                results = [f"{INTERNAL_REASON}: {type(e).__name__}"] * len(chunk)
        mined = iter(results)
        for digest, data in chunk:
            if digest is None:
                yield None, data  # type: ignore[misc]
                continue
            result = next(mined)
            if isinstance(result, str):
                yield digest, result
            else:
                nodes, ids = result
                ngrams = frozenset(vocabulary[j] for j in ids.tolist())
                yield digest, MinedModel(nodes=nodes, ngrams=ngrams)
        if on_done is not None:
            on_done(len(chunk))

    from opseq.distributed.cluster import worker_count

    yield from _bounded(chunks(), submit, collect, _IN_FLIGHT_PER_WORKER * worker_count(client))


def map_ordered(
    client: Any, function: Callable[..., Any], items: Iterable[Any], *, chunk: int = 16, **kwargs
) -> Iterator[Any]:
    """``function(item, **kwargs)`` for each item on the cluster, in chunks, in input order.

    `function` must be importable on the workers (a module-level function of opseq) and must not
    raise: each result comes back as it is, and a chunk that fails re-raises on the client.
    """

    def chunks() -> Iterator[list[Any]]:
        batch: list[Any] = []
        for item in items:
            batch.append(item)
            if len(batch) >= chunk:
                yield batch
                batch = []
        if batch:
            yield batch

    def submit(batch: list[Any]):
        return client.submit(_map_chunk, function, batch, kwargs, pure=False)

    def collect(future) -> Iterator[Any]:
        try:
            results = future.result()
        except RuntimeError as e:
            # Dask's scheduler unpickles each task; one started before opseq was upgraded (or
            # from another install) lacks the function, and Dask says only "deserialization".
            if "deserialization of the task graph" not in str(e):
                raise
            raise ConfigError(
                f"the Dask scheduler could not load opseq's task {function.__qualname__}: it "
                "runs another opseq than this client; install the same opseq on the scheduler "
                "and the workers, and restart them"
            ) from None
        yield from results

    from opseq.distributed.cluster import worker_count

    yield from _bounded(chunks(), submit, collect, _IN_FLIGHT_PER_WORKER * worker_count(client))


def _map_chunk(function: Callable[..., Any], batch: list[Any], kwargs: dict) -> list[Any]:
    return [function(item, **kwargs) for item in batch]


def _bounded(chunks: Iterator, submit: Callable, collect: Callable, in_flight: int) -> Iterator:
    """Submit chunks keeping at most `in_flight` pending, collecting the oldest first (order)."""
    pending: list = []
    try:
        for chunk in chunks:
            pending.append(submit(chunk))
            if len(pending) >= in_flight:
                yield from collect(pending.pop(0))
        while pending:
            yield from collect(pending.pop(0))
    finally:  # interrupted or failed: do not leave work running on the cluster
        for item in pending:
            future = item[1] if isinstance(item, tuple) else item
            if future is not None:
                future.cancel()


# --- a corpus through its index -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class MiningStats:
    """What one `mine_corpus` call did (logged; tests count ``mined``)."""

    models: int
    from_index: int
    mined: int
    dropped: int
    written: bool
    rebuilt: str | None = None

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "models": self.models,
            "from_index": self.from_index,
            "mined": self.mined,
            "dropped": self.dropped,
            "written": self.written,
            "rebuilt": self.rebuilt,
        }


@dataclass(frozen=True, eq=False, kw_only=True)
class MinedCorpus:
    """The structure of each model asked for, sharing one sorted vocabulary.

    Attributes:
        vocabulary: n-grams in sorted order; ids index it.
        results: Per path asked for, (nodes, sorted n-gram ids) or the reason it is left out.
        stats: What was read and mined.
    """

    vocabulary: tuple[Ngram, ...]
    results: tuple[Result, ...]
    stats: MiningStats


def mine_corpus(
    paths: Sequence[str],
    *,
    params: MiningParams,
    names: Sequence[str] | None = None,
    keep: frozenset[str] = frozenset(),
    index: Path | None = None,
    jobs: int = 1,
    client: Any = None,
    progress: bool = False,
) -> MinedCorpus:
    """The structure of each model file, read from the index where its hash is there, else mined.

    Args:
        paths: Model files.
        params: Mining parameters; an index mined with others is rebuilt.
        names: How the index names each path (the manifest's relative paths); default `paths`.
        keep: Names of models this run does not look at but that are still in the corpus
            (a run filtered by converter): their rows stay in the index.
        index: The Parquet index to read and update; None mines everything and writes nothing.
        jobs: Worker processes for mining here (without `client`).
        client: A ``distributed.Client``: mine on its cluster instead.
        progress: Show a progress bar while mining.

    Returns:
        The results, in the order of `paths`.

    Raises:
        MissingDependencyError: If `index` is given and pyarrow is not installed.
    """
    names = list(paths) if names is None else list(names)
    store, rebuilt = Store(), None
    if index is not None:
        store, rebuilt = read_store(index, params)
    old_size = len(store.vocabulary)
    before = set(store.entries)
    digests = [file_digest(path, params) for path in paths]
    to_mine: dict[str, int] = {}  # digest (a placeholder for the unreadable) -> its first path
    for i, digest in enumerate(digests):
        if digest is None or digest not in store.entries:
            to_mine.setdefault(digest or f"?{i}", i)
    mined = _mine(
        [paths[i] for i in to_mine.values()], params, jobs=jobs, client=client, progress=progress
    )
    outcome: dict[str, Entry | str] = {}
    for key, (digest, result) in zip(to_mine, mined, strict=True):
        if isinstance(result, str) and (digest is None or result.startswith(INTERNAL_REASON)):
            outcome[key] = result  # not remembered: unreadable before hashing, or a bug
        else:
            # Keyed by the digest of the bytes mined, which is the file's current content.
            entry = store.entries[digest] = _entry(store, digest, names[to_mine[key]], result)
            outcome[key] = entry
    per_path = [
        outcome.get(digest or f"?{i}") or store.entries[digest]  # type: ignore[index]
        for i, digest in enumerate(digests)
    ]
    used: dict[str, Entry] = {}
    renamed = False
    for name, entry in zip(names, per_path, strict=True):
        if isinstance(entry, Entry) and entry.digest not in used:
            used[entry.digest] = entry
            renamed |= entry.path != name
            entry.path = name
    looked_at = set(names)
    final = {
        d: e
        for d, e in store.entries.items()
        if d in used or (e.path in keep and e.path not in looked_at)
    }
    vocabulary = _compact(store, list(final.values()), sorted_below=old_size)
    dropped = len(before - set(final))
    changed = rebuilt is not None or dropped > 0 or renamed or bool(set(final) - before)
    written = False
    if index is not None and changed:
        written = write_store(index, params, vocabulary, [final[d] for d in sorted(final)])
    stats = MiningStats(
        models=len(paths),
        from_index=sum(1 for d in digests if d in before),
        mined=len(to_mine),
        dropped=dropped,
        written=written,
        rebuilt=rebuilt,
    )
    logger.info("corpus index: %s", stats.to_dict())
    results = tuple(e if isinstance(e, str) else _result(e) for e in per_path)
    return MinedCorpus(vocabulary=vocabulary, results=results, stats=stats)


def _entry(store: Store, digest: str, name: str, result: MinedModel | str) -> Entry:
    if isinstance(result, str):
        return Entry(digest=digest, path=name, nodes=0, ids=None, error=result)
    ids = store.encode(result.ngrams)
    return Entry(digest=digest, path=name, nodes=result.nodes, ids=ids, error=None)


def _result(entry: Entry) -> Result:
    return entry.error if entry.error is not None else (entry.nodes, entry.ids)  # type: ignore[return-value]


def _compact(store: Store, entries: list[Entry], *, sorted_below: int) -> tuple[Ngram, ...]:
    """Keep the n-grams `entries` use, in sorted order, and renumber their ids in place.

    The vocabulary read from an index is sorted (checked), so while nothing was added the ids'
    order is the n-grams' order and renumbering keeps each row sorted.
    """
    arrays = [e.ids for e in entries if e.ids is not None]
    used = np.unique(np.concatenate(arrays)) if arrays else np.empty(0, dtype=np.int32)
    grown = len(store.vocabulary) > sorted_below
    if grown:
        order = np.array(
            sorted(used.tolist(), key=store.vocabulary.__getitem__), dtype=np.int64
        ).reshape(-1)
    else:
        order = used.astype(np.int64)
    vocabulary = tuple(store.vocabulary[j] for j in order.tolist())
    if len(order) == len(store.vocabulary) and not grown:
        return vocabulary  # every n-gram used, none added: ids unchanged
    remap = np.full(len(store.vocabulary), -1, dtype=np.int32)
    remap[order] = np.arange(len(order), dtype=np.int32)
    for entry in entries:
        if entry.ids is not None:
            ids = remap[entry.ids]
            if grown:
                ids.sort()
            entry.ids = ids
    return vocabulary


def file_digest(path: str, params: MiningParams) -> str | None:
    """SHA-256 of the file as stored, or None if it cannot be read (mining says why)."""
    try:
        return hashlib.sha256(read_model_file(Path(path), limits=params.limits)).hexdigest()
    except OpseqError:
        return None


def _mine(
    paths: list[str], params: MiningParams, *, jobs: int, client: Any, progress: bool
) -> list[tuple[str | None, MinedModel | str]]:
    """(digest of the bytes mined, result) per path, here, in a pool, or on the cluster."""
    bar = tqdm(total=len(paths), unit="model", disable=None if progress else True, leave=False)
    with bar:
        if client is not None:
            return list(mine_on_cluster(client, paths, params, on_done=bar.update))
        if jobs <= 1 or len(paths) < _MIN_MODELS_FOR_POOL:
            found = []
            for path in paths:
                found.append(mine_path(path, params))
                bar.update(1)
            return found
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            found = []
            chunksize = max(1, len(paths) // (jobs * 8))
            for item in pool.map(mine_path, paths, [params] * len(paths), chunksize=chunksize):
                found.append(item)
                bar.update(1)
            return found
