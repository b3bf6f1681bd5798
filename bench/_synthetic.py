"""Random valid ONNX DAGs with a fixed number of operator nodes, for benchmarks.

A stand-in for the synthetic model generator: every tensor has shape [1, 16], so any op can read
any earlier tensor and the model is valid by construction. Seeded; no framework needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_UNARY = ("Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Sqrt", "Softmax", "Erf", "Floor")
_BINARY = ("Add", "Mul", "Sub", "Max", "Min", "Div")
_WIDTH = 16


def random_model(nodes: int, seed: int) -> onnx.ModelProto:
    """Build a model of exactly `nodes` operator nodes, with one MatMul weight per 10 nodes."""
    rng = np.random.default_rng(seed)
    tensors = ["x"]
    graph_nodes, initializers = [], []
    for index in range(nodes):
        # Prefer recent tensors so the DAG is deep, like real models, not a bush.
        recent = tensors[-8:]
        output = f"t{index}"
        kind = rng.random()
        if kind < 0.1:
            weight = f"w{index}"
            initializers.append(
                numpy_helper.from_array(
                    rng.standard_normal((_WIDTH, _WIDTH)).astype(np.float32), weight
                )
            )
            graph_nodes.append(
                helper.make_node("MatMul", [str(rng.choice(recent)), weight], [output])
            )
        elif kind < 0.55:
            graph_nodes.append(
                helper.make_node(str(rng.choice(_UNARY)), [str(rng.choice(recent))], [output])
            )
        else:
            a, b = rng.choice(recent, size=2)
            graph_nodes.append(
                helper.make_node(str(rng.choice(_BINARY)), [str(a), str(b)], [output])
            )
        tensors.append(output)
    graph = helper.make_graph(
        graph_nodes,
        f"synthetic_{seed}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, _WIDTH])],
        [helper.make_tensor_value_info(tensors[-1], TensorProto.FLOAT, [1, _WIDTH])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def write_models(directory: Path, count: int, nodes: int) -> list[Path]:
    """Write `count` models (seeds 0..count-1) into `directory`, reusing files already there."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        path = directory / f"synthetic_{nodes}_{seed:05d}.onnx"
        if not path.exists():
            onnx.save(random_model(nodes, seed), path)
        paths.append(path)
    return paths
