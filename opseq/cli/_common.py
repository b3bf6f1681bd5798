"""Pieces shared by the subcommands: exit codes, option groups, output and progress."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from enum import IntEnum
from pathlib import Path
from typing import IO, TypeVar

from opseq.errors import ConfigError

__all__ = [
    "ExitCode",
    "add_output_args",
    "add_verbosity_args",
    "comma_list",
    "open_output",
    "progress",
    "whole_number",
]

T = TypeVar("T")


class ExitCode(IntEnum):
    """Exit codes shared by every subcommand (DESIGN.md)."""

    OK = 0
    CHECK_FAILED = 1
    INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130


def add_output_args(
    parser: argparse.ArgumentParser, formats: tuple[str, ...] = ("text", "json")
) -> None:
    """Add ``--format`` and ``-o/--output``."""
    group = parser.add_argument_group("output")
    group.add_argument(
        "--format", choices=formats, default=formats[0], help="output format (default: %(default)s)"
    )
    group.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the result to FILE instead of stdout",
    )


def add_verbosity_args(parser: argparse.ArgumentParser) -> None:
    """Add ``-v/--verbose`` and ``-q/--quiet`` (which also hides progress bars)."""
    group = parser.add_argument_group("logging")
    group.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output on stderr"
    )
    group.add_argument(
        "-q", "--quiet", action="count", default=0, help="less log output, no progress bar"
    )
    # SUPPRESS: absent here must not reset a --debug given before the subcommand.
    group.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type accepting whole numbers >= `minimum`.

    Examples:
        >>> whole_number(1)("3")
        3
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def comma_list(text: str) -> frozenset[str]:
    """Parse ``"Constant,Identity"`` into a set; the empty string is the empty set."""
    return frozenset(item.strip() for item in text.split(",") if item.strip())


@contextlib.contextmanager
def open_output(path: Path | None) -> Iterator[IO[str]]:
    """Yield stdout, or `path` opened for writing (created or truncated).

    Raises:
        ConfigError: If the file cannot be opened for writing.
    """
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        stream = path.open("w", encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
    with stream:
        yield stream


def progress(items: Iterable[T], *, total: int, quiet: bool, unit: str = "model") -> Iterable[T]:
    """Wrap `items` in a progress bar on stderr, shown only on a TTY and when not quiet."""
    if quiet or total < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, unit=unit, file=sys.stderr, disable=None, leave=False)
