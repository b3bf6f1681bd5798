"""Options shared by the commands that read references: coverage, gate and render."""

from __future__ import annotations

import argparse
from pathlib import Path

from opseq.cli._common import progress

__all__ = ["add_reference_args", "cache_dir_from_args", "references_from_args"]


def add_reference_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--reference`` (repeatable), ``--cache-dir`` and ``--no-cache``."""
    group = parser.add_argument_group("reference")
    group.add_argument(
        "--reference",
        action="append",
        metavar="R",
        help="a reference: onnx-node-tests, onnx-backend-models, torch-opinfo (PyTorch's operator "
        "samples through the TorchScript exporter; minutes to build once), corpus-ok[:DIR], a "
        "directory of .onnx files or a manifest (DIR/manifest.jsonl[:outcome=ok]); repeat for "
        "several (default: onnx-node-tests and onnx-backend-models)",
    )
    group.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="where reference indexes are cached (default: $OPSEQ_CACHE_DIR or the user cache "
        "directory)",
    )
    group.add_argument(
        "--no-cache", action="store_true", help="neither read nor write cached reference indexes"
    )


def cache_dir_from_args(args: argparse.Namespace) -> Path | None:
    """The cache directory the options select (None with ``--no-cache``)."""
    from opseq.coverage.index import default_cache_dir

    if args.no_cache:
        return None
    return args.cache_dir if args.cache_dir is not None else default_cache_dir()


def references_from_args(args: argparse.Namespace, texts: list[str] | None = None):
    """Load the references the options name (`opseq.coverage.models.load_references`)."""
    from opseq.cli._common import limits_from_args
    from opseq.coverage.models import load_references

    quiet = bool(getattr(args, "quiet", 0))
    return load_references(
        texts if texts is not None else args.reference,
        cache_dir=cache_dir_from_args(args),
        limits=limits_from_args(args),
        progress=lambda items, total: progress(items, total=total, quiet=quiet, unit="model"),
        client=getattr(args, "client", None),
    )
