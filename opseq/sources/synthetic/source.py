"""The ``synthetic-torch`` and ``synthetic-tf`` sources: random operator DAGs, 15..100 nodes.

A case id ``n035-s000012`` names a graph of 35 op instances grown from seed 12
(`build_graph`); the case id alone fixes the graph, and the ``seed`` passed to `build` fixes the
weights (mixed with the graph seed). Like the study (NNSmith models of 15..100 nodes in steps of
5), every size is a *family*: its cases continue until every op of the vocabulary has appeared in
at least one of its models and it has at least ``min_per_size`` models. Naming cases builds graphs
(numpy only) but imports no framework.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

import numpy as np

from opseq.sources.base import Framework, InputSpec, ModelCase
from opseq.sources.synthetic.builder import SyntheticGraph, build_graph
from opseq.sources.synthetic.ops import vocabulary

__all__ = ["SIZES", "TF_SOURCE", "TORCH_SOURCE", "SyntheticSource", "parse_case_id"]

SIZES = tuple(range(15, 101, 5))
"""The size families (op instances per model), as in the study."""
MIN_PER_SIZE = 45
"""Default models per family: 18 families x 45 = 810 cases per framework at least."""
_SEED_STRIDE = 100_000
_MAX_PER_SIZE = 5_000
_CASE_ID = re.compile(r"n(\d+)-s(\d+)")


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


class SyntheticSource:
    """A source of random operator DAGs for one framework."""

    def __init__(self, *, name: str, framework: Framework, min_per_size: int = MIN_PER_SIZE):
        self.name = name
        self.framework = framework
        self.min_per_size = min_per_size

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
        """
        ids = _interleaved(self.framework.value, seed, self.min_per_size)
        return list(ids if count is None else ids[:count])

    def graph(self, case_id: str) -> SyntheticGraph:
        """Return the graph of `case_id` (no framework import)."""
        nodes, graph_seed = parse_case_id(case_id)
        return build_graph(nodes=nodes, seed=graph_seed, framework=self.framework.value)

    def build(self, case_id: str, *, seed: int = 0) -> ModelCase:
        """Build one case as a framework model.

        Args:
            case_id: A case id like ``n035-s000012``.
            seed: Weight seed, mixed with the graph seed of `case_id`.

        Returns:
            The model (``torch.nn.Module`` or functional ``keras.Model``), its float32 inputs
            and metadata ``{"nodes", "ops", "seed", "weight_seed"}``.

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
        return ModelCase(
            case_id=case_id,
            framework=self.framework,
            model=model,
            inputs=tuple(InputSpec(name=n, shape=t.shape, dtype=t.dtype) for n, t in graph.inputs),
            float64_model=twin,
            metadata={
                "nodes": len(graph.nodes),
                "ops": list(graph.ops),
                "seed": graph.seed,
                "weight_seed": weight_seed,
                "outputs": len(graph.outputs),
            },
        )


@functools.lru_cache(maxsize=8)
def _interleaved(framework: str, seed: int, min_per_size: int) -> tuple[str, ...]:
    families = [_family(framework, nodes, seed, min_per_size) for nodes in SIZES]
    longest = max(len(f) for f in families)
    return tuple(f[i] for i in range(longest) for f in families if i < len(f))


def _family(framework: str, nodes: int, seed: int, min_per_size: int) -> list[str]:
    missing = set(vocabulary(framework))
    ids: list[str] = []
    for j in range(_MAX_PER_SIZE):
        if not missing and len(ids) >= min_per_size:
            return ids
        graph_seed = seed * _SEED_STRIDE + j
        missing.difference_update(
            build_graph(nodes=nodes, seed=graph_seed, framework=framework).ops
        )
        ids.append(_case_id(nodes, graph_seed))
    raise RuntimeError(f"{framework} family of {nodes} nodes never used: {sorted(missing)}")


TORCH_SOURCE = SyntheticSource(name="synthetic-torch", framework=Framework.TORCH)
"""The registered ``synthetic-torch`` source."""
TF_SOURCE = SyntheticSource(name="synthetic-tf", framework=Framework.TENSORFLOW)
"""The registered ``synthetic-tf`` source."""
