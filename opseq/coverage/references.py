"""Reference corpora: what a model's coverage is measured against, named and fingerprinted.

A reference spec is one of:

- ``onnx-node-tests``: the operator tests of the installed onnx, generated in process from its
  own test-case code (``onnx.backend.test.case.node.collect_testcases``);
- ``onnx-backend-models``: the ``.onnx`` files shipped in the installed onnx's
  ``backend/test/data``;
- ``torch-opinfo``: what the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``,
  opset 17, as `opseq.difftest.convert` calls it) makes of every case of the ``opinfo`` source
  (PyTorch's own operator samples, `opseq.sources.opinfo`) that converts, exported one by one
  in an isolated worker (`opseq.coverage.opinfo_reference`); cases that do not convert are left
  out, not counted as failures. Building it exports some 4,500 samples (four minutes on two
  cores at torch 2.13, about half of them converting); its index is cached like the others;
- ``corpus-ok`` or ``corpus-ok:DIR``: the models of a corpus (default the shipped ``corpus/``)
  whose verdict under the corpus's rule is ``ok`` (rows without a verdict: outcome ``ok``);
- ``DIR``: every ``.onnx`` file under a directory;
- ``DIR/manifest.jsonl`` or ``DIR``: a manifest's models, optionally filtered,
  ``DIR/manifest.jsonl:outcome=ok`` or ``:verdict=ok`` (filters joined with ``,``).

The default reference is ``onnx-node-tests`` + ``onnx-backend-models``. A fingerprint is a
SHA-256 over the members' content hashes (file references) or over the onnx version and the
source of its test cases (generated references, whose models cost seconds to generate; for
``torch-opinfo`` the torch and onnx versions and the source of opseq's opinfo modules), plus
the index schema, so that any change to what the reference holds gives another fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx

from opseq.corpus import manifest_path, read_manifest
from opseq.errors import ConfigError, OpseqError
from opseq.loader import MODEL_SUFFIXES, model_files
from opseq.untrusted import escape_controls

__all__ = [
    "DEFAULT_REFERENCES",
    "Member",
    "MemberUnavailable",
    "ReferenceError",
    "ReferenceSpec",
    "parse_reference",
    "resolve_members",
    "shipped_corpus",
]

DEFAULT_REFERENCES = ("onnx-node-tests", "onnx-backend-models")
GENERATED = ("onnx-node-tests", "torch-opinfo")
NAMED = ("onnx-node-tests", "onnx-backend-models", "torch-opinfo")
_MANIFEST_FILTERS = ("outcome", "verdict", "converter", "source")


class ReferenceError(OpseqError, ValueError):
    """A reference cannot be used: missing, empty, or not a reference at all."""


class MemberUnavailable(ReferenceError):
    """A generated member that turns out not to exist (an opinfo case that does not convert)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceSpec:
    """A parsed reference spec.

    ``kind`` is ``onnx-node-tests``, ``onnx-backend-models``, ``torch-opinfo``, ``manifest`` or
    ``directory``;
    ``filters`` are (key, value) pairs on manifest rows; ``ok_verdict`` selects rows whose
    verdict (or, without one, outcome) is ``ok``, which is what ``corpus-ok`` means.
    """

    name: str
    kind: str
    path: Path | None = None
    filters: tuple[tuple[str, str], ...] = ()
    ok_verdict: bool = False

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "name": self.name,
            "kind": self.kind,
            "path": None if self.path is None else str(self.path),
            "filters": dict(self.filters),
            "ok_verdict": self.ok_verdict,
        }


@dataclass(frozen=True, slots=True)
class Member:
    """One model of a reference: its name, its content digest (None for generated models)."""

    name: str
    digest: str | None
    load: Callable[[], bytes]


def shipped_corpus() -> Path | None:
    """The corpus shipped in opseq's source tree, when opseq runs from a checkout."""
    candidate = Path(__file__).resolve().parents[2] / "corpus"
    return candidate if manifest_path(candidate).is_file() else None


