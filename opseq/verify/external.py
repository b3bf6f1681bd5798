"""External tensor data: when opseq lets ONNX Runtime read it, and how a session is made.

opseq itself never reads the files a model names. ONNX Runtime needs a model's weights to run it,
so a model that keeps them as external data is run from its *path* (ONNX Runtime resolves the
files against the model's directory), and only when every location it names is a plain relative
path inside that directory: no absolute path, no drive, no backslash, no ``..`` component, no
symbolic link that resolves outside the directory, and each an existing regular file holding the
offset and length the tensor claims. Anything else is refused before ONNX Runtime sees the model.

The session from a path takes exactly the options of `opseq.difftest.execute.create_session`
(all graph optimisations, one thread each way, CPU); a model without external data goes through
`create_session` itself, from its bytes.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import onnx

from opseq.errors import UnsupportedModelError
from opseq.untrusted import decode_text

__all__ = ["check_external_data", "copy_external_data", "external_tensors", "session_from_path"]

_EXTERNAL = onnx.TensorProto.EXTERNAL


def external_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of the model that names external data.

    Initializers (sparse ones too) and attribute tensors, in every subgraph and local function.
    """
    graphs = [model.graph]
    nodes = [node for function in model.functions for node in function.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from (t for t in graph.initializer if t.data_location == _EXTERNAL)
            for sparse in graph.sparse_initializer:
                yield from (
                    t for t in (sparse.values, sparse.indices) if t.data_location == _EXTERNAL
                )
            nodes.extend(graph.node)
            continue
        for attr in nodes.pop().attribute:
            tensors = [attr.t, *attr.tensors]
            for sparse in [attr.sparse_tensor, *attr.sparse_tensors]:
                tensors.extend((sparse.values, sparse.indices))
            yield from (t for t in tensors if t.data_location == _EXTERNAL)
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)


def check_external_data(model: onnx.ModelProto, path: Path) -> tuple[str, ...]:
    """Check that ONNX Runtime may read the model's external data (module docstring).

    Args:
        model: The model, parsed without its external data.
        path: The model file; locations are relative to its directory.

    Returns:
        The distinct locations, in order of first use; empty when there is no external data.

    Raises:
        UnsupportedModelError: If a location is not a plain relative path inside the model's
            directory, is missing or not a regular file, or is shorter than a tensor claims.
    """
    directory = path.parent
    root = directory.resolve()
    sizes: dict[str, int] = {}
    for tensor in external_tensors(model):
        info = {decode_text(e.key): decode_text(e.value) for e in tensor.external_data}
        location = info.get("location", "")
        name = decode_text(tensor.name) or "a tensor"
        if location not in sizes:
            sizes[location] = _check_location(path, directory, root, location, name)
        _check_extent(path, location, sizes[location], info, name)
    return tuple(sizes)


def _check_location(path: Path, directory: Path, root: Path, location: str, name: str) -> int:
    def refuse(why: str) -> UnsupportedModelError:
        return UnsupportedModelError(
            f"{path}: external data of {name!r} at {location!r} {why}; opseq verify runs only "
            "models whose external data are files inside the model's directory"
        )

    pure = PurePosixPath(location)
    if not location or "\x00" in location:
        raise refuse("is not a file name")
    if pure.is_absolute() or "\\" in location or ":" in pure.parts[0]:
        raise refuse("is an absolute path")
    if ".." in pure.parts:
        raise refuse("leaves the model's directory (..)")
    target = directory / location
    try:
        resolved = target.resolve(strict=True)
    except (OSError, RuntimeError):
        raise refuse("does not exist") from None
    if not resolved.is_relative_to(root):
        raise refuse("resolves outside the model's directory (a symbolic link)")
    try:
        info = os.stat(resolved)
    except OSError:
        raise refuse("cannot be read") from None
    if not stat.S_ISREG(info.st_mode):
        raise refuse("is not a regular file")
    return info.st_size


def _check_extent(path: Path, location: str, size: int, info: dict[str, str], name: str) -> None:
    try:
        offset = int(info.get("offset", "0") or 0)
        length = int(info["length"]) if info.get("length") else None
    except ValueError:
        raise UnsupportedModelError(
            f"{path}: external data of {name!r} has a non-numeric offset or length"
        ) from None
    end = offset + (length if length is not None else 0)
    if offset < 0 or (length is not None and length < 0) or end > size:
        raise UnsupportedModelError(
            f"{path}: external data of {name!r} claims bytes {offset}..{end} of {location!r}, "
            f"which has {size}"
        )


def copy_external_data(locations: tuple[str, ...], source_dir: Path, target_dir: Path) -> None:
    """Copy checked external data files beside a copy of the model (for a repro bundle)."""
    for location in locations:
        target = target_dir / location
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_dir / location, target)


def session_from_path(path: Path) -> Any:
    """An ONNX Runtime session read from `path`, with `create_session`'s options (optimised)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
