"""Build a conversion corpus (differential testing campaigns) and show its outcomes.

A campaign converts every case of a model source with one converter, runs the framework and ONNX
Runtime on the same random inputs, and appends one row per case to OUT_DIR/manifest.jsonl (with
the converted model, structure only, under OUT_DIR/models/). Each case runs in an isolated worker
with a timeout and a memory cap: crashes, hangs and out-of-memory become outcomes. Rerunning a
campaign skips the cases already recorded. With --scheduler or --dask the cases run on Dask
workers (each still isolated there); only this process writes the manifest.

Example:
  opseq corpus build /tmp/zoo-torch --source zoo-torch --converter torch.onnx-dynamo --workers 2
  opseq corpus show corpus/ --format md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from opseq.cli._common import (
    ExitCode,
    add_output_args,
    add_rule_args,
    add_verbosity_args,
    open_output,
    rule_from_args,
    whole_number,
)
from opseq.corpus import read_manifest, tabulate_outcomes
from opseq.difftest.campaign import (
    CampaignConfig,
    check_campaign,
    iter_campaign,
    plan_campaign,
)
from opseq.errors import ConfigError
from opseq.outcomes import Outcome
from opseq.report import format_outcome_table
from opseq.sources import SOURCES
from opseq.sources.base import INPUT_STRATEGIES

__all__ = ["register", "run_build", "run_show"]

FINDINGS_DIR = "findings"
_CONVERTERS = ("torch.onnx-torchscript", "torch.onnx-dynamo", "tf2onnx")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``corpus build`` and ``corpus show``."""
    parser = subparsers.add_parser(
        "corpus",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _register_build(commands)
    _register_show(commands)


def _register_build(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build",
        help="run a campaign: convert, run, compare, record",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument(
        "--source",
        required=True,
        metavar="NAME",
        help=f"model source: {', '.join(SOURCES)}, or package.module:attribute",
    )
    parser.add_argument("--converter", required=True, metavar="NAME", help=", ".join(_CONVERTERS))
    parser.add_argument(
        "--count", type=whole_number(1), metavar="N", help="first N cases (default: all)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of weights and inputs (default: 0)"
    )
    parser.add_argument(
        "--opset", type=whole_number(1), default=17, help="target opset (default: 17)"
    )
    parser.add_argument(
        "--inputs",
        type=whole_number(1),
        default=10,
        metavar="K",
        help="random input sets per model (default: 10)",
    )
    parser.add_argument(
        "--input-strategy",
        choices=INPUT_STRATEGIES,
        default="normal",
        help="normal: seeded normals; edge: set 0 normal, the others mix in +-0, subnormals, "
        "+-inf, NaN, .5 ties, duplicated extremes, values near the float32/float16 and integer "
        "limits (default: normal)",
    )
    parser.add_argument(
        "--guided",
        action="store_true",
        help="synthetic sources: choose each case among candidates by the ops, attribute "
        "values and op pairs the cases before it did not cover (needs --count)",
    )
    parser.add_argument(
        "--ops",
        type=_patterns,
        default=(),
        metavar="PATTERNS",
        help="synthetic sources: only ops matching these comma-separated fnmatch patterns, "
        "e.g. 'Div*,Cast,Gather*'",
    )
    parser.add_argument(
        "--workers",
        type=whole_number(1),
        default=os.cpu_count() or 1,
        metavar="W",
        help="worker processes (default: one per core)",
    )
    _add_dask_args(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="SEC",
        help="per model, generation to comparison (default: 600)",
    )
    parser.add_argument(
        "--memory-cap",
        type=whole_number(1),
        metavar="MIB",
        help="resident memory per worker (default: 80%% of physical memory divided among the "
        "workers; tf2onnx needs 8.6 GiB for ResNet50)",
    )
    parser.add_argument(
        "--atol",
        type=float,
        default=1e-7,
        help="fixed rule: max abs diff >= ATOL (default: 1e-7, the study's rule); its raw "
        "numbers are always stored, it labels only with --label fixed",
    )
    parser.add_argument(
        "--rtol", type=float, help="also require max rel diff >= RTOL for a mismatch"
    )
    parser.add_argument(
        "--no-blame",
        dest="attribute_blame",
        action="store_false",
        help="skip re-running mismatches to attribute blame",
    )
    parser.add_argument(
        "--keep-weights",
        action="store_true",
        help="store converted models with their weights (default: structure only)",
    )
    add_rule_args(parser)
    add_verbosity_args(parser)
    parser.set_defaults(run=run_build)


def _add_dask_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "Dask distributed (the dask extra; each case still runs isolated, on a worker)"
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the cases on the workers of this Dask scheduler, e.g. tcp://host:8786 "
        "(workers need opseq, the converter and its framework; --workers is then unused)",
    )
    where.add_argument(
        "--dask",
        type=whole_number(1),
        metavar="N",
        help="run the cases on a local Dask cluster of N single-threaded workers",
    )
    group.add_argument(
        "--store",
        type=Path,
        metavar="DIR",
        help="with --scheduler/--dask: OUT_DIR as the workers see it (a shared file system); "
        "they write the models there instead of sending them back",
    )


def _register_show(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "show",
        help="outcome table per converter x source (the study's Table 11)",
        description="Print the outcome table of a corpus: per converter x source, the total and "
        "each outcome with its share, and the max abs diffs of the models that ran.\n\n"
        "Example:\n  opseq corpus show corpus/ --format md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "corpus", type=Path, metavar="DIR", help="corpus directory or manifest file"
    )
    add_output_args(parser, formats=("text", "md", "json"))
    add_verbosity_args(parser)
    parser.set_defaults(run=run_show)


def _patterns(text: str) -> tuple[str, ...]:
    patterns = tuple(p.strip() for p in text.split(",") if p.strip())
    if not patterns:
        raise argparse.ArgumentTypeError("expected comma-separated op name patterns")
    return patterns


def run_build(args: argparse.Namespace) -> ExitCode:
    """Run one campaign; see the module docstring."""
    config = CampaignConfig(
        out_dir=args.out_dir,
        source=args.source,
        converter=args.converter,
        count=args.count,
        seed=args.seed,
        opset=args.opset,
        n_inputs=args.inputs,
        workers=args.workers,
        timeout_s=args.timeout,
        memory_mb=args.memory_cap,
        keep_weights=args.keep_weights,
        atol=args.atol,
        rtol=args.rtol,
        rule=rule_from_args(args),
        attribute_blame=args.attribute_blame,
        input_strategy=args.input_strategy,
        guided=args.guided,
        ops=args.ops,
    )
    if args.scheduler is None and args.dask is None:
        if args.store is not None:
            raise ConfigError("--store applies with --scheduler or --dask")
        check_campaign(config)
        return _build(args, config, lambda tasks: iter_campaign(config, tasks))
    from opseq.distributed.campaign import campaign_client, check_store, iter_dask_campaign

    check_campaign(config, local=False)
    check_store(args.store, args.out_dir)
    # Connected (and the workers checked) before any case is planned or row written.
    with campaign_client(
        args.scheduler, local_workers=args.dask, converter=config.converter, store=args.store
    ) as client:
        return _build(
            args,
            config,
            lambda tasks: iter_dask_campaign(client, config, tasks, store=args.store),
        )


def _build(args: argparse.Namespace, config: CampaignConfig, run) -> ExitCode:
    """Plan the campaign, run its cases with `run`, show progress and the outcome counts."""
    tasks, skipped = plan_campaign(config)
    if skipped:
        print(
            f"opseq: {skipped} cases already recorded in {args.out_dir}, skipping them",
            file=sys.stderr,
        )
    counts: Counter[str] = Counter()
    rows = run(tasks)
    for row in _progress(rows, total=len(tasks), counts=counts, quiet=bool(args.quiet)):
        counts[row.outcome.value] += 1
    summary = ", ".join(f"{o.value} {counts[o.value]}" for o in Outcome if counts[o.value])
    print(
        f"opseq: {len(tasks)} cases run ({summary or 'none'}); manifest: "
        f"{args.out_dir / 'manifest.jsonl'}",
        file=sys.stderr,
    )
    return ExitCode.OK


def _progress(rows, *, total: int, counts: Counter[str], quiet: bool):
    if quiet or total < 2:
        yield from rows
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="model", file=sys.stderr, disable=None) as bar:
        for row in rows:
            yield row
            bar.set_postfix(counts, refresh=False)
            bar.update()


