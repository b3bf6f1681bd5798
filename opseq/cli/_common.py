"""Pieces shared by the subcommands: exit codes, option groups, output, errors and progress."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import IntEnum
from pathlib import Path
from typing import IO, NoReturn, TypeVar

from opseq.errors import ConfigError
from opseq.limits import DEFAULT_LIMITS, PROTOBUF_MAX_BYTES, PROTOBUF_MAX_NESTING, Limits
from opseq.tolerance import CalibratedRule
from opseq.untrusted import escape_controls

__all__ = [
    "ExitCode",
    "OneLineErrorParser",
    "add_limit_args",
    "add_rule_args",
    "add_output_args",
    "add_verbosity_args",
    "byte_size",
    "comma_list",
    "limits_from_args",
    "open_output",
    "print_error",
    "progress",
    "refuse_overwriting_inputs",
    "rule_from_args",
    "whole_number",
]

T = TypeVar("T")


class ExitCode(IntEnum):
    """Exit codes shared by every subcommand (DESIGN.md, "Command line")."""

    OK = 0
    CHECK_FAILED = 1
    INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2), as all errors are."""

    def error(self, message: str) -> NoReturn:
        """Print ``opseq: error: <prog>: <message> (see '<prog> --help')`` and exit 2."""
        command = self.prog.removeprefix("opseq").strip()
        where = f"{command}: " if command else ""
        print_error(f"{where}{message} (see '{self.prog} --help')")
        raise SystemExit(ExitCode.INPUT)


def print_error(message: str) -> None:
    """Print one error line on stderr, control characters escaped (a message may quote a model)."""
    print(f"opseq: error: {escape_controls(message)}", file=sys.stderr)


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


def add_limit_args(parser: argparse.ArgumentParser, *, ngrams: bool = True) -> None:
    """Add the resource limits on untrusted models (`opseq.limits.Limits`), one flag each.

    ``ngrams=False`` leaves out ``--max-ngrams`` for subcommands that count no n-grams.
    """
    group = parser.add_argument_group("limits on untrusted models")
    defaults = DEFAULT_LIMITS
    group.add_argument(
        "--max-model-size",
        type=byte_size,
        default=defaults.max_model_bytes,
        metavar="SIZE",
        help="largest model file read, e.g. 500M (default: the 2 GiB protobuf can parse)",
    )
    group.add_argument(
        "--max-nodes",
        type=whole_number(1),
        default=defaults.max_nodes,
        metavar="N",
        help="most nodes per model, after inlining local functions (default: %(default)s)",
    )
    if ngrams:
        group.add_argument(
            "--max-ngrams",
            type=whole_number(1),
            default=defaults.max_ngram_windows,
            metavar="N",
            help="most n-gram windows counted per model (default: %(default)s)",
        )
    group.add_argument(
        "--max-nesting",
        type=whole_number(0),
        default=defaults.max_nesting,
        metavar="N",
        help=f"deepest If/Loop/Scan nesting (default: %(default)s; protobuf decodes at most "
        f"{PROTOBUF_MAX_NESTING})",
    )
    group.add_argument(
        "--max-memory",
        type=byte_size,
        default=defaults.max_memory_bytes,
        metavar="SIZE",
        help="memory one model may take beyond twice its file size (default: 1.5G)",
    )


def add_rule_args(
    parser: argparse.ArgumentParser, *, fixed: bool = True, auto: bool = False
) -> None:
    """Add the float64-calibrated rule's options (`opseq.tolerance.CalibratedRule`).

    ``fixed`` adds ``--label calibrated|fixed``; ``auto`` adds the choice ``auto`` (calibrated
    where the data has calibrated measurements, else fixed) and makes it the default.
    """
    group = parser.add_argument_group("behavioural tolerance (float64-calibrated)")
    defaults = CalibratedRule()
    if fixed:
        choices = ("auto", "calibrated", "fixed") if auto else ("calibrated", "fixed")
        group.add_argument(
            "--label",
            choices=choices,
            default=choices[0],
            help="calibrated: mismatch = semantic (the source model's float64 twin as ground "
            "truth); fixed: by --atol/--rtol only"
            + ("; auto: calibrated when the corpus has the measurements" if auto else "")
            + " (default: %(default)s)",
        )
    group.add_argument(
        "--headroom",
        type=_at_least_one,
        default=defaults.headroom,
        metavar="H",
        help="ONNX may deviate H times the framework's own float32 error and stay numerical "
        "(default: %(default)g)",
    )
    group.add_argument(
        "--min-sets",
        type=whole_number(1),
        default=defaults.min_sets,
        metavar="M",
        help="input sets that must be semantic for a semantic verdict (default: %(default)s)",
    )
    group.add_argument(
        "--unstable-units",
        type=_at_least_one,
        default=defaults.unstable_units,
        metavar="U",
        help="a framework float32 error beyond U float32 steps makes an input set unstable "
        "(default: %(default)g)",
    )


def rule_from_args(args: argparse.Namespace) -> CalibratedRule | None:
    """The `CalibratedRule` that `add_rule_args` options ask for (None for ``--label fixed``)."""
    if getattr(args, "label", "calibrated") == "fixed":
        return None  # "auto" is decided by the caller, which knows the data
    return CalibratedRule(
        headroom=args.headroom, min_sets=args.min_sets, unstable_units=args.unstable_units
    )


def _at_least_one(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text!r}")
    return value


def limits_from_args(args: argparse.Namespace) -> Limits:
    """The `Limits` that `add_limit_args` options ask for."""
    return Limits(
        max_model_bytes=min(args.max_model_size, PROTOBUF_MAX_BYTES),
        max_nodes=args.max_nodes,
        max_ngram_windows=getattr(args, "max_ngrams", DEFAULT_LIMITS.max_ngram_windows),
        max_nesting=args.max_nesting,
        max_memory_bytes=args.max_memory,
    )


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


def byte_size(text: str) -> int:
    """An argparse type for sizes: bytes, or a number with K, M, G or T (powers of 1024).

    Examples:
        >>> byte_size("500M"), byte_size("2GiB"), byte_size("1024")
        (524288000, 2147483648, 1024)
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a size like 500M or 2G, got {text!r}")
    scale = 1 << (10 * "kmgt".find(match.group(2).lower()) + 10) if match.group(2) else 1
    return int(float(match.group(1)) * scale)


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
    """Yield stdout, or a temporary file beside `path` that replaces `path` when the block ends.

    A report on disk is therefore either the previous one or a complete new one; if the block
    raises, the temporary file is removed and `path` is untouched. A killed process leaves its
    finished lines in ``.<name>.*.partial`` beside `path`.

    Raises:
        ConfigError: If the file cannot be created.
    """
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            yield stream
        os.chmod(partial, 0o666 & ~_umask())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def refuse_overwriting_inputs(output: Path | None, inputs: Sequence[Path]) -> None:
    """Refuse an output path that is one of the inputs, before anything is opened for writing.

    Raises:
        ConfigError: If `output` is the same file as an input (also through a link).
    """
    if output is None or not output.exists():
        return
    for given in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(output, given):
                raise ConfigError(f"-o {output} is one of the inputs; refusing to overwrite it")


def progress(items: Iterable[T], *, total: int, quiet: bool, unit: str = "model") -> Iterable[T]:
    """Wrap `items` in a progress bar on stderr, shown only on a TTY and when not quiet."""
    if quiet or total < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, unit=unit, file=sys.stderr, disable=None, leave=False)
