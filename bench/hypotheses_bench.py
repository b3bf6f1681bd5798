"""Hypotheses speed: `opseq hypotheses` on 5,000 labelled models with >= 50,000 tested n-grams.

Builds a labelled corpus once (seeded, see `_planted_corpus.py`) into a cache directory, then
measures, each in a fresh child process:

- ``onnx.load floor``: every labelled model parsed with `onnx.load`, in one process (the time
  inside the child, start-up excluded, fastest of 3 passes: the strictest floor);
- ``cli json``: the real command line, ``opseq hypotheses CORPUS --format json -o FILE --jobs 2
  -q``, process start-up included: the full report, the target (<= 60 s on 2 cores);
- ``cli md``, ``cli html``: the same with the other formats;
- ``in-process``: `load_corpus`, then `build_report` with each of its stages timed (the stage
  functions are wrapped where `hypotheses.report` calls them; the tolerance sweep includes its
  own operator and sequence tests), then `to_dict` and each renderer.

``cpu_s`` is user + system time of the child and its workers; ``peak_rss_mb`` is the largest
resident set of any one process of the run (``wait4``), or for in-process stages the high-water
mark of the child so far (the `load_corpus` workers not included). With ``--profile N`` the
in-process run is repeated under cProfile and the top N functions by cumulative time are printed
(worker processes are not profiled; cProfile slows Python-heavy code down). The CPU load is
sampled before and after: other work on the machine makes every time an upper bound.

    python bench/hypotheses_bench.py [--models 5000] [--repeats 5] [--jobs 2] [--rebuild]
                                     [--formats json,md,html] [--profile 10] [--cache DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _planted_corpus import CorpusParams, write_corpus

DEFAULT_CACHE = Path(
    os.environ.get("OPSEQ_BENCH_CACHE", Path.home() / ".cache" / "opseq" / "bench")
)
TARGET_S = 60.0
SAMPLE_CHECKED = 20
# Functions build_report calls, timed where hypotheses.report imports them (those it has).
REPORT_STAGES = (
    "label_mismatches",
    "size_covariates",
    "fit_size_model",
    "fit_adjustment",
    "operators_hypothesis",
    "sequences_hypothesis",
    "twins_hypothesis",
    "prediction_hypothesis",
    "tolerance_sweep",
    "table12",
)


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table; times in seconds, None when not measured."""

    stage: str
    time_s: float | None
    cpu_s: float | None = None
    rss_mb: float | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ChildRun:
    """A finished child process: wall and CPU time, peak RSS, exit code and output."""

    wall: float
    cpu: float
    rss_mb: float
    returncode: int
    stdout: str
    stderr: str


