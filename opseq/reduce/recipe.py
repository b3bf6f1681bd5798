"""Replay recipes: what rebuilds a reproducer's framework model, as JSON.

A recipe is one of two kinds:

- ``synthetic-graph``: a `SyntheticGraph` (serialised by `graph_to_dict`), the weight seed its
  materialiser draws from, and the input specs of its graph inputs. `case_from_graph` rebuilds
  the model exactly as `opseq.sources.synthetic.source.SyntheticSource.build` does for a graph of
  its own, so a reduced graph is judged like any synthetic case.
- ``source-case``: a source name, a case id and the seed to build it with (cases that are not
  reduced: zoo models, one-op ``opinfo`` cases).

JSON has no tuples: every list read back becomes a tuple, which is what the synthetic op specs
use for every sequence-valued attribute and shape.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opseq.errors import ConfigError
from opseq.sources.base import Framework, InputSpec, ModelCase
from opseq.sources.synthetic.builder import SyntheticGraph, SyntheticNode
from opseq.sources.synthetic.ops import TensorType

__all__ = [
    "SOURCE_CASE",
    "SYNTHETIC_GRAPH",
    "json_value",
    "Recipe",
    "case_from_graph",
    "graph_from_dict",
    "graph_to_dict",
    "spec_from_dict",
]

SYNTHETIC_GRAPH = "synthetic-graph"
SOURCE_CASE = "source-case"


def json_value(value: Any) -> Any:
    """Tuples to lists and numpy scalars to Python numbers, recursively."""
    if isinstance(value, (tuple, list)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_json(value: Any) -> Any:
    """Lists back to tuples, recursively (the inverse of `_to_json` on synthetic attributes)."""
    if isinstance(value, list):
        return tuple(_from_json(v) for v in value)
    if isinstance(value, dict):
        return {k: _from_json(v) for k, v in value.items()}
    return value


def _type_to_dict(t: TensorType) -> dict[str, Any]:
    return {"shape": list(t.shape), "dtype": t.dtype, "nonneg": t.nonneg}


def _type_from_dict(data: Mapping[str, Any]) -> TensorType:
    return TensorType(
        shape=tuple(int(d) for d in data["shape"]),
        dtype=str(data.get("dtype", "float32")),
        nonneg=bool(data.get("nonneg", False)),
    )


def graph_to_dict(graph: SyntheticGraph) -> dict[str, Any]:
    """Return a JSON-safe dict of `graph` (`graph_from_dict` inverts it exactly).

    Examples:
        >>> t = TensorType(shape=(1, 4))
        >>> node = SyntheticNode(name="n0", op="Sigmoid", inputs=("x0",), attrs={}, output=t)
        >>> g = SyntheticGraph(framework="torch", seed=3, inputs=(("x0", t),), nodes=(node,),
        ...                    outputs=("n0",))
        >>> graph_from_dict(graph_to_dict(g)) == g
        True
    """
    return {
        "framework": graph.framework,
        "seed": graph.seed,
        "inputs": [{"name": n, "type": _type_to_dict(t)} for n, t in graph.inputs],
        "nodes": [
            {
                "name": node.name,
                "op": node.op,
                "inputs": list(node.inputs),
                "attrs": json_value(node.attrs),
                "output": _type_to_dict(node.output),
            }
            for node in graph.nodes
        ],
        "outputs": list(graph.outputs),
    }


def graph_from_dict(data: Mapping[str, Any]) -> SyntheticGraph:
    """Rebuild a graph from `graph_to_dict` output.

    Raises:
        ConfigError: If `data` is not a serialised graph (a key missing or of the wrong kind).
    """
    try:
        return SyntheticGraph(
            framework=str(data["framework"]),
            seed=int(data["seed"]),
            inputs=tuple((str(i["name"]), _type_from_dict(i["type"])) for i in data["inputs"]),
            nodes=tuple(
                SyntheticNode(
                    name=str(n["name"]),
                    op=str(n["op"]),
                    inputs=tuple(str(r) for r in n["inputs"]),
                    attrs=dict(_from_json(dict(n["attrs"]))),
                    output=_type_from_dict(n["output"]),
                )
                for n in data["nodes"]
            ),
            outputs=tuple(str(o) for o in data["outputs"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"not a serialised synthetic graph: {type(e).__name__}: {e}") from e


def spec_from_dict(data: Mapping[str, Any]) -> InputSpec:
    """Rebuild an `InputSpec` from its ``to_dict`` output (keys it does not know are ignored)."""
    known = {f.name for f in dataclasses.fields(InputSpec)}
    values = {k: v for k, v in data.items() if k in known}
    values["shape"] = tuple(int(d) for d in data["shape"])
    return InputSpec(**values)


def case_from_graph(
    graph: SyntheticGraph,
    *,
    weight_seed: int,
    case_id: str,
    input_specs: Mapping[str, InputSpec] | None = None,
) -> ModelCase:
    """Materialise `graph` as a framework model, as the synthetic sources do.

    Args:
        graph: The graph (its ``framework`` picks the materialiser).
        weight_seed: Seed of the weights (``metadata["weight_seed"]`` of a synthetic case).
        case_id: The id the case carries.
        input_specs: Specs to keep for graph inputs of the same name, shape and dtype (their
            integer ranges and roles); other inputs get a plain spec of their type.

    Returns:
        The case, with its float64 twin.

    Raises:
        ValueError: If an op has no implementation in the framework.
    """
    if graph.framework == Framework.TORCH.value:
        from opseq.sources.synthetic.torch_model import to_float64_module, to_torch_module

        model = to_torch_module(graph, weight_seed)
        twin = functools.partial(to_float64_module, model)
        framework = Framework.TORCH
    else:
        from opseq.difftest.float64 import keras_float64
        from opseq.sources.synthetic.tf_model import to_keras_model

        model = to_keras_model(graph, weight_seed)
        twin = functools.partial(keras_float64, model)
        framework = Framework.TENSORFLOW
    return ModelCase(
        case_id=case_id,
        framework=framework,
        model=model,
        inputs=tuple(_input_spec(n, t, input_specs or {}) for n, t in graph.inputs),
        float64_model=twin,
        metadata={
            "nodes": len(graph.nodes),
            "ops": list(graph.ops),
            "seed": graph.seed,
            "weight_seed": weight_seed,
            "outputs": len(graph.outputs),
        },
    )


def _input_spec(name: str, t: TensorType, known: Mapping[str, InputSpec]) -> InputSpec:
    spec = known.get(name)
    if spec is not None and tuple(spec.shape) == t.shape and spec.dtype == t.dtype:
        return spec
    return InputSpec(name=name, shape=t.shape, dtype=t.dtype)


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """How to rebuild a reproducer's framework model.

    Attributes:
        kind: ``synthetic-graph`` or ``source-case`` (module docstring).
        source: The source the case came from.
        case: Its case id there.
        seed: The campaign seed it was built with.
        graph: The minimal graph (``synthetic-graph`` only).
        weight_seed: Seed of its weights (``synthetic-graph`` only).
        input_specs: The input specs of the reproducer, in input order.
    """

    kind: str
    source: str
    case: str
    seed: int
    graph: SyntheticGraph | None = None
    weight_seed: int | None = None
    input_specs: tuple[InputSpec, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "kind": self.kind,
            "source": self.source,
            "case": self.case,
            "seed": self.seed,
            "graph": None if self.graph is None else graph_to_dict(self.graph),
            "weight_seed": self.weight_seed,
            "input_specs": [s.to_dict() for s in self.input_specs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Build a recipe from `to_dict` output.

        Raises:
            ConfigError: If the recipe is malformed or of an unknown kind.
        """
        try:
            kind = str(data["kind"])
            if kind not in (SYNTHETIC_GRAPH, SOURCE_CASE):
                raise ConfigError(f"unknown recipe kind {kind!r}")
            graph = data.get("graph")
            weight_seed = data.get("weight_seed")
            recipe = cls(
                kind=kind,
                source=str(data["source"]),
                case=str(data["case"]),
                seed=int(data["seed"]),
                graph=None if graph is None else graph_from_dict(graph),
                weight_seed=None if weight_seed is None else int(weight_seed),
                input_specs=tuple(spec_from_dict(s) for s in data.get("input_specs", ())),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"malformed recipe: {type(e).__name__}: {e}") from e
        if kind == SYNTHETIC_GRAPH and (recipe.graph is None or recipe.weight_seed is None):
            raise ConfigError("a synthetic-graph recipe needs a graph and a weight seed")
        return recipe

    def build(self) -> ModelCase:
        """Rebuild the case: materialise the graph, or build the source's case.

        Raises:
            ConfigError: If the source is unknown.
            Exception: Whatever building the model raises.
        """
        if self.kind == SYNTHETIC_GRAPH:
            assert self.graph is not None and self.weight_seed is not None  # from_dict checks
            return case_from_graph(
                self.graph,
                weight_seed=self.weight_seed,
                case_id=self.case,
                input_specs={s.name: s for s in self.input_specs},
            )
        from opseq.sources import get_source

        return get_source(self.source).build(self.case, seed=self.seed)
