"""A corpus's structure index: what mining found in each model file, kept on disk in Parquet.

Every ``opseq hypotheses`` run needs, per labelled model, its node count and the n-grams
(lengths 1..n_max) it contains; mining them is nearly all of a cold run. The index keeps them,
one row per model *content*, keyed by the SHA-256 of the file's bytes as stored (compressed or
not), so a second run over an unchanged corpus hashes the files and reads one file; a changed or
new model (its hash is not in the index) is mined and the index updated; rows of models no
longer in the manifest are dropped. A model that cannot be read is a row too, with its reason, so
it is not tried again until it changes (internal errors are not remembered: they are retried and
reported on every run).

Where: by default in the user cache directory (``$OPSEQ_CACHE_DIR`` or platformdirs'
``opseq``), ``corpus-index/<hash of the manifest's resolved path>/structure.parquet``, so a
read-only or shared corpus (the shipped ``corpus/``) is never written into; ``--index PATH``
puts it anywhere, e.g. beside the manifest to ship it with the corpus (rows are keyed by
content, so an index stays valid wherever the corpus moves).

Format (`INDEX_SCHEMA_VERSION` 1): columns ``digest`` (hex SHA-256), ``path`` (as the manifest
names it, for people), ``nodes`` (int64, null for an unreadable model), ``ngrams``
(list<int32>: sorted ids into the vocabulary, null for an unreadable model), ``error`` (the
reason, or null), ``n_max`` (int16) and ``ignore_ops`` (JSON list); the file's key-value
metadata ``opseq.corpus_index`` holds JSON: format, index schema, opseq and onnx versions, the
mining parameters (n_max, ignore_ops, limits) and the vocabulary's size; ``opseq.vocabulary``
holds the vocabulary, the n-grams in sorted order (labels joined by U+001F) as a JSON list,
zstd-compressed and base64-encoded (no ``ARROW:schema`` copy, which would hold it twice). One
file, so one ``os.replace`` of a complete temporary file makes an update atomic.

`opseq.mining.dask_mining.mine_corpus` reads, mines what is missing and writes it back.

The file is untrusted input: one that is not a regular file, larger than `MAX_INDEX_BYTES`,
not Parquet, truncated, of another schema, format or version, mined with other parameters, or
whose rows do not fit (types, ids out of range, duplicate digests) is a warning and is rebuilt;
nothing in it is trusted before all of it is checked; the vocabulary is never inflated past the
size the header states.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from opseq import __version__
from opseq._optional import import_optional
from opseq.limits import DEFAULT_LIMITS, Limits
from opseq.ngrams import Ngram
from opseq.untrusted import escape_controls

__all__ = [
    "INDEX_NAME",
    "INDEX_SCHEMA_VERSION",
    "MAX_INDEX_BYTES",
    "Entry",
    "MiningParams",
    "Store",
    "default_index_path",
    "read_store",
    "write_store",
]

INDEX_SCHEMA_VERSION = 1
INDEX_NAME = "structure.parquet"
MAX_INDEX_BYTES = 1 << 31  # an index of a million models is far below this
_FORMAT = "opseq-corpus-index"
_META_KEY = b"opseq.corpus_index"
_VOCABULARY_KEY = b"opseq.vocabulary"  # base64 of the zstd-compressed JSON list of n-grams
_SEPARATOR = "\x1f"  # the ASCII unit separator: no ONNX op type contains it in practice
_DIGEST = re.compile(r"^[0-9a-f]{64}$")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class MiningParams:
    """What a mined result depends on besides the model: the index is valid for these only."""

    n_max: int = 4
    ignore_ops: tuple[str, ...] = ()
    limits: Limits = DEFAULT_LIMITS

    def to_dict(self) -> dict:
        """Return a JSON-safe dict (ops sorted: their order does not change the result)."""
        return {
            "n_max": self.n_max,
            "ignore_ops": sorted(self.ignore_ops),
            "limits": self.limits.to_dict(),
        }


@dataclass(eq=False)
class Entry:
    """One row: a model content's node count and n-gram ids, or why it cannot be read."""

    digest: str
    path: str
    nodes: int
    ids: np.ndarray | None  # into Store.vocabulary; None with an error
    error: str | None


@dataclass(eq=False)
class Store:
    """The index being updated: entries by digest, n-gram ids into one growing vocabulary."""

    vocabulary: list[Ngram] = field(default_factory=list)
    column: dict[Ngram, int] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)

    def encode(self, ngrams: frozenset[Ngram]) -> np.ndarray:
        """The sorted ids of `ngrams`, adding those the vocabulary lacks at its end."""
        if len(self.column) != len(self.vocabulary):  # built on first use: warm runs need none
            self.column = {g: j for j, g in enumerate(self.vocabulary)}
        ids = np.empty(len(ngrams), dtype=np.int32)
        for k, ngram in enumerate(ngrams):
            j = self.column.get(ngram)
            if j is None:
                j = self.column[ngram] = len(self.vocabulary)
                self.vocabulary.append(ngram)
            ids[k] = j
        ids.sort()
        return ids


