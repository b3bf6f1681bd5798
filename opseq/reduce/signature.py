"""Finding signatures: what makes two minimal reproducers the same finding.

A signature is (converter, the minimal op sequence with each op's attributes, the input dtypes).
Shapes are left out, so one bug met at several shapes is one finding. The op sequence is in a
canonical topological order (Kahn's algorithm, ties broken by op and attributes), so two graphs
that differ only in the order of independent branches have one signature; the input dtypes are
sorted for the same reason.

A case that is not reduced (zoo models, one-op ``opinfo`` cases) has one "op": its case id
without a trailing sample index (``nn.functional.gelu.tanh_approx@float32#3`` ->
``nn.functional.gelu.tanh_approx@float32``), so the samples of one op and dtype that fail
alike are one finding.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opseq.reduce.recipe import json_value
from opseq.sources.synthetic.builder import SyntheticGraph

__all__ = ["Signature", "case_signature", "graph_signature"]

_SAMPLE_INDEX = re.compile(r"#\d+$")
_SLUG_OPS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    """The identity of a finding (module docstring).

    Attributes:
        converter: The converter name.
        ops: ``(op, attributes as canonical JSON)`` in canonical topological order.
        input_dtypes: The dtypes of the reproducer's inputs, sorted.
    """

    converter: str
    ops: tuple[tuple[str, str], ...]
    input_dtypes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "converter": self.converter,
            "ops": [{"op": op, "attrs": json.loads(attrs)} for op, attrs in self.ops],
            "input_dtypes": list(self.input_dtypes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Build a signature from `to_dict` output.

        Raises:
            KeyError: If a key is missing.
        """
        return cls(
            converter=str(data["converter"]),
            ops=tuple((str(o["op"]), _canonical(o.get("attrs", {}))) for o in data["ops"]),
            input_dtypes=tuple(str(d) for d in data["input_dtypes"]),
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """The op names, in order."""
        return tuple(op for op, _ in self.ops)

    def digest(self) -> str:
        """The first 12 hex digits of the SHA-256 of the canonical signature."""
        return _sha(self.to_dict())

    def behaviour_digest(self) -> str:
        """The same without the converter: equal for one bug found through several converters."""
        data = self.to_dict()
        del data["converter"]
        return _sha(data)

    def slug(self) -> str:
        """A short, stable directory name: converter, first ops, digest.

        Examples:
            >>> Signature(converter="torch.onnx-torchscript", ops=(("Sigmoid", "{}"),),
            ...           input_dtypes=("float32",)).slug()[:20]
            'torchscript-sigmoid-'
        """
        converter = _safe(re.split(r"[:.\-]", self.converter)[-1])
        ops = [_safe(op) for op in self.labels[:_SLUG_OPS]]
        if len(self.labels) > _SLUG_OPS:
            ops.append(f"and{len(self.labels) - _SLUG_OPS}")
        return "-".join([converter, *ops, self.digest()])


def _canonical(value: Any) -> str:
    return json.dumps(json_value(value), sort_keys=True, separators=(",", ":"))


def _sha(data: Any) -> str:
    return hashlib.sha256(_canonical(data).encode()).hexdigest()[:12]


def _safe(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_." else "_" for c in text.lower())
    return cleaned.strip("._")[:40] or "x"


def graph_signature(graph: SyntheticGraph, converter: str) -> Signature:
    """The signature of a minimal graph.

    Examples:
        >>> from opseq.reduce.recipe import graph_from_dict
        >>> t = {"shape": [2], "dtype": "float32", "nonneg": False}
        >>> g = graph_from_dict({"framework": "torch", "seed": 0,
        ...     "inputs": [{"name": "x0", "type": t}],
        ...     "nodes": [{"name": "n1", "op": "Neg", "inputs": ["x0"], "attrs": {}, "output": t},
        ...               {"name": "n0", "op": "Abs", "inputs": ["x0"], "attrs": {}, "output": t},
        ...               {"name": "n2", "op": "Add", "inputs": ["n1", "n0"], "attrs": {},
        ...                "output": t}],
        ...     "outputs": ["n2"]})
        >>> graph_signature(g, "tf2onnx").labels
        ('Abs', 'Neg', 'Add')
    """
    return Signature(
        converter=converter,
        ops=tuple((node.op, _canonical(node.attrs)) for node in _canonical_order(graph)),
        input_dtypes=tuple(sorted(t.dtype for _, t in graph.inputs)),
    )


def case_signature(case_id: str, input_dtypes: Iterable[str], converter: str) -> Signature:
    """The signature of a case that is its own reproducer (module docstring).

    Examples:
        >>> case_signature("nn.functional.gelu.tanh_approx@float32#3", ["float32"], "x").labels
        ('nn.functional.gelu.tanh_approx@float32',)
    """
    return Signature(
        converter=converter,
        ops=((_SAMPLE_INDEX.sub("", case_id), "{}"),),
        input_dtypes=tuple(sorted(input_dtypes)),
    )


def _canonical_order(graph: SyntheticGraph):
    """Kahn's topological sort, always taking the ready node of smallest (op, attributes)."""
    produced = {node.name: node for node in graph.nodes}
    waiting = {
        node.name: len({ref for ref in node.inputs if ref in produced}) for node in graph.nodes
    }
    readers: dict[str, list[str]] = {}
    for node in graph.nodes:
        for ref in set(node.inputs):
            if ref in produced:
                readers.setdefault(ref, []).append(node.name)
    position = {node.name: i for i, node in enumerate(graph.nodes)}

    def entry(name: str) -> tuple[str, str, int, str]:
        node = produced[name]
        return (node.op, _canonical(node.attrs), position[name], name)

    ready = [entry(name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    while ready:
        *_, name = heapq.heappop(ready)
        yield produced[name]
        for reader in readers.get(name, ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, entry(reader))
