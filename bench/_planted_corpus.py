"""A labelled corpus of random ONNX DAGs with planted mismatch-prone n-grams, for benchmarks.

Writes ``manifest.jsonl`` (DESIGN.md: Manifest) and one small model per row (no initializers):
a random DAG of 20-200 elementwise, reduction and normalisation nodes over a vocabulary of about
60 op types drawn with Zipf-like weights, every tensor of shape [1, 16] or [1, 1], so the models
pass ``onnx.checker.check_model(full_check=True)``.

Half of the rows come in pairs: one source model (same ``source`` and ``case``) converted by both
converters, the second conversion renaming a few op types as another exporter would. Labels come
from a latent log10 of the maximum absolute difference that grows with model size, with the
converter, with a per-source-model effect shared by both conversions of a pair, and with three
planted n-grams; ``outcome`` is ``mismatch`` when it is at least 1e-7. The corpus is cached under
a directory named after a hash of the parameters and of ``GENERATOR_VERSION``.

With ``planted_odds`` > 0 the labels come from a logistic model instead, whose odds ratios are
known exactly: logit P(mismatch) = intercept + 0.8 x standardised log size + 0.3 x (second
converter) + a per-source-model effect N(0, 1) shared by both conversions of a pair +
log(planted_odds) x (planted chains the model contains). ``planted_odds = 1`` is a corpus in which
no sequence affects the outcome (size, converter and source model still do).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

GENERATOR_VERSION = 2
CONVERTERS = ("torch.onnx-torchscript", "torch.onnx-dynamo")
SOURCE = "synthetic-torch"
RECORDED_ATOL = 1e-7

_WIDE, _NARROW = [1, 16], [1, 1]
# Unary ops keep the shape of their input.
_UNARY = (
    "Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Sqrt", "Erf", "Floor", "Ceil", "Round", "Log",
    "Reciprocal", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh",
    "Atanh", "Sign", "Softplus", "Softsign", "Elu", "Selu", "LeakyRelu", "HardSigmoid",
    "HardSwish", "ThresholdedRelu", "Celu", "Softmax", "LogSoftmax", "Hardmax", "Shrink",
    "LpNormalization", "Clip", "Cast",
)  # fmt: skip
# Reductions over every axis with keepdims: [1, 16] -> [1, 1], which broadcasts back.
_REDUCE = (
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSumExp", "ReduceSumSquare", "ReduceSum",
)  # fmt: skip
_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Sum", "Mean", "PRelu", "Mod")
# Attributes that make an op valid for float input.
_ATTRIBUTES = {"Cast": {"to": TensorProto.FLOAT}, "Mod": {"fmod": 1}}
# What the second converter emits instead (renamed op types, as exporters differ).
_RENAMED = {"Sum": "Add", "Mean": "Add", "Softsign": "Softplus", "ReduceSumSquare": "ReduceL2"}


@dataclass(frozen=True, slots=True, kw_only=True)
class CorpusParams:
    """What the corpus depends on; its hash names the cache directory.

    Attributes:
        models: Rows (models) in the manifest.
        seed: Seed of everything random.
        min_nodes: Fewest operator nodes per model (planted chains included).
        max_nodes: Most operator nodes per model.
        zipf: Exponent of the op-type weights (0 = uniform).
        binary: Fraction of binary nodes.
        reduce: Fraction of reduction nodes.
        window: Inputs are drawn from the last `window` tensors, so the DAG is deep.
        paired: Fraction of rows that are one of two conversions of the same source model.
        plant_rate: Probability that a model contains each planted chain.
        planted_odds: 0: labels from the latent maximum difference; > 0: labels from the
            logistic model with this odds ratio per planted chain.
        mismatch_rate: Mismatch rate of a mid-sized model without planted chains (logistic
            model only).
    """

    models: int = 5000
    seed: int = 0
    min_nodes: int = 20
    max_nodes: int = 200
    zipf: float = 0.6
    binary: float = 0.3
    reduce: float = 0.05
    window: int = 6
    paired: float = 0.5
    plant_rate: float = 0.1
    planted_odds: float = 0.0
    mismatch_rate: float = 0.3

    def key(self) -> str:
        """A short hash of the parameters and the generator version."""
        fields = asdict(self)
        if not self.planted_odds:  # the latent-difference corpora keep their cache keys
            del fields["planted_odds"], fields["mismatch_rate"]
        text = json.dumps({"version": GENERATOR_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


#: Planted chains (consecutive nodes) and how much each moves log10 of the max abs difference.
PLANTED: tuple[tuple[tuple[str, ...], float], ...] = (
    (("Softplus", "Mul", "Tanh"), 1.5),
    (("ReduceLogSumExp", "Sub", "Exp"), 1.2),
    (("Pow", "Sqrt", "Div", "Erf"), 1.0),
)


def write_corpus(directory: Path, params: CorpusParams, *, jobs: int = 2) -> Path:
    """Write the corpus into `directory` unless a complete one is there; return the manifest.

    The manifest is written last (atomically), so an interrupted run is regenerated.
    """
    manifest = directory / "manifest.jsonl"
    if manifest.exists():
        return manifest
    if directory.exists():
        shutil.rmtree(directory)
    (directory / "models").mkdir(parents=True)
    sources = _plan_sources(params)
    chunks = [sources[i::jobs] for i in range(jobs)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        written = [
            row for part in pool.map(_write_models, [directory] * jobs, chunks) for row in part
        ]
    ordered = sorted(written, key=lambda r: r["id"])
    rows = _odds_rows(ordered, params) if params.planted_odds else _label_rows(ordered, params)
    partial = manifest.with_suffix(".partial")
    partial.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(partial, manifest)
    (directory / "params.json").write_text(
        json.dumps({"version": GENERATOR_VERSION, **asdict(params)}, indent=1) + "\n"
    )
    return manifest


def random_model(
    rng: np.random.Generator, nodes: int, params: CorpusParams, *, planted: Sequence[int] = ()
) -> list[tuple[str, tuple[int, ...]]]:
    """Draw a DAG as (op type, input tensor indices); tensor 0 is the graph input.

    Node i writes tensor i + 1. The chains of `planted` (indices into `PLANTED`) are spliced in
    as consecutive nodes, each reading the tensor written just before.
    """
    unary, weights = _vocabulary(params.zipf)
    kinds = rng.choice(
        3, size=nodes, p=[1 - params.binary - params.reduce, params.binary, params.reduce]
    )
    starts = {int(rng.integers(0, nodes)): k for k in planted}
    graph: list[tuple[str, tuple[int, ...]]] = []
    chain: list[str] = []
    while len(graph) < nodes:
        index = len(graph)
        if not chain and index in starts:
            chain = list(PLANTED[starts[index]][0])
        if chain:
            op = chain.pop(0)
            arity = 2 if op in _BINARY else 1
            inputs = (index, *_pick(rng, index, params.window, arity - 1))
        else:
            op, arity = _draw_op(rng, int(kinds[index]), unary, weights)
            inputs = tuple(_pick(rng, index, params.window, arity))
        graph.append((op, inputs))
    return graph


def to_onnx(graph: Sequence[tuple[str, tuple[int, ...]]], name: str) -> onnx.ModelProto:
    """Build the ONNX model of a drawn DAG; unconsumed tensors become graph outputs."""
    shapes = [_WIDE]
    nodes = []
    for i, (op, inputs) in enumerate(graph):
        names = [f"t{j}" for j in inputs]
        if op == "PRelu" and shapes[inputs[0]] == _NARROW and shapes[inputs[1]] == _WIDE:
            names.reverse()  # the slope broadcasts to X only one way
        nodes.append(helper.make_node(op, names, [f"t{i + 1}"], **_ATTRIBUTES.get(op, {})))
        wide = op not in _REDUCE and any(shapes[j] == _WIDE for j in inputs)
        shapes.append(_WIDE if wide else _NARROW)
    used = {j for _, inputs in graph for j in inputs}
    outputs = [
        helper.make_tensor_value_info(f"t{j}", TensorProto.FLOAT, shapes[j])
        for j in range(1, len(graph) + 1)
        if j not in used
    ]
    model = helper.make_model(
        helper.make_graph(
            nodes, name, [helper.make_tensor_value_info("t0", TensorProto.FLOAT, _WIDE)], outputs
        ),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    return model


def _vocabulary(zipf: float) -> tuple[tuple[str, ...], np.ndarray]:
    weights = 1.0 / np.arange(1, len(_UNARY) + 1) ** zipf
    return _UNARY, weights / weights.sum()


def _draw_op(
    rng: np.random.Generator, kind: int, unary: tuple[str, ...], weights: np.ndarray
) -> tuple[str, int]:
    if kind == 1:
        return str(rng.choice(_BINARY)), 2
    if kind == 2:
        return str(rng.choice(_REDUCE)), 1
    return unary[int(rng.choice(len(unary), p=weights))], 1


def _pick(rng: np.random.Generator, index: int, window: int, count: int) -> list[int]:
    """`count` distinct tensors among the last `window` ones written before node `index`."""
    low = max(0, index + 1 - window)
    pool = np.arange(low, index + 1)
    return [int(j) for j in rng.choice(pool, size=min(count, len(pool)), replace=False)] + [
        index
    ] * max(0, count - len(pool))


def _plan_sources(params: CorpusParams) -> list[dict]:
    """One entry per source model: its case, seed, node count, planted chains, converters."""
    rng = np.random.default_rng([params.seed, 0])
    pairs = round(params.models * params.paired / 2)
    singles = params.models - 2 * pairs
    sources = []
    for case in range(pairs + singles):
        converters = CONVERTERS if case < pairs else (CONVERTERS[case % 2],)
        planted = [k for k in range(len(PLANTED)) if rng.random() < params.plant_rate]
        sources.append(
            {
                "case": f"m{case:05d}",
                "seed": [params.seed, 1, case],
                "nodes": int(rng.integers(params.min_nodes, params.max_nodes + 1)),
                "planted": planted,
                "converters": converters,
                "params": asdict(params),
            }
        )
    return sources


def _write_models(directory: Path, sources: list[dict]) -> list[dict]:
    rows = []
    for source in sources:
        params = CorpusParams(**source["params"])
        rng = np.random.default_rng(source["seed"])
        graph = random_model(rng, source["nodes"], params, planted=source["planted"])
        for converter in source["converters"]:
            renamed = converter == CONVERTERS[1]
            drawn = [(_RENAMED.get(op, op) if renamed else op, ins) for op, ins in graph]
            tag = "dyn" if renamed else "ts"
            row_id = f"{source['case']}-{tag}"
            path = Path("models") / f"{row_id}.onnx"
            onnx.save(to_onnx(drawn, row_id), directory / path)
            rows.append(
                {
                    "id": row_id,
                    "model": path.as_posix(),
                    "converter": converter,
                    "case": source["case"],
                    "nodes": source["nodes"],
                    "planted": source["planted"],
                }
            )
    return rows


def _odds_rows(rows: list[dict], params: CorpusParams) -> list[dict]:
    """Outcomes from the logistic model of the module docstring; diffs 1e-3 or 1e-9 to match."""
    rng = np.random.default_rng([params.seed, 3])
    cases = sorted({row["case"] for row in rows})
    shared = dict(zip(cases, rng.normal(0.0, 1.0, size=len(cases)), strict=True))
    log_nodes = np.log([row["nodes"] for row in rows])
    size = (log_nodes - log_nodes.mean()) / log_nodes.std()
    intercept = np.log(params.mismatch_rate / (1 - params.mismatch_rate))
    labelled = []
    for row, z in zip(rows, size, strict=True):
        dynamo = row["converter"] == CONVERTERS[1]
        logit = intercept + 0.8 * z + 0.3 * dynamo + shared[row["case"]]
        logit += np.log(params.planted_odds) * len(row["planted"])
        mismatch = bool(rng.random() < 1 / (1 + np.exp(-logit)))
        diff = 1e-3 if mismatch else 1e-9
        labelled.append(
            {
                "id": row["id"],
                "model": row["model"],
                "outcome": "mismatch" if mismatch else "ok",
                "converter": row["converter"],
                "source": SOURCE,
                "max_abs_diff": diff,
                "max_rel_diff": diff,
                "error": None,
                "case": row["case"],
                "planted": row["planted"],
            }
        )
    return labelled


def _label_rows(rows: list[dict], params: CorpusParams) -> list[dict]:
    """Draw max abs/rel differences and the outcome at 1e-7 for every row.

    log10 of the max abs difference is the larger of two parts: float noise (normal, shifted by
    size, converter, source model and planted chains) and, in a few models, a real disagreement
    (uniform in [-4, -0.5], likelier with planted chains), so that every rule of the tolerance
    sweep sees both classes.
    """
    rng = np.random.default_rng([params.seed, 2])
    cases = sorted({row["case"] for row in rows})
    shared = dict(zip(cases, rng.normal(0.0, 0.8, size=len(cases)), strict=True))
    log_nodes = np.log([row["nodes"] for row in rows])
    size = (log_nodes - log_nodes.mean()) / log_nodes.std()
    labelled = []
    for row, z in zip(rows, size, strict=True):
        planted = sum(PLANTED[k][1] for k in row["planted"])
        dynamo = row["converter"] == CONVERTERS[1]
        level = -8.0 + 0.6 * z + 0.3 * dynamo + shared[row["case"]] + planted
        level += rng.normal(0.0, 1.0)
        if rng.random() < 1.0 / (1.0 + np.exp(3.0 - 0.8 * planted - 0.4 * z)):
            level = max(level, rng.uniform(-4.0, -0.5))
        abs_diff = 10.0 ** float(np.clip(level, -10.0, -0.5))
        rel_diff = abs_diff * 10.0 ** float(rng.normal(2.5, 1.0))
        labelled.append(
            {
                "id": row["id"],
                "model": row["model"],
                "outcome": "mismatch" if abs_diff >= RECORDED_ATOL else "ok",
                "converter": row["converter"],
                "source": SOURCE,
                "max_abs_diff": abs_diff,
                "max_rel_diff": rel_diff,
                "error": None,
                "case": row["case"],
            }
        )
    return labelled
