from __future__ import annotations

import sys

import pytest

from opseq.errors import InvalidModelError, ModelLoadError
from opseq.graph import (
    DEFAULT_IGNORED_OPS,
    TensorType,
    build_opgraph,
    iter_graphs,
    label_of,
    load_model,
)
from tests import models


def edges(graph):
    return {(u, v): tensors for u, v, tensors in graph.edges(data="tensors")}


def test_build_chain_nodes_keyed_by_index_with_labels():
    graph = build_opgraph(models.chain())
    assert list(graph.nodes(data="label")) == [
        ("main/0", "Relu"),
        ("main/1", "Neg"),
        ("main/2", "Exp"),
    ]
    assert edges(graph) == {("main/0", "main/1"): ("a",), ("main/1", "main/2"): ("b",)}
    assert graph.graph["input_consumers"] == {"x": ("main/0",)}
    assert graph.graph["output_producers"] == {"y": ("main/2",)}
    assert graph.graph["topological_order"] == ("main/0", "main/1", "main/2")


def test_build_duplicate_input_one_edge_with_tensor_twice():
    graph = build_opgraph(models.duplicate_input())
    assert edges(graph) == {("main/0", "main/1"): ("r", "r")}
    assert graph.graph["input_consumers"] == {"x": ("main/0", "main/2")}


def test_build_ignored_ops_constant_dropped_identity_chain_spliced():
    graph = build_opgraph(models.with_constants_and_identities())
    assert sorted(graph.nodes) == ["main/1", "main/4"]  # Relu and Add
    assert edges(graph) == {("main/1", "main/4"): ("i2",)}
    assert graph.graph["output_producers"] == {"y": ("main/4",)}
    assert graph.graph["ignored"] == {"Constant": 1, "Identity": 3}


def test_build_ignore_nothing_keeps_every_op():
    graph = build_opgraph(models.with_constants_and_identities(), ignore_ops=())
    assert graph.number_of_nodes() == 6
    assert ("main/0", "main/4") in graph.edges  # Constant -> Add


def test_build_custom_ignore_splices_multi_input_op():
    graph = build_opgraph(models.diamond(), ignore_ops={"Add"})
    assert graph.graph["output_producers"] == {"y": ("main/1", "main/2")}


def test_build_multi_output_node_edges_per_consumer():
    graph = build_opgraph(models.multi_output())
    assert edges(graph) == {
        ("main/0", "main/1"): ("a",),
        ("main/0", "main/2"): ("b",),
        ("main/1", "main/3"): ("c",),
        ("main/2", "main/3"): ("d",),
    }


def test_build_unnamed_and_duplicate_names_ids_stay_unique():
    graph = build_opgraph(models.unnamed_and_duplicate_names())
    assert list(graph.nodes(data="name")) == [
        ("main/0", "same"),
        ("main/1", "same"),
        ("main/2", ""),
    ]


def test_build_if_branches_are_subgraphs_with_implicit_edge():
    graph = build_opgraph(models.if_subgraph())
    assert edges(graph) == {("main/0", "main/1"): ("r",)}  # r read by both branches, listed once
    branches = graph.nodes["main/1"]["subgraphs"]
    assert set(branches) == {"then_branch", "else_branch"}
    then_branch = branches["then_branch"]
    assert then_branch.graph["path"] == "main/1/then_branch"
    assert list(then_branch.nodes(data="label")) == [
        ("main/1/then_branch/0", "Neg"),
        ("main/1/then_branch/1", "Exp"),
    ]
    assert then_branch.graph["outer_inputs"] == ("r",)
    assert [g.graph["path"] for g in iter_graphs(graph)] == [
        "main",
        "main/1/then_branch",
        "main/1/else_branch",
    ]


def test_build_loop_body_reads_outer_tensor():
    graph = build_opgraph(models.loop_subgraph())
    # r is the loop's initial carried value (explicit) and read by the body (implicit).
    assert edges(graph) == {("main/0", "main/2"): ("r", "r")}
    body = graph.nodes["main/2"]["subgraphs"]["body"]
    assert list(body.nodes(data="label")) == [("main/2/body/1", "Add")]
    assert body.graph["inputs"] == ("i", "c_in", "acc")
    assert body.graph["input_consumers"]["acc"] == ("main/2/body/1",)


def test_build_shape_inference_annotates_output_types():
    graph = build_opgraph(models.with_weights())
    assert graph.nodes["main/0"]["output_types"] == (
        TensorType(dtype="float32", shape=(1, 16, 6, 6)),
    )
    assert graph.nodes["main/0"]["attributes"] == {}


