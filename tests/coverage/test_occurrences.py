"""ngram_occurrences and node_names: exact paths on tiny models, brute force on random DAGs."""

from __future__ import annotations

import itertools
import time

import networkx as nx
import onnx
import onnx.parser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opseq.coverage.occurrences import ngram_occurrences, node_names
from opseq.errors import ConfigError
from opseq.graph import build_opgraph, iter_graphs
from opseq.ngrams import mine_ngrams
from tests import models
from tests.opseq.test_properties import onnx_models

SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
LABELS = ("A", "B", "C")


# --- tiny models, exact paths -------------------------------------------------------------


def test_ngram_occurrences_chain_gives_the_one_path_of_each_ngram():
    graph = build_opgraph(models.chain())  # Relu -> Neg -> Exp
    found = ngram_occurrences(graph, [("Relu", "Neg"), ("Relu", "Neg", "Exp"), ("Exp",)])
    assert found == {
        ("Relu", "Neg"): (("main/0", "main/1"),),
        ("Relu", "Neg", "Exp"): (("main/0", "main/1", "main/2"),),
        ("Exp",): (("main/2",),),
    }


def test_ngram_occurrences_diamond_branches_and_absent_ngrams():
    graph = build_opgraph(models.diamond())  # Relu -> (Neg, Exp) -> Add
    found = ngram_occurrences(
        graph, [("Relu", "Neg", "Add"), ("Relu", "Exp", "Add"), ("Relu", "Add"), ("Neg", "Exp")]
    )
    assert found[("Relu", "Neg", "Add")] == (("main/0", "main/1", "main/3"),)
    assert found[("Relu", "Exp", "Add")] == (("main/0", "main/2", "main/3"),)
    assert found[("Relu", "Add")] == ()  # not adjacent: no edge Relu -> Add
    assert found[("Neg", "Exp")] == ()  # siblings are not a path


def test_ngram_occurrences_keeps_the_order_given_and_drops_repeats():
    graph = build_opgraph(models.chain())
    found = ngram_occurrences(graph, [("Exp",), ("Relu",), ("Exp",)])
    assert list(found) == [("Exp",), ("Relu",)]


def test_ngram_occurrences_searches_if_branches_paths_stay_inside_one_graph():
    graph = build_opgraph(models.if_subgraph())  # Relu -> If{then: Neg -> Exp; else: Sigmoid}
    found = ngram_occurrences(graph, [("Neg", "Exp"), ("Sigmoid",), ("Relu", "Neg")])
    assert found[("Neg", "Exp")] == (("main/1/then_branch/0", "main/1/then_branch/1"),)
    assert found[("Sigmoid",)] == (("main/1/else_branch/0",),)
    assert found[("Relu", "Neg")] == ()  # Relu is in the main graph, Neg in a branch


def test_ngram_occurrences_limit_caps_each_ngram_separately():
    graph = _layered(width=3, layers=3)  # 27 paths A>A>A, 3 nodes labelled A per layer
    found = ngram_occurrences(graph, [("A", "A", "A"), ("A",)], limit=4)
    assert len(found[("A", "A", "A")]) == 4
    assert len(set(found[("A", "A", "A")])) == 4
    assert len(found[("A",)]) == 4
    assert ngram_occurrences(graph, [("A",)], limit=0) == {("A",): ()}


def test_ngram_occurrences_limit_counts_main_graph_and_subgraphs_together():
    graph = build_opgraph(_neg_outside_and_inside_if())
    assert ngram_occurrences(graph, [("Neg",)], limit=1) == {("Neg",): (("main/0",),)}
    assert ngram_occurrences(graph, [("Neg",)], limit=2) == {
        ("Neg",): (("main/0",), ("main/1/then_branch/0",))
    }


def test_ngram_occurrences_impossible_suffix_costs_no_path_enumeration():
    # 10 layers of 12 fully connected A nodes: 12**10 A-paths, and no B anywhere. A depth-first
    # search without the backward pass would walk 12**9 prefixes before giving up.
    graph = _layered(width=12, layers=10)
    start = time.perf_counter()
    found = ngram_occurrences(graph, [("A",) * 9 + ("B",), ("A",) * 10], limit=5)
    assert time.perf_counter() - start < 2.0
    assert found[("A",) * 9 + ("B",)] == ()
    assert len(found[("A",) * 10]) == 5


def test_ngram_occurrences_bad_arguments_raise_config_error():
    graph = build_opgraph(models.chain())
    with pytest.raises(ConfigError, match="limit must be >= 0"):
        ngram_occurrences(graph, [("Relu",)], limit=-1)
    with pytest.raises(ConfigError, match="at least one label"):
        ngram_occurrences(graph, [()])


def test_node_names_empty_name_gives_the_id_and_duplicates_stay():
    graph = build_opgraph(models.unnamed_and_duplicate_names())  # "same", "same", ""
    assert node_names(graph, ["main/2", "main/0", "main/1"]) == ("main/2", "same", "same")


