"""Analyse the structure of ONNX models: sizes, op histogram, n-grams, dataflow path counts.

Accepts files and directories (searched recursively for *.onnx and *.onnx.gz). External tensor
data is never read, and models are untrusted input: each is held to the limits below, and one that
fails is reported on stderr in one line while the others go on. With several models, a corpus
summary follows the per-model reports; the command exits 1 when some models failed, 2 when all did.

With --scheduler ADDRESS (a running Dask scheduler) or --dask N (a local cluster of N workers),
the models are analysed on the cluster's workers, which read them from their paths (so a remote
cluster needs the same files at the same paths); the report is the same as without.

Example:
  opseq analyze corpus/examples/resnet_torch.onnx --n 2..4 --top 5
  opseq analyze corpus/examples --format jsonl -o analyses.jsonl --jobs 2
  opseq analyze corpus/examples --dask 2 --format json -o analyses.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opseq.analysis import ModelAnalysis, analyze_model, summarize_corpus
from opseq.cli._cluster import add_cluster_args, cluster_from_args
from opseq.cli._common import (
    ExitCode,
    add_limit_args,
    add_output_args,
    add_verbosity_args,
    comma_list,
    limits_from_args,
    open_output,
    print_error,
    progress,
    refuse_overwriting_inputs,
    whole_number,
)
from opseq.errors import ConfigError, OpseqError
from opseq.graph import DEFAULT_IGNORED_OPS
from opseq.loader import model_files
from opseq.ngrams import parse_ngram_range
from opseq.report import format_corpus_summary, format_model_analysis
from opseq.untrusted import escape_lines

__all__ = ["register", "run"]

_SCHEMA_VERSION = 1
# Below this many models a process pool costs more to start than it saves.
_MIN_MODELS_PER_WORKER = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``analyze`` subcommand."""
    parser = subparsers.add_parser(
        "analyze",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "models", nargs="+", type=Path, metavar="MODEL", help=".onnx files or directories"
    )
    parser.add_argument(
        "--n",
        type=_ngram_range,
        default=(2, 4),
        metavar="N|LO..HI",
        help="n-gram lengths (default: 2..4; 1-grams are the op histogram)",
    )
    parser.add_argument(
        "--top",
        type=whole_number(0),
        default=10,
        metavar="K",
        help="n-grams shown per length, most frequent first; 0 = all (default: 10)",
    )
    parser.add_argument(
        "--ignore",
        type=comma_list,
        default=DEFAULT_IGNORED_OPS,
        metavar="OPS",
        help="comma-separated op labels spliced out of the graph "
        "(default: Constant,Identity; '' keeps every op)",
    )
    parser.add_argument(
        "--jobs",
        type=whole_number(0),
        default=0,
        metavar="J",
        help="worker processes; 0 = one per core when there are many models (default)",
    )
    add_cluster_args(parser)
    add_limit_args(parser)
    add_output_args(parser, formats=("text", "json", "jsonl"))
    add_verbosity_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    """Analyse the models named by `args`; see the module docstring."""
    paths, failures = _expand_inputs(args.models)
    refuse_overwriting_inputs(args.output, paths)
    with cluster_from_args(args) as client:
        args.client = client
        return _run(args, paths, failures)


def _run(args: argparse.Namespace, paths: list[Path], failures: list[_Failure]) -> ExitCode:
    report = _Report(fmt=args.format, top=args.top or None)
    interrupted = False
    with open_output(args.output) as out:
        try:
            for outcome in progress(
                _analyze_all(paths, args), total=len(paths), quiet=bool(args.quiet)
            ):
                failure = outcome if isinstance(outcome, _Failure) else report.add(outcome, out)
                if failure is not None:
                    failures.append(failure)
                    _print_failure(failure, debug=args.debug)
        except KeyboardInterrupt:
            interrupted = True  # keep and report what has finished
        report.finish(out, failures, several=len(paths) > 1)
    if interrupted:
        print("opseq: interrupted; the report covers the models finished so far", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return _exit_code(report.analyses, failures)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Failure:
    path: str
    message: str
    internal: bool = False
    traceback: str | None = None  # internal errors only, shown with --debug

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.message, "internal": self.internal}

    @classmethod
    def internal_error(cls, path: str, error: BaseException) -> _Failure:
        message = f"{path}: internal error, please report: {type(error).__name__}: {error}"
        return cls(path=path, message=message, internal=True, traceback=traceback.format_exc())


def _print_failure(failure: _Failure, *, debug: bool) -> None:
    if failure.traceback and debug:
        print(escape_lines(failure.traceback), end="", file=sys.stderr)
    print_error(failure.message)


