"""Grow random operator DAGs that are valid by construction (no solver).

A graph starts from one or two input tensors and grows one op instance at a time: pick an op,
pick inputs among the existing tensors (preferring recent and not yet consumed ones, so graphs are
deep), and keep the instance if the op's ``sample`` accepts them; its output type comes from
``infer``. Everything is drawn from ``np.random.default_rng(seed)``. Pure numpy: no framework is
imported here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from opseq.sources.synthetic.ops import OPS, OpSpec, TensorType
from opseq.sources.synthetic.ops import vocabulary as op_vocabulary
from opseq.sources.synthetic.ops.types import BOOL, FLOAT, TF

__all__ = [
    "SyntheticGraph",
    "SyntheticNode",
    "build_chain_graph",
    "build_graph",
    "can_start",
]

MAX_NUMEL = 16384
"""Largest tensor (in elements) a graph may hold; keeps models fast to run and convert."""
MAX_RANK = 5
_ATTEMPTS_PER_NODE = 2000
_FIRST_TRIES, _OTHER_TRIES = 4, 24


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticNode:
    """One op instance: its output is the tensor named `name`."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]
    output: TensorType


@dataclass(frozen=True, slots=True, kw_only=True)
class SyntheticGraph:
    """A DAG of op instances over named tensors, in topological order."""

    framework: str
    seed: int
    inputs: tuple[tuple[str, TensorType], ...]
    nodes: tuple[SyntheticNode, ...]
    outputs: tuple[str, ...]

    @property
    def ops(self) -> tuple[str, ...]:
        """The op of each node, in node order."""
        return tuple(node.op for node in self.nodes)

    def types(self) -> dict[str, TensorType]:
        """Return the type of every tensor, inputs and node outputs, by name."""
        return dict(self.inputs) | {node.name: node.output for node in self.nodes}


def _input_type(rng: np.random.Generator, framework: str) -> TensorType:
    if rng.integers(3) == 0:
        length, width = (int(rng.choice(v)) for v in ((8, 12, 16), (8, 16)))
        return TensorType(shape=(1, length, width))
    channels = int(rng.choice((3, 4, 8)))
    height, width = (int(rng.choice((8, 12, 16))) for _ in range(2))
    shape = (1, height, width, channels) if framework == TF else (1, channels, height, width)
    return TensorType(shape=shape)


def _wide_input_types(
    rng: np.random.Generator, framework: str, dtypes: Sequence[str]
) -> list[TensorType]:
    """One to three inputs: the first float half of the time, later ones often of its shape.

    Integer inputs are nonnegative half of the time (their values then come from a
    nonnegative range, `opseq.sources.synthetic.source`).
    """
    types: list[TensorType] = []
    others = [d for d in dtypes if d != FLOAT] or [FLOAT]
    for i in range(int(rng.integers(1, 4))):
        if i == 0 and FLOAT in dtypes and rng.integers(2) == 0:
            dtype = FLOAT
        else:
            dtype = str(others[int(rng.integers(len(others)))] if i == 0 else rng.choice(dtypes))
        shape = _input_type(rng, framework).shape
        if types and rng.integers(2) == 0:
            shape = types[0].shape
        nonneg = dtype == BOOL or (dtype != FLOAT and bool(rng.integers(2)))
        types.append(TensorType(shape=shape, dtype=dtype, nonneg=nonneg))
    return types


def _valid(t: TensorType) -> bool:
    return 1 <= t.rank <= MAX_RANK and min(t.shape) >= 1 and t.numel <= MAX_NUMEL


