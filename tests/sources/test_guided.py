"""Coverage-guided choice of synthetic cases: ordinary ids, deterministic, more items, a safe state.

The small example is 6 slots (sizes 15..40) with 3 candidates each, so a call builds 18 graphs.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from opseq import __version__
from opseq.errors import ConfigError
from opseq.sources import Framework
from opseq.sources.synthetic.builder import SyntheticGraph, SyntheticNode, build_graph
from opseq.sources.synthetic.guided import (
    ITEM_KINDS,
    GuidanceState,
    guided_case_ids,
    item_kind,
    items,
)
from opseq.sources.synthetic.ops import TensorType
from opseq.sources.synthetic.source import SIZES, TORCH_SOURCE, SyntheticSource, parse_case_id

COUNT, CANDIDATES = 6, 3
LOGGER = "opseq.sources.synthetic.guided"


@pytest.fixture
def builds(monkeypatch):
    """Count the graphs the torch source builds (a list of case ids)."""
    built: list[str] = []
    original = SyntheticSource.graph

    def counting(self, case_id):
        built.append(case_id)
        return original(self, case_id)

    monkeypatch.setattr(SyntheticSource, "graph", counting)
    return built


def _choose(state_path=None, *, count=COUNT, source=TORCH_SOURCE, seed=0):
    return guided_case_ids(
        source, count=count, seed=seed, candidates=CANDIDATES, state_path=state_path
    )


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]


# --- items ------------------------------------------------------------------------------------


def _graph() -> SyntheticGraph:
    x = TensorType(shape=(1, 4, 8))
    node = SyntheticNode
    return SyntheticGraph(
        framework="torch",
        seed=0,
        inputs=(("x0", x),),
        nodes=(
            node(name="n0", op="Relu", inputs=("x0",), attrs={}, output=x),
            node(name="n1", op="LeakyRelu", inputs=("n0",), attrs={"alpha": 0.2}, output=x),
            node(name="n2", op="Add", inputs=("n1", "n0"), attrs={}, output=x),
            node(
                name="n3",
                op="Reshape",
                inputs=("n2",),
                attrs={"shape": (1, 32)},
                output=TensorType(shape=(1, 32)),
            ),
        ),
        outputs=("n3",),
    )


def test_items_of_a_handmade_graph_are_exact():
    assert items(_graph()) == {
        "op:Relu",
        "op:LeakyRelu",
        "op:Add",
        "op:Reshape",
        "attribute:LeakyRelu.alpha~1e-1",
        "attribute:Reshape.shape=[1,~2^5]",
        "dtypes:Relu(float32)",
        "dtypes:LeakyRelu(float32)",
        "dtypes:Add(float32,float32)",
        "dtypes:Reshape(float32)",
        "ranks:Relu(3)",
        "ranks:LeakyRelu(3)",
        "ranks:Add(3,3)",
        "ranks:Reshape(3)",
        "pair:Relu>LeakyRelu@0",
        "pair:LeakyRelu>Add@0",
        "pair:Relu>Add@1",
        "pair:Add>Reshape@0",
    }
    assert {item_kind(i) for i in items(_graph())} == set(ITEM_KINDS)


def test_score_weighs_an_item_seen_n_times_one_over_n_plus_one():
    state = GuidanceState(counts={"op:Relu": 1, "pair:Relu>Add@0": 2})
    assert state.score({"op:Relu", "op:Add", "pair:Relu>Add@0"}) == pytest.approx(1 / 2 + 1 + 1 / 3)
    assert state.score(set()) == 0
    assert state.distinct("op") == 1 and state.distinct() == 2


def test_state_round_trips_through_its_dict_and_refuses_a_malformed_one():
    state = GuidanceState.of([_graph()])
    data = state.to_dict()
    assert data["distinct"] == {"op": 4, "attribute": 2, "dtypes": 4, "ranks": 4, "pair": 4}
    assert GuidanceState.from_dict(json.loads(json.dumps(data))) == state
    for counts in ([], {"op:Relu": 0}, {"op:Relu": True}, {"op:Relu": 1.0}):
        with pytest.raises(ValueError, match="counts must map"):
            GuidanceState.from_dict({"counts": counts})


# --- choosing ---------------------------------------------------------------------------------


def _unguided(count: int) -> list[str]:
    """The first ids of ``TORCH_SOURCE.case_ids(seed=0)``, without growing every family."""
    return [f"n{SIZES[i % len(SIZES)]:03d}-s{i // len(SIZES):06d}" for i in range(count)]


@pytest.mark.slow  # naming the unguided cases grows every family: about 15 s
def test_unguided_ids_are_the_source_s_first_ids():
    assert _unguided(40) == TORCH_SOURCE.case_ids(count=40, seed=0)


def test_guided_ids_are_ordinary_distinct_ids_of_the_unguided_sizes():
    ids = _choose(count=10)
    assert len(set(ids)) == 10
    assert [parse_case_id(i)[0] for i in ids] == [parse_case_id(i)[0] for i in _unguided(10)]
    for case_id in ids[:3]:
        nodes, seed = parse_case_id(case_id)
        graph = build_graph(nodes=nodes, seed=seed, framework="torch")
        assert TORCH_SOURCE.graph(case_id) == graph and len(graph.nodes) == nodes


@pytest.mark.torch
def test_a_guided_id_builds_as_a_torch_model_alone():
    import torch

    case = TORCH_SOURCE.build(_choose(count=2)[1], seed=0)
    assert case.metadata["nodes"] == 20
    inputs = [torch.zeros(spec.shape) for spec in case.inputs]
    with torch.no_grad():
        case.model(*inputs)


def test_guided_choice_is_deterministic_and_a_prefix_of_longer_ones():
    first = _choose()
    assert _choose() == first
    assert _choose(count=3) == first[:3]
    assert _choose(seed=1) != first


def test_guided_covers_more_items_than_unguided_for_the_same_count():
    guided = GuidanceState.of(TORCH_SOURCE.graph(i) for i in _choose(count=12))
    blind = GuidanceState.of(TORCH_SOURCE.graph(i) for i in _unguided(12))
    # Computed once with seed 0 and 3 candidates per slot, and pinned.
    assert (guided.distinct(), blind.distinct()) == (1206, 1089)
    for kind in ITEM_KINDS:
        assert guided.distinct(kind) >= blind.distinct(kind), kind


@pytest.mark.parametrize(
    "arguments", [{"count": -1}, {"seed": -1}, {"candidates": 0}, {"candidates": True}]
)
def test_guided_refuses_bad_arguments(arguments):
    with pytest.raises(ConfigError, match="guided generation needs"):
        guided_case_ids(TORCH_SOURCE, **{"count": 1, "seed": 0, **arguments})


# --- state file -------------------------------------------------------------------------------


def test_state_is_reused_without_building_and_extended_from_the_chosen_ids(tmp_path, builds):
    path = tmp_path / "guidance.json"
    first = _choose(path)
    assert len(builds) == COUNT * CANDIDATES
    state = json.loads(path.read_text())
    assert state["case_ids"] == first and state["source"] == "synthetic-torch"
    assert state["schema_version"] == 1 and state["opseq_version"] == __version__
    assert state["graphs_built"] == COUNT * CANDIDATES and state["build_s"] > 0

    builds.clear()
    assert _choose(path) == first and _choose(path, count=2) == first[:2]
    assert builds == []

    longer = _choose(path, count=COUNT + 2)
    assert len(builds) == COUNT + 2 * CANDIDATES  # the chosen graphs again, then 2 new slots
    assert longer == _choose(count=COUNT + 2)
    assert json.loads(path.read_text())["graphs_built"] == (COUNT + 2) * CANDIDATES


@pytest.fixture(scope="module")
def valid_state(tmp_path_factory) -> dict:
    """A state file's content as `_choose` writes it."""
    path = tmp_path_factory.mktemp("guided") / "valid.json"
    _choose(path)
    return json.loads(path.read_text())


