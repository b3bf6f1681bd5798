"""A seeded mutator of serialized ONNX models, for the fuzz tests of `opseq analyze`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import GraphProto

#: The kinds `mutants` cycles through, in order.
MUTATION_KINDS = (
    "trunc",  # truncate at a random offset
    "flip",  # xor one byte with a random non-zero value
    "flips",  # the same at 2..16 positions
    "insert",  # insert 1..16 random bytes
    "delete",  # delete a span of 1..16 bytes
    "dup",  # duplicate a span of 1..256 bytes, inserted at a random offset
    "name",  # set an op_type, domain, node name or tensor name to hostile bytes
    "rewire",  # point a node input at another node's output (may make cycles)
    "delnode",  # delete a node
    "version",  # set ir_version or an opset version to an odd integer
    "selfref",  # make a node read one of its own outputs
    "dupout",  # duplicate an output name (second producer or repeated graph output)
)

_HOSTILE_CHUNKS = (
    b"\xf2\xff",
    b"\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\x1b[2J",
    b"\nopseq: error: forged\n",
    b"\r",
    "\u202e".encode(),
    b"\x00",
    b"\t",
)

_ODD_INTS = (-1, -3, 0, 1, 2**31 - 1, 2**31, -(2**31), 2**63 - 1, -(2**63), 2**32)


def _hostile_bytes(rng: np.random.Generator) -> bytes:
    """1..4 hostile chunks mixed with ASCII, padded with random bytes to at least 24 bytes."""
    parts = []
    for _ in range(int(rng.integers(1, 5))):
        parts.append(_HOSTILE_CHUNKS[int(rng.integers(len(_HOSTILE_CHUNKS)))])
        parts.append(b"n" * int(rng.integers(0, 4)))
    data = b"".join(parts)
    if len(data) < 24:
        data += rng.integers(0, 256, 24 - len(data), dtype=np.uint8).tobytes()
    return data


def _with_marker(rng: np.random.Generator, model: onnx.ModelProto, set_field) -> bytes:
    """Serialize `model` after `set_field(marker)`, each marker swapped for hostile bytes.

    The marker is ASCII of the same length as the hostile bytes, so protobuf lengths stay valid.
    """
    payload = _hostile_bytes(rng)
    tag = f"@M{int(rng.integers(2**62)):016x}"
    marker = (tag + "@" * len(payload))[: len(payload)]
    set_field(marker)
    data = model.SerializeToString()
    return data.replace(marker.encode(), payload)


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _tensor_slots(graph: GraphProto) -> dict[str, list[tuple[object, int | None]]]:
    """Where each tensor name occurs in `graph` (not its subgraphs): (repeated field, index) pairs
    for node inputs and outputs, (message, None) for inputs, outputs, initializers, value_info."""
    slots: dict[str, list[tuple[object, int | None]]] = {}
    for node in graph.node:
        for field in (node.input, node.output):
            for i, name in enumerate(field):
                if name:
                    slots.setdefault(name, []).append((field, i))
    for value in (*graph.input, *graph.output, *graph.initializer, *graph.value_info):
        slots.setdefault(value.name, []).append((value, None))
    return slots


def _mutate_name(rng, model):
    graph = model.graph
    target = _pick(rng, ("op_type", "domain", "node_name", "tensor", "tensor_once"))
    if target.startswith("tensor"):
        slots = _tensor_slots(graph)
        if not slots:
            return None
        places = slots[_pick(rng, sorted(slots))]
        if target == "tensor_once":
            places = [_pick(rng, places)]

        def set_tensor(marker):
            for holder, i in places:
                if i is None:
                    holder.name = marker
                else:
                    holder[i] = marker

        return _with_marker(rng, model, set_tensor), target
    if not graph.node:
        return None
    node = _pick(rng, graph.node)
    attr = {"op_type": "op_type", "domain": "domain", "node_name": "name"}[target]
    return _with_marker(rng, model, lambda marker: setattr(node, attr, marker)), target


def _mutate_graph(kind, rng, model):
    """Apply a protobuf-aware mutation to `model` in place; return a short detail or None."""
    graph = model.graph
    nodes = graph.node
    if kind == "version":
        value = _pick(rng, _ODD_INTS) if rng.random() < 0.7 else int(rng.integers(-(2**40), 2**40))
        if model.opset_import and rng.random() < 0.5:
            _pick(rng, model.opset_import).version = value
            return "opset"
        model.ir_version = value
        return "ir"
    if not nodes:
        return None
    if kind == "delnode":
        del nodes[int(rng.integers(len(nodes)))]
        return "node"
    at = int(rng.integers(len(nodes)))
    node = nodes[at]
    if kind == "rewire":
        sources = [out for j, other in enumerate(nodes) if j != at for out in other.output if out]
        if not sources:
            return None
        new = _pick(rng, sources)
        if node.input:
            node.input[int(rng.integers(len(node.input)))] = new
        else:
            node.input.append(new)
        return "input"
    if kind == "selfref":
        if not node.output:
            return None
        own = _pick(rng, node.output)
        if node.input and rng.random() < 0.5:
            node.input[int(rng.integers(len(node.input)))] = own
        else:
            node.input.append(own)
        return "input"
    if kind == "dupout":
        if graph.output and rng.random() < 0.3:
            graph.output.append(_pick(rng, graph.output))
            return "graph"
        other = int(rng.integers(len(nodes)))
        if other == at or not nodes[other].output or not node.output:
            return None
        node.output[int(rng.integers(len(node.output)))] = _pick(rng, nodes[other].output)
        return "producer"
    raise ValueError(kind)  # pragma: no cover


def _mutate_bytes(kind: str, rng: np.random.Generator, data: bytes) -> bytes:
    n = len(data)
    buf = bytearray(data)
    if kind == "trunc":
        return data[: int(rng.integers(n))]
    if kind in ("flip", "flips"):
        for _ in range(1 if kind == "flip" else int(rng.integers(2, 17))):
            buf[int(rng.integers(n))] ^= int(rng.integers(1, 256))
        return bytes(buf)
    if kind == "insert":
        at = int(rng.integers(n + 1))
        extra = rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8).tobytes()
        return data[:at] + extra + data[at:]
    if kind == "delete":
        at = int(rng.integers(n))
        return data[:at] + data[at + int(rng.integers(1, 17)) :]
    if kind == "dup":
        at = int(rng.integers(n))
        span = data[at : at + int(rng.integers(1, 257))]
        to = int(rng.integers(n + 1))
        return data[:to] + span + data[to:]
    raise ValueError(kind)  # pragma: no cover


def mutants(
    seed: int,
    count: int,
    originals: Sequence[bytes],
    names: Sequence[str] | None = None,
) -> list[tuple[str, bytes]]:
    """`count` deterministic mutants of serialized models, each with a short name.

    Mutant i has kind `MUTATION_KINDS[i % 12]` and a random original; all randomness comes from
    `np.random.default_rng(seed)`, so the same arguments give the same list. Byte kinds:
    truncation, one or several xor flips, insertion of random bytes, deletion of a span,
    duplication of a span. Protobuf-aware kinds parse the original and edit its main graph:
    `name` sets a random node's op_type, domain or name, or a tensor name (everywhere, or at one
    random occurrence; node inputs and outputs, graph inputs, outputs, initializers and
    value_info), to 24+ bytes mixing invalid UTF-8, ESC sequences, a forged `opseq: error:`
    line, CR, NUL and U+202E (via a same-length ASCII marker swapped in the serialization);
    `rewire` points a node input at another node's output (may create cycles); `delnode`
    deletes a node; `version` sets ir_version or an opset version to a value such as -3, 0,
    2**31, -(2**63) or a random 41-bit int; `selfref` makes a node read its own output;
    `dupout` gives an output name a second producer or repeats a graph output. Where a
    protobuf-aware edit is impossible (the original does not parse, or has no nodes) or leaves
    the bytes unchanged, the mutant falls back to a single byte flip (named `flip`).

    Args:
        seed: Seed for `np.random.default_rng`.
        count: Number of mutants.
        originals: Serialized models (the test suite passes `corpus/examples/*.onnx`).
        names: Labels of the originals for the mutant names; `m0`, `m1`, ... by default.

    Returns:
        Pairs (name, bytes), the name being `{label}-{kind}[-{detail}]-{i:04d}`, e.g.
        `resnet-flip-0001` or `m2-name-op_type-0006`.
    """
    if not originals:
        raise ValueError("mutants needs at least one original")
    labels = list(names) if names is not None else [f"m{i}" for i in range(len(originals))]
    rng = np.random.default_rng(seed)
    parsed: dict[int, onnx.ModelProto | None] = {}
    out = []
    for i in range(count):
        index = int(rng.integers(len(originals)))
        data = bytes(originals[index])
        kind = MUTATION_KINDS[i % len(MUTATION_KINDS)]
        result = None
        if MUTATION_KINDS.index(kind) >= MUTATION_KINDS.index("name"):
            if index not in parsed:
                try:
                    parsed[index] = onnx.load_model_from_string(data)
                except Exception:  # any decode failure means "not a model"
                    parsed[index] = None
            if parsed[index] is not None:
                model = onnx.ModelProto()
                model.CopyFrom(parsed[index])
                if kind == "name":
                    done = _mutate_name(rng, model)
                    if done is not None:
                        result = (f"{kind}-{done[1]}", done[0])
                else:
                    detail = _mutate_graph(kind, rng, model)
                    if detail is not None:
                        result = (f"{kind}-{detail}", model.SerializeToString())
        elif data:
            result = (kind, _mutate_bytes(kind, rng, data))
        if result is None or result[1] == data:
            result = ("flip", _mutate_bytes("flip", rng, data) if data else b"\xff")
        out.append((f"{labels[index]}-{result[0]}-{i:04d}", result[1]))
    return out