class _Grower:
    """Mutable state while a graph grows; `graph()` freezes it."""

    def __init__(self, rng: np.random.Generator, framework: str) -> None:
        self.rng, self.framework = rng, framework
        self.types: dict[str, TensorType] = {}
        self.order: list[str] = []
        self.inputs: list[str] = []
        self.unconsumed: set[str] = set()
        self.nodes: list[SyntheticNode] = []

    def add_input(self, t: TensorType) -> str:
        name = f"x{len(self.inputs)}"
        self.inputs.append(name)
        self._add_tensor(name, t)
        return name

    def _add_tensor(self, name: str, t: TensorType) -> None:
        self.types[name] = t
        self.order.append(name)
        self.unconsumed.add(name)

    def pick_recent(self) -> str:
        if self.unconsumed and self.rng.integers(2) == 0:
            return sorted(self.unconsumed)[int(self.rng.integers(len(self.unconsumed)))]
        back = min(int(self.rng.geometric(0.3)) - 1, len(self.order) - 1)
        return self.order[-1 - back]

    def try_apply(self, spec: OpSpec, refs: Sequence[str]) -> bool:
        """Add a node of `spec` on `refs` if the op accepts them; return whether it did."""
        types = tuple(self.types[r] for r in refs)
        attrs = spec.sample(self.rng, types)
        if attrs is None:
            return False
        out = spec.infer(types, attrs)
        if not _valid(out):
            return False
        name = f"n{len(self.nodes)}"
        self.nodes.append(
            SyntheticNode(name=name, op=spec.name, inputs=tuple(refs), attrs=attrs, output=out)
        )
        self.unconsumed.difference_update(refs)
        self._add_tensor(name, out)
        return True

    def grow(self, spec: OpSpec) -> bool:
        """Try to add one node of `spec` with an anchor input among recent tensors."""
        for _ in range(_FIRST_TRIES):
            anchor = self.pick_recent()
            if spec.arity == 1:
                if self.try_apply(spec, [anchor]):
                    return True
                continue
            for _ in range(_OTHER_TRIES):
                refs = [
                    self.order[int(i)] for i in self.rng.integers(len(self.order), size=spec.arity)
                ]
                refs[int(self.rng.integers(spec.arity))] = anchor
                if self.try_apply(spec, refs):
                    return True
        return False

    def graph(self, seed: int, outputs: Sequence[str] | None = None) -> SyntheticGraph:
        used = {r for node in self.nodes for r in node.inputs}
        if outputs is None:
            produced = [node.name for node in self.nodes]
            outputs = [n for n in produced if n in self.unconsumed]
        return SyntheticGraph(
            framework=self.framework,
            seed=seed,
            inputs=tuple((n, self.types[n]) for n in self.inputs if n in used),
            nodes=tuple(self.nodes),
            outputs=tuple(outputs),
        )


def build_graph(
    *,
    nodes: int,
    seed: int,
    framework: str,
    vocabulary: Sequence[str] | None = None,
    input_dtypes: Sequence[str] = (FLOAT,),
    patience: int | None = None,
) -> SyntheticGraph:
    """Grow a random DAG of exactly `nodes` op instances from `seed`.

    Args:
        nodes: Number of op instances (at least 1).
        seed: With `nodes`, the seed of ``np.random.default_rng([seed, nodes])``: the same
            pair gives the same graph, and graphs of different sizes from one seed are not
            prefixes of each other.
        framework: ``"torch"`` or ``"tensorflow"`` (selects the vocabulary and the layout).
        vocabulary: Op names to draw from; all ops of `framework` when None.
        input_dtypes: Dtypes of the graph inputs. The default (float32 alone) draws one or two
            inputs as version 1 always has; any other draws one to three of these dtypes.
        patience: Give up after this many ops in a row failed to apply (None: only after
            ``2000 * nodes`` attempts). A graph that grows is the same whatever the patience.

    Returns:
        The graph; its outputs are the node outputs that no node consumes.

    Raises:
        ValueError: If `nodes` < 1 or the vocabulary has an op `framework` does not implement.
        RuntimeError: If the graph cannot grow (an op vocabulary that accepts nothing, or
            nothing for `patience` attempts in a row).
    """
    names = tuple(vocabulary or op_vocabulary(framework))
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    unknown = [n for n in names if n not in OPS or framework not in OPS[n].frameworks]
    if unknown:
        raise ValueError(f"ops not available for {framework}: {', '.join(unknown)}")
    rng = np.random.default_rng([seed, nodes])
    grower = _Grower(rng, framework)
    if tuple(input_dtypes) == (FLOAT,):
        for _ in range(int(rng.integers(1, 3))):
            grower.add_input(_input_type(rng, framework))
    else:
        for t in _wide_input_types(rng, framework, tuple(input_dtypes)):
            grower.add_input(t)
    failures = 0
    for _ in range(nodes * _ATTEMPTS_PER_NODE):
        if len(grower.nodes) == nodes:
            return grower.graph(seed)
        failures = 0 if grower.grow(OPS[names[int(rng.integers(len(names)))]]) else failures + 1
        if patience is not None and failures >= patience:
            break
    if len(grower.nodes) == nodes:
        return grower.graph(seed)
    raise RuntimeError(f"cannot grow a {nodes}-node graph from seed {seed} with {names}")


