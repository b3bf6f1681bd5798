"""Property tests: opseq's OpGraph, n-grams and path counts against an independent brute force.

`onnx_models()` builds small random, checker-valid ONNX models (opset 17, float tensors of shape
[4] or, after a Split, [2] and [1]): 1-3 graph inputs, one or two initializers, 1-12 nodes added one
by one, each reading graph inputs, initializers or earlier outputs (a DAG by construction). Ops:
Relu/Neg/Exp/Sigmoid, a custom-domain unary ``com.example:Foo``, Add/Mul/Sub (the same tensor may
be read twice), Split into 2 outputs (opset 17: equal halves, no ``num_outputs``), Identity,
Constant, and If nodes whose then/else branches are chains of 1-3 unary nodes (Identity included,
or one level of nested If) reading tensors of the outer scopes. Graph outputs are a random subset of
the produced tensors, possibly a graph input passed straight through. Node names are empty or
repeated.

The brute force below (`_Truth`) is written from the definitions in DESIGN.md ("Words"), not from
opseq's code: it finds producer/consumer pairs by nested scans over the node list, splices ignored
ops (an ignored node's output carries data from whatever its inputs carry data from), then
explicitly enumerates every directed path of real nodes and every graph-input -> graph-output
dataflow path. The tests compare with it:

- `build_opgraph`: node ids (``main/<index>``), labels, names, the edge set (one edge per
  producer/consumer pair), each edge's ``tensors``, ``input_consumers``, ``output_producers``,
  ``ignored``, and the same for If branches (``subgraphs``, ``outer_inputs``); also with other
  ``ignore_ops`` sets;
- `mine_ngrams`: exact counts for n in 1..4 (and random sub-ranges), with and without subgraphs;
- `count_paths`, `iter_paths` (unbounded and with a limit) and `longest_path`;
- determinism: building twice, or after renaming nodes, gives identical ids, edges and counts.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable

import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from opseq.graph import build_opgraph
from opseq.ngrams import count_paths, iter_paths, longest_path, mine_ngrams

SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

UNARY = ("Relu", "Neg", "Exp", "Sigmoid")
BINARY = ("Add", "Mul", "Sub")
DEFAULT_IGNORED = frozenset({"Constant", "Identity"})
MAX_N = 4
CUSTOM_DOMAIN = "com.example"

# ---------------------------------------------------------------------------------------------
# Random models
# ---------------------------------------------------------------------------------------------


def _value(name: str, size: int | None, elem_type: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, [] if size is None else [size])


def _floats(size: int, seed: int) -> onnx.TensorProto:
    return helper.make_tensor(
        f"v{seed}", TensorProto.FLOAT, [size], [float(seed + i) for i in range(size)]
    )


@st.composite
def _branch(draw, names, prefix: str, outer: list[str], size: int, depth: int) -> onnx.GraphProto:
    """A chain of 1-3 unary nodes (or nested Ifs); the first, maybe others, read outer tensors."""
    nodes, previous = [], None
    for j in range(draw(st.integers(1, 3))):
        output = f"{prefix}{j}"
        op = draw(st.sampled_from((*UNARY, "Identity", *(("If",) if depth else ()))))
        if op == "If":  # its branches see the outer scope and this branch's last tensor
            visible = outer if previous is None else [*outer, previous]
            then_branch = draw(_branch(names, f"{output}_then", visible, size, depth - 1))
            else_branch = draw(_branch(names, f"{output}_else", visible, size, depth - 1))
            node = helper.make_node(
                "If",
                ["cond"],
                [output],
                name=draw(names),
                then_branch=then_branch,
                else_branch=else_branch,
            )
        else:
            source = (
                draw(st.sampled_from(outer))
                if previous is None or draw(st.booleans())
                else previous
            )
            node = helper.make_node(op, [source], [output], name=draw(names))
        nodes.append(node)
        previous = output
    return helper.make_graph(nodes, prefix, [], [_value(previous, size)])


@st.composite
def onnx_models(draw, *, allow_if: bool = True, require_if: bool = False) -> onnx.ModelProto:
    """A small random valid ONNX model (see the module docstring)."""
    n_inputs = draw(st.integers(1, 3))
    n_initializers = draw(st.integers(1, 2))
    n_nodes = draw(st.integers(1, 12))
    names_pool = draw(st.sampled_from([("",), ("dup",), ("", "dup", "n")]))
    names = st.sampled_from(names_pool)
    kinds = ["unary", "binary", "split", "identity", "constant"]
    kinds = kinds + ["unary", "binary", "identity", "custom"] + (["if"] if allow_if else [])
    forced_if = draw(st.integers(0, n_nodes - 1)) if require_if else -1
    cond_is_input = draw(st.booleans())

    inputs = [_value(f"x{i}", 4) for i in range(n_inputs)]
    initializers = [
        helper.make_tensor(f"w{i}", TensorProto.FLOAT, [4], [0.5] * 4)
        for i in range(n_initializers)
    ]
    size_of = {f"x{i}": 4 for i in range(n_inputs)} | {f"w{i}": 4 for i in range(n_initializers)}
    produced: list[str] = []  # float tensors produced by main-graph nodes, in order
    nodes: list[onnx.NodeProto] = []
    has_if = False

    def pick(size: int | None = None) -> str:
        pool = [t for t, s in size_of.items() if size is None or s == size]
        if draw(st.booleans()):  # favour recent tensors: longer chains, Identity in the middle
            pool = pool[-2:]
        return draw(st.sampled_from(pool))

    for k in range(n_nodes):
        kind = "if" if k == forced_if else draw(st.sampled_from(kinds))
        out, name = f"t{k}", draw(names)
        if kind == "unary":
            a = pick()
            nodes.append(helper.make_node(draw(st.sampled_from(UNARY)), [a], [out], name=name))
            size_of[out] = size_of[a]
        elif kind == "binary":
            a = pick()
            b = pick(size_of[a])  # may be `a` again: Mul(x, x)
            nodes.append(helper.make_node(draw(st.sampled_from(BINARY)), [a, b], [out], name=name))
            size_of[out] = size_of[a]
        elif kind == "split" and any(s % 2 == 0 for s in size_of.values()):
            a = draw(st.sampled_from([t for t, s in size_of.items() if s % 2 == 0]))
            outs = [f"{out}a", f"{out}b"]
            nodes.append(helper.make_node("Split", [a], outs, name=name, axis=0))
            for o in outs:
                size_of[o] = size_of[a] // 2
            produced.extend(outs)
            continue
        elif kind == "custom":  # labelled "com.example:Foo"
            a = pick()
            nodes.append(helper.make_node("Foo", [a], [out], name=name, domain=CUSTOM_DOMAIN))
            size_of[out] = size_of[a]
        elif kind == "identity":
            a = pick()
            nodes.append(helper.make_node("Identity", [a], [out], name=name))
            size_of[out] = size_of[a]
        elif kind == "if":
            has_if = True
            size = size_of[pick()]
            outer = [t for t, s in size_of.items() if s == size]
            then_branch = draw(_branch(names, f"{out}_then", outer, size, 1))
            else_branch = draw(_branch(names, f"{out}_else", outer, size, 1))
            nodes.append(
                helper.make_node(
                    "If",
                    ["cond"],
                    [out],
                    name=name,
                    then_branch=then_branch,
                    else_branch=else_branch,
                )
            )
            size_of[out] = size
        else:  # constant (also a split with nothing to split)
            nodes.append(helper.make_node("Constant", [], [out], name=name, value=_floats(4, k)))
            size_of[out] = 4
        produced.append(out)

    if has_if:
        if cond_is_input:
            inputs.append(_value("cond", None, TensorProto.BOOL))
        else:
            initializers.append(helper.make_tensor("cond", TensorProto.BOOL, [], [True]))
    chosen = draw(st.lists(st.sampled_from(produced), min_size=1, max_size=4, unique=True))
    if produced[-1] not in chosen and draw(st.booleans()):
        chosen.append(produced[-1])  # the last tensor is often the end of the longest chain
    if draw(st.integers(0, 4)) == 0:
        chosen.append(draw(st.sampled_from([f"x{i}" for i in range(n_inputs)])))
    outputs = [_value(t, size_of[t]) for t in chosen]
    graph = helper.make_graph(nodes, "random", inputs, outputs, initializer=initializers)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid(CUSTOM_DOMAIN, 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------------
# Brute force, from the definitions in DESIGN.md
# ---------------------------------------------------------------------------------------------


def _subgraph_protos(node: onnx.NodeProto) -> list[tuple[str, onnx.GraphProto]]:
    found = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            found.append((attr.name, attr.g))
        elif attr.type == onnx.AttributeProto.GRAPHS:
            found.extend((f"{attr.name}.{k}", g) for k, g in enumerate(attr.graphs))
    return found


def _label(node: onnx.NodeProto) -> str:
    """DESIGN.md: op_type in the default ONNX domain, domain:op_type otherwise."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def _outer_reads(proto: onnx.GraphProto) -> set[str]:
    """Names read anywhere inside `proto` (nested graphs included) that it does not define."""
    defined = {t.name for t in proto.initializer} | {v.name for v in proto.input}
    defined |= {o for node in proto.node for o in node.output}
    reads = set()
    for node in proto.node:
        reads.update(name for name in node.input if name)
        for _, sub in _subgraph_protos(node):
            reads |= _outer_reads(sub)
    return reads - defined


