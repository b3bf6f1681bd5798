"""Tests of the corpus index and of mining on Dask; `write_corpus` builds their tiny corpora.

Each model is a small random DAG of float ops built with onnx.helper; the manifest labels them
ok/mismatch in turn, and a few rows are failures without a model.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

UNARY = ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Sin", "Cos")
BINARY = ("Add", "Mul", "Sub", "Max")


def random_model(rng: np.random.Generator, nodes: int) -> onnx.ModelProto:
    """x -> `nodes` ops, each reading one or two earlier tensors -> y (the last one)."""
    tensors, graph_nodes = ["x"], []
    for i in range(nodes):
        out = f"t{i}" if i < nodes - 1 else "y"
        if rng.random() < 0.4 and len(tensors) > 1:
            a, b = rng.choice(len(tensors), size=2, replace=False)
            op = str(rng.choice(BINARY))
            graph_nodes.append(helper.make_node(op, [tensors[a], tensors[b]], [out]))
        else:
            op = str(rng.choice(UNARY))
            graph_nodes.append(
                helper.make_node(op, [tensors[int(rng.integers(len(tensors)))]], [out])
            )
        tensors.append(out)
    graph = helper.make_graph(
        graph_nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_corpus(directory: Path, *, models: int = 12, seed: int = 0, gz_every: int = 5) -> None:
    """`models` labelled rows (every `gz_every`-th model gzip-compressed) and 2 failure rows."""
    rng = np.random.default_rng(seed)
    (directory / "models").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(models):
        data = random_model(rng, int(rng.integers(2, 9))).SerializeToString()
        name = f"models/m{i:03d}.onnx"
        if gz_every and i % gz_every == gz_every - 1:
            name += ".gz"
            data = gzip.compress(data, mtime=0)
        (directory / name).write_bytes(data)
        rows.append(_row(f"m{i:03d}", name, "mismatch" if i % 3 == 0 else "ok"))
    rows += [_row("f0", None, "load_fail"), _row("f1", None, "convert_fail")]
    write_manifest(directory, rows)


def _row(case: str, model: str | None, outcome: str) -> dict:
    diff = 1e-3 if outcome == "mismatch" else (1e-9 if model else None)
    return {
        "id": f"tiny/{case}/conv",
        "model": model,
        "outcome": outcome,
        "converter": "conv",
        "source": "tiny",
        "max_abs_diff": diff,
        "max_rel_diff": diff,
        "error": None,
        "case": case,
    }


def write_manifest(directory: Path, rows: list[dict]) -> None:
    """Write `rows` as the directory's manifest.jsonl."""
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (directory / "manifest.jsonl").write_text(text, encoding="utf-8")


def read_rows(directory: Path) -> list[dict]:
    """The manifest's rows."""
    lines = (directory / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]