def run_child(command: list[str]) -> ChildRun:
    """Run `command` and collect its own resource usage (``wait4``), workers included."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            rss_mb=usage.ru_maxrss / 1024,
            returncode=process.returncode,
            stdout=out.read(),
            stderr=err.read(),
        )


def build_corpus(args: argparse.Namespace) -> tuple[Path, float | None]:
    """The manifest of the cached corpus, and the generation time if it was generated now."""
    params = CorpusParams(models=args.models)
    directory = args.cache / f"planted_{args.models}_{params.key()}"
    if args.rebuild and directory.exists():
        shutil.rmtree(directory)
    manifest = directory / "manifest.jsonl"
    if manifest.exists():
        return manifest, None
    start = time.perf_counter()
    write_corpus(directory, params, jobs=args.jobs)
    return manifest, time.perf_counter() - start


def model_paths(manifest: Path) -> list[Path]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    return [manifest.parent / row["model"] for row in rows if row["outcome"] in ("ok", "mismatch")]


def check_sample(paths: list[Path]) -> None:
    """Run the full ONNX checker (shape inference included) on about `SAMPLE_CHECKED` models."""
    import onnx

    for path in paths[:: max(1, len(paths) // SAMPLE_CHECKED)]:
        onnx.checker.check_model(onnx.load(path), full_check=True)


def cli_command(manifest: Path, fmt: str, output: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "opseq", "hypotheses", str(manifest.parent)]
    command += ["--format", fmt, "-o", str(output), "--jobs", str(args.jobs), "-q"]
    command += ["--min-support", str(args.min_support)]
    if args.repeats is not None:
        command += ["--repeats", str(args.repeats)]
    return command


def child_command(mode: str, manifest: Path, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, __file__, "--child", mode, "--jobs", str(args.jobs)]
    command += ["--min-support", str(args.min_support), "--manifest", str(manifest)]
    if args.repeats is not None:
        command += ["--repeats", str(args.repeats)]
    return command


def time_cli(manifest: Path, fmt: str, args: argparse.Namespace) -> tuple[Row, dict | None]:
    """Time one CLI run; return its row and, for JSON, the report."""
    output = manifest.parent / "reports" / f"report.{fmt}"
    output.parent.mkdir(exist_ok=True)
    output.unlink(missing_ok=True)
    run = run_child(cli_command(manifest, fmt, output, args))
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return Row(f"cli {fmt}", None, note=f"failed (exit {run.returncode}): {last}"), None
    report = json.loads(output.read_text()) if fmt == "json" else None
    size = f"{output.stat().st_size / 1e3:.0f} kB written"
    return Row(f"cli {fmt}", run.wall, run.cpu, run.rss_mb, size), report


def time_child(mode: str, manifest: Path, args: argparse.Namespace) -> tuple[ChildRun, dict]:
    run = run_child(child_command(mode, manifest, args))
    if run.returncode != 0:
        raise SystemExit(f"--child {mode} failed ({run.returncode}):\n{run.stderr}")
    return run, json.loads(run.stdout.splitlines()[-1])


# ---- child processes -------------------------------------------------------------------------


def child_floor(manifest: Path, passes: int = 3) -> dict:
    """Parse every model with `onnx.load`; the fastest of `passes` passes (page cache warm)."""
    import onnx

    paths = model_paths(manifest)
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        for path in paths:
            onnx.load(path, load_external_data=False)
        best = min(best, time.perf_counter() - start)
    return {"onnx.load floor": [best, _peak_rss_mb()]}


def child_stages(manifest: Path, args: argparse.Namespace) -> dict:
    """Time `load_corpus`, each stage of `build_report`, and rendering, in this process."""
    from hypotheses import report as report_module
    from hypotheses.features import load_corpus
    from hypotheses.labels import Tolerance
    from hypotheses.render_markdown import render_markdown

    times: dict[str, list[float]] = {}
    clock = _Clock(times)
    table = clock("load_corpus", load_corpus)(manifest.parent, n_max=4, jobs=args.jobs)
    for name in REPORT_STAGES:
        if callable(getattr(report_module, name, None)):
            setattr(report_module, name, clock(name, getattr(report_module, name)))
    overrides = {} if args.repeats is None else {"repeats": args.repeats}
    config = report_module.ReportConfig(
        tolerance=Tolerance(atol=1e-7), min_support=args.min_support, **overrides
    )
    report = clock("build_report", report_module.build_report)(table, config)
    data = clock("to_dict", report.to_dict)()
    clock("render json", json.dumps)(data, indent=1, allow_nan=False)
    clock("render md", render_markdown)(data, top=20)
    try:
        from hypotheses.render_html import render_html

        clock("render html", render_html)(data)
    except ImportError as e:
        times["render html"] = [float("nan"), _peak_rss_mb(), str(e)]
    return times


class _Clock:
    """Wraps functions so that each call adds its wall time and the peak RSS so far."""

    def __init__(self, times: dict[str, list]) -> None:
        self.times = times

    def __call__(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            result = function(*args, **kwargs)
            spent = self.times.get(name, [0.0])[0] + time.perf_counter() - start
            self.times[name] = [spent, _peak_rss_mb()]
            return result

        return timed


def child_profile(manifest: Path, args: argparse.Namespace, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(child_stages, manifest, args)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the table -------------------------------------------------------------------------------


def stage_rows(stages: dict, run: ChildRun) -> list[Row]:
    """Rows of the in-process run, build_report's stages indented under it."""
    rows = [
        Row("in-process: load_corpus", *stages["load_corpus"][:1], None, stages["load_corpus"][1])
    ]
    inner = 0.0
    for name in REPORT_STAGES:
        if name in stages:
            spent, rss = stages[name][:2]
            inner += spent
            rows.append(Row(f"  {name}", spent, None, rss))
    total, rss = stages["build_report"][:2]
    rows.append(Row("  other (corpus summary, verdicts)", total - inner))
    rows.append(Row("in-process: build_report", total, None, rss))
    for name in ("to_dict", "render json", "render md", "render html"):
        spent, rss, *note = stages[name]
        rows.append(Row(f"in-process: {name}", spent, None, rss, *note))
    rows.append(Row("in-process: child total", run.wall, run.cpu, run.rss_mb, "start-up included"))
    return rows


def print_table(rows: list[Row], models: int, tested: int | None, floor: float) -> None:
    print(
        f"{'models':>6} {'ngrams_tested':>13} {'stage':<34} {'time_s':>7} "
        f"{'ratio_to_load_floor':>19} {'cpu_s':>6} {'peak_rss_mb':>11}  note"
    )
    for row in rows:
        time_s = "-" if row.time_s is None else f"{row.time_s:.2f}"
        ratio = "-" if row.time_s is None else f"{row.time_s / floor:.1f}"
        cpu = "" if row.cpu_s is None else f"{row.cpu_s:.1f}"
        rss = "" if row.rss_mb is None else f"{row.rss_mb:.0f}"
        print(
            f"{models:>6} {tested if tested is not None else '?':>13} {row.stage:<34} "
            f"{time_s:>7} {ratio:>19} {cpu:>6} {rss:>11}  {row.note}"
        )