def default_index_path(manifest: Path) -> Path:
    """Where the index of `manifest` lives unless ``--index`` says (see the module docstring)."""
    from opseq.coverage.index import default_cache_dir

    key = hashlib.sha256(os.fsencode(manifest.resolve())).hexdigest()[:24]
    return default_cache_dir() / "corpus-index" / key / INDEX_NAME


# --- the file ---------------------------------------------------------------------------------


class _Unusable(ValueError):
    """The index file is not one this opseq wrote for these parameters."""


def _schema(pa: Any) -> Any:
    return pa.schema(
        [
            ("digest", pa.string()),
            ("path", pa.string()),
            ("nodes", pa.int64()),
            ("ngrams", pa.list_(pa.int32())),
            ("error", pa.string()),
            ("n_max", pa.int16()),
            ("ignore_ops", pa.string()),
        ]
    )


def _header(params: MiningParams) -> dict:
    return {
        "format": _FORMAT,
        "index_schema": INDEX_SCHEMA_VERSION,
        "opseq": __version__,
        "onnx": onnx.__version__,
        "params": params.to_dict(),
    }


def read_store(path: Path, params: MiningParams) -> tuple[Store, str | None]:
    """The index at `path` as a store, or an empty one and why the file was not usable."""
    pa = import_optional("pyarrow", "dask")
    import_optional("pyarrow.parquet", "dask")
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return Store(), None
    except OSError as e:
        return _rebuild(path, f"cannot stat it: {e.strerror or e}")
    try:
        if not stat.S_ISREG(info.st_mode):
            raise _Unusable("not a regular file")
        if info.st_size > MAX_INDEX_BYTES:
            raise _Unusable(f"{info.st_size} bytes, larger than any index opseq writes")
        return _decode(pa, _read_bytes(path), params), None
    except (*_UNUSABLE, pa.ArrowException) as e:
        return _rebuild(path, _first_line(e))


def _rebuild(path: Path, reason: str) -> tuple[Store, str]:
    logger.warning(
        "the corpus index %s is unusable (%s); rebuilding it",
        escape_controls(str(path)),
        escape_controls(reason),
    )
    return Store(), reason


