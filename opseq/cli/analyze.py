"""Analyse the structure of ONNX models: sizes, op histogram, n-grams, dataflow path counts.

Accepts files and directories (searched recursively for *.onnx). External tensor data is never
read. With several models, a corpus summary follows the per-model reports; models that cannot be
analysed are reported on stderr and the command exits 1 (2 if none could be analysed).

Example:
  opseq analyze corpus/examples/resnet_torch.onnx --n 2..4 --top 5
  opseq analyze corpus/ --format jsonl -o analyses.jsonl --jobs 2
"""

from __future__ import annotations

import argparse
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
from opseq.cli._common import (
    ExitCode,
    add_output_args,
    add_verbosity_args,
    comma_list,
    open_output,
    progress,
    whole_number,
)
from opseq.errors import ConfigError, OpseqError
from opseq.graph import DEFAULT_IGNORED_OPS
from opseq.ngrams import parse_ngram_range
from opseq.report import format_corpus_summary, format_model_analysis

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
    add_output_args(parser, formats=("text", "json", "jsonl"))
    add_verbosity_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    """Analyse the models named by `args`; see the module docstring."""
    paths, failures = _expand_inputs(args.models)
    top = args.top or None
    analyses: list[ModelAnalysis] = []
    interrupted = False
    with open_output(args.output) as out:
        try:
            for outcome in progress(
                _analyze_all(paths, args), total=len(paths), quiet=bool(args.quiet)
            ):
                if isinstance(outcome, _Failure):
                    failures.append(outcome)
                    if outcome.traceback and args.debug:
                        print(outcome.traceback, end="", file=sys.stderr)
                    print(f"opseq: error: {outcome.message}", file=sys.stderr)
                    continue
                analyses.append(outcome)
                _write_streaming(out, args.format, outcome, top)
        except KeyboardInterrupt:
            interrupted = True  # keep and report what has finished
        _write_final(out, args.format, analyses, failures, top, several=len(paths) > 1)
    if interrupted:
        print("opseq: interrupted; the report covers the models finished so far", file=sys.stderr)
        return ExitCode.INTERRUPTED
    return _exit_code(analyses, failures)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Failure:
    path: str
    message: str
    internal: bool = False
    traceback: str | None = None  # internal errors only, shown with --debug

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.message, "internal": self.internal}


def _expand_inputs(inputs: Sequence[Path]) -> tuple[list[Path], list[_Failure]]:
    """Files as given, directories searched recursively; missing paths and empty folders fail."""
    paths: list[Path] = []
    failures: list[_Failure] = []
    for given in inputs:
        if given.is_dir():
            found = sorted(p for p in given.rglob("*.onnx") if p.is_file())
            if not found:
                failures.append(
                    _Failure(path=str(given), message=f"{given}: no .onnx files in this directory")
                )
            paths.extend(found)
        elif given.exists():
            paths.append(given)
        else:
            failures.append(
                _Failure(path=str(given), message=f"{given}: no such file or directory")
            )
    for failure in failures:
        print(f"opseq: error: {failure.message}", file=sys.stderr)
    return paths, failures


def _analyze_all(paths: list[Path], args: argparse.Namespace) -> Iterator[ModelAnalysis | _Failure]:
    """Analyse in input order; several models go to a process pool (one worker per core)."""
    options = {"n": args.n, "ignore_ops": args.ignore}
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


def _analyze_one(path: Path, options: dict) -> ModelAnalysis | _Failure:
    try:
        return analyze_model(path, **options)
    except OpseqError as e:
        return _Failure(path=str(path), message=str(e))
    except RecursionError as e:  # a pathologically nested model, not a bug in opseq
        return _Failure(path=str(path), message=f"{path}: subgraphs nested too deeply ({e})")
    except Exception as e:  # a bug: report it, but keep the other models' results
        message = f"{path}: internal error, please report: {type(e).__name__}: {e}"
        return _Failure(
            path=str(path), message=message, internal=True, traceback=traceback.format_exc()
        )


def _write_streaming(out: IO[str], fmt: str, analysis: ModelAnalysis, top: int | None) -> None:
    if fmt == "text":
        out.write(format_model_analysis(analysis, top=top) + "\n")
    elif fmt == "jsonl":
        out.write(json.dumps(analysis.to_dict(top=top)) + "\n")
    else:
        return
    out.flush()


def _write_final(
    out: IO[str],
    fmt: str,
    analyses: list[ModelAnalysis],
    failures: list[_Failure],
    top: int | None,
    *,
    several: bool,
) -> None:
    summary = summarize_corpus(analyses, top=top or 10) if several and analyses else None
    if fmt == "text" and summary is not None:
        out.write(format_corpus_summary(summary, failed=len(failures)))
    elif fmt == "json":
        document = {
            "schema_version": _SCHEMA_VERSION,
            "models": [a.to_dict(top=top) for a in analyses],
            "failures": [f.to_dict() for f in failures],
            "corpus": summary.to_dict() if summary is not None else None,
        }
        json.dump(document, out, indent=2)
        out.write("\n")


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
