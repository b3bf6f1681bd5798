"""Openja et al. (ICSME 2022) again: trained models before and after conversion to ONNX and CoreML.

The study trained five models in Keras and PyTorch on three datasets, converted them to ONNX and
CoreML, and compared prediction accuracy, time, memory, size and adversarial robustness before
and after conversion. This bench runs the same grid on the ``trained`` source (five architectures
x two frameworks x three scikit-learn datasets) through every ONNX exporter that applies
(torch.onnx-torchscript and torch.onnx-dynamo for torch, tf2onnx for Keras) and coremltools, and
prints one table row per (model, target) in the study's layout, its published findings beside
what holds today, and the wall time of each stage.

    python bench/quality_study.py [--frameworks torch,keras] [--datasets digits,wine]
        [--archs mlp,gru] [--no-coreml] [--eps 0.1] [--repeats 30] [--markdown FILE] [--json FILE]

Measurements, per model:

- accuracy: on the whole test split (20%, stratified); the source in its framework, ONNX in ONNX
  Runtime with all graph optimisations, one row at a time (the exporters fix batch 1);
- robustness: FGSM (``opseq.verify.attack``) crafted on the source model with epsilon `--eps` in
  standardised units (0.1 standard deviations of every feature, clipped to the data's range), the
  same adversarial rows then fed to the converted model: a transfer attack, as a deployed
  converted model would meet; McNemar's exact test compares which rows each side gets right;
- latency: median of `--repeats` single-row runs (framework; ONNX Runtime with all optimisations;
  with none), one thread everywhere;
- memory: growth of the process's resident set while the runtime (the framework; ONNX Runtime
  with all optimisations and with none, after a throwaway session) is created and runs the test
  split (MiB; coarse: allocators keep what they free, so it can read 0);
- size: the framework's file (``torch.save`` of the state dict / the ``.keras`` file without
  optimizer state), the ONNX model with its weights, the saved ``.mlpackage``.

CoreML models are converted (float32) and measured for size and op count everywhere, but run
only on macOS; elsewhere their accuracy cells say so.
"""

from __future__ import annotations

import os

# One compute thread everywhere (as campaign workers run), set before any framework starts.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from opseq.difftest.convert import get_converter  # noqa: E402
from opseq.sources.trained.architectures import ARCHITECTURES  # noqa: E402
from opseq.sources.trained.datasets import DATASETS, load_dataset  # noqa: E402
from opseq.sources.trained.quality import SourceQuality, onnx_quality  # noqa: E402
from opseq.sources.trained.source import FRAMEWORK_IDS, TrainedSource  # noqa: E402

CONVERTERS = {"torch": ("torch.onnx-torchscript", "torch.onnx-dynamo"), "keras": ("tf2onnx",)}
OPSET = 17
FINDINGS = (
    ("accuracy", "Prediction accuracy is kept after conversion."),
    ("size", "Model size is reduced after conversion."),
    ("robustness", "CoreML models are more vulnerable to adversarial attacks than ONNX ones."),
)

STAGES = ("training", "conversion", "evaluation and attack")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    stages: dict[str, float] = defaultdict(float)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    source = TrainedSource()
    for framework in args.frameworks:
        if framework == "torch":
            import torch

            torch.set_num_threads(1)
        for dataset in args.datasets:
            for arch in args.archs:
                case_id = f"{framework}/{arch}/{dataset}"
                print(f"quality_study: {case_id}", file=sys.stderr, flush=True)
                rows += study_case(source, case_id, args, stages)
                gc.collect()
    total = time.perf_counter() - start
    summary = summarise(rows)
    text = render(rows, summary, stages, total, args)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        payload = {"rows": rows, "summary": summary, "stages": dict(stages), "total_s": total}
        args.json.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    return 0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])

    def choices(known):
        def parse(text: str) -> list[str]:
            names = [n.strip() for n in text.split(",") if n.strip()]
            unknown = [n for n in names if n not in known]
            if unknown or not names:
                raise argparse.ArgumentTypeError(f"choose from {', '.join(known)}")
            return names

        return parse

    parser.add_argument("--frameworks", type=choices(FRAMEWORK_IDS), default=list(FRAMEWORK_IDS))
    parser.add_argument("--datasets", type=choices(DATASETS), default=list(DATASETS))
    parser.add_argument("--archs", type=choices(ARCHITECTURES), default=list(ARCHITECTURES))
    parser.add_argument("--no-coreml", action="store_true", help="skip CoreML conversion")
    parser.add_argument("--eps", type=float, default=0.1, help="FGSM epsilon (standardised)")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per latency")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    return parser.parse_args(argv)