def print_corpus(report: dict) -> None:
    corpus, sequences = report["corpus"], report["sequences"]
    print(
        f"corpus: {corpus['labelled']} labelled models ({corpus['mismatch']} mismatch, "
        f"{corpus['ok']} ok at {report['config']['tolerance']}), "
        f"{corpus['source_models']} source models, {corpus['distinct_operators']} operators; "
        f"n-grams {sequences['n'][0]}..{sequences['n'][1]}: {sequences['candidates']} candidates, "
        f"{sequences['tested']} tested (support >= {sequences['min_support']}); "
        f"CV {report['config']['folds']} folds x {report['config']['repeats']} repeats"
    )
    sweep = ", ".join(f"{r['rule']}: {r['mismatch']}/{r['ok']}" for r in report["tolerance_sweep"])
    print(f"sweep (mismatch/ok): {sweep}")
    methods, tarone = sequences.get("methods") or {}, sequences.get("tarone") or {}
    print(
        f"sequences: {methods.get('score', 0)} score tests, {methods.get('exact', 0)} exact; "
        f"Tarone family {tarone.get('family')} (K = {tarone.get('k')}), "
        f"{tarone.get('excluded')} left out; twins: {report['twins']['discordant']} discordant "
        f"pairs of {report['twins']['pairs']}"
    )
    print("verdicts: " + ", ".join(f"{v['key']} {v['answer']}" for v in report["verdicts"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=5000)
    parser.add_argument("--repeats", type=int, help="CV repeats (default: the CLI's)")
    parser.add_argument("--min-support", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--formats", default="json,md,html", help="CLI formats to time")
    parser.add_argument("--rebuild", action="store_true", help="regenerate the cached corpus")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print top N by cProfile"
    )
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--child", choices=("floor", "stages", "profile"), help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_as_child(args)
        return

    manifest, generated = build_corpus(args)
    paths = model_paths(manifest)
    check_sample(paths)
    where = f"generated in {generated:.1f} s" if generated is not None else "cached"
    print(f"corpus {manifest.parent} ({where}); {os.cpu_count()} CPUs, --jobs {args.jobs}")
    print_load("before")
    rows, report = measure(manifest, args)
    if report is not None:
        print_corpus(report)
    tested = None if report is None else report["sequences"]["tested"]
    print_table(rows, len(paths), tested, rows[0].time_s)
    print_load("after")
    full = next((row.time_s for row in rows if row.stage == "cli json"), None)
    if full is None:
        print("target: full report (cli json) not measured")
    else:
        verdict = "met" if full <= TARGET_S else "NOT met"
        print(f"target: full report (cli json) {full:.1f} s <= {TARGET_S:.0f} s: {verdict}")
    if args.profile:
        command = [*child_command("profile", manifest, args), "--profile", str(args.profile)]
        print(run_child(command).stdout)


def measure(manifest: Path, args: argparse.Namespace) -> tuple[list[Row], dict | None]:
    """The rows of the table (floor first) and the JSON report, if the JSON run succeeded."""
    floor_run, floor = time_child("floor", manifest, args)
    floor_s, floor_rss = floor["onnx.load floor"]
    rows = [
        Row("onnx.load floor", floor_s, floor_run.cpu, floor_rss, "1 process, best of 3 passes")
    ]
    report = None
    for fmt in args.formats.split(","):
        row, data = time_cli(manifest, fmt, args)
        rows.append(row)
        report = report or data
    stages_run, stages = time_child("stages", manifest, args)
    return rows + stage_rows(stages, stages_run), report


def print_load(when: str) -> None:
    """Print how busy the CPUs are: other work on the machine inflates every time in the table."""
    busy = _busy_cpus()
    load = os.getloadavg()
    text = f"load {when}: {busy:.2f} CPUs busy (1 s sample), load average {load[0]:.2f}"
    warning = "; other processes are running, times are upper bounds" if busy > 0.2 else ""
    print(text + warning)


def _busy_cpus(seconds: float = 1.0) -> float:
    """CPUs busy (not idle or waiting for I/O) over `seconds`, from ``/proc/stat``."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            ticks = [int(t) for t in stat.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    share = 1 - (idle1 - idle0) / max(total1 - total0, 1)
    return share * (os.cpu_count() or 1)


def run_as_child(args: argparse.Namespace) -> None:
    if args.child == "floor":
        print(json.dumps(child_floor(args.manifest)))
    elif args.child == "stages":
        print(json.dumps(child_stages(args.manifest, args)))
    else:
        print(child_profile(args.manifest, args, args.profile))


if __name__ == "__main__":
    main()
