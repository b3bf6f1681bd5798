"""Hand-written synthetic graphs for the reducer's tests (numpy only, no framework).

``twelve`` and ``other`` have 12 nodes and one Sigmoid each, at different shapes; ``clean`` has
no Sigmoid; ``keras`` is a TensorFlow graph with a Sigmoid and the Keras layers only the
synthetic materialiser defines (``ArgReduce``, ``Add``, ``DepthToSpace``).
"""

from __future__ import annotations

from opseq.sources.synthetic.builder import SyntheticGraph, SyntheticNode
from opseq.sources.synthetic.ops import TensorType

F = TensorType(shape=(1, 4, 8, 8))
G = TensorType(shape=(1, 3, 8, 8))


def _node(name, op, inputs, output, **attrs):
    return SyntheticNode(name=name, op=op, inputs=tuple(inputs), attrs=attrs, output=output)


def twelve_node_graph() -> SyntheticGraph:
    """12 nodes, two outputs; only ``n11``'s cone holds the Sigmoid (``n3``)."""
    nodes = (
        _node("n0", "Abs", ["x0"], F),
        _node("n1", "Add", ["n0", "x1"], F),
        _node("n2", "Linear", ["n1"], F, in_features=8, out_features=8),
        _node("n3", "Sigmoid", ["n2"], F),
        _node("n4", "Mul", ["n3", "n1"], F),
        _node("n5", "Transpose", ["n4"], F, perm=(0, 1, 3, 2)),
        _node("n6", "ReduceMean", ["n5"], TensorType(shape=(1, 4, 8, 1)), axis=3, keepdims=True),
        _node("n7", "Tanh", ["n1"], F),
        _node("n8", "Sub", ["n7", "n0"], F),
        _node("n9", "Cos", ["n8"], F),
        _node("n10", "Neg", ["n6"], TensorType(shape=(1, 4, 8, 1))),
        _node("n11", "Flatten", ["n10"], TensorType(shape=(1, 32)), shape=(1, 32)),
    )
    return SyntheticGraph(
        framework="torch", seed=1, inputs=(("x0", F), ("x1", F)), nodes=nodes,
        outputs=("n9", "n11"),
    )  # fmt: skip


def other_graph() -> SyntheticGraph:
    """Another 12-node graph around one Sigmoid, at another shape."""
    flat = TensorType(shape=(1, 192))
    nodes = (
        _node("n0", "Relu", ["x0"], G),
        _node("n1", "Sin", ["x0"], G),
        _node("n2", "Add", ["n0", "n1"], G),
        _node("n3", "Sigmoid", ["n2"], G),
        _node("n4", "Square", ["n3"], G),
        _node("n5", "Cos", ["n1"], G),
        _node("n6", "Mul", ["n4", "n5"], G),
        _node("n7", "Reshape", ["n6"], flat, shape=(1, 192)),
        _node("n8", "Neg", ["n7"], flat),
        _node("n9", "Abs", ["n5"], G),
        _node("n10", "Tanh", ["n8"], flat),
        _node("n11", "Abs", ["n10"], flat),
    )
    return SyntheticGraph(
        framework="torch", seed=2, inputs=(("x0", G),), nodes=nodes, outputs=("n9", "n11")
    )


def clean_graph() -> SyntheticGraph:
    """Two nodes and no Sigmoid: nothing for the planted bug to change."""
    nodes = (_node("n0", "Relu", ["x0"], F), _node("n1", "Neg", ["n0"], F))
    return SyntheticGraph(framework="torch", seed=3, inputs=(("x0", F),), nodes=nodes,
                          outputs=("n1",))  # fmt: skip


def keras_graph() -> SyntheticGraph:
    """A TensorFlow graph around one Sigmoid, with the materialiser's own Keras layers."""
    t = TensorType(shape=(1, 8, 8, 4))
    nodes = (
        _node("n0", "Abs", ["x0"], t),
        _node("n1", "Sigmoid", ["n0"], t),
        _node("n2", "ArgMax", ["n1"], TensorType(shape=(1, 8, 8), dtype="int64"), axis=3,
              keepdims=False),
        _node("n3", "Add", ["n1", "x0"], t),
        _node("n4", "DepthToSpace", ["n3"], TensorType(shape=(1, 16, 16, 1)), block=2),
    )  # fmt: skip
    return SyntheticGraph(
        framework="tensorflow", seed=4, inputs=(("x0", t),), nodes=nodes, outputs=("n2", "n4")
    )


GRAPHS = {"twelve": twelve_node_graph, "other": other_graph, "clean": clean_graph}
TF_GRAPHS = {"keras": keras_graph}