def study_case(source: TrainedSource, case_id: str, args, stages) -> list[dict[str, Any]]:
    """Every row of one trained model: the source, each ONNX conversion, CoreML."""
    framework, arch, dataset = case_id.split("/")
    t = time.perf_counter()
    case = source.build(case_id, seed=args.seed)
    stages["training"] += time.perf_counter() - t
    base = {"framework": framework, "arch": arch, "dataset": dataset, "case": case_id}
    t = time.perf_counter()
    measured = SourceQuality.measure(
        framework,
        case.model,
        load_dataset(dataset, seed=args.seed),
        case.inputs[0].shape[1:],
        eps=args.eps,
        repeats=args.repeats,
    )
    stages["evaluation and attack"] += time.perf_counter() - t
    side = measured.to_dict()
    rows = [
        {
            **base,
            "target": framework,
            "converted": True,
            "accuracy": side["accuracy"],
            "adversarial_accuracy": side["adversarial_accuracy"],
            "latency_ms": {"framework": side["latency_ms"]},
            "memory_mb": side["memory_mb"],
            "size_bytes": side["size_bytes"],
            "trained": case.metadata["training"],
        }
    ]
    for converter in CONVERTERS[framework]:
        rows.append(_onnx_row(case, converter, measured, args, stages, base))
    if not args.no_coreml:
        rows.append(_coreml_row(case, stages, base))
    return rows


def _onnx_row(case, converter, measured: SourceQuality, args, stages, base):
    t = time.perf_counter()
    try:
        model = get_converter(converter).convert(case, opset=OPSET)
    except Exception as e:  # a failed conversion is a row of the table
        stages["conversion"] += time.perf_counter() - t
        return {**base, "target": converter, "converted": False, "error": _first_line(e)}
    stages["conversion"] += time.perf_counter() - t
    t = time.perf_counter()
    quality = onnx_quality(measured, model, repeats=args.repeats)
    stages["evaluation and attack"] += time.perf_counter() - t
    return {**base, "target": converter, "converted": True, **quality}


