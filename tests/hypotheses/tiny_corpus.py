"""A small corpus on disk: chain models built with onnx.helper and a manifest with raw diffs.

Models whose chain contains ``Sin > Cos`` get large differences (a planted mismatch sequence);
bigger models get somewhat larger differences (size confounding); the rest is noise.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

UNARY = ("Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Sin", "Cos", "Floor", "Ceil")


def chain_model(ops: list[str]) -> onnx.ModelProto:
    """x -> ops[0] -> ops[1] -> ... -> y, all float32 [1, 4]."""
    names = ["x", *(f"t{i}" for i in range(len(ops) - 1)), "y"]
    nodes = [helper.make_node(op, [names[i]], [names[i + 1]]) for i, op in enumerate(ops)]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_tiny_corpus(
    directory: Path, *, models: int = 80, seed: int = 0, failures: int = 3
) -> list[dict]:
    """Write ``models`` labelled rows (plus `failures` load_fail rows) and return the rows."""
    rng = np.random.default_rng(seed)
    (directory / "models").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(models):
        length = int(rng.integers(3, 12))
        ops = [str(op) for op in rng.choice(UNARY, length)]
        if i % 4 == 0:
            start = int(rng.integers(0, length - 1))
            ops[start : start + 2] = ["Sin", "Cos"]
        planted = any(a == "Sin" and b == "Cos" for a, b in itertools.pairwise(ops))
        diff = float(10 ** rng.uniform(-9, -6 + length / 6)) * (1e3 if planted else 1.0)
        path = f"models/m{i:03d}.onnx"
        onnx.save(chain_model(ops), directory / path)
        rows.append(
            {
                "id": f"tiny/m{i:03d}/conv",
                "model": path,
                "outcome": "mismatch" if diff >= 1e-7 else "ok",
                "converter": "conv" if i % 3 else "other-conv",
                "source": "tiny",
                "max_abs_diff": diff,
                "max_rel_diff": diff * 10,
                "error": None,
                "case": f"m{i:03d}",
            }
        )
    for i in range(failures):
        rows.append(
            {
                "id": f"tiny/f{i}/conv",
                "model": None,
                "outcome": "load_fail",
                "converter": "conv",
                "source": "tiny",
                "max_abs_diff": None,
                "max_rel_diff": None,
                "error": "INVALID_GRAPH",
            }
        )
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (directory / "manifest.jsonl").write_text(text, encoding="utf-8")
    return rows
