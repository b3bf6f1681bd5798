"""A reference's index: which items its models contain, built once and cached by fingerprint.

The index holds, per item kind (`opseq.coverage.profile`), how many of the reference's models
contain each item, and per model the items it contains, so that a second run reads one file
instead of loading and mining every model. It lives in the user cache directory
(``platformdirs.user_cache_dir("opseq")/references``, or ``--cache-dir``) as two gzipped JSON
files named by the fingerprint: ``<fp>.summary.json.gz`` (what coverage of a model needs) and
``<fp>.models.json.gz`` (per model, for corpus coverage). A cache file is untrusted input: one
that is unreadable, corrupt, oversized, or from another index schema, onnx or opseq version is
rebuilt, never trusted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from opseq import __version__
from opseq.coverage.profile import ITEM_KINDS, ModelProfile
from opseq.coverage.profiling import profile_members
from opseq.coverage.references import Member, ReferenceError, ReferenceSpec, resolve_members
from opseq.limits import DEFAULT_LIMITS, Limits
from opseq.ngrams import Ngram
from opseq.untrusted import escape_controls

__all__ = [
    "INDEX_SCHEMA_VERSION",
    "IndexedModel",
    "ReferenceIndex",
    "default_cache_dir",
    "load_reference",
]

INDEX_SCHEMA_VERSION = 1
_FORMAT = "opseq-reference-index"
_MAX_CACHE_BYTES = 1 << 30  # decompressed; a larger "index" is not one opseq wrote
_MAX_FAILURES_KEPT = 50

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexedModel:
    """One reference model's distinct items (no counts): ``items[kind]`` and ``ngrams``."""

    name: str
    digest: str | None
    opset: int | None
    node_count: int
    items: Mapping[str, frozenset[str]]
    ngrams: frozenset[Ngram]

    @classmethod
    def of(cls, profile: ModelProfile) -> IndexedModel:
        """The distinct items of a profile."""
        return cls(
            name=profile.name,
            digest=profile.digest,
            opset=profile.opset,
            node_count=profile.node_count,
            items={kind: frozenset(profile.items[kind]) for kind in ITEM_KINDS},
            ngrams=frozenset(profile.ngrams),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceIndex:
    """What one reference contains.

    ``items[kind][item]`` and ``ngrams[ngram]`` count the reference models containing each;
    ``failed`` lists (name, reason) of models that could not be profiled (not in the counts);
    ``models`` the profiled models, loaded from the cache only when asked for (``load_models``).
    """

    spec: ReferenceSpec
    fingerprint: str
    model_count: int
    failed_count: int
    failed: tuple[tuple[str, str], ...]
    items: Mapping[str, Mapping[str, int]]
    ngrams: Mapping[Ngram, int]
    from_cache: bool
    load_models: Callable[[], tuple[IndexedModel, ...]] = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        """Return the JSON-safe description reports carry (not the items)."""
        return {
            "name": self.spec.name,
            "kind": self.spec.kind,
            "fingerprint": self.fingerprint,
            "models": self.model_count,
            "failed": self.failed_count,
            "failed_examples": [{"model": m, "reason": r} for m, r in self.failed[:5]],
            "from_cache": self.from_cache,
            "onnx": onnx.__version__,
        }


def default_cache_dir() -> Path:
    """``$OPSEQ_CACHE_DIR``, else the user cache directory's ``opseq`` (platformdirs)."""
    configured = os.environ.get("OPSEQ_CACHE_DIR")
    if configured:
        return Path(configured)
    import platformdirs

    return Path(platformdirs.user_cache_dir("opseq", appauthor=False))


def load_reference(
    spec: ReferenceSpec,
    *,
    cache_dir: Path | None,
    limits: Limits = DEFAULT_LIMITS,
    progress: Callable[[Iterable[Member], int], Iterable[Member]] | None = None,
    client: Any = None,
) -> ReferenceIndex:
    """Return the index of `spec`, from the cache when a valid entry exists, else built.

    Building reuses the profiles of unchanged models (same content digest) from the spec's
    previous cached index, and profiles the others here or, with `client`, on a Dask cluster
    (`opseq.coverage.profiling`).

    Args:
        spec: The reference.
        cache_dir: Where indexes are cached (``references/`` inside it); None: no cache.
        limits: Limits applied to each reference model, as to any untrusted model.
        progress: Wraps the members while building (e.g. a progress bar).
        client: A ``distributed.Client`` to profile the models on.

    Raises:
        ReferenceError: If the reference holds no models, or none could be profiled.
    """
    fingerprint, members = resolve_members(spec, memo_dir=cache_dir)
    folder = None if cache_dir is None else cache_dir / "references"

    def rebuild() -> tuple[dict, dict]:
        reuse = {} if folder is None else _previous_models(folder, spec, fingerprint)
        profiles, failed = profile_members(
            members(), limits, progress=progress, reuse=reuse, client=client
        )
        if not profiles:
            example = f": {failed[0][0]}: {failed[0][1]}" if failed else ""
            raise ReferenceError(
                f"reference {escape_controls(spec.name)!r}: none of its {len(failed)} models "
                f"could be read{escape_controls(example)}"
            )
        summary, models = _encode(spec, fingerprint, profiles, failed)
        if folder is not None and _write_cached(folder, fingerprint, summary, models):
            _point_to(folder, spec, fingerprint)
        return summary, models

    if folder is not None:
        cached = _read_cached(folder, spec, fingerprint, rebuild)
        if cached is not None:
            return cached
    summary, models = rebuild()
    table = _ngram_table(summary)
    return _decode_summary(spec, summary, lambda: _decode_models(models, table), from_cache=False)


# --- the cache format ------------------------------------------------------------------------
# summary: {format, index_schema, onnx, opseq, fingerprint, spec, models, failed_count, failed,
#           labels: [label...], items: {kind: {item: count}}, ngrams: [[label ids...], count]...}
# models:  {format, index_schema, fingerprint, models: [{name, digest, opset, nodes, items:
#           {kind: [item...]}, ngrams: [ngram ids...]}]}, ngram ids index the summary's n-grams.


def _encode(
    spec: ReferenceSpec,
    fingerprint: str,
    profiles: Sequence[IndexedModel],
    failed: Sequence[tuple[str, str]],
) -> tuple[dict, dict]:
    items: dict[str, dict[str, int]] = {kind: {} for kind in ITEM_KINDS}
    ngram_ids: dict[Ngram, int] = {}
    ngram_models: list[int] = []
    encoded_models = []
    for profile in profiles:
        for kind in ITEM_KINDS:
            counts = items[kind]
            for item in profile.items[kind]:
                counts[item] = counts.get(item, 0) + 1
        ids = []
        for ngram in profile.ngrams:
            index = ngram_ids.setdefault(ngram, len(ngram_ids))
            if index == len(ngram_models):
                ngram_models.append(0)
            ngram_models[index] += 1
            ids.append(index)
        encoded_models.append(
            {
                "name": profile.name,
                "digest": profile.digest,
                "opset": profile.opset,
                "nodes": profile.node_count,
                "items": {kind: sorted(profile.items[kind]) for kind in ITEM_KINDS},
                "ngrams": sorted(ids),
            }
        )
    header = _header(fingerprint)
    summary = {
        **header,
        "spec": spec.to_dict(),
        "models": len(profiles),
        "failed_count": len(failed),
        "failed": [list(f) for f in failed[:_MAX_FAILURES_KEPT]],
        "items": items,
        "ngrams": [_join(ngram) for ngram in ngram_ids],
        "ngram_models": ngram_models,
    }
    return summary, {**header, "models": encoded_models}


def _header(fingerprint: str) -> dict:
    return {
        "format": _FORMAT,
        "index_schema": INDEX_SCHEMA_VERSION,
        "onnx": onnx.__version__,
        "opseq": __version__,
        "fingerprint": fingerprint,
    }


class _CorruptIndex(ValueError):
    pass


def _decode_summary(
    spec: ReferenceSpec, data: Mapping, load_models, *, from_cache: bool
) -> ReferenceIndex:
    items = _mapping(data.get("items"))
    decoded_items = {}
    for kind in ITEM_KINDS:
        counts = _mapping(items.get(kind))
        decoded_items[kind] = {_text(k): _count(v) for k, v in counts.items()}
    table = _ngram_table(data)
    counts = _sequence(data.get("ngram_models"), length=len(table))
    if not all(type(c) is int and c > 0 for c in counts):
        raise _CorruptIndex("n-gram model counts must be positive integers")
    ngrams = dict(zip(table, counts, strict=True))
    failed = tuple(
        (_text(name), _text(reason))
        for name, reason in (_sequence(f, length=2) for f in _sequence(data.get("failed")))
    )
    return ReferenceIndex(
        spec=spec,
        fingerprint=_text(data.get("fingerprint")),
        model_count=_count(data.get("models")),
        failed_count=_count(data.get("failed_count")),
        failed=failed,
        items=decoded_items,
        ngrams=ngrams,
        from_cache=from_cache,
        load_models=load_models,
    )


def _decode_models(data: Mapping, table: Sequence[Ngram]) -> tuple[IndexedModel, ...]:
    models = []
    for entry in _sequence(data.get("models")):
        entry = _mapping(entry)
        items = _mapping(entry.get("items"))
        opset = entry.get("opset")
        models.append(
            IndexedModel(
                name=_text(entry.get("name")),
                digest=entry.get("digest") if isinstance(entry.get("digest"), str) else None,
                opset=opset if isinstance(opset, int) and not isinstance(opset, bool) else None,
                node_count=_count(entry.get("nodes")),
                items={
                    kind: frozenset(_text(i) for i in _sequence(items.get(kind)))
                    for kind in ITEM_KINDS
                },
                ngrams=frozenset(table[_index(i, len(table))] for i in _sequence(entry["ngrams"])),
            )
        )
    return tuple(models)


def _mapping(value) -> Mapping:
    if not isinstance(value, dict):
        raise _CorruptIndex("expected an object")
    return value


def _sequence(value, *, length: int | None = None) -> list:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        raise _CorruptIndex("expected a list")
    return value


def _text(value) -> str:
    if not isinstance(value, str):
        raise _CorruptIndex("expected a string")
    return value


def _count(value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _CorruptIndex("expected a count")
    return value


def _index(value, size: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < size:
        raise _CorruptIndex("n-gram id out of range")
    return value


def _paths(folder: Path, fingerprint: str) -> tuple[Path, Path]:
    return folder / f"{fingerprint}.summary.json.gz", folder / f"{fingerprint}.models.json.gz"


def _read_cached(
    folder: Path, spec: ReferenceSpec, fingerprint: str, rebuild: Callable[[], tuple[dict, dict]]
) -> ReferenceIndex | None:
    summary_path, models_path = _paths(folder, fingerprint)
    if not summary_path.is_file() or not models_path.is_file():
        return None
    try:
        summary = _read_json(summary_path)
        _check_header(summary, fingerprint)
        table = _ngram_table(summary)

        def load_models() -> tuple[IndexedModel, ...]:
            try:
                data = _read_json(models_path)
                _check_header(data, fingerprint)
                return _decode_models(data, table)
            except _UNUSABLE as e:
                logger.warning("the cached index %s is unusable (%s); rebuilding", models_path, e)
                fresh, models = rebuild()
                return _decode_models(models, _ngram_table(fresh))

        return _decode_summary(spec, summary, load_models, from_cache=True)
    except _UNUSABLE as e:
        logger.warning("the cached index %s is unusable (%s); rebuilding it", summary_path, e)
        return None


def _join(ngram: Ngram) -> str | list[str]:
    """An n-gram as one string joined by a separator, or a list if a label holds it."""
    return ngram if any(_SEPARATOR in label for label in ngram) else _SEPARATOR.join(ngram)


def _ngram_table(summary: Mapping) -> list[Ngram]:
    entries = _sequence(summary["ngrams"])
    if not all(type(e) is str or type(e) is list for e in entries):
        raise _CorruptIndex("n-grams must be strings or lists")
    table = [tuple(e.split(_SEPARATOR)) if type(e) is str else tuple(e) for e in entries]
    if not all(type(label) is str for e in entries if type(e) is list for label in e):
        raise _CorruptIndex("n-gram labels must be strings")
    return table


_SEPARATOR = "\x1f"  # the ASCII unit separator: no ONNX op type contains it in practice


_UNUSABLE = (_CorruptIndex, OSError, EOFError, ValueError, KeyError, TypeError, IndexError)


def _check_header(data, fingerprint: str) -> None:
    data = _mapping(data)
    expected = _header(fingerprint)
    for key, value in expected.items():
        if data.get(key) != value:
            raise _CorruptIndex(f"{key} is {data.get(key)!r}, not {value!r}")


def _read_json(path: Path):
    with gzip.open(path, "rb") as stream:
        raw = stream.read(_MAX_CACHE_BYTES + 1)
    if len(raw) > _MAX_CACHE_BYTES:
        raise _CorruptIndex("larger than any index opseq writes")
    return json.loads(raw)


def _write_cached(folder: Path, fingerprint: str, summary: dict, models: dict) -> bool:
    """Write both files atomically; a cache that cannot be written is only a warning."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, data in zip(_paths(folder, fingerprint), (summary, models), strict=True):
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".index-", suffix=".tmp")
            try:
                with (
                    os.fdopen(handle, "wb") as raw,
                    gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=3, mtime=0) as stream,
                ):
                    stream.write(json.dumps(data, separators=(",", ":")).encode())
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
    except OSError as e:
        logger.warning("could not cache the reference index in %s: %s", folder, e)
        return False
    return True


# --- the previous index of a spec, whose unchanged models a rebuild reuses --------------------


def _pointer(folder: Path, spec: ReferenceSpec) -> Path:
    key = json.dumps(spec.to_dict(), sort_keys=True).encode()
    return folder / f"{hashlib.sha256(key).hexdigest()[:24]}.latest"


def _point_to(folder: Path, spec: ReferenceSpec, fingerprint: str) -> None:
    """Record `fingerprint` as the spec's latest index, and delete the one it replaces."""
    pointer = _pointer(folder, spec)
    previous = _read_pointer(pointer)
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".latest-", suffix=".tmp")
        with os.fdopen(handle, "w") as stream:
            stream.write(fingerprint)
        os.replace(temporary, pointer)
        if previous is not None and previous != fingerprint:
            for path in _paths(folder, previous):
                path.unlink(missing_ok=True)
    except OSError as e:
        logger.warning("could not record the latest reference index in %s: %s", folder, e)


def _read_pointer(pointer: Path) -> str | None:
    try:
        with pointer.open("rb") as stream:
            text = stream.read(65).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return None
    return text if _FINGERPRINT.match(text) else None


def _previous_models(folder: Path, spec: ReferenceSpec, fingerprint: str) -> dict:
    """`IndexedModel` by digest from the spec's previous index; empty if there is none usable."""
    previous = _read_pointer(_pointer(folder, spec))
    if previous is None or previous == fingerprint:
        return {}
    summary_path, models_path = _paths(folder, previous)
    try:
        summary = _read_json(summary_path)
        _check_header(summary, previous)
        data = _read_json(models_path)
        _check_header(data, previous)
        models = _decode_models(data, _ngram_table(summary))
    except FileNotFoundError:
        return {}
    except _UNUSABLE as e:
        logger.info(
            "the previous index %s is unusable (%s); profiling every model", summary_path, e
        )
        return {}
    return {m.digest: m for m in models if m.digest is not None}


_FINGERPRINT = re.compile(r"^[0-9a-f]{1,64}$")
