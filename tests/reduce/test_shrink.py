"""Delta debugging on hand-written graphs with predicates that need no framework."""

from __future__ import annotations

from opseq.reduce.shrink import Budget, cone, remove_nodes, shrink_graph
from tests.reduce.graphs import F, clean_graph, other_graph, twelve_node_graph


def has_float_sigmoid(graph):
    types = graph.types()
    return any(n.op == "Sigmoid" and types[n.inputs[0]].dtype == "float32" for n in graph.nodes)


def test_cone_keeps_the_ancestors_of_one_output():
    g = cone(twelve_node_graph(), "n11")
    assert [n.name for n in g.nodes] == ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n10", "n11"]
    assert g.outputs == ("n11",) and [name for name, _ in g.inputs] == ["x0", "x1"]
    assert cone(twelve_node_graph(), "n9").ops == ("Abs", "Add", "Tanh", "Sub", "Cos")


def test_remove_nodes_bypasses_a_node_whose_input_has_its_type():
    g = remove_nodes(twelve_node_graph(), frozenset({"n0"}))
    nodes = {n.name: n for n in g.nodes}
    assert "n0" not in nodes
    assert nodes["n1"].inputs == ("x0", "x1") and nodes["n8"].inputs == ("n7", "x0")


def test_remove_nodes_cuts_a_node_of_another_type_into_a_graph_input():
    g = remove_nodes(cone(twelve_node_graph(), "n11"), frozenset({"n6"}))
    assert g.ops == ("Neg", "Flatten")
    assert g.inputs == (("n6", twelve_node_graph().types()["n6"]),)


def test_remove_nodes_truncates_a_node_only_an_output_reads():
    g = remove_nodes(cone(twelve_node_graph(), "n11"), frozenset({"n11"}))
    assert g.outputs == ("n10",) and "Flatten" not in g.ops


def test_remove_nodes_with_cut_removes_the_upstream_of_a_bypassable_node():
    g = remove_nodes(cone(twelve_node_graph(), "n11"), frozenset({"n4"}), cut=frozenset({"n4"}))
    assert g.ops == ("Transpose", "ReduceMean", "Neg", "Flatten")
    assert g.inputs == (("n4", F),)


def test_remove_nodes_of_everything_leaves_nothing():
    g = clean_graph()
    assert remove_nodes(g, frozenset({"n0", "n1"})) is None


def test_shrink_twelve_nodes_to_the_sigmoid_alone():
    result = shrink_graph(twelve_node_graph(), has_float_sigmoid, output_order=("n9", "n11"))
    assert result.graph.ops == ("Sigmoid",)
    assert result.graph.inputs == (("x0", F),) and result.graph.outputs == ("n3",)
    assert result.stopped == "fixpoint"
    assert result.steps[0] == "cone of n11: 12 -> 9 nodes"
    # the cone of n9 (rejected), of n11, then ddmin: 9 -> 5 -> 2 -> 1, then the single
    # removals that fail
    assert result.tests == 7


def test_shrink_other_graph_to_the_sigmoid_alone():
    result = shrink_graph(other_graph(), has_float_sigmoid)
    assert result.graph.ops == ("Sigmoid",) and result.graph.inputs[0][1].shape == (1, 3, 8, 8)


def test_shrink_stops_at_the_test_budget():
    result = shrink_graph(twelve_node_graph(), has_float_sigmoid, budget=Budget(max_tests=2))
    assert result.stopped == "max-tests" and result.tests == 2
    assert has_float_sigmoid(result.graph)


def test_shrink_stops_at_the_deadline():
    result = shrink_graph(
        twelve_node_graph(), has_float_sigmoid, budget=Budget(max_tests=50, deadline_s=0)
    )
    assert result.stopped == "deadline" and result.tests == 0
    assert result.graph == twelve_node_graph()


def test_shrink_keeps_a_graph_no_candidate_holds_on():
    calls = []

    def never(graph):
        calls.append(graph)
        return False

    result = shrink_graph(clean_graph(), never)
    assert result.graph == clean_graph() and result.stopped == "fixpoint"
    assert result.tests == len(calls) == 2  # remove n0, remove n1; removing both is empty