def run_show(args: argparse.Namespace) -> ExitCode:
    """Print the outcome table of a corpus, and its findings when it has a findings/ ledger."""
    table = tabulate_outcomes(read_manifest(args.corpus))
    ledger = args.corpus / FINDINGS_DIR
    findings = _findings(ledger) if ledger.is_dir() else None
    with open_output(args.output) as out:
        if args.format == "json":
            data = table.to_dict()
            if findings is not None:
                data["findings"] = [_finding_summary(f) for f in findings]
            json.dump(data, out, indent=2)
            out.write("\n")
            return ExitCode.OK
        out.write(format_outcome_table(table, markdown=args.format == "md"))
        if findings is not None:
            from opseq.reduce.ledger import findings_table

            cases = sum(f.count for f in findings)
            out.write(f"\nfindings in {ledger}: {len(findings)}, standing for {cases} cases\n")
            out.write(findings_table(ledger))
    return ExitCode.OK


def _findings(ledger: Path) -> list:
    from opseq.reduce.ledger import read_ledger

    return [e.finding for e in read_ledger(ledger) if e.finding is not None]


def _finding_summary(finding) -> dict:
    return {
        "finding": finding.slug,
        "converter": finding.converter,
        "ops": list(finding.signature.labels),
        "cases": finding.count,
        "blame": finding.blame,
    }