def _expand_inputs(inputs: Sequence[Path]) -> tuple[list[Path], list[_Failure]]:
    """Files as given, directories searched recursively; missing paths and empty folders fail."""
    paths: list[Path] = []
    failures: list[_Failure] = []
    for given in inputs:
        if given.is_dir():
            # Everything named *.onnx but directories: the loader refuses FIFOs, devices and
            # broken links with a line each, rather than skipping them unseen.
            found = model_files(given)
            if not found:
                failures.append(
                    _Failure(path=str(given), message=f"{given}: no .onnx files in this directory")
                )
            paths.extend(found)
        elif given.exists() or given.is_symlink():
            paths.append(given)
        else:
            failures.append(
                _Failure(path=str(given), message=f"{given}: no such file or directory")
            )
    for failure in failures:
        print_error(failure.message)
    return paths, failures


def _analyze_all(paths: list[Path], args: argparse.Namespace) -> Iterator[ModelAnalysis | _Failure]:
    """Analyse in input order; several models go to a process pool (one worker per core)."""
    options = {"n": args.n, "ignore_ops": args.ignore, "limits": limits_from_args(args)}
    if getattr(args, "client", None) is not None:
        from opseq.mining.dask_mining import map_ordered

        # A worker's working directory is its own: it reads the absolute path, and the report
        # names the path as given here.
        located = [(path, path.resolve()) for path in paths]
        yield from map_ordered(args.client, _analyze_located, located, chunk=8, options=options)
        return
    jobs = _worker_count(args.jobs, len(paths))
    if jobs <= 1:
        yield from (_analyze_one(path, options) for path in paths)
        return
    chunksize = max(1, len(paths) // (jobs * 8))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_analyze_one, paths, [options] * len(paths), chunksize=chunksize)


def _worker_count(requested: int, models: int) -> int:
    if requested:
        return requested
    return min(os.cpu_count() or 1, models // _MIN_MODELS_PER_WORKER) or 1


def _analyze_located(located: tuple[Path, Path], options: dict) -> ModelAnalysis | _Failure:
    """`_analyze_one` of the absolute path, reported under the path as given."""
    given, absolute = located
    result = _analyze_one(absolute, options)
    if isinstance(result, _Failure):
        message = result.message.replace(str(absolute), str(given))
        return dataclasses.replace(result, path=str(given), message=message)
    return dataclasses.replace(result, info=dataclasses.replace(result.info, path=str(given)))


def _analyze_one(path: Path, options: dict) -> ModelAnalysis | _Failure:
    try:
        return analyze_model(path, **options)
    except OpseqError as e:
        return _Failure(path=str(path), message=str(e))
    except MemoryError:  # outside the memory cap (reading the file): the machine is short
        return _Failure(path=str(path), message=f"{path}: out of memory")
    except Exception as e:  # a bug: report it, but keep the other models' results
        return _Failure.internal_error(str(path), e)


class _Report:
    """Writes each model's report as it arrives; a model that cannot be written is a failure."""

    def __init__(self, *, fmt: str, top: int | None) -> None:
        self.fmt, self.top = fmt, top
        self.analyses: list[ModelAnalysis] = []
        self.documents: list[dict] = []  # json: written whole at the end

    def add(self, analysis: ModelAnalysis, out: IO[str]) -> _Failure | None:
        """Render and write `analysis`; return the failure if it cannot be rendered."""
        try:
            if self.fmt == "json":
                document = analysis.to_dict(top=self.top)
                json.dumps(document)  # a model whose report cannot be written fails alone
            else:
                text = _render_streaming(analysis, self.fmt, self.top)
        except Exception as e:
            return _Failure.internal_error(analysis.info.path, e)
        self.analyses.append(analysis)
        if self.fmt == "json":
            self.documents.append(document)
        else:
            out.write(text)
            out.flush()
        return None

    def finish(self, out: IO[str], failures: list[_Failure], *, several: bool) -> None:
        """Write what follows the models: the corpus summary, or the whole JSON document."""
        summary = (
            summarize_corpus(self.analyses, top=self.top or 10)
            if several and self.analyses
            else None
        )
        if self.fmt == "text" and summary is not None:
            out.write(format_corpus_summary(summary, failed=len(failures)))
        elif self.fmt == "json":
            document = {
                "schema_version": _SCHEMA_VERSION,
                "models": self.documents,
                "failures": [f.to_dict() for f in failures],
                "corpus": summary.to_dict() if summary is not None else None,
            }
            json.dump(document, out, indent=2)
            out.write("\n")


def _render_streaming(analysis: ModelAnalysis, fmt: str, top: int | None) -> str:
    if fmt == "text":
        return format_model_analysis(analysis, top=top) + "\n"
    return json.dumps(analysis.to_dict(top=top)) + "\n"


def _exit_code(analyses: list[ModelAnalysis], failures: list[_Failure]) -> ExitCode:
    if any(f.internal for f in failures):
        return ExitCode.INTERNAL
    if not failures:
        return ExitCode.OK
    return ExitCode.CHECK_FAILED if analyses else ExitCode.INPUT


def _ngram_range(text: str) -> tuple[int, int]:
    try:
        return parse_ngram_range(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