def parse_reference(text: str) -> ReferenceSpec:
    """Parse a reference spec (see the module docstring).

    Raises:
        ReferenceError: If the spec names nothing that exists, or a filter is malformed.

    Examples:
        >>> parse_reference("onnx-node-tests").kind
        'onnx-node-tests'
    """
    if text in NAMED:
        return ReferenceSpec(name=text, kind=text)
    if text == "corpus-ok" or text.startswith("corpus-ok:"):
        where = text.partition(":")[2]
        corpus = Path(where) if where else shipped_corpus()
        if corpus is None:
            raise ReferenceError(
                "corpus-ok: the shipped corpus is not here (opseq runs from an installed "
                "package); name one: corpus-ok:DIR"
            )
        manifest = _manifest_of(corpus, text)
        return ReferenceSpec(name=text, kind="manifest", path=manifest, ok_verdict=True)
    path_text, filters = _split_filters(text)
    path = Path(path_text)
    if not path.exists():
        raise ReferenceError(f"reference {escape_controls(text)!r}: no such file or directory")
    if (path.is_file() and path.name.endswith(".jsonl")) or filters:
        manifest = path if path.is_file() else _manifest_of(path, text)
        return ReferenceSpec(name=text, kind="manifest", path=manifest, filters=filters)
    if path.is_dir() and manifest_path(path).is_file():
        return ReferenceSpec(name=text, kind="manifest", path=manifest_path(path))
    if path.is_dir():
        return ReferenceSpec(name=text, kind="directory", path=path)
    if path.name.endswith(MODEL_SUFFIXES):
        raise ReferenceError(
            f"reference {escape_controls(text)!r} is one model; a reference is a directory of "
            "models, a manifest, onnx-node-tests, onnx-backend-models, torch-opinfo or corpus-ok"
        )
    raise ReferenceError(
        f"reference {escape_controls(text)!r} is neither a directory nor a manifest"
    )


def _manifest_of(corpus: Path, text: str) -> Path:
    manifest = manifest_path(corpus) if corpus.is_dir() else corpus
    if not manifest.is_file():
        raise ReferenceError(f"reference {escape_controls(text)!r}: no manifest at {manifest}")
    return manifest


