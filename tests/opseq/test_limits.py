"""Resource limits: nodes after inlining, n-gram windows, nesting, memory, huge path counts."""

from __future__ import annotations

import sys

import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from onnx import helper

from opseq.errors import InvalidModelError, LimitExceededError, UnsupportedModelError
from opseq.functions import inline_functions, inlined_node_count
from opseq.graph import build_opgraph, iter_graphs
from opseq.limits import Limits, limit_error, memory_cap
from opseq.loader import load_model
from opseq.ngrams import count_paths, mine_ngrams, to_decimal
from tests import hostile, models
from tests.opseq.test_properties import SETTINGS, onnx_models

# --- nodes, after inlining local functions


@pytest.mark.parametrize("levels", [0, 1, 3, 6])
def test_inlined_node_count_of_doubling_functions_is_two_to_the_levels(levels):
    model = load_model(hostile.doubling_functions(levels))
    assert inlined_node_count(model, stop_above=10**6) == 2**levels
    inlined = inline_functions(model, max_nodes=10**6)
    assert len(inlined.graph.node) == 2**levels  # what onnx's inliner really makes


def test_inlined_node_count_saturates_instead_of_computing_two_to_the_forty():
    model = load_model(hostile.doubling_functions(40))
    assert inlined_node_count(model, stop_above=1000) == 1001


def test_doubling_functions_are_refused_before_inlining():
    model = load_model(hostile.doubling_functions(40))  # 3 KB, 2**40 nodes inlined
    with pytest.raises(LimitExceededError, match=r"inlining its local functions.*--max-nodes"):
        build_opgraph(model, infer_shapes=False)


def test_recursive_local_function_is_refused():
    model = load_model(hostile.recursive_function())
    with pytest.raises(UnsupportedModelError, match="call each other recursively: local:f"):
        build_opgraph(model, infer_shapes=False)


def test_a_local_function_defined_twice_is_refused():
    model = load_model(hostile.doubling_functions(1))
    model.functions.append(model.functions[0])
    with pytest.raises(UnsupportedModelError, match="defined twice"):
        build_opgraph(model, infer_shapes=False)


def test_calls_inside_subgraphs_count_towards_the_inlined_size():
    model = load_model(hostile.doubling_functions(3))  # main graph: one call of f3 (8 nodes)
    call = model.graph.node[0]
    body = helper.make_graph([call], "then", [], [helper.make_tensor_value_info("y", 1, None)])
    branch = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    model.graph.ClearField("node")
    model.graph.node.append(branch)
    assert inlined_node_count(model, stop_above=100) == 1 + 8 + 8


def test_max_nodes_counts_subgraphs_and_stops_before_building():
    model = models.if_subgraph()
    total = sum(g.number_of_nodes() for g in iter_graphs(build_opgraph(model)))
    build_opgraph(model, limits=Limits(max_nodes=total + 10))  # ignored nodes count too
    with pytest.raises(LimitExceededError, match="--max-nodes"):
        build_opgraph(model, limits=Limits(max_nodes=1))


# --- nesting


def test_nesting_within_protobuf_but_beyond_the_limit_is_reported_by_level():
    model = load_model(hostile.nested_if(20))
    with pytest.raises(LimitExceededError, match=r"nested more than 16 deep.*--max-nesting"):
        build_opgraph(model, infer_shapes=False)
    graph = build_opgraph(model, infer_shapes=False, limits=Limits(max_nesting=20))
    assert len(list(iter_graphs(graph))) == 1 + 2 * 20


# --- n-gram windows


def _windows_by_brute_force(graph, n_max: int) -> int:
    """Per graph, node and length <= n_max: the distinct label tuples of paths ending there."""
    total = 0
    for g in iter_graphs(graph):
        for node in g:
            tails = {(node,)}
            for _ in range(n_max):
                labels = {tuple(g.nodes[v]["label"] for v in path) for path in tails}
                if not labels:
                    break
                total += len(labels)
                tails = {(p, *path) for path in tails for p in g.pred[path[0]]}
    return total


@SETTINGS
@given(onnx_models(), st.integers(1, 4))
def test_max_ngram_windows_is_exactly_the_number_of_windows_built(model, n_max):
    graph = build_opgraph(model)
    windows = _windows_by_brute_force(graph, n_max)
    counts = mine_ngrams(graph, n=(1, n_max), limits=Limits(max_ngram_windows=windows))
    assert counts == mine_ngrams(graph, n=(1, n_max))
    with pytest.raises(LimitExceededError, match="--max-ngrams"):
        mine_ngrams(graph, n=(1, n_max), limits=Limits(max_ngram_windows=windows - 1))


def test_dense_layers_of_distinct_ops_stop_at_the_window_budget():
    graph = build_opgraph(load_model(hostile.dense_layers()), infer_shapes=False)  # 60**4 windows
    with pytest.raises(LimitExceededError, match=r"counting its 1..4-grams needs more than"):
        mine_ngrams(graph, n=(1, 4))
    pairs = mine_ngrams(graph, n=2).counts  # well within: the budget bounds work, not models
    assert ("x.hostile:Op00", "x.hostile:Op59") in pairs and len(pairs) == 60 * 60 + 60


# --- memory


def test_memory_cap_turns_an_allocation_beyond_it_into_a_limit_error():
    with (
        pytest.raises(LimitExceededError, match=r"big: out of memory.*--max-memory"),
        memory_cap(64 << 20, what="big"),
    ):
        bytearray(1 << 30)
    bytearray(256 << 20)  # the previous limit is back


def test_limit_error_names_the_limit_and_the_flag():
    error = limit_error("max_model_bytes", "m.onnx: 3.0 GiB", 1 << 30)
    assert str(error) == (
        "m.onnx: 3.0 GiB: over the limit of 1.0 GiB (raise it with --max-model-size)"
    )


# --- cycles through ignored nodes


@pytest.mark.parametrize(
    "build",
    [
        hostile.identity_reads_own_output,
        hostile.constant_in_if_reads_own_output,
        hostile.constant_with_subgraph_reading_itself,
    ],
)
def test_an_ignored_node_reading_its_own_output_is_a_cycle(build):
    with pytest.raises(InvalidModelError, match="cycle"):
        build_opgraph(build())


# --- path counts of any size


def test_path_count_of_4300_plus_digits_is_exact():
    graph = build_opgraph(load_model(hostile.wide_fanout_path_count(7200)), infer_shapes=False)
    assert count_paths(graph) == 4**7200


@given(st.integers(0, 10**9), st.integers(0, 30_000))
def test_to_decimal_equals_str_at_any_size(base, exponent):
    value = base * 7**exponent
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        expected = str(value)
    finally:
        sys.set_int_max_str_digits(limit)
    assert to_decimal(value) == expected


def test_checker_accepts_the_builders_that_claim_validity():
    for data in (hostile.wide_fanout_path_count(10), hostile.nested_if(5)):
        onnx.checker.check_model(load_model(data))