class _Truth:
    """What one GraphProto's OpGraph must be, found by scans and explicit enumeration."""

    def __init__(self, proto: onnx.GraphProto, path: str, ignored: frozenset[str]):
        self.proto, self.path, self.ignored = proto, path, ignored
        self.nodes = list(proto.node)
        constants = {t.name for t in proto.initializer}
        self.inputs = [v.name for v in proto.input if v.name not in constants]
        self.outputs = [v.name for v in proto.output]
        self.real = [i for i, n in enumerate(self.nodes) if _label(n) not in ignored]
        self.ids = {i: f"{path}/{i}" for i in self.real}
        self.labels = {self.ids[i]: _label(self.nodes[i]) for i in self.real}
        self.names = {self.ids[i]: self.nodes[i].name for i in self.real}
        self.ignored_counts = Counter(_label(n) for n in self.nodes if _label(n) in ignored)
        self.subgraphs = {
            self.ids[i]: {
                key: _Truth(sub, f"{self.ids[i]}/{key}", ignored)
                for key, sub in _subgraph_protos(self.nodes[i])
            }
            for i in self.real
            if _subgraph_protos(self.nodes[i])
        }
        self.outer_inputs = sorted(_outer_reads(proto))
        self._pairs()
        self._enumerate()

    # -- dataflow -------------------------------------------------------------------------------

    def _producer(self, name: str) -> int | None:
        for i, node in enumerate(self.nodes):
            if name in node.output:
                return i
        return None

    def sources(self, name: str) -> tuple[frozenset[int], frozenset[str]]:
        """(real producer indices, graph inputs) whose data `name` carries, through ignored ops."""
        i = self._producer(name)
        if i is None:
            return frozenset(), frozenset({name} & set(self.inputs))
        if _label(self.nodes[i]) not in self.ignored:
            return frozenset({i}), frozenset()
        # An ignored node passes on what it reads: its inputs and its subgraphs' outer reads.
        reads = {source for source in self.nodes[i].input if source}
        for _, sub in _subgraph_protos(self.nodes[i]):
            reads |= _outer_reads(sub)
        producers, inputs = set(), set()
        for source in reads:
            p, x = self.sources(source)
            producers |= p
            inputs |= x
        return frozenset(producers), frozenset(inputs)

    def _pairs(self) -> None:
        # explicit[(u, v)]: names among v's inputs, in order, carrying data from u;
        # implicit[(u, v)]: names v's subgraphs read from this graph, carrying data from u.
        # The names are those v reads: through a spliced Identity, the Identity's output name
        # (Relu -> r, Identity(r) -> i, Add(i, r) gives the edge Relu -> Add ("i", "r")).
        self.explicit: dict[tuple[str, str], list[str]] = {}
        self.implicit: dict[tuple[str, str], set[str]] = {}
        self.input_consumers = {x: set() for x in self.inputs}
        for j in self.real:
            v = self.ids[j]
            explicit = [name for name in self.nodes[j].input if name]
            implicit = set()
            for _, sub in _subgraph_protos(self.nodes[j]):
                implicit |= _outer_reads(sub)
            for name, is_explicit in [(n, True) for n in explicit] + [(n, False) for n in implicit]:
                producers, inputs = self.sources(name)
                for p in producers:
                    u = self.ids[p]
                    self.explicit.setdefault((u, v), [])
                    self.implicit.setdefault((u, v), set())
                    if is_explicit:
                        self.explicit[u, v].append(name)
                    else:
                        self.implicit[u, v].add(name)
                for x in inputs:
                    self.input_consumers[x].add(v)
        self.edges = set(self.explicit)
        self.output_producers = {o: {self.ids[p] for p in self.sources(o)[0]} for o in self.outputs}

    # -- explicit enumeration -------------------------------------------------------------------

    def _paths_from(self, start: str) -> list[tuple[str, ...]]:
        """Every directed path starting at `start` (each prefix included)."""
        found, stack = [], [(start,)]
        while stack:
            path = stack.pop()
            found.append(path)
            stack.extend((*path, v) for (u, v) in self.edges if u == path[-1])
        return found

    def _enumerate(self) -> None:
        all_paths = [p for i in self.real for p in self._paths_from(self.ids[i])]
        self.longest = max((len(p) for p in all_paths), default=0)
        self.ngrams = Counter(
            tuple(self.labels[v] for v in p) for p in all_paths if len(p) <= MAX_N
        )
        self.io_paths = {
            (x, path, o)
            for x in self.inputs
            for start in self.input_consumers[x]
            for path in self._paths_from(start)
            for o in self.outputs
            if path[-1] in self.output_producers[o]
        }

    def every(self) -> Iterable[_Truth]:
        yield self
        for subs in self.subgraphs.values():
            for sub in subs.values():
                yield from sub.every()


