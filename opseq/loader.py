"""Read an untrusted ONNX file into a ModelProto, within `opseq.limits.Limits`.

Only regular files are read (never a FIFO, which would block, or a device, which never ends), and
only after their size is known to be within the limit. The bytes are parsed in memory, so external
tensor data is never loaded and no file the model names is ever opened. Parsing runs under the
memory cap: a few megabytes of empty nested messages expand to gigabytes of parsed objects.
When protobuf refuses the bytes, opseq says why where it can tell: subgraphs nested deeper than
protobuf decodes, or out of memory, rather than "not an ONNX model".

A gzip stream (``model.onnx.gz``, as the shipped corpus stores its models) is recognised by its
magic bytes and inflated incrementally, never past the size limit, so a small bomb stays small.
"""

from __future__ import annotations

import os
import stat
import zlib
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from opseq.errors import InvalidModelError, ModelLoadError
from opseq.limits import (
    DEFAULT_LIMITS,
    PROTOBUF_MAX_BYTES,
    PROTOBUF_MAX_NESTING,
    Limits,
    format_bytes,
    limit_error,
    memory_cap,
)

__all__ = ["MODEL_SUFFIXES", "load_model", "model_files", "read_model_file"]

# What a model file may be called: plain, or gzip-compressed.
MODEL_SUFFIXES = (".onnx", ".onnx.gz")
_GZIP_MAGIC = b"\x1f\x8b"

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_KINDS = (
    (stat.S_ISDIR, "is a directory, expected an .onnx file"),
    (stat.S_ISFIFO, "is a FIFO (named pipe), not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)
# The wire scan that explains a refused model stops after this many fields.
_MAX_DIAGNOSIS_FIELDS = 2_000_000


def load_model(
    source: str | os.PathLike[str] | bytes, *, limits: Limits = DEFAULT_LIMITS
) -> onnx.ModelProto:
    """Parse an ONNX model without ever loading external tensor data.

    Args:
        source: A path to a ``.onnx`` file, or the serialized model.
        limits: Size and memory limits.

    Returns:
        The parsed model.

    Raises:
        ModelLoadError: If the file is missing, unreadable or not a regular file, or the bytes
            are not an ONNX model.
        LimitExceededError: If the file is too large, its subgraphs nest too deeply for
            protobuf, or parsing runs out of its memory.
        InvalidModelError: If the model's main graph has no nodes.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        where, data = "<bytes>", bytes(source)
        _check_size(where, len(data), limits)
    else:
        where = str(source)
        data = read_model_file(Path(source), limits=limits)
    if data[:2] == _GZIP_MAGIC:
        data = _inflate(where, data, limits)
    with memory_cap(limits.memory_budget(len(data)), what=where):
        try:
            model = onnx.load_model_from_string(data)
        except (DecodeError, RuntimeError, ValueError) as e:
            raise _refusal(where, data, e, limits) from None
    _check_model_proto(model, where)
    return model


def model_files(directory: Path) -> list[Path]:
    """Every ``*.onnx`` and ``*.onnx.gz`` under `directory`, recursively, sorted; no directories."""
    found = (p for suffix in MODEL_SUFFIXES for p in directory.rglob(f"*{suffix}"))
    return sorted(p for p in found if not p.is_dir())  # the two patterns never match one name


def read_model_file(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a regular file of at most ``limits.max_model_bytes`` bytes.

    The kind of file is checked before it is opened (opening a device may have effects) and again
    on the open descriptor (the path may have been swapped in between).

    Raises:
        ModelLoadError: If the path is missing, unreadable or not a regular file.
        LimitExceededError: If the file is larger than the limit or than protobuf can parse.
    """
    _check_regular(path, _stat(path, os.stat))
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise _os_error(path, e) from None
    try:
        info = os.fstat(fd)
        _check_regular(path, info)
        _check_size(str(path), info.st_size, limits)
        data = _read_exactly(fd, info.st_size)
        if os.read(fd, 1):  # the file grew after fstat: measure it again
            _check_size(str(path), os.fstat(fd).st_size, limits)
            raise ModelLoadError(f"{path}: the file changed while it was read")
    except OSError as e:
        raise _os_error(path, e) from None
    finally:
        os.close(fd)
    return data


def _inflate(where: str, data: bytes, limits: Limits) -> bytes:
    """The bytes of a gzip stream, refused once they pass ``limits.max_model_bytes``."""
    stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = stream.decompress(data, limits.max_model_bytes + 1)
        if len(inflated) > limits.max_model_bytes:
            raise limit_error(
                "max_model_bytes", f"{where}: gzip stream inflates", limits.max_model_bytes
            )
        if not stream.eof:
            raise ModelLoadError(f"{where}: gzip stream is truncated")
    except zlib.error as e:
        raise ModelLoadError(f"{where}: not a valid gzip stream ({e})") from None
    return inflated


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 30))
        if not chunk:
            break  # the file shrank; what was read is parsed (and refused if truncated)
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _stat(path: Path, function) -> os.stat_result:
    try:
        return function(path)
    except OSError as e:
        raise _os_error(path, e) from None


def _os_error(path: Path, error: OSError) -> ModelLoadError:
    if isinstance(error, FileNotFoundError):
        return ModelLoadError(f"{path}: no such file")
    if isinstance(error, IsADirectoryError):
        return ModelLoadError(f"{path}: is a directory, expected an .onnx file")
    return ModelLoadError(f"{path}: cannot read ({error.strerror or error})")