def test_node_names_finds_nodes_inside_subgraphs():
    model = models.if_subgraph()
    model.graph.node[1].attribute[0].g.node[0].name = "then_neg"
    graph = build_opgraph(model)
    names = node_names(graph, ["main/1/then_branch/0", "main/1/then_branch/1", "main/0"])
    assert names == ("then_neg", "main/1/then_branch/1", "main/0")


def test_node_names_unknown_id_raises_key_error():
    graph = build_opgraph(models.chain())
    with pytest.raises(KeyError):
        node_names(graph, ["main/9"])


# --- against brute force --------------------------------------------------------------------


@st.composite
def random_dags(draw) -> nx.DiGraph:
    """1-10 nodes labelled A/B/C, edges only from lower to higher index (a DAG), any density."""
    size = draw(st.integers(1, 10))
    graph = nx.DiGraph()
    for i in range(size):
        graph.add_node(f"main/{i}", label=draw(st.sampled_from(LABELS)))
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    for i, j in draw(st.lists(st.sampled_from(pairs), unique=True) if pairs else st.just([])):
        graph.add_edge(f"main/{i}", f"main/{j}")
    return graph


def _brute_force_paths(graph: nx.DiGraph, n: int) -> set[tuple[str, ...]]:
    """Every directed node path of n nodes, by enumeration (fine on 10 nodes)."""
    paths = {(node,) for node in graph}
    for _ in range(n - 1):
        paths = {(*path, s) for path in paths for s in graph.succ[path[-1]]}
    return paths


@SETTINGS
@given(graph=random_dags(), n=st.integers(1, 5), data=st.data())
def test_ngram_occurrences_random_dag_equals_brute_force_and_mine_ngrams(graph, n, data):
    truth: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for path in _brute_force_paths(graph, n):
        truth.setdefault(tuple(graph.nodes[v]["label"] for v in path), set()).add(path)
    absent = data.draw(st.lists(st.tuples(*[st.sampled_from(LABELS)] * n), max_size=3))
    wanted = [*truth, *absent]
    found = ngram_occurrences(graph, wanted, limit=10**9)
    counts = mine_ngrams(graph, n=n).counts
    for ngram in wanted:
        assert len(found[ngram]) == counts.get(ngram, 0)
        assert set(found[ngram]) == truth.get(ngram, set())
        for path in found[ngram]:
            assert all(graph.has_edge(u, v) for u, v in itertools.pairwise(path))
            assert tuple(graph.nodes[v]["label"] for v in path) == ngram


@SETTINGS
@given(graph=random_dags(), n=st.integers(1, 4), limit=st.integers(0, 6))
def test_ngram_occurrences_limit_gives_min_of_limit_and_count_distinct_real_paths(graph, n, limit):
    counts = mine_ngrams(graph, n=n).counts
    found = ngram_occurrences(graph, counts, limit=limit)
    every = ngram_occurrences(graph, counts, limit=10**9)
    for ngram, count in counts.items():
        assert len(found[ngram]) == min(limit, count)
        assert len(set(found[ngram])) == len(found[ngram])
        assert set(found[ngram]) <= set(every[ngram])


@pytest.mark.slow  # ~8 s
@SETTINGS
@given(model=onnx_models(require_if=True), n=st.integers(1, 3))
def test_ngram_occurrences_random_model_with_if_counts_as_mine_ngrams(model, n):
    graph = build_opgraph(model)
    counts = mine_ngrams(graph, n=n).counts  # subgraphs included, paths inside one graph
    found = ngram_occurrences(graph, counts, limit=10**9)
    assert {ngram: len(paths) for ngram, paths in found.items()} == dict(counts)
    owners = {node: g for g in iter_graphs(graph) for node in g}
    for ngram, paths in found.items():
        for path in paths:
            g = owners[path[0]]
            assert all(g.has_edge(u, v) for u, v in itertools.pairwise(path))
            assert tuple(g.nodes[v]["label"] for v in path) == ngram


def _neg_outside_and_inside_if() -> onnx.ModelProto:
    """Neg in the main graph, then an If whose then-branch holds another Neg."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
        g (float[4] x, bool c) => (float[4] y) {
            r = Neg(x)
            y = If(c) <
                then_branch = then_g () => (float[4] t) { t = Neg(r) },
                else_branch = else_g () => (float[4] e) { e = Sigmoid(r) }
            >
        }""")
    onnx.checker.check_model(model, full_check=True)
    return model


def _layered(*, width: int, layers: int) -> nx.DiGraph:
    """`layers` layers of `width` nodes labelled A, each node wired to every node of the next."""
    graph = nx.DiGraph()
    for layer in range(layers):
        for i in range(width):
            graph.add_node(f"main/{layer * width + i}", label="A")
    for layer in range(layers - 1):
        for i, j in itertools.product(range(width), repeat=2):
            graph.add_edge(f"main/{layer * width + i}", f"main/{(layer + 1) * width + j}")
    return graph