def _truth(model: onnx.ModelProto, ignored: frozenset[str] = DEFAULT_IGNORED) -> _Truth:
    return _Truth(model.graph, "main", ignored)


# ---------------------------------------------------------------------------------------------
# Comparison helpers
# ---------------------------------------------------------------------------------------------


def _assert_graph_matches(g, truth: _Truth) -> None:
    assert g.graph["path"] == truth.path
    assert g.number_of_nodes() == len(truth.real)
    assert dict(g.nodes(data="label")) == truth.labels
    assert dict(g.nodes(data="name")) == truth.names
    assert set(g.edges) == truth.edges
    for u, v, tensors in g.edges(data="tensors"):
        explicit = truth.explicit[u, v]
        assert list(tensors[: len(explicit)]) == explicit, (u, v, tensors)
        implicit = tensors[len(explicit) :]
        assert len(implicit) == len(set(implicit)), (u, v, tensors)  # each listed once
        assert set(implicit) == truth.implicit[u, v], (u, v, tensors)
    assert list(g.graph["inputs"]) == truth.inputs
    assert list(g.graph["outputs"]) == truth.outputs
    consumers = g.graph["input_consumers"]
    assert {x: set(c) for x, c in consumers.items()} == truth.input_consumers
    assert all(len(c) == len(set(c)) for c in consumers.values())
    producers = g.graph["output_producers"]
    assert {o: set(p) for o, p in producers.items()} == truth.output_producers
    assert g.graph["ignored"] == dict(truth.ignored_counts)
    assert list(g.graph["outer_inputs"]) == truth.outer_inputs
    with_subgraphs = {node: subs for node, subs in g.nodes(data="subgraphs") if subs}
    assert set(with_subgraphs) == set(truth.subgraphs)
    for node, subs in with_subgraphs.items():
        assert set(subs) == set(truth.subgraphs[node])
        for key, sub in subs.items():
            _assert_graph_matches(sub, truth.subgraphs[node][key])