def _coreml_row(case, stages, base):
    from opseq.difftest.coreml import convert_coreml, predict_coreml

    t = time.perf_counter()
    conversion = convert_coreml(case)
    stages["conversion"] += time.perf_counter() - t
    row = {**base, "target": "coreml", "converted": conversion.converted}
    if not conversion.converted:
        return {**row, "error": conversion.error}
    t = time.perf_counter()
    x = case.input_sets(1, 0, "normal") if case.input_sets else []
    predictions = predict_coreml(conversion, x)
    stages["evaluation and attack"] += time.perf_counter() - t
    return {
        **row,
        "size_bytes": conversion.size_bytes,
        "nodes": len(conversion.ops),
        "predictions": predictions.to_dict(),
    }


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".strip().splitlines()[0][:200]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate the rows into one answer per published finding."""
    sources = {r["case"]: r for r in rows if r["target"] in FRAMEWORK_IDS}
    onnx = [r for r in rows if r["target"] not in FRAMEWORK_IDS and r["target"] != "coreml"]
    coreml = [r for r in rows if r["target"] == "coreml"]
    converted = [r for r in onnx if r["converted"]]
    kept = [r for r in converted if r["accuracy"] == sources[r["case"]]["accuracy"]]
    deltas = [r["accuracy"] - sources[r["case"]]["accuracy"] for r in converted]
    adv_deltas = [
        r["adversarial_accuracy"] - sources[r["case"]]["adversarial_accuracy"] for r in converted
    ]
    onnx_ratio = [r["size_bytes"] / sources[r["case"]]["size_bytes"] for r in converted]
    coreml_done = [r for r in coreml if r["converted"]]
    coreml_ratio = [r["size_bytes"] / sources[r["case"]]["size_bytes"] for r in coreml_done]
    significant = [r for r in converted if r["mcnemar_p"] < 0.05]
    ran = [r for r in coreml_done if r["predictions"]["ran"]]
    return {
        "onnx_conversions": len(onnx),
        "onnx_converted": len(converted),
        "accuracy_identical": len(kept),
        "accuracy_delta_max": max((abs(d) for d in deltas), default=None),
        "adversarial_delta_max": max((abs(d) for d in adv_deltas), default=None),
        "mcnemar_significant": len(significant),
        "onnx_size_ratio_median": statistics.median(onnx_ratio) if onnx_ratio else None,
        "onnx_size_ratio_range": [min(onnx_ratio), max(onnx_ratio)] if onnx_ratio else None,
        "coreml_attempted": len(coreml),
        "coreml_converted": len(coreml_done),
        "coreml_failures": sorted({r["error"] for r in coreml if not r["converted"]}),
        "coreml_size_ratio_median": statistics.median(coreml_ratio) if coreml_ratio else None,
        "coreml_predictions_ran": len(ran),
        "coreml_note": next(
            (r["predictions"]["note"] for r in coreml_done if not r["predictions"]["ran"]), None
        ),
    }


