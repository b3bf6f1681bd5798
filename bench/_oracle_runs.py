"""Run the conversions of `oracle_bench` and plant bugs into them (in worker processes)."""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import _planted_bugs  # bench/ is this script's directory, hence on sys.path
import numpy as np

from opseq.difftest.calibration import judge_evaluator
from opseq.difftest.campaign import WORKER_ENVIRONMENT, default_memory_cap
from opseq.difftest.compare import compare_outputs, merge_comparisons
from opseq.difftest.convert import get_converter
from opseq.difftest.execute import create_session, run_framework, run_onnxruntime
from opseq.difftest.float64 import run_float64
from opseq.difftest.isolate import Limits, TaskResult, TaskStatus, WorkerPool
from opseq.difftest.measure import OutputErrors, normalised_error, per_set_errors
from opseq.difftest.oracle import run_difftest
from opseq.sources import get_source, make_inputs
from opseq.tolerance import CalibratedRule

log = logging.getLogger("opseq.bench")

CONVERTERS: dict[str, tuple[str, ...]] = {
    "zoo-torch": ("torch.onnx-torchscript", "torch.onnx-dynamo"),
    "zoo-transformers": ("torch.onnx-torchscript", "torch.onnx-dynamo"),
    "zoo-keras": ("tf2onnx",),
    "synthetic-torch": ("torch.onnx-torchscript", "torch.onnx-dynamo"),
    "synthetic-tf": ("tf2onnx",),
}
"""Source -> the converters its cases go through (a framework's converters only)."""
FRAMEWORK = {
    "zoo-torch": "torch",
    "zoo-transformers": "torch",
    "zoo-keras": "tensorflow",
    "synthetic-torch": "torch",
    "synthetic-tf": "tensorflow",
}
HIGH_DYNAMIC_RANGE = frozenset({"Exp", "Pow", "Tan", "Log", "Div"})
"""A synthetic case is taken only if its graph holds one of these ops."""
DEFAULT_COUNT = 80
OPSET = 17
INPUT_SETS = 10
RAN = ("ok", "mismatch")
DEFAULT_RULE = CalibratedRule()

_EPS32 = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------------------- selecting cases


def select_cases(source_name: str, count: int | None, seed: int) -> list[str]:
    """The first `count` case ids of a source; for synthetic ones, those with an HDR op."""
    source = get_source(source_name)
    if not source_name.startswith("synthetic-"):
        return list(source.case_ids(count=count, seed=seed))
    chosen = []
    for case_id in source.case_ids(count=None, seed=seed):
        if HIGH_DYNAMIC_RANGE & set(source.graph(case_id).ops):
            chosen.append(case_id)
            if count is not None and len(chosen) >= count:
                break
    return chosen


def plan_tasks(sources: Sequence[str], count: int | None, seed: int) -> list[dict[str, Any]]:
    """One task per (case, converter); which run goes first alternates over cases and converters."""
    tasks = []
    for source in sources:
        for i, case_id in enumerate(select_cases(source, count, seed)):
            for j, converter in enumerate(CONVERTERS[source]):
                task = {"source": source, "case": case_id, "converter": converter}
                first = "on" if (i + j) % 2 else "off"
                tasks.append({**task, "seed": seed, "inputs": INPUT_SETS, "first": first})
    return tasks


# ------------------------------------------------------------------------ in a worker process


