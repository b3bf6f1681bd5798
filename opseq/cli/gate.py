"""Gate a converted model before deployment: coverage thresholds, checks, risky sequences.

Criteria (each evaluated when asked for, by option or by the policy file): valid (onnx.checker
and strict shape inference), runnable (an ONNX Runtime kernel for every node), behaves (the
verdict of 'opseq verify' against --verify SPEC, the source model), op / versioned-op / n-gram
coverage against the reference (--min-op-coverage, --min-versioned-op-coverage,
--min-ngram-coverage with --n), novel n-grams (--max-novel) and risky n-grams that the knowledge
base associates with mismatch (--max-risky). Thresholds also come from [tool.opseq.gate] in
pyproject.toml or [gate] in opseq.toml, found upward from the model; the command line wins.
With --baseline OLD.onnx only what is new fails.

Exit codes: 0 passed, 1 failed, 2 unusable input (a model, a reference, a policy, an option).

Example:
  opseq gate model.onnx --min-op-coverage 1 --min-ngram-coverage 0.5 --max-novel 0
  opseq gate model.onnx --baseline previous.onnx --format github
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from opseq.cli._common import (
    ExitCode,
    add_limit_args,
    add_output_args,
    add_verbosity_args,
    limits_from_args,
    open_output,
    refuse_overwriting_inputs,
)
from opseq.cli._references import add_reference_args

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)

_FORMATS = ("text", "json", "junit", "github", "md")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``gate`` subcommand."""
    from opseq.coverage.policy import add_policy_args

    parser = subparsers.add_parser(
        "gate",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="the ONNX model to gate")
    add_reference_args(parser)
    parser.add_argument(
        "--knowledge",
        type=Path,
        metavar="FILE",
        help="a hypothesis report (JSON) naming risky n-grams (default: the shipped corpus's)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="OLD.onnx",
        help="the previous version of the model: fail only on what is new",
    )
    parser.add_argument(
        "--verify",
        metavar="SPEC",
        help="the source model (as for 'opseq verify --source'): adds the behaves criterion",
    )
    parser.add_argument(
        "--picture",
        type=Path,
        metavar="FILE",
        help="also render the uncovered n-grams (.svg/.png/.pdf/.dot) and link it in md output",
    )
    add_policy_args(parser)
    add_limit_args(parser)
    add_output_args(parser, formats=_FORMATS)
    add_verbosity_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    """Gate the model; see the module docstring."""
    from opseq.coverage.gate_formats import format_gate_report
    from opseq.coverage.gate_run import run_gate

    inputs = [args.model, *([args.baseline] if args.baseline else [])]
    refuse_overwriting_inputs(args.output, inputs)
    report = run_gate(args, limits=limits_from_args(args))
    with open_output(args.output) as out:
        out.write(format_gate_report(report, args.format))
    return ExitCode.OK if report.passed else ExitCode.CHECK_FAILED