REPEATED = [f"n{n:03d}-s000001" for n in SIZES] + ["n015-s000001"]
HUGE = "9" * 5000  # beyond Python's int-from-text limit: json.loads refuses it


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("other schema", lambda s: {**s, "schema_version": 2}, "schema_version is 2"),
        ("other opseq", lambda s: {**s, "opseq_version": "0.0.1"}, "opseq_version is '0.0.1'"),
        ("other source", lambda s: {**s, "source": "synthetic-tf"}, "source is 'synthetic-tf'"),
        ("other vocabulary", lambda s: {**s, "vocabulary": ["Relu"]}, "vocabulary is a list"),
        ("other seed", lambda s: {**s, "seed": 3}, "seed is 3"),
        ("bool for int", lambda s: {**s, "schema_version": True}, "schema_version is True"),
        ("corrupt", lambda s: "{not json", "not valid JSON"),
        ("truncated", lambda s: json.dumps(s)[:100], "not valid JSON"),
        ("empty", lambda s: "", "not valid JSON"),
        ("not utf-8", lambda s: b"\xff\xfe{}", "not valid JSON"),
        ("a list", lambda s: [s], "a JSON list, not an object"),
        ("huge int", lambda s: json.dumps(s).replace('"seed": 0', f'"seed": {HUGE}'), "JSON"),
        ("huge float", lambda s: json.dumps(s).replace('"seed": 0', '"seed": 1e999'), "seed is"),
        ("deep", lambda s: "[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ("ids not ids", lambda s: {**s, "case_ids": ["x\x1b[2J"] * COUNT}, "not a synthetic"),
        ("ids wrong size", lambda s: {**s, "case_ids": s["case_ids"][1:]}, "not the slot's size"),
        ("ids repeated", lambda s: {**s, "case_ids": REPEATED}, "repeats an id"),
        ("shorter, valid", lambda s: {**s, "case_ids": s["case_ids"][:1]}, None),
        ("ids not a list", lambda s: {**s, "case_ids": {"a": 1}}, "not a list of strings"),
        ("huge timing", lambda s: {**s, "graphs_built": 10**100}, "graphs_built is not"),
        ("negative time", lambda s: {**s, "build_s": -1.0}, "timing"),
    ],
)
def test_a_bad_state_is_ignored_with_one_warning_and_recomputed(
    name, content, reason, valid_state, tmp_path, caplog, builds
):
    valid = valid_state
    path = tmp_path / "guidance.json"
    data = content(valid)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    builds.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ids = _choose(path)
    warnings = _warnings(caplog)
    if reason is None:  # a valid shorter state (one id): reused and extended, no warning
        assert warnings == [] and ids == valid["case_ids"]
        return
    assert len(warnings) == 1, warnings
    assert reason in warnings[0] and "\n" not in warnings[0] and "\x1b" not in warnings[0]
    assert warnings[0].startswith(f"ignoring the guidance state {path}: ")
    assert ids == valid["case_ids"] and len(builds) == COUNT * CANDIDATES
    assert json.loads(path.read_text()) == {**valid, **_timings(path)}  # rewritten, valid