def run_conversion(task: dict[str, Any]) -> dict[str, Any]:
    """Test one conversion and its planted copies (worker task; returns a JSON-safe record)."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    record: dict[str, Any] = dict(task)
    start = time.perf_counter()
    case = get_source(task["source"]).build(task["case"], seed=task["seed"])
    record["build_s"] = time.perf_counter() - start
    converter = get_converter(task["converter"])
    results = {}
    order = ("on", "off") if task["first"] == "on" else ("off", "on")
    for key in order:
        start = time.perf_counter()
        results[key] = run_difftest(
            case,
            converter,
            opset=OPSET,
            n_inputs=task["inputs"],
            seed=task["seed"],
            rule=DEFAULT_RULE if key == "on" else None,
            attribute_blame=False,
            latency_repeats=0,
        )
        record[f"time_{key}_s"] = time.perf_counter() - start
        record[f"durations_{key}"] = results[key].durations
    result = results["on"]
    record["outcome"] = result.outcome.value
    record["outcome_fixed_only"] = results["off"].outcome.value
    record["failure"] = None if result.failure is None else result.failure.message
    if result.outcome.value not in RAN:
        return record
    calibration = result.calibration
    record["nodes"] = len(result.model.graph.node)
    record["reference_note"] = calibration.reference_note
    record["verdict"] = calibration.verdict.to_dict()
    record["errors"] = _errors_json(calibration.errors)
    record["comparisons"] = [c.to_dict() for c in result.comparisons]

    feeds = make_inputs(case.inputs, count=task["inputs"], seed=task["seed"])
    framework = run_framework(case, feeds)
    reference = run_float64(case, feeds, framework).outputs
    session = create_session(result.model)
    names = [o.name for o in session.get_outputs()]
    baseline = run_onnxruntime(session, feeds)
    rerun = judge_evaluator(framework, baseline, reference, DEFAULT_RULE)
    record["rerun_agrees"] = rerun.per_set == calibration.verdict.per_set
    record["disagreements"] = _disagreements(framework, baseline, reference, names, result.model)
    producers = _producers(result.model)
    record["producers"] = [producers.get(name, "?") for name in names]
    record["planted"] = [
        _plant(kind, planter, result.model, feeds, framework, reference, baseline)
        for kind, planter in _planted_bugs.PLANTERS.items()
    ]
    return record


def _plant(kind, planter, model, feeds, framework, reference, baseline) -> dict[str, Any]:
    """Plant one kind into a copy of `model`, run it, and measure it like the unplanted model."""
    entry: dict[str, Any] = {"kind": kind}
    start = time.perf_counter()
    try:
        planted = planter(model)
    except Exception as e:  # a bug in the planter: counted apart, never a result
        return {**entry, "status": "plant_error", "error": _message(e)}
    if planted is None:
        return {**entry, "status": "absent"}
    entry["site"] = _planted_bugs.planted_site(planted)
    try:
        session = create_session(planted)
    except Exception as e:  # ONNX Runtime refuses the planted copy: dropped
        return {**entry, "status": "load_fail", "error": _message(e)}
    try:
        outputs = run_onnxruntime(session, feeds)
    except Exception as e:
        return {**entry, "status": "run_fail", "error": _message(e)}
    if _bit_identical(outputs, baseline):
        return {**entry, "status": "identical"}
    names = [o.name for o in session.get_outputs()]
    errors = [
        per_set_errors(framework[k], outputs[k], None if reference is None else reference[k])
        for k in range(len(framework))
    ]
    verdict = judge_evaluator(framework, outputs, reference, DEFAULT_RULE)
    comparisons = merge_comparisons(
        [compare_outputs(f, x, names=names) for f, x in zip(framework, outputs, strict=True)]
    )
    return {
        **entry,
        "status": "changed",
        "verdict": verdict.to_dict(),
        "errors": _errors_json(errors),
        "comparisons": [c.to_dict() for c in comparisons],
        "effect": _effect(outputs, baseline),
        "seconds": time.perf_counter() - start,
    }


def _message(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def _errors_json(errors: Iterable[Iterable[OutputErrors]]) -> list[list[dict[str, Any]]]:
    return [[e.to_dict() for e in per_set] for per_set in errors]


def _bit_identical(outputs, baseline) -> bool:
    return all(
        len(a) == len(b)
        and all(
            np.asarray(x).dtype == np.asarray(y).dtype
            and np.shape(x) == np.shape(y)
            and np.asarray(x).tobytes() == np.asarray(y).tobytes()
            for x, y in zip(a, b, strict=True)
        )
        for a, b in zip(outputs, baseline, strict=True)
    )


def _effect(outputs, baseline) -> dict[str, Any]:
    """How far the planted copy's outputs moved from the unplanted ONNX outputs."""
    units, values, nonfinite, structure = 0.0, False, False, False
    for planted_set, base_set in zip(outputs, baseline, strict=True):
        if len(planted_set) != len(base_set):
            structure = True
            continue
        for x, b in zip(planted_set, base_set, strict=True):
            x, b = np.asarray(x), np.asarray(b)
            if x.shape != b.shape or x.dtype != b.dtype:
                structure = True
            elif x.dtype.kind in "fc":
                wide, base = x.astype(np.float64), b.astype(np.float64)
                nonfinite |= not np.array_equal(np.isfinite(wide), np.isfinite(base))
                units = max(units, normalised_error(wide, base, eps=_EPS32))
            elif not np.array_equal(x, b):
                values = True
    return {"units": units, "values": values, "nonfinite": nonfinite, "structure": structure}


