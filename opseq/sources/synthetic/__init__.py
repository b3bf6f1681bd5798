"""Synthetic model generator: random operator DAGs, valid by construction, for torch and TF.

`ops` declares the operators (constraints and output types, framework-independent) in two
vocabularies, the frozen ``v1`` and the ``wide`` one; `builder` grows graphs of exactly N op
instances from a seed; `torch_model` and `tf_model` (with `torch_wide` and `tf_wide` for the wide
ops) materialise them; and `source` exposes them as the ``synthetic-torch`` and ``synthetic-tf``
sources (v1) and ``synthetic-torch-wide`` and ``synthetic-tf-wide`` (wide).
"""

from __future__ import annotations

from opseq.sources.synthetic.builder import (
    SyntheticGraph,
    SyntheticNode,
    build_chain_graph,
    build_graph,
)
from opseq.sources.synthetic.ops import OPS, OpSpec, TensorType, vocabulary

__all__ = [
    "OPS",
    "OpSpec",
    "SyntheticGraph",
    "SyntheticNode",
    "TensorType",
    "build_chain_graph",
    "build_graph",
    "vocabulary",
]
