"""Load the model under test, and the references, the way every coverage command does."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import onnx

from opseq.coverage.index import load_reference
from opseq.coverage.model_coverage import ReferenceUnion
from opseq.coverage.profile import ModelProfile, profile_model
from opseq.coverage.references import iter_specs
from opseq.errors import OpseqError
from opseq.graph import build_opgraph
from opseq.limits import DEFAULT_LIMITS, Limits, memory_cap
from opseq.loader import load_model, read_model_file

__all__ = ["LoadedModel", "load_model_under_test", "load_references"]


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModel:
    """A model, its OpGraph (with inferred types) and its profile."""

    path: Path
    model: onnx.ModelProto
    graph: nx.DiGraph
    profile: ModelProfile


def load_model_under_test(
    path: Path, *, limits: Limits = DEFAULT_LIMITS, digest: bool = True
) -> LoadedModel:
    """Read, parse, graph and profile one model, within `limits`.

    ``digest=False`` leaves the profile's content hash empty: hashing a 400 MB model costs a
    noticeable part of a gate run, and only reference members need it.

    Raises:
        OpseqError: With the path in the message, if any step refuses the model.
    """
    try:
        data = read_model_file(path, limits=limits)
        model = load_model(data, limits=limits)
        with memory_cap(limits.memory_budget(len(data)), what=str(path)):
            graph = build_opgraph(model, infer_shapes=True, limits=limits)
            content = hashlib.sha256(data).hexdigest() if digest else ""
            profile = profile_model(model, graph, name=str(path), digest=content, limits=limits)
    except OpseqError as e:
        message = str(e)
        raise type(e)(message if message.startswith(str(path)) else f"{path}: {message}") from e
    return LoadedModel(path=path, model=model, graph=graph, profile=profile)


def load_references(
    texts: Sequence[str] | None,
    *,
    cache_dir: Path | None,
    limits: Limits = DEFAULT_LIMITS,
    progress=None,
    client=None,
) -> ReferenceUnion:
    """Load (or build and cache) each named reference; None: the default reference.

    With `client` (a ``distributed.Client``), models to profile are profiled on its cluster.
    """
    return ReferenceUnion(
        tuple(
            load_reference(
                spec, cache_dir=cache_dir, limits=limits, progress=progress, client=client
            )
            for spec in iter_specs(texts)
        )
    )
