"""PyTorch's OpInfo samples through both torch exporters, then a per-op table of what survives.

Runs the ``opinfo`` source through ``torch.onnx-torchscript`` and ``torch.onnx-dynamo`` with the
campaign machinery (isolated workers, the calibrated rule, 4 input sets: the sample's own values
and three redraws of it), into one corpus directory (resumable: recorded cases are skipped), and
prints, per op and exporter, how many samples convert, load, run and agree (verdict ok or
numerical), how many are semantic or unstable, the totals, and every semantic case with its call
and the oracle's numbers.

    python bench/opinfo_table.py [OUT] [--ops PATTERN ...] [--limit N] [--workers 2]
                                 [--converters torch.onnx-torchscript,torch.onnx-dynamo]

OUT defaults to ``$OPSEQ_BENCH_CACHE/opinfo`` (``~/.cache/opseq/bench/opinfo``). ``--ops`` takes
fnmatch patterns of ``op[.variant]`` (``div*``, ``nn.functional.interpolate.*``); ``--limit``
keeps the first N cases (after ``--ops``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from opseq.corpus import ManifestRow, read_manifest
from opseq.difftest.campaign import CampaignConfig, check_campaign, iter_campaign, plan_campaign
from opseq.sources.opinfo import SOURCE, parse_case_id
from opseq.tolerance import CalibratedRule
from opseq.untrusted import escape_controls

CONVERTERS = ("torch.onnx-torchscript", "torch.onnx-dynamo")
SHORT = {"torch.onnx-torchscript": "torchscript", "torch.onnx-dynamo": "dynamo"}
N_INPUTS = 4
COLUMNS = ("samples", "convert", "load", "run", "agree", "semantic", "unstable")
STUDY_OPS = (
    "nn.functional.gelu",
    "nn.functional.interpolate.*",
    "nn.functional.upsample_*",
    "div.*",
    "max.*",
    "min.*",
    "maximum",
    "minimum",
    "argmax",
    "argmin",
    "nn.functional.linear",
    "mul",
    "sub",
    "sigmoid",
    "round*",
    "cumsum",
    "topk",
    "where",
    "gather",
    "scatter",
)
"""The ops of the study's localisation (``--ops study``)."""

DEFAULT_OUT = (
    Path(os.environ.get("OPSEQ_BENCH_CACHE") or Path.home() / ".cache" / "opseq" / "bench")
    / "opinfo"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--ops", action="append", metavar="PATTERN", help="'study' for the study's ops"
    )
    parser.add_argument("--limit", type=int, default=None, metavar="N")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--converters",
        type=lambda text: tuple(c.strip() for c in text.split(",") if c.strip()),
        default=CONVERTERS,
        help=f"comma-separated (default: {','.join(CONVERTERS)})",
    )
    args = parser.parse_args()
    unknown = set(args.converters) - set(CONVERTERS)
    if unknown or not args.converters:
        parser.error(f"--converters: choose from {', '.join(CONVERTERS)}")
    ops = tuple(p for pattern in args.ops or () for p in _expand(pattern))
    source = SOURCE.restricted(ops) if ops else SOURCE
    cases = list(source.case_ids(count=args.limit, seed=0))
    print(f"{len(cases)} opinfo cases, {len(SOURCE.skipped())} skips in the catalogue")
    timings = {}
    for converter in args.converters:
        config = CampaignConfig(
            out_dir=args.out,
            source="opinfo",
            converter=converter,
            count=args.limit,
            n_inputs=N_INPUTS,
            workers=args.workers,
            timeout_s=args.timeout,
            rule=CalibratedRule(),
            ops=ops,
        )
        check_campaign(config)
        tasks, done = plan_campaign(config)
        start = time.perf_counter()
        rows = iter_campaign(config, tasks)
        for _ in tqdm(rows, total=len(tasks), desc=SHORT[converter], file=sys.stderr):
            pass
        timings[converter] = (len(tasks), done, time.perf_counter() - start)
    selected = set(cases)
    rows = [
        r
        for r in read_manifest(args.out)
        if r.source == "opinfo" and r.converter in CONVERTERS and r.extra.get("case") in selected
    ]
    print_table(rows)
    print_semantic(rows)
    print(f"\n{'exporter':<12} {'ran':>6} {'recorded':>9} {'seconds':>8}")
    for converter, (ran, done, seconds) in timings.items():
        print(f"{SHORT[converter]:<12} {ran:>6} {done:>9} {seconds:>8.0f}")