def can_start(
    names: Sequence[str], *, framework: str, input_dtypes: Sequence[str] = (FLOAT,)
) -> bool:
    """Whether some op of `names` applies to graph inputs as `build_graph` draws them.

    Tries 64 input draws (from a fixed seed), each op on every arrangement of a draw's inputs.

    Args:
        names: Op names (all implemented by `framework`).
        framework: ``"torch"`` or ``"tensorflow"``.
        input_dtypes: As for `build_graph`.

    Returns:
        False when no op of `names` can be the first node of a graph.
    """
    rng = np.random.default_rng(0)
    for _ in range(64):
        if tuple(input_dtypes) == (FLOAT,):
            types = [_input_type(rng, framework)]
        else:
            types = _wide_input_types(rng, framework, tuple(input_dtypes))
        for name in names:
            spec = OPS[name]
            for operands in itertools.product(types, repeat=spec.arity):
                attrs = spec.sample(rng, operands)
                if attrs is not None and _valid(spec.infer(operands, attrs)):
                    return True
    return False


def build_chain_graph(chain: Sequence[str], *, seed: int, framework: str) -> SyntheticGraph:
    """Build a model that applies the ops of `chain` in order, each to the previous output.

    Ops of arity > 1 take the chain tensor in one operand and, for the others, an earlier tensor
    of the model or a new graph input (same shape as the chain tensor, float32 or bool, or its
    last two dimensions swapped for ``MatMul``). The first input shape is drawn from `seed`,
    redrawn until the whole chain applies.

    Args:
        chain: Op names, applied in order.
        seed: Seed of ``np.random.default_rng``.
        framework: ``"torch"`` or ``"tensorflow"``.

    Returns:
        The graph; its one output is the output of the last op of the chain.

    Raises:
        ValueError: If an op is unknown for `framework` or the chain cannot apply (e.g. ``Log``
            needs a nonnegative input, so it cannot come first).
    """
    unknown = [n for n in chain if n not in OPS or framework not in OPS[n].frameworks]
    if unknown or not chain:
        raise ValueError(f"ops not available for {framework}: {', '.join(unknown) or '(none)'}")
    rng = np.random.default_rng(seed)
    for _ in range(200):
        grower = _Grower(rng, framework)
        current = grower.add_input(_input_type(rng, framework))
        for name in chain:
            if not _chain_step(grower, OPS[name], current):
                break
            current = grower.nodes[-1].name
        else:
            return grower.graph(seed, outputs=[current])
    raise ValueError(f"cannot build a {framework} model around the chain {list(chain)}")


def _chain_step(grower: _Grower, spec: OpSpec, current: str) -> bool:
    if spec.arity == 1:
        return any(grower.try_apply(spec, [current]) for _ in range(8))
    t = grower.types[current]
    fresh = [t, TensorType(shape=t.shape, dtype="bool")]
    if t.rank >= 2:
        fresh.append(TensorType(shape=(*t.shape[:-2], t.shape[-1], t.shape[-2])))
    for position in range(spec.arity):
        for others in itertools.product(fresh, repeat=spec.arity - 1):
            types = list(others)
            types.insert(position, t)
            if spec.sample(grower.rng, tuple(types)) is None:
                continue
            refs = [
                current if slot == position else grower.add_input(types[slot])
                for slot in range(spec.arity)
            ]
            if grower.try_apply(spec, refs):
                return True
    return False