def render(rows, summary, stages, total, args) -> str:
    """The table, the findings beside what holds today, and the stage times, as markdown."""
    lines = [
        f"FGSM eps={args.eps} (standardised units), latency median of {args.repeats} single-row "
        "runs, one thread; sizes in KiB; memory is RSS growth in MiB.",
        "",
        "| model | dataset | target | acc | acc FGSM | lat fw/ORT-all/ORT-none ms "
        "| mem MiB fw or ORT-all/none | size KiB | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(_row_line(r))
    lines += ["", "One line per trained model (the same numbers, the targets side by side):", ""]
    lines += compact_table(rows)
    lines += ["", "| published finding (Openja et al. 2022) | today, on this grid |", "|---|---|"]
    for key, finding in FINDINGS:
        lines.append(f"| {finding} | {_today(key, summary)} |")
    lines += ["", "| stage | wall s |", "|---|---|"]
    lines += [f"| {stage} | {stages.get(stage, 0.0):.1f} |" for stage in STAGES]
    lines.append(f"| total | {total:.1f} |")
    return "\n".join(lines)


def compact_table(rows: list[dict[str, Any]]) -> list[str]:
    """One line per model: accuracy, FGSM accuracy, latency and size of every target."""
    by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_case[r["case"]].append(r)
    lines = [
        "| model | dataset | acc source / ONNX | acc FGSM source / ONNX | latency ms fw / ORT "
        "| size KiB fw / ONNX / CoreML |",
        "|---|---|---|---|---|---|",
    ]
    for group in by_case.values():
        source = group[0]
        onnx = [r for r in group[1:] if r["target"] != "coreml"]
        coreml = next((r for r in group if r["target"] == "coreml"), None)

        def each(key: str, rows=onnx) -> str:
            return " / ".join(f"{r[key]:.3f}" if r["converted"] else "failed" for r in rows)

        ort = " / ".join(
            f"{r['latency_ms']['ort_all']:.3f}" if r["converted"] else "-" for r in onnx
        )
        sizes = " / ".join(f"{r['size_bytes'] / 1024:.0f}" if r["converted"] else "-" for r in onnx)
        if coreml is None:
            coreml_size = "not tried"
        elif coreml["converted"]:
            coreml_size = f"{coreml['size_bytes'] / 1024:.0f}"
        else:
            coreml_size = "failed"
        lines.append(
            f"| {source['framework']}/{source['arch']} | {source['dataset']} "
            f"| {source['accuracy']:.3f} / {each('accuracy')} "
            f"| {source['adversarial_accuracy']:.3f} / {each('adversarial_accuracy')} "
            f"| {source['latency_ms']['framework']:.3f} / {ort} "
            f"| {source['size_bytes'] / 1024:.0f} / {sizes} / {coreml_size} |"
        )
    return lines


def _row_line(r: dict[str, Any]) -> str:
    model = f"{r['framework']}/{r['arch']}"
    if not r["converted"]:
        cells = f"{model} | {r['dataset']} | {r['target']} | - | - | - | - | -"
        return f"| {cells} | failed: {r['error']} |"
    latency = r.get("latency_ms", {})
    if r["target"] == "coreml":
        note = r["predictions"]["note"] or ""
        return (
            f"| {model} | {r['dataset']} | coreml | not run | not run | - | - "
            f"| {r['size_bytes'] / 1024:.1f} | {r['nodes']} ops; {note} |"
        )
    lat = " / ".join(
        f"{latency[k]:.3f}" if k in latency else "-" for k in ("framework", "ort_all", "ort_none")
    )
    notes = ""
    if "agreement" in r:
        notes = f"agree {r['agreement']:.3f}; McNemar p {r['mcnemar_p']:.3g}; {r['nodes']} nodes"
    elif "trained" in r:
        t = r["trained"]
        notes = f"{t['epochs']} epochs, {'cached' if t['from_cache'] else 'trained'}"
    return (
        f"| {model} | {r['dataset']} | {r['target']} | {r['accuracy']:.4f} "
        f"| {r['adversarial_accuracy']:.4f} | {lat} | {_memory(r['memory_mb'])} "
        f"| {r['size_bytes'] / 1024:.1f} | {notes} |"
    )


def _memory(value: float | dict | None) -> str:
    if isinstance(value, dict):  # ONNX Runtime with all optimisations / with none
        return " / ".join(_memory(value.get(k)) for k in ("ort_all", "ort_none"))
    return "not measured" if value is None else f"{value:.1f}"


def _today(key: str, s: dict[str, Any]) -> str:
    if key == "accuracy":
        verdict = "holds" if s["accuracy_identical"] == s["onnx_converted"] else "mostly holds"
        return (
            f"{verdict}: {s['accuracy_identical']} of {s['onnx_converted']} ONNX conversions "
            f"give the identical test accuracy (largest change {s['accuracy_delta_max']}); "
            f"{s['onnx_converted']} of {s['onnx_conversions']} converted"
        )
    if key == "size":
        ratio = s["onnx_size_ratio_median"]
        if ratio is None:
            return "undetermined: nothing converted"
        verdict = "holds" if ratio < 1 else "does not hold"
        low, high = s["onnx_size_ratio_range"]
        text = (
            f"{verdict} for ONNX: ONNX / framework file size median {ratio:.2f} "
            f"(range {low:.2f}-{high:.2f})"
        )
        if s["coreml_size_ratio_median"] is not None:
            text += f"; CoreML (float32) / framework median {s['coreml_size_ratio_median']:.2f}"
        return text
    onnx_part = (
        f"ONNX keeps the source's FGSM accuracy within {s['adversarial_delta_max']} "
        f"(McNemar p<0.05 in {s['mcnemar_significant']} of {s['onnx_converted']})"
    )
    if s["coreml_predictions_ran"]:
        return onnx_part + "; CoreML: see its rows"
    return (
        f"untested here: {s['coreml_note'] or 'no CoreML model converted'}; "
        f"CoreML converted {s['coreml_converted']} of {s['coreml_attempted']}; {onnx_part}"
    )


if __name__ == "__main__":
    sys.exit(main())
