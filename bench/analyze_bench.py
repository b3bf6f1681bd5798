"""How long opseq's analysis takes on real-size models, next to the time to parse them.

For every model in the benchmark cache (see ``_zoo.py``), a fresh child process measures:

- ``load 1st``: the first ``onnx.load(path, load_external_data=False)`` in the process, which is
  what ``opseq analyze model.onnx`` pays (the allocator maps fresh pages for the weights);
- ``load warm``: the median of ``--repeat`` further loads, once freed memory is reused (up to 9x
  faster on 10-30 MB files: the strictest floor);
- ``graph``: ``build_opgraph`` as ``opseq analyze`` runs it (no shape inference), ``ngrams``:
  ``mine_ngrams`` of lengths 1 to 4, ``paths``: ``count_paths``; ``total`` is their sum, for the
  first run (``total 1st``) and as the median of the repeats (``total warm``);
- ``+types``: what ONNX shape inference adds to ``graph`` (``build_opgraph(infer_shapes=True)``,
  the library default), reported apart because ``opseq analyze`` does not need it;

and prints one row per model with both ratios (first/first and warm/warm) and the exact number of
input -> output paths.

Run from the repository root (opseq must be importable, e.g. ``pip install -e .``)::

    python bench/analyze_bench.py --build          # build missing models first (minutes, ~1 GB)
    python bench/analyze_bench.py --models densenet121,gpt2 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import _zoo  # bench/ is this script's directory, hence on sys.path
import onnx

from opseq.graph import build_opgraph
from opseq.ngrams import count_paths, mine_ngrams

NGRAM_RANGE = (1, 4)

COLUMNS = (
    "model",
    "MB",
    "nodes",
    "load 1st",
    "load warm",
    "graph",
    "ngrams",
    "paths",
    "total 1st",
    "total warm",
    "1st/1st",
    "warm/warm",
    "+types",
    "#paths",
)

log = logging.getLogger("opseq.bench")


@dataclass(frozen=True)
class Row:
    """The measurements of one model, in seconds; warm values are medians."""

    model: str
    size_mb: float
    nodes: int
    load_first: float
    load_warm: float
    graph: float
    ngrams: float
    paths: float
    total_first: float
    total_warm: float
    types: float
    path_count: int


def timed(run: Callable[[], object]) -> tuple[float, object]:
    """Run `run` once after a garbage collection; return (seconds, its result)."""
    gc.collect()
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def analysis_times(model: onnx.ModelProto) -> tuple[float, float, float, int]:
    """Time one analysis as `opseq analyze` runs it: (graph, ngrams, paths) seconds, path count."""
    graph_s, graph = timed(lambda: build_opgraph(model, infer_shapes=False))
    ngrams_s, _ = timed(lambda: mine_ngrams(graph, n=NGRAM_RANGE))
    paths_s, path_count = timed(lambda: count_paths(graph))
    return graph_s, ngrams_s, paths_s, path_count


def measure_here(path: Path, repeat: int) -> dict:
    """Measure one model in this (fresh) process; the first load and analysis come first."""
    load_first, model = timed(lambda: onnx.load(path, load_external_data=False))
    measured = measure_analysis(model, repeat)
    del model  # the warm loads below reuse its memory, as repeated loads in one process do
    load_warm = statistics.median(
        timed(lambda: onnx.load(path, load_external_data=False))[0] for _ in range(repeat)
    )
    return {
        "size_mb": path.stat().st_size / 1e6,
        "load_first": load_first,
        "load_warm": load_warm,
        **measured,
    }


def measure_analysis(model: onnx.ModelProto, repeat: int) -> dict:
    """First and warm analysis times of a loaded model, and the cost of shape inference."""
    first = analysis_times(model)
    runs = [analysis_times(model) for _ in range(repeat)]
    with_types = statistics.median(timed(lambda: build_opgraph(model))[0] for _ in range(repeat))
    graph_s, ngrams_s, paths_s, counts = zip(*runs, strict=True)
    return {
        "nodes": len(model.graph.node),
        "graph": statistics.median(graph_s),
        "ngrams": statistics.median(ngrams_s),
        "paths": statistics.median(paths_s),
        "total_first": sum(first[:3]),
        "total_warm": statistics.median(g + n + p for g, n, p, _ in runs),
        "types": with_types - statistics.median(graph_s),
        "path_count": str(counts[0]),
    }


def measure(name: str, path: Path, repeat: int) -> Row:
    """Measure `path` in a fresh child process, so the first load is truly a first load."""
    command = [sys.executable, __file__, "--child", str(path), "--repeat", str(repeat)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        sys.exit(f"{name}: measurement failed: {result.stderr.strip().splitlines()[-1:]}")
    values = json.loads(result.stdout)
    return Row(model=name, **{**values, "path_count": int(values["path_count"])})


def format_table(rows: list[Row]) -> str:
    """Align the rows under `COLUMNS`: model names left, numbers right."""
    cells = [COLUMNS, *(row_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def row_cells(row: Row) -> tuple[str, ...]:
    times = (
        row.load_first,
        row.load_warm,
        row.graph,
        row.ngrams,
        row.paths,
        row.total_first,
        row.total_warm,
    )
    return (
        row.model,
        f"{row.size_mb:.1f}",
        str(row.nodes),
        *(f"{s * 1e3:.1f}" for s in times),
        f"{row.total_first / row.load_first:.2f}",
        f"{row.total_warm / row.load_warm:.2f}",
        f"{row.types * 1e3:.1f}",
        f"{row.path_count:,}",
    )


def model_paths(cache: Path, names: list[str] | None) -> dict[str, Path]:
    """Map model names to cached files: the named ones, or else every cached model."""
    if names is None:
        return {path.stem: path for path in sorted(cache.glob("*.onnx"))}
    paths = {name: cache / f"{name}.onnx" for name in names}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        sys.exit(f"not in {cache}: {', '.join(missing)} (use --build to build them)")
    return paths


def build_models(cache: Path, names: list[str]) -> None:
    """Build the missing models (all when `names` is empty) with ``_zoo.py`` in a child process.

    Not in this process: after the converters ran here, its allocator would serve ``onnx.load``
    from already-mapped memory, and loads measured up to 9x faster than in a fresh process.
    """
    command = [sys.executable, _zoo.__file__, "--cache", str(cache), *names]
    if subprocess.run(command, check=False).returncode:
        sys.exit("building the benchmark models failed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cache",
        type=Path,
        default=_zoo.default_cache_dir(),
        help="model cache directory (default: $OPSEQ_BENCH_CACHE or ~/.cache/opseq/bench)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument(
        "--models",
        type=lambda text: [name for name in text.split(",") if name],
        help="comma-separated names (default: every cached model); buildable: "
        + ", ".join(_zoo.MODELS),
    )
    parser.add_argument("--build", action="store_true", help="build missing models first")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # one measurement, as JSON
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    unknown = sorted(set(args.models or ()) - set(_zoo.MODELS))
    if args.build and unknown:
        parser.error(f"cannot build unknown models: {', '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(measure_here(args.child, args.repeat)))
        return
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    if args.build:
        build_models(args.cache, args.models or [])
    paths = model_paths(args.cache, args.models)
    if not paths:
        sys.exit(f"no models in {args.cache} (use --build to build them)")
    rows = []
    for name, path in paths.items():
        log.info("%s: measuring", name)
        rows.append(measure(name, path, args.repeat))
    print(format_table(rows))
    print(f"\ntimes in ms; warm = median of {args.repeat} runs; total = graph + ngrams + paths")


if __name__ == "__main__":
    main()
