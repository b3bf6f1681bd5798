"""The synthetic sources: random operator DAGs of 15..100 nodes, in two vocabularies.

``synthetic-torch`` and ``synthetic-tf`` grow graphs from the frozen version 1 vocabulary
(float-dominated); ``synthetic-torch-wide`` and ``synthetic-tf-wide`` from the wide one (v1 plus
integer, bool and variant ops, from float, int64, int32 and bool inputs).
`SyntheticSource.restricted` narrows a source to the ops matching some patterns (``--ops``).

A case id ``n035-s000012`` names a graph of 35 op instances grown from seed 12
(`build_graph`); the case id alone fixes the graph, and the ``seed`` passed to `build` fixes the
weights (mixed with the graph seed). Like the study (NNSmith models of 15..100 nodes in steps of
5), every size is a *family*: its cases continue until every op of the vocabulary has appeared in
at least one of its models and it has at least ``min_per_size`` models. Naming cases builds graphs
(numpy only) but imports no framework.

Integer graph inputs are data, not indices (every index tensor is a constant of its op): they are
drawn from ``[-16, 16)``, or ``[0, 16)`` when their type is marked nonnegative.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from opseq.errors import ConfigError
from opseq.sources.base import Framework, InputSpec, ModelCase
from opseq.sources.synthetic.builder import SyntheticGraph, build_graph, can_start
from opseq.sources.synthetic.ops import INPUT_DTYPES, VERSIONS, vocabulary
from opseq.sources.synthetic.ops.types import TensorType
from opseq.untrusted import escape_controls

__all__ = [
    "SIZES",
    "TF_SOURCE",
    "TF_WIDE_SOURCE",
    "TORCH_SOURCE",
    "TORCH_WIDE_SOURCE",
    "SyntheticSource",
    "input_spec",
    "parse_case_id",
]

SIZES = tuple(range(15, 101, 5))
"""The size families (op instances per model), as in the study."""
MIN_PER_SIZE = 45
"""Default models per family: 18 families x 45 = 810 cases per framework at least."""
_SEED_STRIDE = 100_000
_MAX_PER_SIZE = 5_000
_CASE_ID = re.compile(r"n(\d+)-s(\d+)")
_RESTRICTED_PATIENCE = 200
"""A restricted vocabulary may stall (only ``Squeeze`` runs out of size-1 axes): give up after
this many failed ops in a row rather than after the full ``2000 * nodes`` attempts."""
_RESTRICTED_STALLS = 50
"""Consecutive graph seeds that cannot grow before a restricted family gives up."""
_RESTRICTED_SEEDS_PER_MODEL = 10
"""A restricted family gives up after ``10 * min_per_size`` seeds without every op appearing."""
INT_RANGE = (-16, 16)
"""``[low, high)`` of integer graph inputs (``[0, high)`` for nonnegative ones)."""


def parse_case_id(case_id: str) -> tuple[int, int]:
    """Return the (nodes, graph seed) of a case id like ``n035-s000012``.

    Raises:
        KeyError: If `case_id` does not have that form.
    """
    match = _CASE_ID.fullmatch(case_id)
    if match is None:
        raise KeyError(f"not a synthetic case id (like n035-s000012): {case_id!r}")
    return int(match[1]), int(match[2])


def _case_id(nodes: int, seed: int) -> str:
    return f"n{nodes:03d}-s{seed:06d}"


def input_spec(name: str, t: TensorType) -> InputSpec:
    """The `InputSpec` of graph input `name` of type `t`.

    Integer inputs take their range from `INT_RANGE` and are data (``role="data"``: the ``edge``
    input strategy may feed any value of their dtype), since no graph input is an index.
    """
    if t.dtype in ("int32", "int64"):
        low = 0 if t.nonneg else INT_RANGE[0]
        return InputSpec(
            name=name, shape=t.shape, dtype=t.dtype, low=low, high=INT_RANGE[1], role="data"
        )
    return InputSpec(name=name, shape=t.shape, dtype=t.dtype)


class SyntheticSource:
    """A source of random operator DAGs for one framework and vocabulary.

    Args:
        name: The source's registered name.
        framework: The framework of its models.
        min_per_size: Models per size family at least.
        version: The vocabulary: ``"v1"`` (frozen) or ``"wide"``.
        ops_filter: fnmatch patterns an op must match one of (None: every op of `version`);
            `restricted` checks them.
    """

    def __init__(
        self,
        *,
        name: str,
        framework: Framework,
        min_per_size: int = MIN_PER_SIZE,
        version: str = "v1",
        ops_filter: Sequence[str] | None = None,
    ):
        if version not in VERSIONS:
            raise ConfigError(f"unknown synthetic vocabulary {version!r}; known: {VERSIONS}")
        self.name = name
        self.framework = framework
        self.min_per_size = min_per_size
        self.version = version
        self.ops_filter = None if ops_filter is None else tuple(ops_filter)
        self.vocabulary = _matching(vocabulary(framework.value, version), self.ops_filter)
        """The op names this source grows graphs from, in the vocabulary's order."""
        self.input_dtypes = INPUT_DTYPES[version]
        """The dtypes of graph inputs; restricted to those some op of the vocabulary takes."""
        if self.ops_filter is not None:
            self.input_dtypes = tuple(
                dtype
                for dtype in self.input_dtypes
                if can_start(self.vocabulary, framework=framework.value, input_dtypes=(dtype,))
            )

    def restricted(self, patterns: Sequence[str]) -> SyntheticSource:
        """Return this source with its vocabulary narrowed to the ops matching `patterns`.

        Patterns are fnmatch patterns, matched case-sensitively against op names (``Div*``,
        ``Cast``, ``Gather*``); an op is kept when it matches any of them. Case ids keep their
        form; the models' metadata records the patterns as ``ops_filter``.

        Args:
            patterns: One or more patterns.

        Returns:
            A new source with the same name, framework, family size and vocabulary version.

        Raises:
            ConfigError: (naming ``--ops``) If no op matches, or no matching op applies to any
                input type of the vocabulary, so no graph can grow.
        """
        patterns = tuple(patterns)
        source = SyntheticSource(
            name=self.name,
            framework=self.framework,
            min_per_size=self.min_per_size,
            version=self.version,
            ops_filter=patterns,
        )
        shown = escape_controls(", ".join(patterns))
        if not source.vocabulary:
            raise ConfigError(
                f"--ops {shown}: no op of {self.name} matches (e.g. Div*, Cast, Gather*)"
            )
        if not source.input_dtypes:
            raise ConfigError(
                f"--ops {shown}: the matching ops ({escape_controls(', '.join(source.vocabulary))})"
                f" apply to no input type of {self.name} ({', '.join(self.input_dtypes)})"
            )
        return source

    def case_ids(self, *, count: int | None = None, seed: int = 0) -> Sequence[str]:
        """Return case ids of every size family, interleaved (so a prefix spans the sizes).

        Family ``n`` takes graph seeds ``seed * 100000 + j`` for j = 0, 1, ... until every op
        of the vocabulary has appeared and there are at least `min_per_size` models.

        Args:
            count: Return only the first `count` ids; all of them when None.
            seed: Campaign seed: selects the graph seeds.

        Returns:
            Case ids like ``n035-s000012``.

        Raises:
            RuntimeError: If a family cannot cover the vocabulary within 5000 models.
            ConfigError: If a restricted vocabulary cannot grow a graph of some size.
        """
        ids = _interleaved(self._growth, seed, self.min_per_size)
        return list(ids if count is None else ids[:count])

    @property
    def _growth(self) -> _Growth:
        return _Growth(
            framework=self.framework.value,
            names=self.vocabulary,
            input_dtypes=self.input_dtypes,
            ops_filter=self.ops_filter,
        )

    def graph(self, case_id: str) -> SyntheticGraph:
        """Return the graph of `case_id` (no framework import).

        Raises:
            KeyError: If `case_id` is not a synthetic case id.
            ConfigError: If a restricted vocabulary cannot grow this graph.
        """
        nodes, graph_seed = parse_case_id(case_id)
        return _grow(self._growth, nodes, graph_seed)

    def build(self, case_id: str, *, seed: int = 0) -> ModelCase:
        """Build one case as a framework model.

        Args:
            case_id: A case id like ``n035-s000012``.
            seed: Weight seed, mixed with the graph seed of `case_id`.

        Returns:
            The model (``torch.nn.Module`` or functional ``keras.Model``), its inputs
            (`input_spec`) and metadata ``{"nodes", "ops", "seed", "weight_seed", "outputs"}``,
            plus ``"vocabulary"`` for the wide vocabulary and ``"ops_filter"`` (the patterns)
            for a restricted source.

        Raises:
            KeyError: If `case_id` is not a synthetic case id.
        """
        graph = self.graph(case_id)
        weight_seed = int(np.random.SeedSequence([graph.seed, seed]).generate_state(1)[0])
        if self.framework is Framework.TORCH:
            from opseq.sources.synthetic.torch_model import to_float64_module, to_torch_module

            model = to_torch_module(graph, weight_seed)
            twin = functools.partial(to_float64_module, model)
        else:
            from opseq.difftest.float64 import keras_float64
            from opseq.sources.synthetic.tf_model import to_keras_model

            model = to_keras_model(graph, weight_seed)
            twin = functools.partial(keras_float64, model)
        metadata = {
            "nodes": len(graph.nodes),
            "ops": list(graph.ops),
            "seed": graph.seed,
            "weight_seed": weight_seed,
            "outputs": len(graph.outputs),
        }
        if self.version != "v1":
            metadata["vocabulary"] = self.version
        if self.ops_filter is not None:
            metadata["ops_filter"] = list(self.ops_filter)
        return ModelCase(
            case_id=case_id,
            framework=self.framework,
            model=model,
            inputs=tuple(input_spec(n, t) for n, t in graph.inputs),
            float64_model=twin,
            metadata=metadata,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Growth:
    """What fixes a source's graphs (hashable: families are cached by it)."""

    framework: str
    names: tuple[str, ...]
    input_dtypes: tuple[str, ...]
    ops_filter: tuple[str, ...] | None


def _matching(names: Sequence[str], patterns: Sequence[str] | None) -> tuple[str, ...]:
    if patterns is None:
        return tuple(names)
    return tuple(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def _grow(growth: _Growth, nodes: int, graph_seed: int) -> SyntheticGraph:
    restricted = growth.ops_filter is not None
    try:
        return build_graph(
            nodes=nodes,
            seed=graph_seed,
            framework=growth.framework,
            vocabulary=growth.names,
            input_dtypes=growth.input_dtypes,
            patience=_RESTRICTED_PATIENCE if restricted else None,
        )
    except RuntimeError as e:
        if not restricted:
            raise
        shown = escape_controls(", ".join(growth.ops_filter))
        raise ConfigError(
            f"--ops {shown}: the matching ops cannot grow a {nodes}-node graph"
            f" (seed {graph_seed}); add ops that take their outputs"
        ) from e


@functools.lru_cache(maxsize=8)
def _interleaved(growth: _Growth, seed: int, min_per_size: int) -> tuple[str, ...]:
    families = [_family(growth, nodes, seed, min_per_size) for nodes in SIZES]
    longest = max(len(f) for f in families)
    return tuple(f[i] for i in range(longest) for f in families if i < len(f))


def _family(growth: _Growth, nodes: int, seed: int, min_per_size: int) -> list[str]:
    if growth.ops_filter is not None:
        return _restricted_family(growth, nodes, seed, min_per_size)
    missing = set(growth.names)
    ids: list[str] = []
    for j in range(_MAX_PER_SIZE):
        if not missing and len(ids) >= min_per_size:
            return ids
        graph_seed = seed * _SEED_STRIDE + j
        missing.difference_update(_grow(growth, nodes, graph_seed).ops)
        ids.append(_case_id(nodes, graph_seed))
    raise RuntimeError(f"{growth.framework} family of {nodes} nodes never used: {sorted(missing)}")


def _restricted_family(growth: _Growth, nodes: int, seed: int, min_per_size: int) -> list[str]:
    """Like `_family`, skipping seeds that cannot grow, and failing early with a `ConfigError`."""
    missing = set(growth.names)
    ids: list[str] = []
    stalled = 0
    for j in range(_RESTRICTED_SEEDS_PER_MODEL * min_per_size):
        if not missing and len(ids) >= min_per_size:
            return ids
        graph_seed = seed * _SEED_STRIDE + j
        try:
            missing.difference_update(_grow(growth, nodes, graph_seed).ops)
        except ConfigError:
            stalled += 1
            if stalled < _RESTRICTED_STALLS:
                continue
            raise
        stalled = 0
        ids.append(_case_id(nodes, graph_seed))
    shown = escape_controls(", ".join(growth.ops_filter or ()))
    raise ConfigError(
        f"--ops {shown}: {len(ids)} graphs of {nodes} nodes never used"
        f" {', '.join(sorted(missing))} (they apply to no tensor the others make)"
    )


TORCH_SOURCE = SyntheticSource(name="synthetic-torch", framework=Framework.TORCH)
"""The registered ``synthetic-torch`` source."""
TF_SOURCE = SyntheticSource(name="synthetic-tf", framework=Framework.TENSORFLOW)
"""The registered ``synthetic-tf`` source."""
TORCH_WIDE_SOURCE = SyntheticSource(
    name="synthetic-torch-wide", framework=Framework.TORCH, version="wide"
)
"""The registered ``synthetic-torch-wide`` source."""
TF_WIDE_SOURCE = SyntheticSource(
    name="synthetic-tf-wide", framework=Framework.TENSORFLOW, version="wide"
)
"""The registered ``synthetic-tf-wide`` source."""