def _read_bytes(path: Path) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped after the stat
            raise _Unusable("not a regular file")
        with os.fdopen(os.dup(fd), "rb") as stream:
            data = stream.read(MAX_INDEX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_INDEX_BYTES:
        raise _Unusable("larger than any index opseq writes")
    return data


def _decode(pa: Any, data: bytes, params: MiningParams) -> Store:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(pa.BufferReader(data))
    metadata = parquet.schema_arrow.metadata or {}
    if _META_KEY not in metadata:
        raise _Unusable("no opseq corpus-index metadata")
    header = json.loads(metadata[_META_KEY])
    if not isinstance(header, dict):
        raise _Unusable("metadata is not an object")
    for key, value in _header(params).items():
        found = header.get(key)
        if found != value and key == "params":
            found = found if isinstance(found, dict) else {}
            keys = sorted(k for k in value if found.get(k) != value[k])
            raise _Unusable(f"other mining parameters ({', '.join(keys)})")
        if found != value:
            raise _Unusable(f"other {key}: {found!r}, this run {value!r}")
    if not parquet.schema_arrow.remove_metadata().equals(_schema(pa)):
        raise _Unusable(f"columns or types {parquet.schema_arrow.names} are not schema 1's")
    uncompressed = sum(
        parquet.metadata.row_group(i).total_byte_size for i in range(parquet.num_row_groups)
    )
    if uncompressed > 4 * MAX_INDEX_BYTES:
        raise _Unusable("its rows inflate beyond any index opseq writes")
    vocabulary = _vocabulary(_inflate(pa, header.get("vocabulary"), metadata), params.n_max)
    table = parquet.read()
    return _store(table, vocabulary, params)


def _inflate(pa: Any, described: Any, metadata: dict) -> Any:
    """The vocabulary's JSON, inflated never past the size its header states."""
    if not isinstance(described, dict) or described.get("codec") != "zstd":
        raise _Unusable("vocabulary is not described")
    size = described.get("bytes")
    if type(size) is not int or not 0 <= size <= MAX_INDEX_BYTES:
        raise _Unusable("vocabulary size out of range")
    compressed = base64.b64decode(metadata.get(_VOCABULARY_KEY, b""), validate=True)
    raw = pa.decompress(compressed, decompressed_size=size, codec="zstd", asbytes=True)
    return json.loads(raw)


def _vocabulary(entries: Any, n_max: int) -> list[Ngram]:
    if not isinstance(entries, list):
        raise _Unusable("vocabulary is not a list")
    vocabulary = []
    for entry in entries:
        if type(entry) is str:
            ngram = tuple(entry.split(_SEPARATOR))
        elif type(entry) is list and all(type(label) is str for label in entry):
            ngram = tuple(entry)
        else:
            raise _Unusable("vocabulary entries must be strings")
        if not 1 <= len(ngram) <= n_max:
            raise _Unusable("vocabulary n-gram of the wrong length")
        vocabulary.append(ngram)
    if any(a >= b for a, b in itertools.pairwise(vocabulary)):
        raise _Unusable("vocabulary is not sorted and distinct")
    return vocabulary


def _store(table: Any, vocabulary: list[Ngram], params: MiningParams) -> Store:
    rows = table.num_rows
    digests = table.column("digest").to_pylist()
    paths = table.column("path").to_pylist()
    errors = table.column("error").to_pylist()
    nodes_column = table.column("nodes")
    ngrams = table.column("ngrams").combine_chunks()
    if len(set(digests)) != rows or not all(type(d) is str and _DIGEST.match(d) for d in digests):
        raise _Unusable("digests must be distinct hex SHA-256")
    if not all(type(p) is str for p in paths):
        raise _Unusable("paths must be strings")
    if not all(e is None or type(e) is str for e in errors):
        raise _Unusable("errors must be strings")
    failed = np.array([e is not None for e in errors], dtype=bool)
    if not np.array_equal(nodes_column.is_null().to_numpy(zero_copy_only=False), failed) or not (
        np.array_equal(ngrams.is_null().to_numpy(zero_copy_only=False), failed)
    ):
        raise _Unusable("nodes and n-grams must be null exactly for unreadable models")
    nodes = nodes_column.fill_null(0).to_numpy()
    if (nodes < 0).any():
        raise _Unusable("negative node count")
    n_max = table.column("n_max").to_pylist()
    ignore = table.column("ignore_ops").to_pylist()
    if set(n_max) - {params.n_max} or set(ignore) - {json.dumps(sorted(params.ignore_ops))}:
        raise _Unusable("rows mined with other parameters")
    offsets = ngrams.offsets.to_numpy().astype(np.int64)
    if ngrams.values.null_count:
        raise _Unusable("null n-gram id")
    values = ngrams.values.to_numpy()[offsets[0] : offsets[-1]].astype(np.int32)
    if values.size and (values.min() < 0 or values.max() >= len(vocabulary)):
        raise _Unusable("n-gram id out of range")
    base = offsets[0]
    rows_of = np.repeat(np.arange(rows), np.diff(offsets))
    same_row = rows_of[1:] == rows_of[:-1]
    if (np.diff(values)[same_row] <= 0).any():
        raise _Unusable("n-gram ids of a row must be sorted and distinct")
    store = Store(vocabulary=vocabulary)
    for i in range(rows):
        ids = None if failed[i] else values[offsets[i] - base : offsets[i + 1] - base]
        store.entries[digests[i]] = Entry(
            digest=digests[i], path=paths[i], nodes=int(nodes[i]), ids=ids, error=errors[i]
        )
    return store


def write_store(
    path: Path, params: MiningParams, vocabulary: Sequence[Ngram], entries: list[Entry]
) -> bool:
    """Write the whole index to a temporary file beside `path`, then rename it into place."""
    pa = import_optional("pyarrow", "dask")
    import pyarrow.parquet as pq

    failed = [e.error is not None for e in entries]
    lengths = [0 if e.ids is None else len(e.ids) for e in entries]
    offsets = np.zeros(len(entries) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    arrays = [e.ids for e in entries if e.ids is not None]
    values = np.concatenate(arrays).astype(np.int32) if arrays else np.empty(0, np.int32)
    ngrams = pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values), mask=pa.array(failed, type=pa.bool_())
    )
    words = json.dumps([_join(g) for g in vocabulary], separators=(",", ":")).encode()
    header = {**_header(params), "vocabulary": {"codec": "zstd", "bytes": len(words)}}
    packed = base64.b64encode(pa.compress(words, codec="zstd", asbytes=True))
    columns = {
        "digest": pa.array([e.digest for e in entries], pa.string()),
        "path": pa.array([e.path for e in entries], pa.string()),
        "nodes": pa.array([None if e.error else e.nodes for e in entries], pa.int64()),
        "ngrams": ngrams,
        "error": pa.array([e.error for e in entries], pa.string()),
        "n_max": pa.array([params.n_max] * len(entries), pa.int16()),
        "ignore_ops": pa.array([json.dumps(sorted(params.ignore_ops))] * len(entries)),
    }
    metadata = {_META_KEY: json.dumps(header, separators=(",", ":")), _VOCABULARY_KEY: packed}
    table = pa.table(list(columns.values()), schema=_schema(pa))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".tmp")
        os.close(handle)
        try:
            # No ARROW:schema copy: it would repeat the metadata, and the vocabulary, in base64.
            with pq.ParquetWriter(
                temporary, table.schema, compression="zstd", store_schema=False
            ) as writer:
                writer.write_table(table)
                writer.add_key_value_metadata(metadata)
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 is for secrets
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as e:
        logger.warning("could not write the corpus index %s: %s", escape_controls(str(path)), e)
        return False
    return True


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _join(ngram: Ngram) -> str | list[str]:
    """An n-gram as one string joined by a separator, or a list if a label holds it."""
    return list(ngram) if any(_SEPARATOR in label for label in ngram) else _SEPARATOR.join(ngram)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]


_UNUSABLE = (
    _Unusable,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    MemoryError,
    NotImplementedError,
)
