"""Signatures (dedup keys) and recipes (serialised graphs) without a framework."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from opseq.errors import ConfigError
from opseq.reduce.recipe import SYNTHETIC_GRAPH, Recipe, graph_from_dict, graph_to_dict
from opseq.reduce.shrink import cone
from opseq.reduce.signature import Signature, case_signature, graph_signature
from opseq.sources.base import InputSpec
from tests.reduce.graphs import GRAPHS, F, G, other_graph, twelve_node_graph


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_round_trips_through_json_text(name):
    graph = GRAPHS[name]()
    assert graph_from_dict(json.loads(json.dumps(graph_to_dict(graph)))) == graph


def test_graph_round_trip_keeps_tuples():
    back = graph_from_dict(json.loads(json.dumps(graph_to_dict(twelve_node_graph()))))
    transpose = next(n for n in back.nodes if n.op == "Transpose")
    assert transpose.attrs == {"perm": (0, 1, 3, 2)} and back.inputs[0][1] == F


def test_graph_from_dict_refuses_a_malformed_graph():
    with pytest.raises(ConfigError, match="not a serialised synthetic graph"):
        graph_from_dict({"framework": "torch", "seed": 0, "inputs": [{"name": "x0"}]})


def test_recipe_round_trips():
    recipe = Recipe(
        kind=SYNTHETIC_GRAPH,
        source="synthetic-torch",
        case="n012-s000001",
        seed=0,
        graph=cone(twelve_node_graph(), "n11"),
        weight_seed=12345,
        input_specs=(InputSpec(name="x0", shape=(1, 4, 8, 8)),),
    )
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_recipe_refuses_an_unknown_kind_and_a_graph_recipe_without_graph():
    base = {"source": "s", "case": "c", "seed": 0}
    with pytest.raises(ConfigError, match="unknown recipe kind"):
        Recipe.from_dict({**base, "kind": "pickle"})
    with pytest.raises(ConfigError, match="needs a graph"):
        Recipe.from_dict({**base, "kind": SYNTHETIC_GRAPH})


def sigmoid_graph(t):
    graph = twelve_node_graph()
    node = replace(graph.nodes[3], inputs=("x0",), output=t)
    return replace(graph, inputs=(("x0", t),), nodes=(node,), outputs=(node.name,))


def test_signature_ignores_shapes_but_not_dtypes_or_converters():
    a, b = graph_signature(sigmoid_graph(F), "c"), graph_signature(sigmoid_graph(G), "c")
    assert a == b and a.digest() == b.digest()
    assert a.to_dict() == {
        "converter": "c",
        "ops": [{"op": "Sigmoid", "attrs": {}}],
        "input_dtypes": ["float32"],
    }
    other = graph_signature(sigmoid_graph(replace(F, dtype="float64")), "c")
    assert other != a
    elsewhere = graph_signature(sigmoid_graph(F), "d")
    assert elsewhere.digest() != a.digest()
    assert elsewhere.behaviour_digest() == a.behaviour_digest()


def test_signature_orders_independent_branches_canonically():
    graph = other_graph()
    swapped = replace(graph, nodes=(graph.nodes[1], graph.nodes[0], *graph.nodes[2:]))
    assert graph_signature(graph, "c") == graph_signature(swapped, "c")
    assert graph_signature(graph, "c").labels[:3] == ("Relu", "Sin", "Add")


def test_signature_attributes_count():
    graph = cone(twelve_node_graph(), "n11")
    changed = replace(
        graph,
        nodes=tuple(
            replace(n, attrs={"perm": (0, 1, 2, 3)}) if n.op == "Transpose" else n
            for n in graph.nodes
        ),
    )
    assert graph_signature(graph, "c") != graph_signature(changed, "c")


def test_signature_round_trips_and_names_its_directory():
    signature = graph_signature(cone(twelve_node_graph(), "n11"), "torch.onnx-dynamo")
    assert Signature.from_dict(json.loads(json.dumps(signature.to_dict()))) == signature
    slug = signature.slug()
    assert slug.startswith("dynamo-abs-add-linear-sigmoid-and5-")
    assert slug.endswith(signature.digest()) and len(signature.digest()) == 12


def test_case_signature_drops_the_sample_index():
    a = case_signature("nn.functional.gelu.tanh_approx@float32#3", ["float32"], "x")
    b = case_signature("nn.functional.gelu.tanh_approx@float32#0", ["float32"], "x")
    assert a == b and a.labels == ("nn.functional.gelu.tanh_approx@float32",)
    assert a.slug().startswith("x-nn.functional.gelu.tanh_approx_float32-")
