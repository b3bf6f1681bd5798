"""Mining a large corpus: the corpus index (cold vs warm) and mining on 1 and 2 Dask workers.

Builds ``--models`` (default 20,000) tiny synthetic ONNX models in a temporary directory (random
DAGs of 2-12 float ops, `_synthetic.random_model`) with a labelled manifest, then measures:

- ``write models``: building and saving them (to show they are cheap);
- ``hash files``: the SHA-256 pass a warm run pays (read + hash every file);
- ``mine, here``: `mine_corpus` in this process, no index (the baseline);
- ``mine, dask 1`` / ``mine, dask 2``: the same on a `LocalCluster` of 1 and 2 workers, with
  throughput, the scaling ratio, the client's CPU time per model, and the peak RSS of the client
  (sampled) and of each worker (``ru_maxrss``, via ``client.run``);
- ``index cold`` / ``index warm``: `load_corpus` with an index that does not exist yet (mine on
  2 workers, write) and then exists (hash and read), the index's size;
- ``hypotheses cold`` / ``warm``: ``opseq hypotheses --jobs 2`` in a child process, first with an
  index that does not exist yet and then with it, on the 5,000-model benchmark corpus of
  `hypotheses_bench.py` and on the shipped corpus (read-only; the index goes to a temporary file
  through ``--index``, never into corpus/), with the default tests and with ``--no-prediction
  --no-sweep`` (where mining is most of the work); the two reports must be byte-identical.

It ends with the extrapolation of where the client becomes the bottleneck for 100,000 models.

Run from the repository root (opseq must be importable), on a quiet machine::

    nice -n 10 python bench/dask_mining_bench.py                 # the full run (~15 min)
    nice -n 10 python bench/dask_mining_bench.py --models 500 --no-hypotheses   # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _planted_corpus import CorpusParams
from _planted_corpus import write_corpus as write_planted_corpus
from _synthetic import random_model

from hypotheses.features import load_corpus
from opseq.distributed.cluster import connect
from opseq.graph import DEFAULT_IGNORED_OPS
from opseq.mining.dask_mining import file_digest, mine_corpus
from opseq.mining.index import MiningParams

PARAMS = MiningParams(n_max=4, ignore_ops=tuple(DEFAULT_IGNORED_OPS))
ROOT = Path(__file__).resolve().parent.parent


def write_corpus(directory: Path, models: int, seed: int = 0) -> list[str]:
    """`models` model files and a labelled manifest; return the model paths."""
    rng = np.random.default_rng(seed)
    (directory / "models").mkdir(parents=True)
    rows, paths = [], []
    for i in range(models):
        name = f"models/m{i:06d}.onnx"
        nodes = int(rng.integers(2, 13))
        (directory / name).write_bytes(random_model(nodes, seed=i).SerializeToString())
        paths.append(str(directory / name))
        outcome = "mismatch" if rng.random() < 0.2 else "ok"
        diff = 1e-3 if outcome == "mismatch" else 1e-9
        rows.append(
            {"id": f"b/{i}", "model": name, "outcome": outcome, "converter": "c", "source": "b",
             "max_abs_diff": diff, "max_rel_diff": diff, "error": None, "case": str(i)}
        )  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (directory / "manifest.jsonl").write_text(text, encoding="utf-8")
    return paths


@contextmanager
def peak_rss() -> Iterator[dict]:
    """Sample this process's RSS every 20 ms inside the block; ``result["peak"]`` in bytes."""
    import psutil

    me, result, stop = psutil.Process(), {"peak": 0}, threading.Event()

    def sample() -> None:
        while not stop.is_set():
            result["peak"] = max(result["peak"], me.memory_info().rss)
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()


