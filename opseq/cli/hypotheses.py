"""Test hypotheses that relate operator sequences to mismatches on a labelled corpus.

Reads a corpus (manifest.jsonl + models), relabels it under a tolerance rule, and tests: which
operators and which n-grams are associated with mismatch (one-sided Fisher, and a score test
adjusted for model size and converter, Benjamini-Hochberg q-values); whether operators and
n-grams predict mismatch beyond size (cross-validated logistic regression); the study's Table 12;
and how all this moves with the tolerance. `opseq hypotheses evolution ISSUES.csv` tests the
study's RQ3: are bigger ONNX opset releases followed by more converter issues?

Mining the models is most of a cold run, so what it finds is kept in a corpus index (Parquet,
keyed by each model file's SHA-256; default in the user cache directory, --index PATH elsewhere,
--no-index for none): a second run over an unchanged corpus reads it, and mines only models that
are new or changed. --scheduler ADDRESS or --dask N mine those on a Dask cluster (the client sends
each model's bytes; the results are the same as mining here).

Example:
  opseq hypotheses corpus/ --format md -o report.md
  opseq hypotheses corpus/ --dask 2 --index /tmp/corpus-index.parquet -o report.txt
  opseq hypotheses corpus/ --headroom 16 --reference corpus/examples --format html -o report.html
  opseq hypotheses corpus/ --label fixed --atol 1e-3 --format json -o report.json
  opseq hypotheses evolution corpus/issues/converter_issues.csv --merge-days 30 --drop-last
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from opseq.cli._cluster import add_cluster_args, cluster_from_args
from opseq.cli._common import (
    ExitCode,
    OneLineErrorParser,
    add_limit_args,
    add_output_args,
    add_rule_args,
    add_verbosity_args,
    comma_list,
    limits_from_args,
    open_output,
    rule_from_args,
    whole_number,
)
from opseq.errors import ConfigError
from opseq.ngrams import parse_ngram_range
from opseq.untrusted import escape_lines

__all__ = ["build_evolution_parser", "evolution_argv", "register", "run", "run_evolution"]

logger = logging.getLogger(__name__)


def evolution_argv(argv: Sequence[str]) -> list[str] | None:
    """The arguments for the evolution parser, if `argv` asks for ``hypotheses evolution``.

    ``opseq hypotheses CORPUS`` takes a path where a subcommand would go, so argparse cannot tell
    ``evolution`` from a corpus directory; the word right after ``hypotheses`` decides (a corpus
    directory named ``evolution`` is reached as ``./evolution``).

    Examples:
        >>> evolution_argv(["--debug", "hypotheses", "evolution", "i.csv"])
        ['--debug', 'i.csv']
        >>> evolution_argv(["hypotheses", "corpus/"]) is None
        True
    """
    for i, token in enumerate(argv):
        if not token.startswith("-"):
            if token == "hypotheses" and list(argv[i + 1 : i + 2]) == ["evolution"]:
                return [*argv[:i], *argv[i + 2 :]]
            return None
    return None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``hypotheses`` and ``hypotheses evolution``."""
    parser = subparsers.add_parser(
        "hypotheses",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("corpus", type=Path, metavar="CORPUS", help="corpus directory or manifest")
    labels = parser.add_argument_group("labels")
    labels.add_argument(
        "--atol",
        type=_non_negative,
        default=1e-7,
        help="with --label fixed: mismatch when max abs diff >= ATOL (default: the study's "
        "%(default)g)",
    )
    labels.add_argument(
        "--rtol", type=_non_negative, help="and max relative diff >= RTOL (default: not used)"
    )
    labels.add_argument(
        "--converter", type=comma_list, default=frozenset(), help="only these converters (a,b)"
    )
    labels.add_argument(
        "--source", type=comma_list, default=frozenset(), help="only these model sources (a,b)"
    )
    tests = parser.add_argument_group("tests")
    tests.add_argument(
        "--n", type=parse_ngram_range, default=(2, 4), help="n-gram lengths (default: 2..4)"
    )
    tests.add_argument(
        "--min-support",
        type=whole_number(1),
        default=5,
        help="test n-grams in at least this many models (default: %(default)s)",
    )
    tests.add_argument(
        "--alpha", type=_probability, default=0.05, help="false discovery rate (default: 0.05)"
    )
    tests.add_argument("--folds", type=whole_number(2), default=5, help="CV folds (default: 5)")
    tests.add_argument("--repeats", type=whole_number(1), default=5, help="CV repeats (default: 5)")
    tests.add_argument("--seed", type=int, default=0, help="CV shuffle seed (default: 0)")
    tests.add_argument("--no-prediction", action="store_true", help="skip the prediction tests")
    tests.add_argument("--no-sweep", action="store_true", help="skip the tolerance sweep")
    tests.add_argument(
        "--reference",
        type=Path,
        metavar="DIR",
        help="reference corpus of .onnx models for Table 12 (e.g. onnx's backend test data)",
    )
    parser.add_argument(
        "--jobs",
        type=whole_number(1),
        default=min(os.cpu_count() or 1, 2),
        help="processes reading models, threads fitting CV folds (default: %(default)s)",
    )
    parser.add_argument(
        "--top", type=whole_number(1), default=20, help="rows per table in md/text (default: 20)"
    )
    index = parser.add_argument_group("corpus index")
    where = index.add_mutually_exclusive_group()
    where.add_argument(
        "--index",
        type=Path,
        metavar="PATH",
        help="the corpus index file to read and update (default: in the user cache directory)",
    )
    where.add_argument(
        "--no-index", action="store_true", help="mine every model; read and write no index"
    )
    add_cluster_args(parser)
    add_rule_args(parser, auto=True)
    add_limit_args(parser)
    add_output_args(parser, ("text", "md", "json", "html"))
    add_verbosity_args(parser)
    parser.set_defaults(run=run)


def build_evolution_parser() -> argparse.ArgumentParser:
    """The parser of ``opseq hypotheses evolution`` (reached through `evolution_argv`)."""
    parser = OneLineErrorParser(
        prog="opseq hypotheses evolution",
        description=(
            "Are bigger ONNX opset releases followed by more converter issues? "
            "(the study's RQ3)\n\n"
            "ISSUES.csv has a created_at column (ISO date) and optionally a cause column. Each\n"
            "issue is attributed to the latest opset release on or before its day; release sizes\n"
            "(operators added or changed) come from the installed onnx's schema history.\n\n"
            "Example:\n  opseq hypotheses evolution corpus/issues/converter_issues.csv --drop-last"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("issues", type=Path, metavar="ISSUES.csv")
    parser.add_argument(
        "--merge-days",
        type=whole_number(0),
        default=0,
        metavar="N",
        help="merge releases closer than N days (default: 0)",
    )
    parser.add_argument("--drop-first", action="store_true", help="drop the first release")
    parser.add_argument("--drop-last", action="store_true", help="drop the last release")
    parser.add_argument(
        "--alpha", type=_probability, default=0.05, help="significance level (default: 0.05)"
    )
    add_output_args(parser, ("text", "md", "json"))
    add_verbosity_args(parser)
    parser.set_defaults(run=run_evolution, debug=False)
    return parser


def run(args: argparse.Namespace) -> ExitCode:
    """Run every hypothesis on the corpus and write the report."""
    _require_stats()
    from hypotheses.features import load_corpus, read_reference_ngrams
    from hypotheses.report import STAGES, ReportConfig, build_report

    # Everything that can fail fast does, before minutes of work.
    if args.format == "html":
        _require_matplotlib()
    if args.output is not None and not args.output.parent.is_dir():
        raise ConfigError(f"cannot write {args.output}: no such directory {args.output.parent}")
    n_max = max(args.n[1], 3)  # Table 12 needs n-grams of length >= 3
    reference = reference_info = None
    limits = limits_from_args(args)
    if args.reference is not None:
        reference, models, unreadable = read_reference_ngrams(
            args.reference, n_max=n_max, limits=limits
        )
        reference_info = {"path": str(args.reference), "models": models, "unreadable": unreadable}
    with cluster_from_args(args) as client:
        table = load_corpus(
            args.corpus,
            n_max=n_max,
            jobs=args.jobs,
            converters=sorted(args.converter),
            sources=sorted(args.source),
            progress=not args.quiet,
            limits=limits,
            index=_index_path(args),
            client=client,
        )
    config = ReportConfig(
        tolerance=_rule(args, table),
        n_range=args.n,
        min_support=args.min_support,
        alpha=args.alpha,
        folds=args.folds,
        repeats=args.repeats,
        seed=args.seed,
        sweep=() if args.no_sweep else ReportConfig().sweep,
        prediction=not args.no_prediction,
        jobs=args.jobs,
    )
    logger.info("testing %d models", len(table))
    with _stage_bar(STAGES, quiet=bool(args.quiet)) as on_stage:
        report = build_report(
            table, config, reference=reference, reference_info=reference_info, on_stage=on_stage
        )
    _write(args.output, _render(report.to_dict(), args.format, args.top))
    return ExitCode.OK


def _index_path(args: argparse.Namespace) -> Path | None:
    """The corpus index to use: --index, none with --no-index, else the default one.

    The default needs pyarrow (the dask extra's); without it a run mines everything, as before.
    """
    if args.no_index:
        return None
    if args.index is not None:
        if args.index.is_dir():
            raise ConfigError(f"--index {args.index}: is a directory, expected a file path")
        return args.index
    from opseq.corpus import manifest_path
    from opseq.mining.index import default_index_path

    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        logger.info("pyarrow is not installed: no corpus index")
        return None
    return default_index_path(manifest_path(args.corpus))


def run_evolution(args: argparse.Namespace) -> ExitCode:
    """Test the opset-evolution hypothesis on an issue table."""
    _require_stats()
    from hypotheses.evolution import format_evolution_markdown, opset_evolution, read_issues

    result = opset_evolution(
        read_issues(args.issues),
        merge_within_days=args.merge_days,
        drop_first=args.drop_first,
        drop_last=args.drop_last,
        alpha=args.alpha,
    )
    if args.format == "json":
        text = json.dumps(result.to_dict(), indent=2) + "\n"
    else:
        text = escape_lines(format_evolution_markdown(result))  # titles come from a CSV
    _write(args.output, text)
    return ExitCode.OK


@contextlib.contextmanager
def _stage_bar(stages: Sequence[str], *, quiet: bool) -> Iterator[Callable[[str], None]]:
    """A progress bar over the report's stages (on a TTY, unless quiet)."""
    from tqdm import tqdm

    with tqdm(
        total=len(stages), unit="stage", file=sys.stderr, disable=True if quiet else None,
        leave=False, bar_format="{desc} {n_fmt}/{total_fmt} [{elapsed}]",
    ) as bar:  # fmt: skip
        done: list[str] = []

        def on_stage(name: str) -> None:
            if done:
                bar.update(1)
            done.append(name)
            bar.set_description_str(f"testing: {name}")

        yield on_stage


def _render(report: dict, fmt: str, top: int) -> str:
    if fmt == "json":
        return json.dumps(report, indent=1, allow_nan=False) + "\n"
    if fmt == "html":
        from hypotheses.render_html import render_html

        return render_html(report)
    from hypotheses.render_markdown import render_markdown

    return escape_lines(render_markdown(report, top=top))  # labels come from models


def _write(path: Path | None, text: str) -> None:
    """Write the whole text at once: a report is never left half-written on disk."""
    with open_output(path) as out:
        out.write(text)


def _rule(args: argparse.Namespace, table):
    """The labelling rule: calibrated where asked (or, with auto, where measured), else fixed."""
    from hypotheses.labels import Tolerance

    calibrated = rule_from_args(args)
    measured = any(c is not None for c in table.calibrations)
    if args.label == "calibrated" and not measured:
        raise ConfigError(
            f"{args.corpus}: no row has float64-calibrated measurements; use --label fixed"
        )
    if calibrated is None or (args.label == "auto" and not measured):
        return Tolerance(atol=args.atol, rtol=args.rtol)
    return calibrated


def _require_matplotlib() -> None:
    from opseq._optional import import_optional

    import_optional("matplotlib", "report")


def _require_stats() -> None:
    """The statistics stack is an extra: a deployment gate does not need it."""
    from opseq._optional import import_optional

    for module in ("scipy", "statsmodels", "sklearn"):
        import_optional(module, "stats")


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value