def _disagreements(framework, onnx_outputs, reference, names, model) -> list[dict[str, Any]]:
    """Where the unplanted ONNX outputs disagree with the framework's in values or NaN/Inf."""
    producers = _producers(model)
    found = []
    for k, (f_set, x_set) in enumerate(zip(framework, onnx_outputs, strict=True)):
        for i, (f, x) in enumerate(zip(f_set, x_set, strict=False)):
            f, x = np.asarray(f), np.asarray(x)
            r = None if reference is None else np.asarray(reference[k][i])
            if f.shape != x.shape or (r is not None and r.shape != f.shape):
                continue
            name = names[i] if i < len(names) else str(i)
            entry = {
                "set": k,
                "output": i,
                "name": name,
                "producer": producers.get(name, "?"),
                "dtype": str(f.dtype),
                "size": int(f.size),
            }
            if f.dtype.kind in "fc":
                differing = int(_pattern_differs(f, x).sum())
                if differing:
                    counts = {"framework": _nonfinite_counts(f), "onnx": _nonfinite_counts(x)}
                    if r is not None:
                        counts["float64"] = _nonfinite_counts(r)
                    agrees = r is None or not _pattern_differs(r, f).any()
                    found.append(
                        {
                            **entry,
                            "what": "nonfinite",
                            "nonfinite": counts,
                            "differing": differing,
                            "float64_agrees": bool(agrees),
                        }
                    )
            elif not np.array_equal(f, x):
                diff = np.abs(f.astype(np.float64) - x.astype(np.float64))
                agrees = r is None or bool(np.array_equal(r, f))
                found.append(
                    {
                        **entry,
                        "what": "values",
                        "differing": int((f != x).sum()),
                        "max_diff": float(diff.max()),
                        "float64_agrees": agrees,
                    }
                )
    return found


def _pattern_differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.real(np.asarray(a)), np.real(np.asarray(b))
    return (
        (np.isnan(a) != np.isnan(b))
        | (np.isposinf(a) != np.isposinf(b))
        | (np.isneginf(a) != np.isneginf(b))
    )


def _nonfinite_counts(array: np.ndarray) -> list[int]:
    a = np.asarray(array)
    return [int(np.isnan(a).sum()), int(np.isposinf(a).sum()), int(np.isneginf(a).sum())]


def _producers(model) -> dict[str, str]:
    """Graph output name -> the op type computing it (through Identity)."""
    by_output = {o: n for n in model.graph.node for o in n.output}
    found = {}
    for output in model.graph.output:
        node = by_output.get(output.name)
        while node is not None and node.op_type == "Identity":
            node = by_output.get(node.input[0])
        found[output.name] = "graph input" if node is None else node.op_type
    return found


# ---------------------------------------------------------------------------- running tasks


def run_tasks(tasks: list[dict[str, Any]], args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """Run the tasks in worker pools, one framework at a time; yield each record as it ends."""
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="oracle-bench-logs-"))
    log.info("worker logs in %s", log_dir)
    limits = Limits(
        timeout_s=args.timeout, memory_mb=args.memory_cap or default_memory_cap(args.workers)
    )
    done, total = 0, len(tasks)
    for framework in ("torch", "tensorflow"):
        group = [t for t in tasks if FRAMEWORK[t["source"]] == framework]
        if not group:
            continue
        with WorkerPool(
            f"{Path(__file__).stem}:run_conversion",
            workers=args.workers,
            limits=limits,
            log_dir=log_dir / framework,
            environment=WORKER_ENVIRONMENT,
        ) as pool:
            for result in pool.map_unordered(group):
                done += 1
                record = _record(result)
                log.info("[%d/%d] %s", done, total, _progress(record))
                yield record


def _record(result: TaskResult) -> dict[str, Any]:
    if result.status is TaskStatus.DONE and result.payload is not None:
        return {**result.payload, "task_s": result.duration_s, "peak_rss_mb": result.peak_rss_mb}
    error = (result.error or "").strip().splitlines()
    return {
        **result.task,
        "outcome": result.status.value,
        "task_s": result.duration_s,
        "failure": error[-1] if error else None,
    }


def _progress(record: dict[str, Any]) -> str:
    planted = Counter(p["status"] for p in record.get("planted", ()))
    verdict = record.get("verdict", {}).get("verdict", "-")
    text = f"{record['source']} {record['case']} {record['converter']}: {record['outcome']}"
    if record["outcome"] in RAN:
        text += f" ({verdict}), planted {planted['changed']} changed, {planted['identical']} same"
    else:
        text += f": {record.get('failure')}"
    return f"{text}, {record.get('task_s', 0):.0f} s"


# ------------------------------------------------------------------------------ analysis