def _timings(path) -> dict:
    state = json.loads(path.read_text())
    return {key: state[key] for key in ("build_s", "score_s")}


def test_a_state_that_is_not_a_regular_file_is_ignored_and_replaced(tmp_path, caplog):
    path = tmp_path / "guidance.json"
    path.symlink_to("/dev/zero")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ids = _choose(path)
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "not a regular file" in warnings[0]
    assert not path.is_symlink() and json.loads(path.read_text())["case_ids"] == ids


def test_a_state_of_another_source_name_is_not_reused(tmp_path, caplog):
    path = tmp_path / "guidance.json"
    _choose(path)
    other = SyntheticSource(name="synthetic-other", framework=Framework.TORCH)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ids = _choose(path, source=other)
    assert len(_warnings(caplog)) == 1 and "source is 'synthetic-torch'" in _warnings(caplog)[0]
    assert ids == _choose(source=other)


def test_a_restricted_source_chooses_its_own_ops_and_does_not_reuse_the_full_state(
    tmp_path, caplog
):
    path = tmp_path / "guidance.json"
    _choose(path)
    restricted = TORCH_SOURCE.restricted(["Relu", "Add", "Mul", "Sigmoid"])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ids = _choose(path, source=restricted)
    assert len(_warnings(caplog)) == 1 and "vocabulary is a list of 80" in _warnings(caplog)[0]
    ops = {op for case_id in ids for op in restricted.graph(case_id).ops}
    assert ops == {"Relu", "Add", "Mul", "Sigmoid"}


def test_an_unwritable_state_is_one_warning_and_the_ids_are_still_chosen(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        ids = _choose(blocker / "guidance.json")
    assert ids == _choose() and len(_warnings(caplog)) == 1
    assert "could not write the guidance state" in _warnings(caplog)[0]


def test_candidate_seeds_are_drawn_from_seed_and_slot_only():
    seeds = [parse_case_id(i)[1] for i in _choose(count=2)]
    for slot, graph_seed in enumerate(seeds):
        drawn = np.random.default_rng([0, slot]).integers(0, 1_000_000, size=CANDIDATES)
        assert graph_seed in drawn
