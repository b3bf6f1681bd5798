"""Show a findings directory, or replay its findings under the installed versions.

`opseq findings replay DIR` rebuilds each finding's case from its recipe (the minimal synthetic
graph, or the source case), judges it again under the finding's oracle in an isolated worker,
and prints per finding: reproduces, stopped (no longer semantic, with the versions then and
now), or cannot replay (why). --converter OLD=NEW replays findings of converter OLD with NEW
(a registered name or package.module:attribute), e.g. a patched build.

Exit codes (replay): 0 every finding reproduces, 1 some stopped or cannot be replayed, 2 bad
input (DIR is not a directory, a bad --converter).

Example:
  opseq reduce corpus/ --out /tmp/findings --case synthetic-torch/n030-s000001/torch.onnx-dynamo
  opseq findings show /tmp/findings
  opseq findings replay /tmp/findings --workers 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from opseq.cli._common import ExitCode, add_verbosity_args, open_output, whole_number

__all__ = ["register", "run_replay", "run_show"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``findings show`` and ``findings replay``."""
    parser = subparsers.add_parser(
        "findings",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    show = commands.add_parser(
        "show", help="the table of findings", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    show.add_argument("directory", type=Path, metavar="DIR", help="a findings directory")
    add_verbosity_args(show)
    show.set_defaults(run=run_show)
    replay = commands.add_parser(
        "replay", help="replay every finding under the installed versions", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    replay.add_argument("directory", type=Path, metavar="DIR", help="a findings directory")
    replay.add_argument(
        "--converter",
        dest="converters",
        action="append",
        type=_substitution,
        metavar="OLD=NEW",
        help="replay findings of converter OLD with NEW (repeatable)",
    )
    replay.add_argument(
        "--workers", type=whole_number(1), default=1, metavar="N", help="worker processes"
    )
    replay.add_argument(
        "--format", choices=("text", "json"), default="text", help="output (default: text)"
    )
    replay.add_argument("-o", "--output", type=Path, metavar="FILE", help="write to FILE")
    add_verbosity_args(replay)
    replay.set_defaults(run=run_replay)


def _substitution(text: str) -> tuple[str, str]:
    old, sep, new = text.partition("=")
    if not sep or not old.strip() or not new.strip():
        raise argparse.ArgumentTypeError(f"expected OLD=NEW, got {text!r}")
    return old.strip(), new.strip()


def run_show(args: argparse.Namespace) -> ExitCode:
    """Print the table of findings."""
    from opseq.reduce.ledger import findings_table

    print(findings_table(args.directory), end="")
    return ExitCode.OK


def run_replay(args: argparse.Namespace) -> ExitCode:
    """Replay the findings; exit 1 unless every one reproduces."""
    from opseq.reduce.ledger import REPRODUCES, escape_controls_lines, replay

    verdicts = replay(args.directory, converters=dict(args.converters or ()), workers=args.workers)
    with open_output(args.output) as out:
        if args.format == "json":
            json.dump([v.to_dict() for v in verdicts], out, indent=2)
            out.write("\n")
        else:
            out.write(escape_controls_lines([_line(v) for v in verdicts] or ["no findings"]))
    return ExitCode.OK if all(v.status == REPRODUCES for v in verdicts) else ExitCode.CHECK_FAILED


def _line(verdict) -> str:
    if verdict.status == "reproduces":
        return f"reproduces     {verdict.slug}"
    if verdict.status == "stopped":
        changed = verdict.changed_versions()
        versions = ", ".join(f"{n} {a or '-'} -> {b or '-'}" for n, (a, b) in changed.items())
        return (
            f"stopped        {verdict.slug}: {verdict.reason}; "
            f"versions {'changed: ' + versions if versions else 'unchanged'}"
        )
    return f"cannot replay  {verdict.slug}: {verdict.reason}"
