"""Campaigns on Dask against the local worker pool: what distributing costs per case.

Runs the same campaign in pairs through the real command line, each in a fresh process and a fresh
output directory: N synthetic-torch cases converted by torch.onnx-torchscript, once with opseq's
local pool of W workers (``--workers W``), once on a Dask `LocalCluster` of W single-threaded
workers (``--dask W``, cluster start and stop included). Seconds are the mean over the rounds,
whose order alternates (local first, then dask first) so a shared machine's drifting load does
not favour either. Both isolate every case in a child process, so the difference is Dask's: the
cluster's start, the scheduler round trips, and the models sent back as bytes. A last run starts
and stops the same cluster with no case, the fixed cost of ``--dask``. Prints a table: work,
cases, seconds, cases/min, the ratio dask/local per case (the bar: at most 1.10), also without
the cluster's start, and checks that both campaigns recorded the same rows (ids and outcomes).

    python bench/dask_bench.py [--count 40] [--workers 2] [--inputs 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from opseq.corpus import read_manifest

SOURCE = ("--source", "synthetic-torch", "--converter", "torch.onnx-torchscript")
TARGET_RATIO = 1.10


def run_campaign(out_dir: Path, count: int, inputs: int, where: list[str]) -> float:
    """Run one campaign in a fresh process; return its wall-clock seconds."""
    command = [sys.executable, "-m", "opseq", "corpus", "build", str(out_dir), *SOURCE]
    command += ["--count", str(count), "--inputs", str(inputs), "--quiet", *where]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def cluster_start(workers: int) -> float:
    """Seconds to start, check and stop a LocalCluster of `workers`, in a fresh process."""
    code = (
        "from opseq.distributed.campaign import campaign_client\n"
        "if __name__ == '__main__':\n"
        f"    with campaign_client(None, local_workers={workers}, "
        "converter='torch.onnx-torchscript'):\n"
        "        pass\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "start.py"
        script.write_text(code)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(script)], check=True, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start - python_start()


def python_start() -> float:
    """Seconds a fresh interpreter takes to start and import opseq's CLI (in both runs too)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import opseq.cli"], check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="cases per campaign (default: 40)")
    parser.add_argument("--workers", type=int, default=2, help="workers of each (default: 2)")
    parser.add_argument("--inputs", type=int, default=10, help="input sets per case (default: 10)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="pairs of runs, order alternating (default: 2)"
    )
    args = parser.parse_args(argv)
    runs = {
        "local pool": ["--workers", str(args.workers)],
        "dask LocalCluster": ["--dask", str(args.workers)],
    }
    # A shared machine's load drifts over minutes: later runs of a pair get another machine.
    # Rounds alternate the order (local, dask, dask, local, ...) so drift weighs on both.
    order = [work for r in range(args.rounds) for work in (list(runs)[:: 1 - 2 * (r % 2)])]
    seconds: dict[str, float] = dict.fromkeys(runs, 0.0)
    rows: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="opseq-dask-bench-") as tmp:
        for index, work in enumerate(order):
            out_dir = Path(tmp) / f"run{index}"
            seconds[work] += (
                run_campaign(out_dir, args.count, args.inputs, runs[work]) / args.rounds
            )
            rows[work] = {row.id: row.outcome.value for row in read_manifest(out_dir)}
    startup = cluster_start(args.workers)
    seconds["dask, less its start"] = seconds["dask LocalCluster"] - startup
    local = seconds["local pool"] / args.count
    print(f"{'work':<22} {'cases':>6} {'seconds':>8} {'cases/min':>10} {'dask/local':>11}")
    for work, total in seconds.items():
        ratio = total / args.count / local
        per_min = 60 * args.count / total
        print(f"{work:<22} {args.count:>6} {total:>8.1f} {per_min:>10.1f} {ratio:>11.2f}")
    print(f"{'cluster start + stop':<22} {0:>6} {startup:>8.1f}")
    first, second = rows.values()
    same = first == second
    print(f"outcomes: {dict(Counter(first.values()))}; same rows (ids, outcomes): {same}")
    ratio = seconds["dask LocalCluster"] / seconds["local pool"]
    print(f"dask/local per case {ratio:.2f} (bar {TARGET_RATIO:.2f}): ", end="")
    print("met" if ratio <= TARGET_RATIO else "NOT met")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
