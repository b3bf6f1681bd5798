"""Reduce a corpus's semantic cases to minimal reproducers, deduplicated into findings.

Every semantic row of CORPUS_DIR/manifest.jsonl (or each row named with --case) is replayed
under its own oracle (converter, opset, input sets, seed, input strategy, calibrated rule). A
synthetic graph is then shrunk while the inconsistency persists: the cone of one semantic
output, then ddmin-style removal of nodes (bypassed, cut into new graph inputs, or truncated),
each candidate converted and judged again, at most --max-tests candidates and --deadline seconds
per case. Cases of other sources (zoo models, one-op opinfo cases) are their own reproducers.
Each case runs in an isolated worker, so a converter that crashes ends only that case.

Reproducers with the same signature (converter, op sequence with attributes, input dtypes) are
one finding: a directory under --out (default CORPUS_DIR/findings/) with finding.json,
model.onnx, test_data_set_0/ and reproduce.py, a script without opseq that replays it in the
source framework (exit 1 while it reproduces). Each script is run once and how it ended is
recorded. Cases that no longer reproduce are listed, and every case's result is kept in
cases.jsonl there. Running again adds cases to existing findings and keeps their notes.

Exit codes: 0 done (whatever the cases gave), 2 bad input (no manifest, unknown row id,
unwritable --out).

Example:
  opseq reduce corpus/ --out /tmp/findings --case synthetic-torch/n030-s000001/torch.onnx-dynamo
  opseq findings replay /tmp/findings
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from opseq.cli._common import ExitCode, add_verbosity_args, open_output, whole_number
from opseq.errors import ConfigError

__all__ = ["register", "run"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``reduce``."""
    parser = subparsers.add_parser(
        "reduce",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("corpus", type=Path, metavar="CORPUS_DIR", help="a corpus directory")
    parser.add_argument(
        "--case",
        dest="cases",
        action="append",
        metavar="ROW_ID",
        help="reduce this row (repeatable; default: every semantic row)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="findings directory (default: CORPUS_DIR/findings)"
    )
    parser.add_argument(
        "--max-tests",
        type=whole_number(1),
        default=200,
        metavar="N",
        help="candidate tests per case (default: %(default)s)",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=600.0,
        metavar="SEC",
        help="seconds of search per case (default: %(default)g)",
    )
    parser.add_argument(
        "--workers",
        type=whole_number(1),
        default=1,
        metavar="N",
        help="worker processes (default: %(default)s)",
    )
    parser.add_argument(
        "--no-script-check",
        dest="check_scripts",
        action="store_false",
        help="do not run each finding's reproduce.py once",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output (default: text)"
    )
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE")
    add_verbosity_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    """Reduce the corpus; print the findings and what became of the cases."""
    from opseq.reduce.corpus_reduction import reduce_corpus
    from opseq.reduce.ledger import escape_controls_lines, format_findings
    from opseq.reduce.shrink import Budget

    if not args.deadline > 0:
        raise ConfigError(f"--deadline must be > 0, got {args.deadline:g}")

    def progress(reproducer) -> None:
        if not args.quiet:
            tests = reproducer.reduction.get("tests")
            detail = f" ({tests} tests)" if tests else ""
            print(
                f"opseq: {reproducer.status}{detail}: {reproducer.row_id}",
                file=sys.stderr,
            )

    report = reduce_corpus(
        args.corpus,
        out_dir=args.out,
        row_ids=args.cases,
        budget=Budget(max_tests=args.max_tests, deadline_s=args.deadline),
        workers=args.workers,
        check_scripts=args.check_scripts,
        on_case=progress,
    )
    with open_output(args.output) as out:
        if args.format == "json":
            json.dump(report.to_dict(), out, indent=2)
            out.write("\n")
            return ExitCode.OK
        out.write(format_findings(report.findings))
        others = [r for r in report.reproducers if not r.has_reproducer]
        if others:
            lines = ["", "cases without a reproducer:"]
            lines += [f"  {r.status}: {r.row_id}: {r.reason or ''}".rstrip() for r in others]
            out.write(escape_controls_lines(lines))
        out.write(f"\nfindings in {report.out_dir}\n")
    return ExitCode.OK