def timed(run: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, this process's CPU seconds, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def worker_peak_rss(client) -> list[int]:
    """Each worker's peak RSS in bytes (Linux ``ru_maxrss`` is in KiB)."""

    def maxrss() -> int:
        import resource as r

        return r.getrusage(r.RUSAGE_SELF).ru_maxrss * 1024

    return sorted(client.run(maxrss).values())


def mine_on(workers: int, paths: list[str]) -> dict:
    with connect(local_workers=workers) as client, peak_rss() as rss:
        wall, cpu, mined = timed(lambda: mine_corpus(paths, params=PARAMS, client=client))
        assert mined.stats.models == len(paths)  # identical files are mined once
        return {"wall": wall, "cpu": cpu, "client_rss": rss["peak"],
                "worker_rss": worker_peak_rss(client), "result": mined}  # fmt: skip


def hypotheses_run(corpus: Path, index: Path, extra: list[str], output: Path) -> float:
    argv = [sys.executable, "-m", "opseq", "hypotheses", str(corpus), "--index", str(index),
            "--jobs", "2", "--format", "json", "-o", str(output), "-q", *extra]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(argv, check=True, cwd=ROOT)
    return time.perf_counter() - start


def benchmark_corpus(directory: Path) -> Path:
    """The 5,000-model labelled corpus of `hypotheses_bench.py` (seeded, same parameters)."""
    return write_planted_corpus(directory, CorpusParams(models=5000)).parent


def hypotheses_rows(name: str, corpus: Path, label: str, extra: list[str], tmp: Path) -> list:
    """Cold (mine, write the index) and warm (read it) ``opseq hypotheses`` on `corpus`."""
    index = tmp / f"hyp-{name}-{len(extra)}.parquet"
    cold = hypotheses_run(corpus, index, extra, tmp / "cold.json")
    warm = hypotheses_run(corpus, index, extra, tmp / "warm.json")
    same = (tmp / "cold.json").read_bytes() == (tmp / "warm.json").read_bytes()
    rows = sum(1 for _ in (corpus / "manifest.jsonl").open())
    return [
        (f"hypotheses cold, {name}, {label}", f"{rows} rows", cold, ""),
        (f"hypotheses warm, {name}, {label}", f"{rows} rows", warm,
         f"{cold / warm:.2f}x faster, same report: {same}"),
    ]  # fmt: skip


def mb(size: float) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20_000)
    parser.add_argument("--no-hypotheses", action="store_true", help="skip the shipped corpus")
    parser.add_argument("--no-local", action="store_true", help="skip mining in this process")
    args = parser.parse_args(argv)
    # Another cluster may hold Dask's dashboard port; the dashboard is not used here.
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    rows: list[tuple[str, str, float, str]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="opseq-mining-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        n = args.models
        wall, _, paths = timed(lambda: write_corpus(corpus, n))
        rows.append(("write models", f"{n} models", wall, f"{wall / n * 1e3:.2f} ms/model"))
        hash_wall, _, _ = timed(lambda: [file_digest(p, PARAMS) for p in paths])
        rows.append(("hash files", f"{n} models", hash_wall, f"{n / hash_wall:.0f} models/s"))
        baseline = None
        if not args.no_local:
            wall, _, baseline = timed(lambda: mine_corpus(paths, params=PARAMS))
            rows.append(("mine, here (1 process)", f"{n} models", wall, f"{n / wall:.0f} models/s"))
            notes.append(f"hashing is {hash_wall / wall:.1%} of mining here")
        runs = {w: mine_on(w, paths) for w in (1, 2)}
        for w, run in runs.items():
            rate = n / run["wall"]
            cpu_ms = run["cpu"] / n * 1e3
            rows.append((f"mine, dask {w} worker(s)", f"{n} models", run["wall"],
                         f"{rate:.0f} models/s, client CPU {cpu_ms:.2f} ms/model"))  # fmt: skip
            notes.append(
                f"dask {w}: client peak RSS {mb(run['client_rss'])}, worker peak RSS "
                f"{', '.join(mb(r) for r in run['worker_rss'])}"
            )
            if baseline is not None:
                same = run["result"].vocabulary == baseline.vocabulary and all(
                    a[0] == b[0] and np.array_equal(a[1], b[1])
                    for a, b in zip(run["result"].results, baseline.results, strict=True)
                )
                notes.append(f"dask {w}: results identical to mining here: {same}")
        ratio = runs[1]["wall"] / runs[2]["wall"]
        rows.append(("scaling 1 -> 2 workers", "", runs[2]["wall"], f"{ratio:.2f}x"))
        index = Path(tmp) / "index" / "structure.parquet"
        with connect(local_workers=2) as client:
            cold, _, table = timed(lambda: load_corpus(corpus, index=index, client=client))
        index_warm, _, again = timed(lambda: load_corpus(corpus, index=index))
        assert (table.presence.matrix != again.presence.matrix).nnz == 0
        size = index.stat().st_size
        rows.append(("index cold (dask 2, write)", mb(size), cold, ""))
        rows.append(
            ("index warm (hash + read)", mb(size), index_warm, f"{cold / index_warm:.1f}x faster")
        )
        notes.append(f"index: {size} bytes, {table.presence.matrix.nnz} presences, "
                     f"{len(table.presence.names)} n-grams")  # fmt: skip
        if not args.no_hypotheses:
            corpora = (
                ("bench", benchmark_corpus(Path(tmp) / "planted")),
                ("shipped", ROOT / "corpus"),
            )
            variants = (("default", []), ("--no-prediction --no-sweep",
                                          ["--no-prediction", "--no-sweep"]))  # fmt: skip
            for (name, where), (label, extra) in itertools.product(corpora, variants):
                rows += hypotheses_rows(name, where, label, extra, Path(tmp))
    print(f"{'work':34} {'size':>14} {'seconds':>9}  ratio")
    for work, size_text, seconds, ratio_text in rows:
        print(f"{work:34} {size_text:>14} {seconds:9.2f}  {ratio_text}")
    print()
    for note in notes:
        print(f"- {note}")
    client_ms = runs[2]["cpu"] / n * 1e3
    per_worker = n / runs[1]["wall"]
    print(
        f"- extrapolation: the client spends {client_ms:.2f} ms CPU per model (read, hash, send, "
        f"decode, encode), so it saturates at {1e3 / client_ms:.0f} models/s; one worker mines "
        f"{per_worker:.0f} models/s, so the client is the bottleneck beyond "
        f"~{1e3 / client_ms / per_worker:.0f} workers; 100,000 models then take at least "
        f"{100_000 * client_ms / 1e3:.0f} s however many workers (vs "
        f"{100_000 / per_worker:.0f} s on one worker), and the warm index run "
        f"~{index_warm / n * 100_000:.0f} s."
    )
    overall = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"- this process's peak RSS overall: {mb(overall)}")
    print(f"- cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
