"""Store a finished corpus gzip-compressed: ``models/**/*.onnx.gz`` and ``manifest.jsonl.gz``.

Structure-only synthetic models are a few kilobytes of protobuf that gzip shrinks about fourfold,
and manifest rows (raw differences, calibrations, timings per input set) about tenfold; the
shipped corpus stays within its size budget this way. Every opseq reader accepts both forms
(`opseq.loader` recognises gzip by its magic bytes; `opseq.corpus.manifest_path` finds the
compressed manifest), and a compressed corpus is read-only: a campaign refuses to append to it.

Compressed models are written first (each to a temporary file, then renamed), the compressed
manifest next, and only then are the plain manifest and models removed: an interrupted run leaves
a corpus every reader still accepts, and running it again finishes the job. gzip headers carry
no name or time, so the same corpus compresses to the same bytes.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opseq.corpus import COMPRESSED_SUFFIX, MANIFEST_NAME, is_compressed, manifest_path
from opseq.errors import ConfigError

__all__ = ["CompressionResult", "compress_corpus"]


@dataclass(frozen=True)
class CompressionResult:
    """What `compress_corpus` did."""

    models: int
    bytes_before: int
    bytes_after: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "models": self.models,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        }


def compress_corpus(corpus: Path) -> CompressionResult:
    """Compress every model a corpus's manifest names, then the manifest itself.

    Raises:
        ConfigError: If `corpus` holds no plain manifest.
    """
    manifest = manifest_path(corpus)
    if is_compressed(manifest) or not manifest.is_file():
        raise ConfigError(f"{corpus}: no plain {MANIFEST_NAME} to compress")
    lines = manifest.read_text(encoding="utf-8").splitlines()
    before = after = models = 0
    rewritten, done = [], []
    for line in lines:
        if not line.strip():
            continue
        row = json.loads(line)
        model = row.get("model")
        if isinstance(model, str) and model.endswith(".onnx"):
            plain = corpus / model
            packed = corpus / (model + COMPRESSED_SUFFIX)
            if plain.is_file():
                before += plain.stat().st_size
                _write_atomically(packed, gzip.compress(plain.read_bytes(), 9, mtime=0))
                done.append(plain)
            after += packed.stat().st_size if packed.is_file() else 0
            row["model"] = model + COMPRESSED_SUFFIX
            models += 1
        rewritten.append(json.dumps(row, sort_keys=False))
    text = "".join(f"{line}\n" for line in rewritten).encode("utf-8")
    before += manifest.stat().st_size
    packed_manifest = corpus / (MANIFEST_NAME + COMPRESSED_SUFFIX)
    _write_atomically(packed_manifest, gzip.compress(text, 9, mtime=0))
    after += packed_manifest.stat().st_size
    manifest.unlink()
    for plain in done:
        plain.unlink()
    return CompressionResult(models=models, bytes_before=before, bytes_after=after)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)
