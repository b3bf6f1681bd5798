"""How well the gate's ``valid`` and ``runnable`` checks predict ONNX Runtime load failures.

On the shipped corpus (``corpus/manifest.jsonl``; every row with a model, all structure-only), a
row is predicted ``load_fail`` when the model is not valid or not runnable
(`opseq.coverage.checks`). Printed: per converter and in total, the rows with a model, the
actual ``load_fail`` rows, the predicted ones, true positives, precision and recall, for that
predictor and for each check alone, and for ``valid`` without the one rule ONNX Runtime does not
enforce by default (a declared shape that contradicts the inferred one: ONNX Runtime merges
leniently unless ``session.strict_shape_type_inference`` is set); then the ``load_fail`` errors
no check predicts and the false alarms, grouped; then the median (and p90, max) time per model
of each check.

Then the checks against a real ``onnxruntime.InferenceSession`` (optimisations disabled and all
enabled): on every model of onnx's node tests (``collect_testcases``, 1.9k small models), and on
the corpus models whose stripped tensors, given zeros, take at most ``--max-mb``; for those also
with strict shape inference.

Run from the repository root: ``python bench/load_fail_prediction.py [--max-mb 64] [--no-ort]``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import onnx

from opseq.corpus import read_manifest
from opseq.coverage.checks import check_runnable, check_valid
from opseq.coverage.criteria import Criterion
from opseq.loader import load_model
from opseq.strip import tensor_nbytes

ROOT = Path(__file__).resolve().parents[1]
LENIENT = "Inferred shape and existing shape differ"  # what ORT's default shape merge tolerates
SHOWN_GROUPS = 12


@dataclass(frozen=True, slots=True)
class Row:
    """One corpus row with a model: what happened, what the checks say, how long they took."""

    converter: str
    load_fail: bool
    error: str
    path: Path
    valid: Criterion
    runnable: Criterion
    valid_s: float
    runnable_s: float


def not_valid(row: Row) -> bool:
    return row.valid.passed is not True


def not_runnable(row: Row) -> bool:
    return row.runnable.passed is not True


def not_valid_lenient(row: Row) -> bool:
    return any(LENIENT not in o.item for o in row.valid.offenders)


PREDICTORS: dict[str, Callable[[Row], bool]] = {
    "not valid or not runnable": lambda r: not_valid(r) or not_runnable(r),
    "not valid": not_valid,
    "not runnable": not_runnable,
    "not valid (lenient) or not runnable": lambda r: not_valid_lenient(r) or not_runnable(r),
}


def evaluate(corpus: Path) -> list[Row]:
    rows = []
    for entry in read_manifest(corpus / "manifest.jsonl"):
        if entry.model is None:
            continue
        path = corpus / entry.model
        model = load_model(path)
        start = time.perf_counter()
        valid = check_valid(model)
        middle = time.perf_counter()
        runnable = check_runnable(model)
        end = time.perf_counter()
        rows.append(
            Row(
                converter=entry.converter,
                load_fail=entry.outcome.value == "load_fail",
                error=entry.error or "",
                path=path,
                valid=valid,
                runnable=runnable,
                valid_s=middle - start,
                runnable_s=end - middle,
            )
        )
    return rows


def print_prediction_table(rows: list[Row]) -> None:
    converters = sorted({r.converter for r in rows})
    header = (
        f"| {'predictor':<36} | {'converter':<22} | models | load_fail | predicted |  TP |"
        " precision | recall |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, predict in PREDICTORS.items():
        for converter in [*converters, "total"]:
            group = [r for r in rows if converter in (r.converter, "total")]
            actual = sum(r.load_fail for r in group)
            predicted = sum(predict(r) for r in group)
            hits = sum(r.load_fail and predict(r) for r in group)
            print(
                f"| {name:<36} | {converter:<22} | {len(group):>6} | {actual:>9} |"
                f" {predicted:>9} | {hits:>3} | {_ratio(hits, predicted):>9} |"
                f" {_ratio(hits, actual):>6} |"
            )


def _ratio(numerator: int, denominator: int) -> str:
    return "n/a" if denominator == 0 else f"{numerator / denominator:.3f}"


def normalise(text: str) -> str:
    """An error message with its names and numbers blanked, to group alike messages."""
    text = re.sub(r"^onnxruntime\.capi\.onnxruntime_pybind11_state\.", "", text)
    text = re.sub(r"\(\"[^\"]*\", (\w+), \"[^\"]*\", -?\d+\) : \(.*?\) -> \(.*?\) ,", r"(\1)", text)
    text = re.sub(r"Node \([^)]*\)", "Node (N)", text)
    text = re.sub(r"node name: [^)]*\)", "node name: N)", text)
    text = re.sub(r"Name:'[^']*'", "Name:'N'", text)
    text = re.sub(r"\d+", "#", text)
    return text[:150]


def print_groups(title: str, texts: Iterable[str]) -> None:
    counts = Counter(normalise(t) for t in texts)
    print(f"\n{title}: {sum(counts.values())} ({len(counts)} kinds)")
    for text, count in counts.most_common(SHOWN_GROUPS):
        print(f"  {count:>4}  {text}")
    if len(counts) > SHOWN_GROUPS:
        print(f"  ...   {len(counts) - SHOWN_GROUPS} more kinds")


def print_errors(rows: list[Row]) -> None:
    combined = PREDICTORS["not valid or not runnable"]
    missed = [r.error for r in rows if r.load_fail and not combined(r)]
    print_groups("load_fail rows neither check predicts (ONNX Runtime's message)", missed)
    missed = [r.error for r in rows if r.load_fail and not not_runnable(r)]
    print_groups("load_fail rows runnable alone does not predict", missed)
    alarms = [
        o.item
        for r in rows
        if combined(r) and not r.load_fail
        for o in (*r.valid.offenders, *r.runnable.offenders)
    ]
    print_groups("false alarms: offenders on rows that loaded", alarms)
    outcomes = Counter(r.converter for r in rows if combined(r) and not r.load_fail)
    print("  false-alarm rows by converter:", dict(outcomes))


def print_times(rows: list[Row]) -> None:
    print("\ntime per model (s):")
    for name, values in (
        ("valid", [r.valid_s for r in rows]),
        ("runnable", [r.runnable_s for r in rows]),
    ):
        values.sort()
        p90 = values[int(0.9 * (len(values) - 1))]
        print(
            f"  {name:<9} median {statistics.median(values):.4f}  p90 {p90:.4f}"
            f"  max {values[-1]:.4f}  (n = {len(values)})"
        )


# --- against a real InferenceSession


def ort_loads(model: onnx.ModelProto, *, optimise: bool, strict: bool = False) -> str | None:
    """None when ONNX Runtime loads the model, else its message."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimise else level.ORT_DISABLE_ALL
    if strict:
        options.add_session_config_entry("session.strict_shape_type_inference", "1")
    try:
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:
        return str(e).replace("\n", " ")
    return None


