"""Does the float64-calibrated oracle catch semantic bugs, and stay quiet on clean conversions?

Takes conversions of zoo models (zoo-torch and zoo-transformers through both torch.onnx
exporters, zoo-keras through tf2onnx) and of synthetic models with high-dynamic-range ops
(synthetic-torch through both exporters, synthetic-tf through tf2onnx; only cases whose graph
holds Exp, Pow, Tan, Log or Div), and for each conversion, in a worker process of its framework
(`opseq.difftest.isolate.WorkerPool`; torch and TensorFlow never share a process):

1. runs `run_difftest` twice on the same case, with the fixed rule alone (``rule=None``: no
   float64) and with the default `CalibratedRule`, in alternating order, timing both (blame and
   latency timing off in both, so the difference is the float64 stage);
2. reruns what `run_difftest` ran, with opseq's own functions: the framework in float32
   (`run_framework`) and its float64 twin (`run_float64`) on the same K input sets
   (`make_inputs`, same seed), and the converted model (``result.model``) in ONNX Runtime;
3. plants each kind of semantic bug of `_planted_bugs` (its docstring says what each changes)
   into a copy of the converted model and runs the copy in ONNX Runtime on the same input sets.
   A copy ONNX Runtime refuses to load or run is dropped, and so is a copy whose outputs are
   bit-identical to the unplanted model's on all K sets (no oracle can see it on these inputs);
4. labels every unplanted conversion with `run_difftest`'s own calibration and comparisons, and
   every planted copy against the same framework and float64 outputs: `judge_evaluator` and
   `per_set_errors` for the calibrated rules, `compare_outputs` + `merge_comparisons` for the
   fixed ones. Rules: the default `CalibratedRule` (headroom 64, min_sets 3), a sweep of headroom
   16/64/256 x min_sets 1/3/5, and the fixed rules abs 1e-7, 1e-5, 1e-3, abs 1e-5 & rel 1e-3
   and element-wise allclose for every rule of `ALLCLOSE_RULES`.

Tables printed (``a/b`` counts are called / all):

- ``outcomes``: `run_difftest`'s outcome per source and converter; only ``ok`` and ``mismatch``
  conversions ran, and only they are labelled and planted into.
- ``unplanted verdicts``: the default rule's verdicts per source, and the framework's own float32
  error against float64 (the largest over float outputs of each input set, in float32 units
  ``eps * (|r| + rms(r))``, `opseq.difftest.measure`), which is what the rule's bound scales with.
- ``rules``: per rule, ``recall`` = planted copies called (calibrated: ``semantic``; fixed:
  mismatch) / planted copies that change outputs; ``recall excl. real`` = the same without the
  copies planted into conversions that are real inconsistencies already; ``false`` = unplanted
  conversions called / unplanted conversions that ran; ``false excl. real`` = the same without
  the unplanted conversions verified to be real inconsistencies (`real_reason` says how;
  they are listed below); ``unstable`` = unplanted conversions the calibrated rule calls
  ``unstable`` (not counted as inconsistent); ``targets`` = recall >= 0.95 and false excl. real
  <= 1%; ``vs fixed`` = how many fixed rules it beats (better recall or false rate excl. real,
  and no worse on the other), spelled out per fixed rule for the default rule below the table.
- ``calibrated sweep``: the same for headroom 16/64/256 x min_sets 1/3/5.
- ``kinds``: per planted kind, the sites found (planted copies), those ONNX Runtime refused, those
  bit-identical to the unplanted model, those kept, and the recall of four rules; then the true
  semantic change of each kind.
- ``recall by effect``: the planted copies by how far the bug moved the ONNX outputs (the
  largest change against the unplanted ONNX output over sets and float outputs, in the same
  float32 units), or whether it changed integer/bool values, NaN/Inf positions or shapes; a
  change of a few units is below what reordering float32 arithmetic does.
- ``misses``: the copies the default rule misses, by its verdict on them (``unstable``: too few
  stable input sets; ``< 3 sets``: semantic in 1 or 2 sets only; ``within headroom``:
  numerical; ``ok``) and by effect.
- ``unplanted semantic``: every unplanted conversion the default rule calls semantic, with the
  outputs (and the op computing them) and the disagreements it rests on.
- ``cost``: per source, the median wall time of one `run_difftest` with float64 off and on, the
  median per-case ratio, the ratio of the sums, and the median time of the float64 stage.

Run from the repository root (`opseq` installed, with the torch, tensorflow and zoo extras)::

    python bench/oracle_bench.py --count 4 --sources zoo-torch,synthetic-torch   # a quick look
    python bench/oracle_bench.py --json /tmp/oracle.jsonl                        # the full run
    python bench/oracle_bench.py --from-json /tmp/oracle.jsonl                   # re-print

``--json`` appends one JSON object per finished conversion (all measurements, per input set),
flushed as it comes, so a long run can be read back and relabelled (``--from-json``) even when it
is cut short; ``--count`` is per source (the zoos hold 6, 8 and 11 cases, each through one or two
converters). Worker logs (converter chatter) go to ``--log-dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from _oracle_runs import CONVERTERS, DEFAULT_COUNT, plan_tasks, run_tasks
from _oracle_tables import report

log = logging.getLogger("opseq.bench")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a ``--json`` file (one object per line; a truncated last line is skipped)."""
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s: skipping a truncated line", path)
    return records


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"cases per source (default {DEFAULT_COUNT}; zoos hold fewer)",
    )
    parser.add_argument(
        "--sources",
        type=lambda t: [s for s in t.split(",") if s],
        default=list(CONVERTERS),
        help="comma-separated sources (default: " + ",".join(CONVERTERS) + ")",
    )
    parser.add_argument("--seed", type=int, default=0, help="case, weight and input seed")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per conversion")
    parser.add_argument("--memory-cap", type=int, default=None, help="MiB per worker")
    parser.add_argument("--log-dir", type=Path, default=None, help="worker logs (default: tmp)")
    parser.add_argument("--json", type=Path, help="append raw per-case results here (JSONL)")
    parser.add_argument("--from-json", type=Path, help="re-print the tables from stored results")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.sources) - set(CONVERTERS))
    if unknown:
        parser.error(f"unknown sources: {', '.join(unknown)}")
    if args.count < 1 or args.workers < 1:
        parser.error("--count and --workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    if args.from_json:
        records = read_records(args.from_json)
    else:
        tasks = plan_tasks(args.sources, args.count, args.seed)
        log.info("%d conversions planned", len(tasks))
        records = []
        out = args.json.open("a") if args.json else None
        try:
            for record in run_tasks(tasks, args):
                records.append(record)
                if out is not None:
                    out.write(json.dumps(record) + "\n")
                    out.flush()
        finally:
            if out is not None:
                out.close()
    if not records:
        sys.exit("no results")
    print(report(records))


if __name__ == "__main__":
    main()
