"""Write `documented` and `note` of every finding in a ledger that has none, by rule.

The rule reads a finding's minimal op sequence, its blame and which input families disagree
(the oracle's per-set verdicts: sets 1, 4, 7 are special values, 2, 5, 8 ties, 3, 6, 9
magnitudes under ``--input-strategy edge``) and picks the note of the known behaviour the ops
show (NaN in arg-reductions, in max/min reductions, in max pooling; tf2onnx's mask arithmetic;
bilinear interpolation of +-inf), or a generic note naming the inputs and the chain. Findings
that already carry `documented` (written by hand) are left as they are.

    python corpus/annotate_findings.py corpus/findings [-v]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FAMILY = ("specials", "ties", "magnitudes")
PHRASE = {
    "specials": "+-inf and NaN inputs (the specials sets)",
    "ties": "ties and duplicated extremes (the ties sets)",
    "magnitudes": "values near the float32 and float16 limits (the magnitudes sets)",
}
ARG_RT = (
    "{op} over a row holding NaN returns another index in ONNX than in the framework, which "
    "takes NaN as the extreme. The ONNX spec does not say what NaN gives. ONNX Runtime differs "
    "from the ONNX reference evaluator: a runtime defect."
)
ARG_CV = (
    "{op} over a row holding NaN returns another index in ONNX than in the framework, which "
    "takes NaN as the extreme. The ONNX spec does not say what NaN gives. Every ONNX evaluator "
    "differs: the mapping."
)
REDUCE = (
    "{op} over NaN: ONNX Runtime's max/min reductions handle NaN depending on where it sits "
    "(reported as microsoft/onnxruntime#10514, open since 2022-02-10), the framework propagates "
    "it. The ONNX spec does not say what NaN gives."
)
MAXPOOL = (
    "Max pooling over windows holding NaN: the ONNX MaxPool gives other values than the "
    "framework's max pooling, which propagates NaN; the ONNX spec of MaxPool does not define "
    "NaN, so the export maps one semantics onto another (not documented)."
)
MASK = (
    "tf2onnx exports {op} as arithmetic with a 0/1 mask (Cast of the condition, Mul, Add) instead "
    "of ONNX Where/Trilu, so an inf or NaN in the part the mask drops becomes NaN (inf * 0): a "
    "converter defect."
)
TF_BILINEAR = (
    "Bilinear resizing of inputs holding +-inf: the ONNX Resize evaluators weigh neighbours "
    "as w0*a + w1*b, TensorFlow as a + (b - a)*w, so inf - inf gives NaN on one side only. "
    "Neither spec defines inf inputs: a semantic gap of the mapping, not documented."
)
TS_BILINEAR = (
    "Bilinear interpolation of inputs holding +-inf: where an output point falls exactly on "
    "an input row or column, torch uses that point alone, while ONNX Runtime's Resize also "
    "multiplies the neighbour by its zero weight, so a neighbouring +-inf gives NaN (0 * inf) "
    "in ONNX only (seen in torchscript-interpolatebilinear-04b089c09582). The ONNX spec does "
    "not define inf inputs; not documented."
)
GENERIC = (
    "Found with {inputs}: {chain} of such a value and the {last} that follows give other "
    "values in ONNX than in the framework (e.g. a result one float32 step from an exact +-1 "
    "that the comparison then flips, or NaN reaching an arg-reduction). The specs do not "
    "define these inputs; not documented, and not narrowed down further."
)
GENERIC_ONE = (
    "Found with {inputs}: {op} gives other values in ONNX than in the framework on these "
    "inputs. The specs do not define them; not documented, and not narrowed down further."
)


def families(numbers):
    found = set()
    for output in numbers.get("outputs", []):
        for i, kind in enumerate(output.get("disagreement") or []):
            if kind and i > 0:
                found.add(FAMILY[(i - 1) % 3])
    return [f for f in FAMILY if f in found] or ["specials"]


def sensitive(op, converter):
    if op in ("ArgMax", "ArgMin"):
        return "arg"
    if op in ("ReduceMax", "ReduceMin", "Max", "Min", "GlobalMaxPool"):
        return "reduce"
    if (
        op.startswith("MaxPool")
        or op.startswith("GlobalMaxPool")
        or op.startswith("AdaptiveMaxPool")
    ):
        return "maxpool"
    if converter == "tf2onnx" and op in ("Where", "Tril", "Triu"):
        return "mask"
    if op in ("InterpolateBilinear", "ResizeBilinear", "UpsamplingBilinear"):
        return "bilinear"
    return None


def note_for(finding):
    ops = [o["op"] for o in finding["signature"]["ops"]]
    converter = finding["converter"]
    blame = finding["blame"]
    kinds = [(op, sensitive(op, converter)) for op in ops]
    hits = [(op, k) for op, k in kinds if k]
    inputs = " and ".join(PHRASE[f] for f in families(finding["numbers"]))
    if len(hits) == 1 or (hits and len({k for _, k in hits}) == 1 and len(hits) == len(ops)):
        op, kind = hits[0]
        if kind == "arg":
            text = (ARG_RT if blame == "runtime" else ARG_CV).format(op=op)
        elif kind == "reduce":
            text = REDUCE.format(op=op)
        elif kind == "maxpool":
            text = MAXPOOL
        elif kind == "mask":
            text = MASK.format(op=op)
        else:
            text = TF_BILINEAR if converter == "tf2onnx" else TS_BILINEAR
        if len(ops) > 1:
            others = [o for o in ops if o != op]
            text += (
                f" Here the minimal graph is {' -> '.join(ops)}: removing any of "
                f"{', '.join(dict.fromkeys(others))} lost the inconsistency (found with {inputs})."
            )
        return text
    if len(ops) == 1:
        return GENERIC_ONE.format(inputs=inputs, op=ops[0])
    return GENERIC.format(inputs=inputs, chain=" -> ".join(ops[:-1]), last=ops[-1])


def main(argv: list[str]) -> int:
    ledger = Path(argv[0])
    done = 0
    for d in sorted(ledger.iterdir()):
        path = d / "finding.json"
        if not (d.is_dir() and path.exists()) or d.name.startswith("."):
            continue
        data = json.loads(path.read_text())
        if data.get("documented") is not None:
            continue
        data["documented"] = False
        data["note"] = note_for(data)
        tmp = path.with_name(".finding.json.tmp")
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)  # a finding is never left half written
        done += 1
        if "-v" in argv:
            print(d.name, "|", data["note"][:160])
    print(done, "annotated")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