def _expand(pattern: str) -> Sequence[str]:
    return STUDY_OPS if pattern == "study" else (pattern,)


def stages(row: ManifestRow) -> dict[str, int]:
    """One row as 0/1 counts of the table's columns."""
    outcome = row.outcome.value
    verdict = row.extra.get("verdict")
    ran = outcome in ("ok", "mismatch")
    return {
        "samples": 1,
        "convert": int(outcome in ("ok", "mismatch", "run_fail", "load_fail")),
        "load": int(outcome in ("ok", "mismatch", "run_fail")),
        "run": int(ran),
        "agree": int(ran and verdict in ("ok", "numerical")),
        "semantic": int(verdict == "semantic"),
        "unstable": int(verdict == "unstable"),
    }


def tally(rows: Iterable[ManifestRow]) -> dict[tuple[str, str], Counter]:
    """Per (op[.variant], converter), the sums of `stages`."""
    table: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for row in rows:
        op = parse_case_id(row.extra["case"])[0]
        table[(op, row.converter)].update(stages(row))
    return table


def print_table(rows: Sequence[ManifestRow]) -> None:
    table = tally(rows)
    order = list(dict.fromkeys(parse_case_id(r.extra["case"])[0] for r in rows))
    width = max([len(op) for op in order] + [10])
    header = f"{'op':<{width}} {'exporter':<12}" + "".join(f" {c:>8}" for c in COLUMNS)
    print(f"\n{header}\n{'-' * len(header)}")
    totals: dict[str, Counter] = defaultdict(Counter)
    for op in order:
        for converter in CONVERTERS:
            counts = table.get((op, converter))
            if counts is None:
                continue
            totals[converter].update(counts)
            cells = "".join(f" {counts[c]:>8}" for c in COLUMNS)
            print(f"{escape_controls(op):<{width}} {SHORT[converter]:<12}{cells}")
    print("-" * len(header))
    for converter in [c for c in CONVERTERS if c in totals]:
        cells = "".join(f" {totals[converter][c]:>8}" for c in COLUMNS)
        print(f"{'total':<{width}} {SHORT[converter]:<12}{cells}")


def print_semantic(rows: Sequence[ManifestRow]) -> None:
    semantic = [r for r in rows if r.extra.get("verdict") == "semantic"]
    print(f"\n{len(semantic)} semantic cases")
    for row in sorted(semantic, key=lambda r: (r.extra["case"], r.converter)):
        metadata = row.extra.get("metadata") or {}
        print(f"- {escape_controls(row.extra['case'])} [{SHORT[row.converter]}]")
        print(f"    call: {escape_controls(str(metadata.get('call')))}")
        print(f"    kwargs: {escape_controls(str(metadata.get('kwargs')))}")
        print(f"    oracle: {_oracle_summary(row.extra.get('oracle') or {})}")
        print(f"    max |framework - onnx|: {row.max_abs_diff}")


def _oracle_summary(oracle: dict[str, Any]) -> str:
    """The verdict's sets and, per output, the worst ONNX and framework errors (float32 units)."""
    parts = [
        f"semantic in {oracle.get('semantic_sets')}/{oracle.get('sets')} sets",
        f"reference {oracle.get('reference')}",
    ]
    for output in oracle.get("outputs", []):
        # An all-zero column is not stored (opseq.difftest.measure.errors_to_columns).
        onnx_error = _worst(output.get("onnx_error", [0.0]))
        framework_error = _worst(output.get("framework_error"))
        flags = [
            f"{key}={value}"
            for key in ("structure", "onnx_disagrees", "reference_disagrees")
            for value in sorted({v for v in output.get(key) or () if v})
        ]
        parts.append(
            f"{output.get('name')}: onnx {onnx_error}, framework {framework_error}"
            + (f" ({', '.join(flags)})" if flags else "")
        )
    return escape_controls("; ".join(parts))


def _worst(values: Sequence[Any] | None) -> str:
    if not values:
        return "-"
    numbers = [float(v) for v in values if v is not None]
    return f"{max(numbers):.3g}" if numbers else "-"


if __name__ == "__main__":
    main()
