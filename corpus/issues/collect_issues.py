#!/usr/bin/env python3
"""Build ``converter_issues.csv`` from the raw issue records in ``raw_issues.jsonl``.

The raw records were collected by hand from a *search index of stored public GitHub
issue threads* (not from the GitHub API: there was no internet access).  Each record is
one issue of ``onnx/tensorflow-onnx`` (tf2onnx) or ``pytorch/pytorch`` (torch.onnx
exporter issues only) that a search result showed, with the date read off the thread:

* ``date_source = "description"``: the date of the issue's opening post (the creation date);
* ``date_source = "first shown turn"``: the opening post was not shown, so the earliest date
  of a shown comment was recorded instead.  It is an *upper bound* of the creation date and
  can be months or years late.

This script does not search anything; it re-validates the raw records, deduplicates them by
URL, classifies each issue's ``cause`` with the keyword rule below, and writes the CSV that
``opseq hypotheses evolution`` reads.  It is deterministic: the same raw file gives the same
CSV byte for byte.

Usage::

    python corpus/issues/collect_issues.py                 # writes converter_issues.csv
    python corpus/issues/collect_issues.py --stats         # also prints the counts (markdown)
    python corpus/issues/collect_issues.py --repository onnx/tensorflow-onnx -o /tmp/tf.csv
    python corpus/issues/collect_issues.py --description-only -o /tmp/desc.csv
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW = HERE / "raw_issues.jsonl"
OUT = HERE / "converter_issues.csv"

REPOSITORIES = ("onnx/tensorflow-onnx", "pytorch/pytorch")
URL_RE = re.compile(r"^https://github\.com/(onnx/tensorflow-onnx|pytorch/pytorch)/issues/(\d+)$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_SOURCES = ("description", "first shown turn")

# Every query sent to the search tool (corpus "issues"), in the order they were run.  A record
# in raw_issues.jsonl names the query whose results first showed it; later queries that showed
# the same issue again are not recorded.  Some queries showed no issue of the two repositories
# that was not already collected; --stats lists them.
QUERIES = (
    "tf2onnx Unsupported ops",
    "torch.onnx.export Exporting the operator to ONNX opset version is not supported",
    "Unsupported ONNX opset version",
    "tf2onnx keras model conversion fails",
    "tensorflow-onnx convert saved_model error opset",
    "torch.onnx export dtype mismatch int64 float",
    "tf2onnx Cast type error int64",
    "torch.onnx export Resize upsample bilinear align_corners",
    "tf2onnx Resize op conversion wrong result",
    "torch.onnx export LSTM dynamic sequence length",
    "tf2onnx LSTM GRU rewriter not converted",
    "tf2onnx shape inference failed unknown rank",
    "torch.onnx export dynamic_axes reshape shape hardcoded",
    "torch.onnx export ScatterND index_put",
    "tf2onnx GatherNd ScatterNd conversion",
    "onnxruntime output differs from pytorch after torch.onnx.export",
    "tf2onnx converted model gives different results than tensorflow",
    "torch.onnx export If Loop scripting control flow",
    "tf2onnx tf.cond If op conversion",
    "torch.onnx symbolic function missing aten op custom",
    "tf2onnx opset 13 Squeeze Unsqueeze axes input",
    "ONNX export failed: Couldn't export operator aten",
    "tf2onnx tflite conversion error",
    "tf2onnx NonMaxSuppression object detection model",
    "torch.onnx.export segmentation fault crash",
    "tf2onnx Einsum conversion not supported",
    "torch.onnx export einsum opset 12",
    "tf2onnx StridedSlice conversion bug",
    "tf2onnx opset 18 ReduceSum axes input error",
    "torch.onnx dynamo_export fails torch.export",
    "torch.onnx export quantized model not supported",
    "tf2onnx tensorflow 2 keras from_keras error",
    "tf2onnx BERT transformers model conversion",
    "torch.onnx export transformer attention model fails",
    "tf2onnx TensorListStack TensorArray while loop conversion error",
    "tf2onnx fp16 float16 model conversion",
    "torch.onnx export bool tensor type error onnxruntime invalid graph",
    "tf2onnx conv2d transpose NCHW inputs-as-nchw bug",
    "torch.onnx export GridSample grid_sampler not supported opset 16",
    "torch.onnx export fft stft not supported",
    "tf2onnx RaggedTensor string ops not supported",
    "tf2onnx onnxruntime fails to load converted model type mismatch",
    "torch.onnx export index_select gather negative index wrong",
    "tf2onnx 2018 convert frozen graph error opset 7",
    "pytorch onnx export 2018 RuntimeError symbolic not implemented",
    "tf2onnx BatchNorm FusedBatchNormV3 conversion",
    "torch.onnx export Upsample nearest scale_factor opset 9 Resize mismatch",
    "tf2onnx dynamic batch size shape fixed input",
    "tf2onnx int32 int64 type error Range Size Shape output",
    "tf2onnx crash exception converter error traceback tfonnx.py",
    "torch.onnx export torchvision Mask R-CNN Faster R-CNN export fails",
    "torch.onnx export larger than 2GB protobuf external data",
    "tf2onnx tfjs tensorflow.js graph model conversion",
    "torch.onnx export layer_norm LayerNormalization opset 17 precision",
    "torch.onnx export prim::ListConstruct tuple list output not supported",
    "tf2onnx Conv3D Conv1D dilation conversion",
    "tf2onnx custom op extra_opset contrib ops",
    "torch.onnx export max_pool2d ceil_mode padding result mismatch",
    "tf2onnx wrong output onnxruntime mismatch after conversion bug 2020",
    "torch.onnx export incorrect results exported model wrong output tracing constant",
    "tf2onnx opset 10 11 12 not supported op requires higher opset",
    "tf2onnx opset 13 14 15 16 17 new opset support request",
    "torch.onnx export opset 18 19 20 support request exporter",
    "torch.onnx export nonzero where masked_select dynamic output",
    "tf2onnx tensorflow 1.x 2.x version compatibility import error",
    "tf2onnx MatMul BatchMatMul broadcast dtype int not supported",
    "torch.onnx export complex tensor dtype not supported",
    "tf2onnx Where Select SelectV2 broadcasting conversion error",
    "tf2onnx Pad MirrorPad reflect conversion",
    "torch.onnx export pad reflect replicate mode not supported",
    "tf2onnx Keras LSTM Bidirectional conversion tf2 wrong",
    "torch.onnx export GRU RNN bidirectional export error",
    "tf2onnx TopK ArgMax Unique op conversion issue",
    "tf2onnx Erf Gelu Softplus activation not supported opset",
    "torch.onnx export scaled_dot_product_attention opset 14 not supported",
    "torch.onnx export deform_conv roi_align torchvision ops not supported",
    "tf2onnx Conv2DBackpropInput ConvTranspose output shape wrong",
    "torch.onnx export constant folding wrong dtype Cast int32",
    "tf2onnx quantized model QuantizeLinear FakeQuant conversion",
    "tf2onnx SpaceToBatchND BatchToSpaceND atrous conv conversion",
    "torch.onnx export unfold im2col col2im not supported",
    "torch.onnx.export dynamo=True fails translate graph into ONNX error",
    "tf2onnx Gather batch_dims GatherV2 axis negative",
    "torch.onnx export argmax cumsum sort topk dtype int64 issue",
    "tf2onnx hub model signature concrete function conversion fails",
    "tf2onnx 2022 conversion error tensorflow 2.9 2.10 opset 15",
    "tf2onnx from_keras input_signature error tensorflow 2.12 2.13",
    "tf2onnx ValueError make_sure failure conversion",
    "torch.onnx export opset 9 10 11 12 13 not supported operator request 2022",
    "torch.onnx export embedding_bag one_hot not supported",
    "torch.onnx export interpolate bicubic antialias mode not supported",
    "tf2onnx Resize ResizeBilinear half_pixel_centers align_corners mismatch",
    "tf2onnx Loop scan output shape wrong tf.map_fn",
    "tf2onnx output of converted model float64 double not supported onnxruntime",
    "tf2onnx conversion succeeded but onnxruntime InvalidGraph type error",
    "torch.onnx export torch.jit.script model fails unsupported prim op",
    "tf2onnx onnx 1.15 numpy 2 protobuf incompatibility error",
    "tf2onnx unsupported ops tensorflow op is not supported 2023 2024",
)

# ---------------------------------------------------------------------------------------------
# The cause rule.
#
# Text = the issue title and the recorded excerpt, lowercased.  The four *specific* causes are
# tried in this order, first against the title alone, then against the excerpt:
#
#     incompatibility > type > shape > wrong-result
#
# and the first pattern that matches decides.  Only if none of them matches anywhere is the
# generic ``crash`` pattern tried (title + excerpt), and only if that fails too the cause is
# ``other``.  Trying the title first keeps a stray word deep in a pasted traceback from
# overriding what the reporter said the issue is about.  Patterns marked title-only are too
# common in excerpts (e.g. "support" in any helpful reply) to be used there.
# ---------------------------------------------------------------------------------------------

SPECIFIC_CAUSES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "incompatibility",  # an op / feature / opset the converter cannot handle
        (
            r"not supported",
            r"unsupported",
            r"not (yet )?implemented",
            r"symbolic[\w.]* does not exist",
            r"couldn'?t export",
            r"could not export",
            r"can'?t export",
            r"cannot export",
            r"can not export",
            r"not registered",
            r"no op registered",
            r"no schema registered",
            r"no onnx function",
            r"missing (symbolic|op|operator)",
            r"no symbolic",
            r"unsupportedoperatorerror",
            r"keyerror: '",
            r"is not a registered",
            r"purposely graph breaks",
            r"not in scope",
            r"unrecognized (namespace|attribute)",
            r"only [\w ]*(is |are )?supported",
        ),
        (r"\bsupport", r"\bopset", r"\bversion \d+", r"\bop(erator)? request"),
    ),
    (
        "type",  # dtype / element-type problems, casts
        (
            r"dtype",
            r"data ?type",
            r"type mismatch",
            r"\bint(8|16|32|64)\b",
            r"\buint8\b",
            r"float(16|32|64)",
            r"\bfp16\b",
            r"bfloat16",
            r"\bdouble\b",
            r"\bcast\b",
            r"tensor\(bool\)",
            r"\bbool(ean)?\b",
            r"\bcomplex\b",
            r"type parameter",
            r"typeinferenceerror",
            r"elem_type",
            r"tensor\((int|float|double|bool)",
            r"attribute data type",
            r"mismatched attribute type",
            r"quint8",
        ),
        (),
    ),
    (
        "shape",  # shape inference, dynamic shapes/axes, rank
        (
            r"shape",
            r"dynamic[ _]?ax",
            r"dynamic (batch|shape|input|dim|sequence|time)",
            r"\brank\b",
            r"\bdimension",
            r"reshape",
            r"batch[ _]size",
            r"sequence length",
            r"infer shape",
        ),
        (),
    ),
    (
        "wrong-result",  # runs, but computes something else
        (
            r"different (result|output|data)",
            r"results? (are |is )?(pretty |big )?different",
            r"\bdiffer",
            r"(?<!version )mismatch",
            r"incorrect(?! type)",
            r"\bwrong\b(?! wire)",
            r"not match\b",
            r"not (get )?the same (result|output)",
            r"large error",
            r"not (properly|correctly)",
            r"doesn'?t match",
            r"does not match",
            r"inconsisten",
            r"accuracy",
            r"parity",
            r"numerically",
            r"same for all",
            r"\bnan\b",
            r"not equal to tolerance",
            r"not equivalent",
            r"fails silently",
        ),
        (),
    ),
)

CRASH_PATTERNS = (
    r"segfault",
    r"segmentation fault",
    r"sigsegv",
    r"sigfpe",
    r"crash",
    r"core dumped",
    r"internal assert",
    r"exit code",
    r"fatal",
    r"exception",
    r"error",
    r"\bfail",
    r"traceback",
    r"not created",
    r"stuck",
)

CAUSES = (*(c for c, _, _ in SPECIFIC_CAUSES), "crash", "other")


def _any(patterns: tuple[str, ...], text: str) -> bool:
    return any(re.search(p, text) for p in patterns)


def classify(title: str, excerpt: str) -> str:
    """The cause of one issue by the keyword rule described above."""
    title_l, excerpt_l = title.lower(), excerpt.lower()
    for cause, patterns, title_only in SPECIFIC_CAUSES:
        if _any(patterns + title_only, title_l):
            return cause
    for cause, patterns, _ in SPECIFIC_CAUSES:
        if _any(patterns, excerpt_l):
            return cause
    if _any(CRASH_PATTERNS, f"{title_l}\n{excerpt_l}"):
        return "crash"
    return "other"


def load_raw(path: Path) -> list[dict]:
    """Read, validate and deduplicate the raw records (a description date beats a comment date)."""
    by_url: dict[str, dict] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        m = URL_RE.match(rec["url"])
        if not m:
            raise SystemExit(
                f"{path}:{lineno}: not an issue URL of the two repositories: {rec['url']}"
            )
        if rec["repository"] != m.group(1) or int(rec["number"]) != int(m.group(2)):
            raise SystemExit(f"{path}:{lineno}: repository/number do not match the URL")
        if not DATE_RE.match(rec["created_at"]) or rec["date_source"] not in DATE_SOURCES:
            raise SystemExit(f"{path}:{lineno}: bad date or date_source")
        if len(rec.get("excerpt", "")) > 300:
            raise SystemExit(f"{path}:{lineno}: excerpt longer than 300 characters")
        old = by_url.get(rec["url"])
        if old is None or (
            old["date_source"] != "description"
            and (rec["date_source"] == "description" or rec["created_at"] < old["created_at"])
        ):
            by_url[rec["url"]] = rec
    return list(by_url.values())


def build_rows(records: list[dict]) -> list[dict]:
    rows = [
        {
            "created_at": r["created_at"],
            "cause": classify(r["title"], r.get("excerpt", "")),
            "repository": r["repository"],
            "number": int(r["number"]),
            "url": r["url"],
            "title": " ".join(r["title"].split()),  # one line; the csv module quotes the rest
            "date_source": r["date_source"],
            "query": r.get("query", ""),
        }
        for r in records
    ]
    rows.sort(key=lambda r: (r["created_at"], r["repository"], r["number"]))
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    fields = ["created_at", "date_source", "cause", "repository", "number", "url", "title"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def stats(rows: list[dict]) -> str:
    def table(title: str, counter: collections.Counter, keys) -> list[str]:
        out = [f"**{title}**", "", "| | count |", "|---|---:|"]
        out += [f"| {k} | {counter.get(k, 0)} |" for k in keys]
        return [*out, f"| total | {sum(counter.values())} |", ""]

    repo = collections.Counter(r["repository"] for r in rows)
    cause = collections.Counter(r["cause"] for r in rows)
    src = collections.Counter(r["date_source"] for r in rows)
    years = sorted({r["created_at"][:4] for r in rows})
    lines = table("per repository", repo, REPOSITORIES)
    lines += table("per cause", cause, CAUSES)
    lines += table("per date source", src, DATE_SOURCES)
    lines += [
        "**per year and repository**",
        "",
        "| year | " + " | ".join(REPOSITORIES) + " | total |",
        "|---|" + "---:|" * (len(REPOSITORIES) + 1),
    ]
    for y in years:
        cs = [
            sum(1 for r in rows if r["created_at"][:4] == y and r["repository"] == rp)
            for rp in REPOSITORIES
        ]
        lines.append(f"| {y} | " + " | ".join(map(str, cs)) + f" | {sum(cs)} |")
    lines += [
        "",
        "**cause per repository**",
        "",
        "| cause | " + " | ".join(REPOSITORIES) + " |",
        "|---|" + "---:|" * len(REPOSITORIES),
    ]
    for c in CAUSES:
        cs = [
            sum(1 for r in rows if r["cause"] == c and r["repository"] == rp) for rp in REPOSITORIES
        ]
        lines.append(f"| {c} | " + " | ".join(map(str, cs)) + " |")
    used = {r["query"] for r in rows}
    unknown = sorted(used - set(QUERIES))
    empty = [q for q in QUERIES if q not in used]
    lines += [
        "",
        f"queries run: {len(QUERIES)}; queries that first showed >=1 kept issue: "
        f"{len(used & set(QUERIES))}",
    ]
    if empty:
        lines += ["queries that added no new issue: " + "; ".join(f"`{q}`" for q in empty)]
    if unknown:
        lines += ["records naming a query not in QUERIES: " + "; ".join(unknown)]
    lines += [f"date range: {rows[0]['created_at']} .. {rows[-1]['created_at']}" if rows else ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, default=RAW, help="raw JSONL (default: %(default)s)")
    ap.add_argument("-o", "--output", type=Path, default=OUT, help="CSV (default: %(default)s)")
    ap.add_argument("--repository", choices=REPOSITORIES, help="keep only this repository")
    ap.add_argument(
        "--description-only",
        action="store_true",
        help="keep only issues whose creation date was read off the opening post",
    )
    ap.add_argument("--stats", action="store_true", help="print counts (markdown) to stdout")
    args = ap.parse_args(argv)

    rows = build_rows(load_raw(args.raw))
    if args.repository:
        rows = [r for r in rows if r["repository"] == args.repository]
    if args.description_only:
        rows = [r for r in rows if r["date_source"] == "description"]
    write_csv(rows, args.output)
    print(f"wrote {len(rows)} issues to {args.output}", file=sys.stderr)
    if args.stats:
        sys.stdout.write(stats(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
