"""Corpus speed: `opseq analyze` on 1,000 synthetic 100-node models, serial and in parallel.

Builds the models once (seeded, see `_synthetic.py`) into a cache directory, then times the real
command line (``opseq analyze DIR --format jsonl``, process start-up included) with 1 and with 2
worker processes, and the `onnx.load` floor (every file parsed once, in this process). Prints a
table; the target is <= 10 s for the corpus on 2 cores.

    python bench/corpus_bench.py [--count 1000] [--nodes 100] [--jobs 1,2] [--cache DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _synthetic import write_models

DEFAULT_CACHE = Path(
    os.environ.get("OPSEQ_BENCH_CACHE", Path.home() / ".cache" / "opseq" / "bench")
)


def time_load_floor(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        onnx.load(path, load_external_data=False)
    return time.perf_counter() - start


def time_cli(directory: Path, jobs: int) -> tuple[float, int]:
    """Wall time of the CLI and the number of models it reported."""
    command = [
        sys.executable,
        "-m",
        "opseq",
        "analyze",
        str(directory),
        "--format",
        "jsonl",
        "--jobs",
        str(jobs),
        "--quiet",
    ]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"opseq analyze failed ({result.returncode}): {result.stderr.strip()}")
    return elapsed, len(result.stdout.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--jobs", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    args = parser.parse_args()

    directory = args.cache / f"synthetic_{args.count}x{args.nodes}"
    paths = write_models(directory, args.count, args.nodes)
    floor = time_load_floor(paths)
    size = sum(p.stat().st_size for p in paths)
    print(
        f"{'models':>7} {'nodes':>6} {'MB':>6} {'jobs':>5} {'load floor s':>13} {'analyze s':>10} "
        f"{'models/s':>9} {'ratio':>7}"
    )
    for jobs in (int(j) for j in args.jobs.split(",")):
        elapsed, reported = time_cli(directory, jobs)
        assert reported == len(paths), f"reported {reported} of {len(paths)} models"
        print(
            f"{len(paths):>7} {args.nodes:>6} {size / 1e6:>6.1f} {jobs:>5} {floor:>13.2f} "
            f"{elapsed:>10.2f} {len(paths) / elapsed:>9.0f} {elapsed / floor:>7.1f}"
        )


if __name__ == "__main__":
    main()