def _check_regular(path: Path, info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    for is_kind, description in _FILE_KINDS:
        if is_kind(info.st_mode):
            raise ModelLoadError(f"{path}: {description}")
    raise ModelLoadError(f"{path}: not a regular file")


def _check_size(where: str, size: int, limits: Limits) -> None:
    if size > PROTOBUF_MAX_BYTES:
        raise ModelLoadError(
            f"{where}: {format_bytes(size)}, more than the 2 GiB protobuf can parse "
            "(models this large keep their tensors as external data)"
        )
    if size > limits.max_model_bytes:
        shown = f"{where}: {format_bytes(size)}"
        raise limit_error("max_model_bytes", shown, limits.max_model_bytes)


def _refusal(where: str, data: bytes, error: Exception, limits: Limits) -> Exception:
    """Explain why protobuf refused `data`: memory, nesting, or not a model."""
    text = str(error)
    if "alloc" in text.lower():  # upb: "Arena alloc failed", under the memory cap
        return limit_error(
            "max_memory_bytes",
            f"{where}: parsing needs more memory than a model of its size may take",
            limits.memory_budget(len(data)),
        )
    depth = wire_nesting_depth(data, stop_above=max(limits.max_nesting, PROTOBUF_MAX_NESTING))
    if depth is not None and depth > limits.max_nesting:
        shown = f"{depth}" if depth <= PROTOBUF_MAX_NESTING else f"{depth} or more"
        return limit_error(
            "max_nesting", f"{where}: subgraphs nested {shown} deep", limits.max_nesting
        )
    if "MaxDepth" in text or (depth is not None and depth > PROTOBUF_MAX_NESTING):
        return ModelLoadError(
            f"{where}: subgraphs nested {depth if depth is not None else 'too'} deep, more "
            f"than protobuf can decode (about {PROTOBUF_MAX_NESTING} levels)"
        )
    return ModelLoadError(f"{where}: not an ONNX model, or truncated ({text})")


def _check_model_proto(model: onnx.ModelProto, where: str) -> None:
    # Protobuf happily parses many byte strings (text, truncated files cut at a field boundary)
    # into a ModelProto of unknown fields; a real model has an IR version, opsets and a graph.
    if not model.HasField("graph") or model.ir_version <= 0:
        raise ModelLoadError(f"{where}: not an ONNX model (no graph or IR version)")
    if not model.opset_import:
        raise ModelLoadError(f"{where}: not an ONNX model, or truncated (no opset_import)")
    if not model.graph.node:
        raise InvalidModelError(f"{where}: the graph is empty (no nodes)")


def _nesting_fields() -> dict[str, dict[int, str]]:
    """Per message type, the field numbers that lead to subgraphs, and the type they hold."""
    paths = {
        onnx.ModelProto: ("graph", "functions", "training_info"),
        onnx.TrainingInfoProto: ("initialization", "algorithm"),
        onnx.GraphProto: ("node",),
        onnx.FunctionProto: ("node",),
        onnx.NodeProto: ("attribute",),
        onnx.AttributeProto: ("g", "graphs"),
    }
    return {
        message.DESCRIPTOR.full_name: {
            message.DESCRIPTOR.fields_by_name[name].number: (
                message.DESCRIPTOR.fields_by_name[name].message_type.full_name
            )
            for name in names
        }
        for message, names in paths.items()
    }


_NESTING_FIELDS = _nesting_fields()
_FIXED_WIDTHS = {1: 8, 5: 4}
_GRAPH_TYPES = frozenset({onnx.GraphProto.DESCRIPTOR.full_name, "onnx.FunctionProto"})


def wire_nesting_depth(data: bytes, *, stop_above: int) -> int | None:
    """Measure how deeply subgraphs nest in a serialized model, without parsing it.

    Walks the protobuf wire format along model -> graph -> node -> attribute -> graph, skipping
    every other field by its length, with an explicit stack. The main graph is level 0.

    Args:
        data: The serialized model.
        stop_above: Stop as soon as a level deeper than this is seen, and return that level.

    Returns:
        The deepest level seen, or None if the bytes are not well-formed protobuf along the way
        or the scan would take too long.

    Examples:
        >>> from onnx import helper
        >>> body = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "b", [], [])
        >>> node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
        >>> model = helper.make_model(helper.make_graph([node], "g", [], []))
        >>> wire_nesting_depth(model.SerializeToString(), stop_above=10)
        1
    """
    stack = [(0, len(data), "onnx.ModelProto", -1)]
    deepest, fields_seen = 0, 0
    while stack:
        position, end, kind, level = stack.pop()
        children = _NESTING_FIELDS[kind]
        while position < end:
            fields_seen += 1
            if fields_seen > _MAX_DIAGNOSIS_FIELDS:
                return None
            key, position = _varint(data, position)
            if key is None:
                return None
            number, wire_type = key >> 3, key & 7
            if wire_type == 0:
                value, position = _varint(data, position)
                if value is None:
                    return None
                continue
            if wire_type != 2:
                width = _FIXED_WIDTHS.get(wire_type)
                if width is None:  # groups: no ONNX field uses them
                    return None
                position += width
                continue
            length, position = _varint(data, position)
            if length is None or position + length > end:
                return None
            child = children.get(number)
            if child is not None:
                child_level = level + 1 if child in _GRAPH_TYPES else level
                deepest = max(deepest, child_level)
                if deepest > stop_above:
                    return deepest
                stack.append((position, position + length, child, child_level))
            position += length
        if position != end:
            return None
    return deepest


def _varint(data: bytes, position: int) -> tuple[int | None, int]:
    value, shift = 0, 0
    while position < len(data) and shift < 64:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    return None, position