def _split_filters(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Split ``PATH:key=value,key=value``; a colon without ``=`` after it is part of the path."""
    head, sep, tail = text.rpartition(":")
    if not sep or "=" not in tail or not head:
        return text, ()
    filters = []
    for part in tail.split(","):
        key, eq, value = part.partition("=")
        if not eq or key not in _MANIFEST_FILTERS or not value:
            raise ReferenceError(
                f"reference {escape_controls(text)!r}: bad filter {escape_controls(part)!r} "
                f"(use {', '.join(k + '=VALUE' for k in _MANIFEST_FILTERS)})"
            )
        filters.append((key, value))
    return head, tuple(filters)


def resolve_members(
    spec: ReferenceSpec, *, memo_dir: Path | None = None
) -> tuple[str, Callable[[], list[Member]]]:
    """Return the spec's fingerprint and a callable that lists its members.

    File references hash their files now (the fingerprint needs them); a generated reference
    generates its models only when the callable is called, so a cached index spares that.
    With `memo_dir`, file digests and a manifest's selection are remembered there by file
    size, mtime and inode (as git's index does), so an unchanged reference is not re-read.

    Raises:
        ReferenceError: If the reference holds no models.
    """
    if spec.kind == "onnx-node-tests":
        return _fingerprint(spec, [f"onnx {onnx.__version__}", _node_test_source_digest()]), (
            _node_test_members
        )
    if spec.kind == "torch-opinfo":
        from opseq.coverage import opinfo_reference

        return _fingerprint(spec, opinfo_reference.fingerprint_parts()), opinfo_reference.members
    memo = _DigestMemo.open(memo_dir, spec)
    if spec.kind == "onnx-backend-models":
        root = Path(onnx.__file__).parent / "backend" / "test" / "data"
        members = _file_members(sorted(root.rglob("*.onnx")), root, memo)
    elif spec.kind == "directory":
        assert spec.path is not None
        members = _file_members(model_files(spec.path), spec.path, memo)
    else:
        members = _manifest_members(spec, memo)
    memo.save()
    if not members:
        raise ReferenceError(f"reference {escape_controls(spec.name)!r} holds no models")
    return _fingerprint(spec, [f"{m.name}\0{m.digest}" for m in members]), lambda: members


def _fingerprint(spec: ReferenceSpec, parts: Sequence[str]) -> str:
    from opseq.coverage.index import INDEX_SCHEMA_VERSION

    digest = hashlib.sha256()
    header = {"index_schema": INDEX_SCHEMA_VERSION, "onnx": onnx.__version__, "kind": spec.kind}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for part in parts:
        digest.update(part.encode("utf-8", "backslashreplace"))
        digest.update(b"\n")
    return digest.hexdigest()


def _node_test_source_digest() -> str:
    """SHA-256 of onnx's node test-case sources: what the generated models are made from."""
    root = Path(onnx.__file__).parent / "backend" / "test" / "case" / "node"
    digest = hashlib.sha256()
    for path in sorted(root.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _node_test_members() -> list[Member]:
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test cases' own numpy overflow warnings
        cases = collect_testcases()
    return [_generated_member(case.name, case.model) for case in cases]


def _generated_member(name: str, model: onnx.ModelProto) -> Member:
    data = model.SerializeToString()
    return Member(name, hashlib.sha256(data).hexdigest(), lambda: data)


def _file_members(paths: Sequence[Path], root: Path, memo: _DigestMemo) -> list[Member]:
    return [
        Member(_relative(path, root), memo.digest(path), _reader(path))
        for path in paths
        if path.is_file()
    ]


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _reader(path: Path) -> Callable[[], bytes]:
    def read() -> bytes:
        from opseq.loader import read_model_file

        return read_model_file(path)

    return read


class _DigestMemo:
    """File digests (and a manifest's selection) remembered by stat, optionally on disk.

    The memo file is untrusted like any cache: anything malformed in it is ignored (and the
    files hashed again); a stale entry never matches, because its stat key differs.
    """

    def __init__(self, path: Path | None, entries: dict[str, list]) -> None:
        self.path, self.entries, self.changed = path, entries, False

    @classmethod
    def open(cls, memo_dir: Path | None, spec: ReferenceSpec) -> _DigestMemo:
        if memo_dir is None:
            return cls(None, {})
        key = hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()
        path = memo_dir / "digests" / f"{key[:32]}.json"
        try:
            with path.open("rb") as stream:
                data = json.loads(stream.read(_MAX_MEMO_BYTES + 1))
            entries = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries)

    def digest(self, path: Path) -> str:
        info = path.stat()
        name = str(path.resolve())
        stat = [info.st_size, info.st_mtime_ns, info.st_ino]
        entry = self.entries.get(name)
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and entry[0] == stat
            and isinstance(entry[1], str)
            and len(entry[1]) == 64
        ):
            return entry[1]
        digest = _digest_file(path)
        self.entries[name], self.changed = [stat, digest], True
        return digest

    def selection(self, manifest: Path, select: Callable[[], list[tuple[str, str]]]) -> list:
        """The (row id, model path) pairs a manifest selects, remembered by its stat."""
        info = manifest.stat()
        key = f"manifest:{manifest.resolve()}"
        stat = [info.st_size, info.st_mtime_ns, info.st_ino]
        entry = self.entries.get(key)
        if isinstance(entry, list) and len(entry) == 2 and entry[0] == stat:
            pairs = entry[1]
            if isinstance(pairs, list) and all(
                isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
                for p in pairs
            ):
                return [tuple(p) for p in pairs]
        pairs = select()
        self.entries[key], self.changed = [stat, [list(p) for p in pairs]], True
        return pairs

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(self.entries))
            os.replace(temporary, self.path)
        except OSError:
            pass  # the memo only saves time


_MAX_MEMO_BYTES = 256 << 20


def _digest_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_members(spec: ReferenceSpec, memo: _DigestMemo) -> list[Member]:
    assert spec.path is not None
    root = spec.path.parent

    def select() -> list[tuple[str, str]]:
        try:
            rows = read_manifest(spec.path)
        except OpseqError as e:
            raise ReferenceError(f"reference {escape_controls(spec.name)!r}: {e}") from e
        return [(row.id, row.model) for row in rows if row.model and _selected(row, spec)]

    members = []
    for row_id, model in memo.selection(spec.path, select):
        path = (root / model).resolve()
        if not path.is_relative_to(root.resolve()) or not path.is_file():
            continue  # a manifest may not point outside its corpus, nor at nothing
        members.append(Member(row_id, memo.digest(path), _reader(path)))
    return members


def _selected(row, spec: ReferenceSpec) -> bool:
    values = {
        "outcome": row.outcome.value,
        "verdict": row.extra.get("verdict"),
        "converter": row.converter,
        "source": row.source,
    }
    if spec.ok_verdict and (values["verdict"] or values["outcome"]) != "ok":
        return False
    return all(values[key] == value for key, value in spec.filters)


def iter_specs(texts: Sequence[str] | None) -> Iterator[ReferenceSpec]:
    """Parse each spec of `texts`, or the default reference when none are given."""
    if texts is not None and not texts:
        raise ConfigError("--reference needs at least one reference")
    for text in texts or DEFAULT_REFERENCES:
        yield parse_reference(text)
