"""Non-fatal remarks on a model: what opseq analysed but could not vouch for.

A note never stops an analysis; it tells the reader why a number may surprise (no outputs, so no
paths) or what opseq did not do (open external data, validate an unknown domain).
"""

from __future__ import annotations

import functools
from collections import Counter

import networkx as nx
import onnx

from opseq.strip import is_structure_only
from opseq.untrusted import decode_text

__all__ = ["model_notes"]

# Domains that runtimes and exporters define outside onnx's own schema registry.
_KNOWN_EXTERNAL_DOMAINS = frozenset(
    {
        "com.microsoft",
        "com.microsoft.nchwc",
        "com.microsoft.experimental",
        "ai.onnx.contrib",
        "pkg.onnxscript.torch_lib",
        "pkg.onnxscript.torch_lib.common",
        "pkg.torch.onnx",
    }
)
_DEFAULT_DOMAINS = ("", "ai.onnx")


def model_notes(model: onnx.ModelProto, graphs: list[nx.DiGraph]) -> list[str]:
    """Return the notes on `model`, whose OpGraph and subgraphs are `graphs` (main graph first).

    Examples:
        >>> from onnx import helper
        >>> nodes = [helper.make_node("Constant", [], ["x"], value_float=1.0),
        ...     helper.make_node("Relu", ["x"], ["y"])]
        >>> model = helper.make_model(helper.make_graph(nodes, "g", [], []))
        >>> from opseq.graph import build_opgraph, iter_graphs
        >>> model_notes(model, list(iter_graphs(build_opgraph(model))))
        ['the graph declares no inputs: it has no input->output paths', \
'the graph declares no outputs: nothing it computes is observable, and it has no \
input->output paths']
    """
    domain_nodes = Counter(d for g in graphs for _, d in g.nodes(data="domain"))
    notes = [
        f"unknown domain {domain!r} ({count} nodes): analysed, not validated"
        for domain, count in sorted(domain_nodes.items())
        if domain and not _is_known_domain(domain)
    ]
    notes.extend(_opset_notes(model, domain_nodes))
    if model.ir_version > onnx.IR_VERSION:
        notes.append(
            f"IR version {model.ir_version} is newer than onnx {onnx.__version__} knows "
            f"({onnx.IR_VERSION})"
        )
    if not graphs[0].graph["inputs"]:
        notes.append("the graph declares no inputs: it has no input->output paths")
    if not graphs[0].graph["outputs"]:
        notes.append(
            "the graph declares no outputs: nothing it computes is observable, and it has no "
            "input->output paths"
        )
    external = graphs[0].graph.get("external_tensors", 0)
    if external:
        notes.append(
            f"model references external tensor data ({external} tensors): analysed from "
            "structure, files not opened"
        )
    if is_structure_only(model):
        notes.append("structure-only model (weights stripped by opseq): not runnable")
    return notes


def _is_known_domain(domain: str) -> bool:
    return domain in _KNOWN_EXTERNAL_DOMAINS or domain in _onnx_domains()


@functools.cache
def _onnx_domains() -> frozenset[str]:
    return frozenset(schema.domain for schema in onnx.defs.get_all_schemas_with_history())


def _opset_notes(model: onnx.ModelProto, domain_nodes: Counter[str]) -> list[str]:
    latest = onnx.defs.onnx_opset_version()
    notes = []
    versions: dict[str, list[int]] = {}
    for opset in model.opset_import:
        domain = decode_text(opset.domain) or "ai.onnx"
        versions.setdefault(domain, []).append(opset.version)
        if opset.version < 1:
            notes.append(f"opset {opset.version} of domain {domain!r} is not a valid version")
        elif domain == "ai.onnx" and opset.version > latest:
            notes.append(
                f"opset {opset.version} of the default domain is newer than onnx "
                f"{onnx.__version__} knows ({latest})"
            )
    notes.extend(
        f"domain {domain!r} is imported {len(found)} times (versions "
        f"{', '.join(map(str, found))}); the last one counts"
        for domain, found in versions.items()
        if len(found) > 1
    )
    default_nodes = sum(domain_nodes[d] for d in _DEFAULT_DOMAINS)
    if default_nodes and "ai.onnx" not in versions:
        notes.append(
            f"no opset is imported for the default domain, which {default_nodes} nodes use: "
            "their operator versions are undefined"
        )
    return notes