def zero_filled(model: onnx.ModelProto, max_bytes: int) -> onnx.ModelProto | None:
    """A copy whose stripped tensors have zeros, or None when they would exceed `max_bytes`."""
    tensors = [t for t in model.graph.initializer if _lacks_data(t)]
    tensors += [
        a.t for n in model.graph.node for a in n.attribute if a.HasField("t") and _lacks_data(a.t)
    ]
    if sum(tensor_nbytes(t) for t in tensors) > max_bytes:
        return None
    filled = onnx.ModelProto()
    filled.CopyFrom(model)
    for tensor in [t for t in filled.graph.initializer if _lacks_data(t)] + [
        a.t for n in filled.graph.node for a in n.attribute if a.HasField("t") and _lacks_data(a.t)
    ]:
        tensor.raw_data = bytes(tensor_nbytes(tensor))
    return filled


def _lacks_data(tensor: onnx.TensorProto) -> bool:
    fields = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")
    return not tensor.HasField("raw_data") and not any(len(getattr(tensor, f)) for f in fields)


def print_agreement(title: str, cases: list[tuple[str, bool, bool, dict[str, str | None]]]) -> None:
    """Cases: (name, predicted valid-and-runnable, predicted runnable, {setting: ORT message})."""
    settings = list(cases[0][3]) if cases else []
    print(f"\n{title}: {len(cases)} models")
    print(
        f"| {'prediction':<22} | {'ORT setting':<22} | agree | pred ok, ORT fails |"
        " pred fail, ORT loads |"
    )
    print(
        "|------------------------|------------------------|-------|-------------------|----------------------|"
    )
    for label, index in (("valid and runnable", 1), ("runnable", 2)):
        for setting in settings:
            agree = sum(c[index] == (c[3][setting] is None) for c in cases)
            missed = sum(c[index] and c[3][setting] is not None for c in cases)
            alarms = sum(not c[index] and c[3][setting] is None for c in cases)
            print(f"| {label:<22} | {setting:<22} | {agree:>5} | {missed:>17} | {alarms:>20} |")
    wrong = [c for c in cases if c[1] != (c[3][settings[0]] is None)] if settings else []
    for name, predicted, _, messages in wrong[:SHOWN_GROUPS]:
        message = messages[settings[0]] or "loads"
        print(f"  {name}: predicted {'ok' if predicted else 'fail'}; ORT: {message[:140]}")


def node_test_cases() -> list[tuple[str, bool, bool, dict[str, str | None]]]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test cases' own numpy warnings
        testcases = collect_testcases()
    cases = []
    for case in testcases:
        runnable = check_runnable(case.model).passed is True
        predicted = runnable and check_valid(case.model).passed is True
        messages = {
            "optimisations off": ort_loads(case.model, optimise=False),
            "optimisations on": ort_loads(case.model, optimise=True),
        }
        cases.append((case.name, predicted, runnable, messages))
    return cases


def corpus_cases(
    rows: list[Row], max_bytes: int
) -> list[tuple[str, bool, bool, dict[str, str | None]]]:
    cases = []
    for row in rows:
        model = zero_filled(load_model(row.path), max_bytes)
        if model is None:
            continue
        runnable = row.runnable.passed is True
        messages = {
            "optimisations off": ort_loads(model, optimise=False),
            "optimisations on": ort_loads(model, optimise=True),
            "strict shapes, off": ort_loads(model, optimise=False, strict=True),
        }
        cases.append(
            (
                str(row.path.relative_to(ROOT)),
                runnable and row.valid.passed is True,
                runnable,
                messages,
            )
        )
    return cases


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument(
        "--max-mb", type=float, default=64.0, help="largest zero-filled corpus model"
    )
    parser.add_argument(
        "--no-ort", action="store_true", help="skip the InferenceSession comparison"
    )
    args = parser.parse_args(argv)
    import onnxruntime

    onnxruntime.set_default_logger_severity(3)
    print(f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}\n")
    rows = evaluate(args.corpus)
    print_prediction_table(rows)
    print_errors(rows)
    print_times(rows)
    if not args.no_ort:
        print_agreement("onnx node tests against InferenceSession", node_test_cases())
        cases = corpus_cases(rows, int(args.max_mb * 2**20))
        print_agreement(f"corpus models with zeros (<= {args.max_mb:g} MB)", cases)


if __name__ == "__main__":
    main()