def test_build_without_shape_inference_types_unknown_inside():
    graph = build_opgraph(models.with_weights(), infer_shapes=False)
    assert graph.nodes["main/0"]["output_types"] == (None,)
    assert graph.nodes["main/1"]["output_types"] == (
        TensorType(dtype="float32", shape=(1, 16, 6, 6)),
    )


def test_build_attributes_small_by_value_tensors_summarised():
    graph = build_opgraph(models.with_constants_and_identities(), ignore_ops=())
    assert graph.nodes["main/0"]["attributes"] == {
        "value": {"tensor": {"dtype": "float32", "dims": [4]}}
    }
    graph = build_opgraph(models.multi_output())
    assert graph.nodes["main/0"]["attributes"] == {"axis": 0}


def test_build_undefined_tensor_raises_naming_node():
    with pytest.raises(
        InvalidModelError, match=r"node main/1 \(Add\) reads undefined tensor 'ghost'"
    ):
        build_opgraph(models.undefined_tensor())


def test_build_cycle_raises_with_cycle_described():
    with pytest.raises(InvalidModelError, match=r"cycle: .*main/\d \((Relu|Neg|Add)\)"):
        build_opgraph(models.cycle())


def test_build_cycle_of_ignored_ops_raises():
    with pytest.raises(InvalidModelError, match="cycle"):
        build_opgraph(models.identity_cycle())


def test_build_identity_chain_longer_than_recursion_limit():
    graph = build_opgraph(
        models.long_identity_chain(sys.getrecursionlimit() + 100), infer_shapes=False
    )
    assert list(graph.edges) == [("main/0", f"main/{sys.getrecursionlimit() + 101}")]


def test_build_external_data_never_opened(tmp_path):
    # The location escapes the model's folder and does not exist: any attempt to read it fails.
    model = models.with_external_data("../../outside/weights.bin")
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    opened = []
    sys.addaudithook(lambda event, args: opened.append(args[0]) if event == "open" else None)
    graph = build_opgraph(load_model(path))
    assert graph.nodes["main/0"]["output_types"][0].shape == (1, 16, 6, 6)
    assert not [p for p in opened if "weights.bin" in str(p)]


def test_load_model_missing_file_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(tmp_path / "absent.onnx")


def test_load_model_directory_raises(tmp_path):
    with pytest.raises(ModelLoadError, match="is a directory"):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "data",
    [b"this is a text file, not a model\n", bytes(range(256)) * 4, b""],
    ids=["text", "random-bytes", "empty-file"],
)
def test_load_model_not_onnx_raises(data):
    with pytest.raises(ModelLoadError, match="not an ONNX model"):
        load_model(data)


def test_load_model_truncated_at_every_cut_raises_load_error():
    data = models.diamond().SerializeToString()
    for cut in range(0, len(data), 7):
        with pytest.raises((ModelLoadError, InvalidModelError)):
            load_model(data[:cut])


def test_load_model_empty_graph_raises():
    with pytest.raises(InvalidModelError, match="empty"):
        load_model(models.empty_graph().SerializeToString())


def test_default_ignored_ops():
    assert {"Constant", "Identity"} == DEFAULT_IGNORED_OPS
    assert label_of("Relu", "ai.onnx") == "Relu"


def test_build_ignored_if_splices_its_implicit_reads():
    # Ignoring If: its output y comes from Relu through the branches' read of r, and from input c.
    graph = build_opgraph(models.if_subgraph(), ignore_ops={"If"})
    assert list(graph.nodes) == ["main/0"]
    assert graph.graph["output_producers"] == {"y": ("main/0",)}


def test_build_local_function_inlined():
    graph = build_opgraph(models.local_function())
    relu, add, neg = graph.graph["topological_order"]
    assert [graph.nodes[n]["label"] for n in (relu, add, neg)] == ["Relu", "Add", "Neg"]
    assert graph.number_of_nodes() == 3 and graph.number_of_edges() == 2
    assert len(graph.edges[relu, add]["tensors"]) == 2  # Add(r, r) survives inlining as one edge
    assert graph.graph["input_consumers"] == {"x": (relu,)}
    assert graph.graph["output_producers"] == {"y": (neg,)}


def test_build_initializer_listed_as_input_is_not_an_input():
    graph = build_opgraph(models.initializer_listed_as_input())
    assert graph.graph["inputs"] == ("x",)
    assert graph.graph["input_consumers"] == {"x": ("main/0",)}
