"""The wide synthetic vocabulary: v1 frozen, new ops reachable, integer dataflow, restrictions.

Exact values of each new op in both frameworks are in ``test_synthetic_wide_values.py``.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from opseq.errors import ConfigError
from opseq.outcomes import Outcome
from opseq.sources import Framework, get_source
from opseq.sources.synthetic import OPS, build_graph, vocabulary
from opseq.sources.synthetic.builder import can_start
from opseq.sources.synthetic.ops import INPUT_DTYPES
from opseq.sources.synthetic.source import SIZES, SyntheticSource, parse_case_id

# sha256 of repr(build_graph(...)) computed with the single-module vocabulary, before the split
# and before the wide ops existed: shipped corpus rows name these graphs by case id.
FROZEN_GRAPHS = {
    ("torch", 35, 12): "7ab0e544ddfde7452fc70ff22439833fb31396deabca21d527bcbd3d319f20ac",
    ("torch", 15, 0): "7e9306d840f729e72adcc983f6757b1c7365a4c44ffed75774e5a01d09cb683e",
    ("torch", 100, 7): "754c16a8f134be54f34e38be6481916cad0d8dfe21bcef4c3a823e84d7d900a9",
    ("torch", 60, 123456): "3edf20b8258093772f861ade0f1156fca32507309423051c14e4d331de079df9",
    ("tensorflow", 35, 12): "b232bf28e0a9f44d491cf3291f7ca174fe6adb91c6be4c2cf867d32639ed2cba",
    ("tensorflow", 15, 0): "56280bd999afda469afe90abb6ad7431dc6b695da897d40e6a7ab57b010a829f",
    ("tensorflow", 100, 7): "8b8c140f883c14521f0ec30227fd3b84f1d70032c349051a3490abc114bfface",
    ("tensorflow", 60, 123456): "41d07995b60b5cf479dff438676cfa3f1bfdbf3a0b01ecc60bc848f8a31737c4",
}
# sha256 over every case id of the registered v1 source (seed 0) and the repr of its graph.
FROZEN_CASE_IDS = {
    "synthetic-torch": (816, "522e0920c0cf779adead3230264fa5d75651cacdb8f318d80425c0db498ff41e"),
    "synthetic-tf": (816, "420f1bf53cf9d5be68566a7d2cb60caf5cd398cc9fa53be850d39aa54eaf4001"),
}
# sha256 of ",".join(vocabulary(framework)): the v1 names in their order (80 each).
FROZEN_VOCABULARY = {
    "torch": "0933dfc0e80224b14de98d42ecfc31bb21721d94cc5b6229bdca3bebdaa0913d",
    "tensorflow": "b663a966e12137de15a6f8dccba39ba92d15e987173190bca3030bf90fca743e",
}
NEW_OPS = {
    "DivTrue", "DivFloor", "DivTrunc", "Remainder", "Fmod", "BitShiftLeft", "BitShiftRight",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "CastWide", "WhereInt", "ClampInt",
    "MaxInt", "MinInt", "MatMulInt", "Sign", "ArgMaxTies", "ArgMinTies", "Fmax", "Fmin",
    "GatherNegative", "GatherElements", "ScatterElements", "CumSumVariant", "TopKValues",
    "TopKIndices", "UniqueInverse", "UniqueCounts", "Einsum", "EinsumUnary", "PadReflect",
    "PadReplicate", "PadCircular", "PadSymmetric", "ReduceAxes", "ReduceProd", "ReduceDimEmpty",
    "ReduceAxisEmpty", "RoundDecimals", "IsNaN", "IsInf", "Reciprocal", "HardSwish", "Mish",
    "InterpolateModes", "ResizeMethods", "ResizingLayer", "ResizeV1",
}  # fmt: skip
INTEGERS = {"int32", "int64"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _wide_graph(framework: str, nodes: int, seed: int):
    names = vocabulary(framework, "wide")
    return build_graph(
        nodes=nodes,
        seed=seed,
        framework=framework,
        vocabulary=names,
        input_dtypes=INPUT_DTYPES["wide"],
    )


def _consuming(graph, dtypes) -> list[bool]:
    """Per node, whether it reads a tensor of one of `dtypes` (an integer or bool op)."""
    types = graph.types()
    return [any(types[r].dtype in dtypes for r in node.inputs) for node in graph.nodes]


@pytest.mark.parametrize(("framework", "nodes", "seed"), sorted(FROZEN_GRAPHS))
def test_v1_graph_of_a_case_id_is_unchanged(framework, nodes, seed):
    graph = build_graph(nodes=nodes, seed=seed, framework=framework)
    assert _sha(repr(graph)) == FROZEN_GRAPHS[(framework, nodes, seed)]


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_v1_vocabulary_names_and_order_are_unchanged(framework):
    assert _sha(",".join(vocabulary(framework))) == FROZEN_VOCABULARY[framework]
    assert vocabulary(framework, "v1") == vocabulary(framework)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FROZEN_CASE_IDS))
def test_v1_source_case_ids_and_every_graph_are_unchanged(name):
    source = get_source(name)
    ids = source.case_ids(count=None, seed=0)
    digest = hashlib.sha256()
    for case_id in ids:
        digest.update(case_id.encode())
        digest.update(repr(source.graph(case_id)).encode())
    assert (len(ids), digest.hexdigest()) == FROZEN_CASE_IDS[name]


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_wide_vocabulary_is_v1_followed_by_the_new_ops(framework):
    v1, wide = vocabulary(framework), vocabulary(framework, "wide")
    assert wide[: len(v1)] == v1
    new = set(wide[len(v1) :])
    assert new == {op for op in NEW_OPS if framework in OPS[op].frameworks}
    assert len(new) >= 40


def test_every_new_op_states_its_framework_calls_and_only_those():
    for name in NEW_OPS:
        spec = OPS[name]
        assert set(spec.calls) == set(spec.frameworks), name
        assert all(call.strip() for call in spec.calls.values()), name
    assert OPS["Fmax"].frameworks == {"torch"}
    assert OPS["PadSymmetric"].frameworks == {"tensorflow"}
    assert OPS["ReduceDimEmpty"].frameworks == {"torch"}
    assert OPS["ReduceAxisEmpty"].frameworks == {"tensorflow"}


def test_unknown_vocabulary_version_is_a_key_error():
    with pytest.raises(KeyError):
        vocabulary("torch", "v2")


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_wide_graphs_have_exactly_nodes_and_consistent_types(framework):
    for nodes in (1, 15, 40, 100):
        for seed in range(4):
            graph = _wide_graph(framework, nodes, seed)
            assert len(graph.nodes) == nodes
            types = graph.types()
            for node in graph.nodes:
                spec = OPS[node.op]
                assert framework in spec.frameworks and len(node.inputs) == spec.arity
                assert spec.infer(tuple(types[r] for r in node.inputs), node.attrs) == node.output
            assert {t.dtype for _, t in graph.inputs} <= set(INPUT_DTYPES["wide"])


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_most_wide_models_of_35_nodes_have_integer_and_bool_ops(framework):
    wide = [_wide_graph(framework, 35, seed) for seed in range(60)]
    v1 = [build_graph(nodes=35, seed=seed, framework=framework) for seed in range(60)]

    def share_of_models(graphs, dtypes):
        return sum(any(_consuming(g, dtypes)) for g in graphs) / len(graphs)

    def share_of_nodes(graphs, dtypes):
        return sum(sum(_consuming(g, dtypes)) for g in graphs) / sum(len(g.nodes) for g in graphs)

    assert share_of_models(wide, INTEGERS) >= 0.3 and share_of_models(wide, {"bool"}) >= 0.3
    assert share_of_nodes(wide, INTEGERS) >= 10 * share_of_nodes(v1, INTEGERS)


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_every_new_op_appears_within_the_first_wide_models(framework):
    seen = set()
    for seed in range(40):
        seen.update(_wide_graph(framework, 35, seed).ops)
    assert {op for op in NEW_OPS if framework in OPS[op].frameworks} <= seen


@pytest.mark.slow
@pytest.mark.parametrize("framework", [Framework.TORCH, Framework.TENSORFLOW])
def test_every_new_op_appears_in_every_wide_family(framework):
    # min_per_size=1: each family stops as soon as it has used every op, the same rule the
    # registered sources apply with 45 models at least.
    source = SyntheticSource(name="wide", framework=framework, version="wide", min_per_size=1)
    families: dict[int, set[str]] = {}
    for case_id in source.case_ids(count=None, seed=0):
        families.setdefault(parse_case_id(case_id)[0], set()).update(source.graph(case_id).ops)
    assert set(families) == set(SIZES)
    for ops in families.values():
        assert ops == set(source.vocabulary)
        assert {op for op in NEW_OPS if framework.value in OPS[op].frameworks} <= ops


@pytest.mark.parametrize("name", ["synthetic-torch-wide", "synthetic-tf-wide"])
def test_wide_sources_are_registered_and_grow_wide_graphs(name):
    source = get_source(name)
    assert source.version == "wide" and source.name == name
    assert source.graph("n035-s000012") == _wide_graph(source.framework.value, 35, 12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["synthetic-torch-wide", "synthetic-tf-wide"])
def test_wide_source_case_ids_interleave_the_size_families(name):
    source = get_source(name)
    ids = source.case_ids(count=None, seed=0)
    assert len(ids) == len(set(ids)) >= 18 * 45
    assert sorted(parse_case_id(i)[0] for i in ids[:18]) == list(SIZES)


def test_restricted_source_grows_only_matching_ops_and_keeps_the_case_id_form():
    source = get_source("synthetic-torch-wide").restricted(["Div*", "Cast", "Gather*"])
    assert set(source.vocabulary) == {
        "Cast", "Div", "Gather", "DivTrue", "DivFloor", "DivTrunc", "GatherNegative",
        "GatherElements",
    }  # fmt: skip
    assert source.name == "synthetic-torch-wide"
    assert source.ops_filter == ("Div*", "Cast", "Gather*")
    for case_id in ("n015-s000000", "n035-s000012", "n100-s000003"):
        graph = source.graph(case_id)
        assert len(graph.nodes) == parse_case_id(case_id)[0]
        assert set(graph.ops) <= set(source.vocabulary)


def test_restricted_v1_source_keeps_v1_growth_for_float_inputs():
    source = get_source("synthetic-tf").restricted(["Relu", "Add"])
    assert source.input_dtypes == ("float32",)
    graph = source.graph("n020-s000003")
    assert set(graph.ops) <= {"Relu", "Add"} and len(graph.nodes) == 20
    assert {t.dtype for _, t in graph.inputs} == {"float32"}


def test_restricted_to_bool_ops_grows_from_bool_inputs_only():
    source = get_source("synthetic-torch-wide").restricted(["Logical*"])
    assert source.input_dtypes == ("bool",)
    graph = source.graph("n015-s000000")
    assert {t.dtype for _, t in graph.inputs} == {"bool"}


@pytest.mark.parametrize(
    ("name", "patterns", "message"),
    [
        ("synthetic-torch-wide", ["Nothing*"], "--ops Nothing*: no op of synthetic-torch-wide"),
        ("synthetic-torch-wide", [], "--ops : no op of"),
        ("synthetic-torch", ["Logical*"], "--ops Logical*: the matching ops (LogicalNot,"),
        ("synthetic-tf-wide", ["Fmax"], "--ops Fmax: no op of synthetic-tf-wide"),
    ],
)
def test_restricted_raises_one_line_config_error_naming_the_option(name, patterns, message):
    with pytest.raises(ConfigError) as raised:
        get_source(name).restricted(patterns)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_restricted_quotes_control_characters_in_patterns():
    with pytest.raises(ConfigError) as raised:
        get_source("synthetic-torch-wide").restricted(["Div\x1b[31m"])
    assert "\x1b" not in str(raised.value)


def test_can_start_needs_an_op_that_takes_some_input_type():
    assert not can_start(["LogicalNot"], framework="torch")
    assert can_start(["LogicalNot"], framework="torch", input_dtypes=("bool",))
    assert not can_start(["BitwiseNot"], framework="torch", input_dtypes=("float32", "bool"))
    assert can_start(["BitwiseNot"], framework="torch", input_dtypes=("int32",))


def test_naming_and_growing_wide_cases_imports_no_framework():
    code = (
        "import sys; from opseq.sources import get_source;"
        "[get_source(n).restricted(['Div*']).graph('n030-s000001')"
        " for n in ('synthetic-torch-wide', 'synthetic-tf-wide')];"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.torch
def test_wide_torch_case_has_integer_input_specs_and_records_its_vocabulary():
    source = get_source("synthetic-torch-wide")
    case_id = next(
        i
        for i in (f"n015-s{seed:06d}" for seed in range(20))
        if any(t.dtype in INTEGERS for _, t in source.graph(i).inputs)
    )
    case = source.build(case_id, seed=0)
    graph = source.graph(case_id)
    assert [s.name for s in case.inputs] == [n for n, _ in graph.inputs]
    for spec, (_, t) in zip(case.inputs, graph.inputs, strict=True):
        assert spec.dtype == t.dtype and spec.shape == t.shape
        if t.dtype in INTEGERS:
            assert (spec.low, spec.high) == ((0, 16) if t.nonneg else (-16, 16))
            assert spec.role == "data"
    assert case.metadata["vocabulary"] == "wide" and "ops_filter" not in case.metadata
    restricted = source.restricted(["Div*", "Cast*"])
    small = restricted.build("n015-s000000", seed=0)
    assert small.metadata["ops_filter"] == ["Div*", "Cast*"]
    assert "ops_filter" not in get_source("synthetic-torch").build("n015-s000000").metadata


def _feeds(case):
    from opseq.sources import make_inputs

    return make_inputs(case.inputs, count=2, seed=0)


def _check_case_runs(source, case_id: str) -> str | None:
    """Run a case and its float64 twin; return what disagrees with the graph, if anything."""
    from opseq.difftest.execute import run_framework
    from opseq.difftest.float64 import run_float64

    case = source.build(case_id, seed=0)
    graph = source.graph(case_id)
    types = graph.types()
    feeds = _feeds(case)
    outputs = run_framework(case, feeds)
    for out in outputs:
        got = [(o.shape, o.dtype.name) for o in out]
        want = [(types[n].shape, types[n].dtype) for n in graph.outputs]
        if got != want:
            return f"{case_id}: outputs {got}, graph says {want}"
    reference = run_float64(case, feeds, outputs)
    if reference.note is not None:
        return f"{case_id}: {reference.note}"
    for twin, out in zip(reference.outputs[0], outputs[0], strict=True):
        want = "float64" if out.dtype.kind == "f" else out.dtype.name
        if twin.dtype.name != want:
            return f"{case_id}: the twin returns {twin.dtype.name} for {out.dtype.name}"
    return None


def run_wide_keras_cases(task: dict) -> dict:
    """Worker target: check each ``synthetic-tf-wide`` case; return the failures."""
    source = get_source("synthetic-tf-wide")
    failures = [f for f in (_check_case_runs(source, i) for i in task["case_ids"]) if f]
    return {"checked": len(task["case_ids"]), "failures": failures}


@pytest.mark.torch
@pytest.mark.parametrize("seeds", [3, pytest.param(25, marks=pytest.mark.slow)])
def test_wide_torch_models_and_their_float64_twins_run_as_their_graphs_say(seeds):
    source = get_source("synthetic-torch-wide")
    case_ids = [f"n{nodes:03d}-s{seed:06d}" for nodes in (15, 50, 100) for seed in range(seeds)]
    failures = [f for f in (_check_case_runs(source, i) for i in case_ids) if f]
    assert failures == []


@pytest.mark.tf
@pytest.mark.slow
def test_wide_keras_models_and_their_float64_twins_run_as_their_graphs_say():
    # In a worker set up as campaigns set theirs up (see the v1 test in test_synthetic.py).
    from opseq.difftest.campaign import WORKER_ENVIRONMENT
    from opseq.difftest.isolate import Limits, TaskStatus, WorkerPool

    case_ids = [f"n{nodes:03d}-s{seed:06d}" for nodes in (15, 50, 100) for seed in range(25)]
    target = "tests.sources.test_synthetic_wide:run_wide_keras_cases"
    limits = Limits(timeout_s=1800, memory_mb=None)
    with WorkerPool(target, workers=1, limits=limits, environment=WORKER_ENVIRONMENT) as pool:
        (result,) = pool.map_unordered([{"case_ids": case_ids}])
    assert result.status is TaskStatus.DONE, result.error
    assert result.payload == {"checked": len(case_ids), "failures": []}


def _difftest(case, converter_name):
    from opseq.difftest.convert import get_converter
    from opseq.difftest.oracle import run_difftest

    return run_difftest(case, get_converter(converter_name), n_inputs=3, latency_repeats=0)


@pytest.mark.slow
@pytest.mark.torch
def test_wide_torch_models_through_torchscript_give_outcomes_and_refusals_are_convert_fail():
    source = get_source("synthetic-torch-wide")
    outcomes = {}
    for case_id in ("n015-s000000", "n020-s000000", "n015-s000004", "n020-s000002"):
        result = _difftest(source.build(case_id, seed=0), "torch.onnx-torchscript")
        assert isinstance(result.outcome, Outcome)
        outcomes[case_id] = result
    refused = outcomes["n015-s000000"]  # bitwise_xor: no TorchScript symbolic at opset 17
    assert refused.outcome is Outcome.CONVERT_FAIL
    assert "bitwise_xor" in refused.failure.message


@pytest.mark.slow
@pytest.mark.tf
def test_wide_keras_models_through_tf2onnx_give_outcomes_and_failures_are_recorded():
    source = get_source("synthetic-tf-wide")
    outcomes = {}
    for case_id in ("n015-s000000", "n020-s000000", "n030-s000000"):
        result = _difftest(source.build(case_id, seed=0), "tf2onnx")
        assert isinstance(result.outcome, Outcome)
        outcomes[case_id] = result
    # tf2onnx does not refuse tf.bitwise.bitwise_and: it leaves the TF op in the graph, and
    # ONNX Runtime refuses the model.
    passed_through = outcomes["n020-s000000"]
    assert passed_through.outcome is Outcome.LOAD_FAIL
    assert "BitwiseAnd" in passed_through.failure.message
