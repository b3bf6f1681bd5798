from __future__ import annotations

import networkx as nx
import pytest

from opseq.errors import ConfigError
from opseq.graph import build_opgraph
from opseq.ngrams import (
    DataflowPath,
    NgramCounts,
    count_paths,
    iter_paths,
    longest_path,
    mine_ngrams,
    parse_ngram_range,
)
from tests import models


def test_mine_chain_exact_counts():
    counts = mine_ngrams(build_opgraph(models.chain()), n=(1, 4)).counts
    assert counts == {
        ("Relu",): 1,
        ("Neg",): 1,
        ("Exp",): 1,
        ("Relu", "Neg"): 1,
        ("Neg", "Exp"): 1,
        ("Relu", "Neg", "Exp"): 1,
    }


def test_mine_diamond_counts_each_node_path():
    counts = mine_ngrams(build_opgraph(models.diamond()), n=(2, 3)).counts
    assert counts == {
        ("Relu", "Neg"): 1,
        ("Relu", "Exp"): 1,
        ("Neg", "Add"): 1,
        ("Exp", "Add"): 1,
        ("Relu", "Neg", "Add"): 1,
        ("Relu", "Exp", "Add"): 1,
    }


def test_mine_same_labels_on_two_paths_count_two():
    # Two parallel Relu branches: the 3-gram Relu > Relu > Add is realised by two node paths.
    graph = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    nx.set_node_attributes(graph, {"a": "Relu", "b": "Relu", "c": "Relu", "d": "Add"}, "label")
    assert mine_ngrams(graph, n=3).counts == {("Relu", "Relu", "Add"): 2}


def test_mine_duplicate_input_counts_one_path():
    counts = mine_ngrams(build_opgraph(models.duplicate_input()), n=2).counts
    assert counts == {("Relu", "Add"): 1}


def test_mine_subgraphs_added_but_paths_do_not_cross():
    graph = build_opgraph(models.if_subgraph())
    with_bodies = mine_ngrams(graph, n=(1, 2)).counts
    assert with_bodies == {
        ("Relu",): 1,
        ("If",): 1,
        ("Relu", "If"): 1,
        ("Neg",): 1,
        ("Exp",): 1,
        ("Neg", "Exp"): 1,
        ("Sigmoid",): 1,
    }
    assert mine_ngrams(graph, n=(1, 2), include_subgraphs=False).counts == {
        ("Relu",): 1,
        ("If",): 1,
        ("Relu", "If"): 1,
    }


def test_mine_custom_domain_label_prefixed():
    counts = mine_ngrams(build_opgraph(models.custom_domain()), n=3).counts
    assert counts == {("Relu", "com.example:Frobnicate", "Neg"): 1}


def test_mine_invalid_range_raises():
    with pytest.raises(ConfigError):
        mine_ngrams(build_opgraph(models.chain()), n=(3, 2))
    with pytest.raises(ConfigError):
        mine_ngrams(build_opgraph(models.chain()), n=0)


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (models.chain, 1),
        (models.diamond, 2),
        (models.duplicate_input, 2),  # x -> Relu -> Add -> y and x -> Mul -> z
        (models.multi_output, 2),
        (models.two_inputs_two_outputs, 4),  # {x, w} x {s, s -> r}
        (models.with_constants_and_identities, 1),
        (models.if_subgraph, 2),  # x -> Relu -> If, and c -> If
    ],
)
def test_count_paths_small_models_exact(builder, expected):
    assert count_paths(build_opgraph(builder())) == expected


def test_count_paths_dense_ladder_is_exact_big_int():
    # 58 doubling blocks, like DenseNet-121's 58 dense layers: 2**58 paths, counted not enumerated.
    assert count_paths(build_opgraph(models.dense_ladder(58))) == 2**58 == 288_230_376_151_711_744


def test_count_paths_subgraph_counts_its_own():
    then_branch = build_opgraph(models.if_subgraph()).nodes["main/1"]["subgraphs"]["then_branch"]
    assert then_branch.graph["output_producers"] == {"t": ("main/1/then_branch/1",)}
    assert count_paths(then_branch) == 0  # the branch has no inputs of its own


def test_longest_path_diamond():
    graph = build_opgraph(models.diamond())
    assert longest_path(graph) == ("main/0", "main/1", "main/3")
    assert longest_path(nx.DiGraph()) == ()


def test_iter_paths_enumerates_all_when_limit_allows():
    graph = build_opgraph(models.two_inputs_two_outputs())
    assert set(iter_paths(graph, limit=100)) == {
        DataflowPath(source="x", nodes=("main/0",), sink="s"),
        DataflowPath(source="x", nodes=("main/0", "main/1"), sink="r"),
        DataflowPath(source="w", nodes=("main/0",), sink="s"),
        DataflowPath(source="w", nodes=("main/0", "main/1"), sink="r"),
    }


def test_iter_paths_stops_at_limit_on_astronomical_graph():
    graph = build_opgraph(models.dense_ladder(58))
    paths = list(iter_paths(graph, limit=5))
    assert len(paths) == len(set(paths)) == 5
    assert all(p.nodes[0] == "main/0" and p.nodes[-1] == "main/116" for p in paths)


def test_iter_paths_limit_zero_and_negative():
    graph = build_opgraph(models.chain())
    assert list(iter_paths(graph, limit=0)) == []
    with pytest.raises(ConfigError):
        list(iter_paths(graph, limit=-1))


def test_ngram_counts_round_trip_and_ranking():
    counts = mine_ngrams(build_opgraph(models.diamond()), n=(1, 2))
    assert NgramCounts.from_dict(counts.to_dict()) == counts
    assert counts.most_common(2, 2) == [(("Exp", "Add"), 1), (("Neg", "Add"), 1)]
    assert counts.present == frozenset(counts.counts)


@pytest.mark.parametrize("text", ["", "x", "0", "4..2", "2..", "1..0"])
def test_parse_ngram_range_rejects(text):
    with pytest.raises(ConfigError):
        parse_ngram_range(text)
