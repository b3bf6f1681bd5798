"""Benchmark `opseq gate` against `opseq analyze`, whole process, on real models.

For each model of `bench/analyze_bench.py` (built once into the benchmark cache by
`bench/_zoo.py`) and each shipped example: the median wall time of ``opseq analyze MODEL`` and
of ``opseq gate MODEL`` with every criterion evaluated (valid, runnable, op / versioned-op /
n-gram coverage, novel, risky) against the default reference with a warm index cache, and their
ratio (target <= 1.5x). Then the cold time (an empty cache: building the default reference's
index) and the index's size on disk; then the gate against a large reference (the default plus
the shipped corpus's models), warm (target <= 2x analyze).

Run: ``python bench/gate_bench.py [--repeat 3] [--skip-zoo]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _zoo import MODELS, build, default_cache_dir  # noqa: E402

EXAMPLES = sorted((ROOT / "corpus" / "examples").glob("*.onnx"))
GATE_FLAGS = [
    "--require",
    "valid,runnable",
    "--min-op-coverage",
    "0",
    "--min-versioned-op-coverage",
    "0",
    "--min-ngram-coverage",
    "0",
    "--max-novel",
    "100000",
    "--max-risky",
    "100000",
    "--no-policy",
    "-q",
]


def timed(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {result.returncode}: {result.stderr}")
    return elapsed


def median_time(command: list[str], repeat: int, env: dict | None = None) -> float:
    return statistics.median(timed(command, env) for _ in range(repeat))


def opseq(*args: str) -> list[str]:
    return [sys.executable, "-m", "opseq", *args]


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-zoo", action="store_true", help="only the shipped examples")
    args = parser.parse_args(argv)
    models = list(EXAMPLES)
    if not args.skip_zoo:
        models = [build(name, default_cache_dir()) for name in MODELS] + models
    with tempfile.TemporaryDirectory() as cache:
        env = {**_environment(), "OPSEQ_CACHE_DIR": cache}
        cold = timed(opseq("gate", str(models[-1]), *GATE_FLAGS), env)
        size = directory_size(Path(cache))
        print(
            f"cold: building the default reference index took {cold:.1f} s "
            f"(whole process); index on disk {size / 1e6:.2f} MB"
        )
        print()
        header = f"{'model':<34} {'nodes':>6} {'analyze s':>10} {'gate s':>8} {'ratio':>6}"
        print(header)
        rows = []
        for model in models:
            analyze = median_time(opseq("analyze", str(model), "-q"), args.repeat, env)
            gate = median_time(opseq("gate", str(model), *GATE_FLAGS), args.repeat, env)
            rows.append((model, analyze, gate))
            print(
                f"{model.name:<34} {_nodes(model):>6} {analyze:>10.2f} {gate:>8.2f} "
                f"{gate / analyze:>6.2f}"
            )
        corpus = ROOT / "corpus"
        large = [
            "--reference",
            "onnx-node-tests",
            "--reference",
            "onnx-backend-models",
            "--reference",
            str(corpus),
        ]
        cold_large = timed(opseq("gate", str(models[-1]), *large, *GATE_FLAGS), env)
        print()
        print(
            f"large reference (default + {corpus.name}/: "
            f"{_reference_models(cache):,} models): cold {cold_large:.1f} s, "
            f"index on disk {directory_size(Path(cache)) / 1e6:.2f} MB"
        )
        print(header)
        for model, analyze, _ in rows:
            gate = median_time(opseq("gate", str(model), *large, *GATE_FLAGS), args.repeat, env)
            print(
                f"{model.name:<34} {_nodes(model):>6} {analyze:>10.2f} {gate:>8.2f} "
                f"{gate / analyze:>6.2f}"
            )


def _nodes(model: Path) -> int:
    import onnx

    return len(onnx.load(str(model), load_external_data=False).graph.node)


def _reference_models(cache: str) -> int:
    import gzip
    import json

    total = 0
    for path in Path(cache, "references").glob("*.summary.json.gz"):
        total += json.loads(gzip.decompress(path.read_bytes()))["models"]
    return total


def _environment() -> dict:
    import os

    return dict(os.environ)


if __name__ == "__main__":
    main()