def _snapshot(g) -> tuple:
    """Everything structural about an OpGraph and its subgraphs, in a comparable form."""
    subgraphs = tuple(
        (node, key, _snapshot(sub))
        for node, subs in g.nodes(data="subgraphs")
        if subs
        for key, sub in subs.items()
    )
    keys = (
        "path",
        "inputs",
        "outputs",
        "input_consumers",
        "output_producers",
        "outer_inputs",
        "ignored",
        "topological_order",
    )
    return (
        tuple(g.nodes(data="label")),
        tuple(g.nodes(data="inputs")),
        tuple(g.edges(data="tensors")),
        tuple(repr(g.graph[k]) for k in keys),
        subgraphs,
    )


def _yielded_paths(g, limit: int) -> list[tuple[str, tuple[str, ...], str]]:
    return [(p.source, tuple(p.nodes), p.sink) for p in iter_paths(g, limit=limit)]


def _renamed(model: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    names = itertools.cycle(names)

    def rename(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            node.name = next(names)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    rename(attr.g)

    rename(copy.graph)
    return copy


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(onnx_models())
def test_build_opgraph_random_model_matches_bruteforce_nodes_and_edges(model):
    _assert_graph_matches(build_opgraph(model), _truth(model))


@SETTINGS
@given(
    onnx_models(),
    st.sets(
        st.sampled_from(
            ["Constant", "Identity", "Relu", "Add", "Mul", "Split", "If", "com.example:Foo"]
        ),
        max_size=4,
    ),
)
def test_build_opgraph_custom_ignore_ops_matches_bruteforce_splicing(model, ignore):
    g = build_opgraph(model, ignore_ops=ignore, infer_shapes=False)
    truth = _truth(model, frozenset(ignore))
    _assert_graph_matches(g, truth)
    assert mine_ngrams(g, n=(1, MAX_N), include_subgraphs=False).counts == truth.ngrams
    assert count_paths(g) == len(truth.io_paths)


@SETTINGS
@given(onnx_models())
def test_mine_ngrams_main_graph_equals_bruteforce_path_labels(model):
    counts = mine_ngrams(build_opgraph(model), n=(1, MAX_N), include_subgraphs=False).counts
    assert dict(counts) == dict(_truth(model).ngrams)
    assert all(count > 0 for count in counts.values())


@SETTINGS
@given(onnx_models(), st.integers(1, MAX_N), st.integers(0, MAX_N - 1))
def test_mine_ngrams_subrange_equals_bruteforce_of_those_lengths(model, n_min, extra):
    n_max = min(MAX_N, n_min + extra)
    result = mine_ngrams(build_opgraph(model), n=(n_min, n_max), include_subgraphs=False)
    expected = {k: c for k, c in _truth(model).ngrams.items() if n_min <= len(k) <= n_max}
    assert (result.n_min, result.n_max) == (n_min, n_max)
    assert dict(result.counts) == expected
    single = mine_ngrams(build_opgraph(model), n=n_min, include_subgraphs=False)
    assert dict(single.counts) == {k: c for k, c in expected.items() if len(k) == n_min}


@SETTINGS
@given(onnx_models(require_if=True))
def test_mine_ngrams_with_subgraphs_adds_each_branch_counts(model):
    truth = _truth(model)
    expected = Counter()
    for each in truth.every():
        expected.update(each.ngrams)
    assert len(list(truth.every())) > 1  # the model has an If, so branches were counted
    g = build_opgraph(model)
    assert dict(mine_ngrams(g, n=(1, MAX_N), include_subgraphs=True).counts) == dict(expected)
    assert dict(mine_ngrams(g, n=(1, MAX_N), include_subgraphs=False).counts) == dict(truth.ngrams)


@SETTINGS
@given(onnx_models(require_if=True))
def test_build_opgraph_if_branch_reading_outer_tensor_gets_edge_from_its_producer(model):
    g, truth = build_opgraph(model), _truth(model)
    _assert_graph_matches(g, truth)
    for j, node in enumerate(model.graph.node):
        if node.op_type != "If":
            continue
        if_id = f"main/{j}"
        reads = set().union(*(_outer_reads(sub) for _, sub in _subgraph_protos(node)))
        for name in reads:
            for p in truth.sources(name)[0]:
                assert g.has_edge(f"main/{p}", if_id)
                assert name in g.edges[f"main/{p}", if_id]["tensors"]


@SETTINGS
@given(onnx_models())
def test_count_paths_random_model_equals_bruteforce_enumeration(model):
    assert count_paths(build_opgraph(model)) == len(_truth(model).io_paths)


@SETTINGS
@given(onnx_models())
def test_iter_paths_unbounded_yields_every_bruteforce_path_once(model):
    paths = _yielded_paths(build_opgraph(model), 10**6)
    assert len(paths) == len(set(paths))
    assert set(paths) == _truth(model).io_paths


@SETTINGS
@given(onnx_models(), st.integers(0, 40))
def test_iter_paths_limit_yields_min_of_limit_and_total_distinct_paths(model, limit):
    truth = _truth(model)
    paths = _yielded_paths(build_opgraph(model), limit)
    assert len(paths) == min(limit, len(truth.io_paths))
    assert len(set(paths)) == len(paths)
    assert set(paths) <= truth.io_paths


@SETTINGS
@given(onnx_models())
def test_longest_path_random_model_is_a_real_path_of_maximum_length(model):
    g, truth = build_opgraph(model), _truth(model)
    path = longest_path(g)
    assert len(path) == truth.longest
    assert all(node in truth.labels for node in path)
    assert all((u, v) in truth.edges for u, v in itertools.pairwise(path))


@SETTINGS
@given(onnx_models())
def test_build_opgraph_same_model_twice_gives_identical_graph_and_counts(model):
    first, second = build_opgraph(model), build_opgraph(model)
    assert _snapshot(first) == _snapshot(second)
    assert mine_ngrams(first).counts == mine_ngrams(second).counts
    assert count_paths(first) == count_paths(second)
    assert list(iter_paths(first, limit=100)) == list(iter_paths(second, limit=100))


@SETTINGS
@given(onnx_models(), st.sampled_from([("",), ("same",), ("a", "b", "a"), ("main/0", "x")]))
def test_build_opgraph_node_names_changed_gives_same_ids_and_counts(model, names):
    renamed = _renamed(model, names)
    g, h = build_opgraph(model), build_opgraph(renamed)
    assert _snapshot(g) == _snapshot(h)
    assert mine_ngrams(g).counts == mine_ngrams(h).counts
    real = [j for j, n in enumerate(model.graph.node) if _label(n) not in DEFAULT_IGNORED]
    assert sorted(h.nodes) == sorted(f"main/{j}" for j in real)
    for j in real:
        assert h.nodes[f"main/{j}"]["name"] == renamed.graph.node[j].name
        assert h.nodes[f"main/{j}"]["op_type"] == model.graph.node[j].op_type
