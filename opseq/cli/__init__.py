"""The ``opseq`` command line: one entry point, one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from opseq import __version__
from opseq.cli._common import ExitCode, OneLineErrorParser
from opseq.cli.hypotheses import build_evolution_parser, evolution_argv
from opseq.errors import OpseqError
from opseq.untrusted import escape_controls, escape_lines

__all__ = ["build_parser", "main"]

_SUBCOMMANDS = (
    "analyze",
    "coverage",
    "gate",
    "render",
    "corpus",
    "hypotheses",
    "verify",
    "reduce",
    "findings",
)

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand registered."""
    parser = OneLineErrorParser(
        prog="opseq",
        description="Find the operator sequences that make converted models misbehave.",
        epilog="Run 'opseq COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"opseq {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name in _SUBCOMMANDS:
        importlib.import_module(f"opseq.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (see `ExitCode`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    evolution = evolution_argv(argv)
    parser = build_parser() if evolution is None else build_evolution_parser()
    try:
        args = parser.parse_args(argv if evolution is None else evolution)
    except SystemExit as e:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(e.code or 0)
    _configure_logging(args)
    logger.info("versions: %s", _versions())
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("opseq: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader left (`opseq ... | head`): not an error of opseq's; say nothing more, and
        # point stdout at nowhere so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.CHECK_FAILED
    except OpseqError as e:
        _report(args, f"opseq: error: {e}")
        return ExitCode.INPUT
    except Exception as e:  # anything else is a bug in opseq
        _report(args, f"opseq: internal error, please report: {type(e).__name__}: {e}")
        return ExitCode.INTERNAL


def _configure_logging(args: argparse.Namespace) -> None:
    verbosity = getattr(args, "verbose", 0) - getattr(args, "quiet", 0)
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_EscapingFormatter("opseq: %(levelname)s: %(message)s"))
    root = logging.getLogger("opseq")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _versions() -> str:
    """Installed versions of opseq and the libraries whose behaviour it observes."""
    found = []
    for name in ("onnx", "onnxruntime", "torch", "tensorflow", "tf2onnx", "networkx", "numpy"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join([f"opseq {__version__}", *found])


class _EscapingFormatter(logging.Formatter):
    """One log record, one line: messages may quote names read from untrusted models."""

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)  # other handlers see the original
        record.msg, record.args = escape_controls(record.getMessage()), None
        return super().format(record)

    def formatException(self, ei) -> str:
        return escape_lines(super().formatException(ei))


def _report(args: argparse.Namespace, line: str) -> None:
    if args.debug:
        print(escape_lines(traceback.format_exc()), end="", file=sys.stderr)
    print(escape_controls(line), file=sys.stderr)
