"""What the installed ONNX Runtime can run: its schemas and kernels, matched as it matches them.

ONNX Runtime resolves a node to its op's schema at the model's opset import (the newest
``since_version`` not above it) and looks for a kernel of that op, domain and provider whose
version range holds that ``since_version`` and whose type constraints accept the node's types.
Both tables come from the installed onnxruntime (``get_all_operator_schema``,
``get_all_opkernel_def``) and are built once per process. The rules copy ONNX Runtime's
``KernelRegistry::VerifyKernelDef`` and ``KernelTypeStrResolver``:

- a kernel with an open range (``start .. INT_MAX``) matches only the ``since_version`` it starts
  at: it was written before any newer version of the op existed;
- a kernel's type constraint names a schema type parameter (``T``) or else a formal input or
  output (``shape``); it is checked on the first such argument the node has, inputs before
  outputs, and an argument the node omits is not checked.

A node no kernel takes is expanded into its schema's function body when it has one
(`expand_function`), as ONNX Runtime inlines it, with onnx's rule that a body registered for an
older opset holds only while none of its ops changed since. Types are written as ONNX Runtime
writes them (``tensor(float)``, ``seq(tensor(int64))``); None is a type shape inference could not
tell, which any kernel accepts (the caller reports it).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import onnx

from opseq.untrusted import decode_text

__all__ = [
    "DEFAULT_PROVIDER",
    "FunctionBody",
    "KernelMatch",
    "OpSchema",
    "RuntimeContext",
    "expand_function",
    "has_kernels_for",
    "match_kernel",
    "node_problems",
    "ort_version",
    "released_opsets",
    "resolve_schema",
    "type_string",
]

DEFAULT_PROVIDER = "CPUExecutionProvider"

_INT_MAX = 2**31 - 1
_EXPANSION_DOMAIN = "opseq.expansion"
_SHOWN_TYPES = 12
_MAX_FUNCTION_DEPTH = 4  # function bodies inside function bodies, as far as this


@dataclass(frozen=True, slots=True, kw_only=True)
class OpSchema:
    """One version of an op as ONNX Runtime registers it; formals are (name, type string)."""

    domain: str
    name: str
    since_version: int
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]
    type_params: frozenset[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Kernel:
    start: int
    end: int
    constraints: tuple[tuple[str, frozenset[str]], ...]

    def covers(self, since_version: int) -> bool:
        if self.end == _INT_MAX:
            return self.start == since_version
        return self.start <= since_version <= self.end


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelMatch:
    """Whether a kernel takes a node; if one did on a type it could not see; if not, why not."""

    found: bool
    unknown_types: bool = False
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionBody:
    """A node expanded into its schema's function body, with the body's types and opsets."""

    nodes: tuple[onnx.NodeProto, ...]
    types: Mapping[str, onnx.TypeProto]
    opsets: Mapping[str, int]


@dataclass(slots=True, kw_only=True)
class RuntimeContext:
    """What one model's check knows while it walks the nodes (mutable counters, shared memo)."""

    opsets: Mapping[str, int]
    providers: tuple[str, ...]
    memo: dict = field(default_factory=dict)
    unknown_types: int = 0
    expanded: int = 0


def node_problems(
    node: onnx.NodeProto,
    types: Mapping[str, onnx.TypeProto],
    context: RuntimeContext,
    *,
    depth: int = 0,
) -> list[tuple[str, str]]:
    """Why ONNX Runtime would refuse `node`, as (item, detail) pairs; [] when it runs it.

    The item is the versioned op with its input types (``ai.onnx:Erf@13(tensor(double))``,
    ``@?`` when no schema resolves, ``?`` for an unknown type, empty for an omitted input).
    ``Constant`` needs no kernel (ONNX Runtime makes it an initializer); a node no kernel takes
    is checked through its function body when it has one, then, on the CPU provider, as float
    if it has float16 inputs (ONNX Runtime inserts casts around it).
    """
    domain, op_type = _domain(decode_text(node.domain)), decode_text(node.op_type)
    if domain == "" and op_type == "Constant":
        return []
    inputs = [_type_of(name, types) for name in node.input]
    outputs = [_type_of(name, types) for name in node.output]
    version = context.opsets.get(domain)
    schema = None if version is None else resolve_schema(domain, op_type, version)
    if schema is None:
        detail = f"onnxruntime {ort_version()} has no schema for it at opset {version}"
        if version is None:
            detail = f"no opset import for {domain}"
        return [(_item(domain, op_type, None, inputs), detail)]
    match = match_kernel(schema, inputs, outputs, providers=context.providers)
    if match.found:
        context.unknown_types += match.unknown_types
        return []
    body = _body_problems(node, schema, types, context, depth)
    if body is not None:
        return body
    if DEFAULT_PROVIDER in context.providers and "tensor(float16)" in inputs:
        as_float = [_fp16_as_float(t) for t in inputs], [_fp16_as_float(t) for t in outputs]
        if match_kernel(schema, *as_float, providers=context.providers).found:
            return []
    return [(_item(domain, op_type, schema.since_version, inputs), match.reason or "")]


def _body_problems(node, schema: OpSchema, types, context: RuntimeContext, depth: int):
    """The problems of the function body `node` expands into; None when there is no body."""
    if depth >= _MAX_FUNCTION_DEPTH:
        return None
    input_types = [types.get(name) if name else None for name in node.input]
    key = (schema.domain, schema.name, schema.since_version, *map(_attribute_key, node.attribute))
    key += tuple(None if t is None else type_string(t) for t in input_types)
    if key not in context.memo:
        body = expand_function(node, schema, input_types, opsets=context.opsets)
        context.memo[key] = None if body is None else _problems_in(body, context, depth)
    found = context.memo[key]
    if found is None:
        return None
    context.expanded += 1
    where = f"in the function body of {schema.name}@{schema.since_version}"
    return [(item, f"{detail} ({where})") for item, detail in found]


def _problems_in(body: FunctionBody, context: RuntimeContext, depth: int) -> list[tuple[str, str]]:
    # ONNX Runtime resolves the body at the model's opsets; the body's own fill the gaps.
    inner = RuntimeContext(
        opsets={**body.opsets, **context.opsets}, providers=context.providers, memo=context.memo
    )
    found: list[tuple[str, str]] = []
    for node in body.nodes:
        found += [
            p for p in node_problems(node, body.types, inner, depth=depth + 1) if p not in found
        ]
    context.unknown_types += inner.unknown_types
    return found


def _attribute_key(attribute: onnx.AttributeProto) -> bytes:
    return attribute.SerializeToString(deterministic=True)


def _item(domain: str, op_type: str, since: int | None, inputs: Sequence[str | None]) -> str:
    cells = ",".join("?" if t is None else t for t in inputs)
    version = "?" if since is None else since
    return f"{domain or 'ai.onnx'}:{op_type}@{version}({cells})"


def _type_of(name: str, types: Mapping[str, onnx.TypeProto]) -> str | None:
    if not name:
        return ""
    found = types.get(name)
    return None if found is None else type_string(found)


def _fp16_as_float(type_str: str | None) -> str | None:
    return "tensor(float)" if type_str == "tensor(float16)" else type_str


def ort_version() -> str:
    """The installed onnxruntime's version."""
    import onnxruntime

    return onnxruntime.__version__


def resolve_schema(domain: str, op_type: str, version: int) -> OpSchema | None:
    """Return ONNX Runtime's schema of `op_type` at opset `version` of `domain`, if any.

    Examples:
        >>> resolve_schema("", "Relu", 17).since_version
        14
        >>> resolve_schema("", "Erfc", 17) is None
        True
    """
    found = None
    for schema in _schemas().get((_domain(domain), op_type), ()):
        if schema.since_version > version:
            break
        found = schema
    return found


def released_opsets() -> dict[str, int]:
    """The newest opset ONNX Runtime accepts per domain it knows; it refuses newer imports."""
    newest: dict[str, int] = {}
    for (domain, _), schemas in _schemas().items():
        newest[domain] = max(newest.get(domain, 0), schemas[-1].since_version)
    return newest


def has_kernels_for(provider: str) -> bool:
    """Tell whether the installed onnxruntime lists any kernel for `provider`."""
    return bool(_kernels(provider))


def match_kernel(
    schema: OpSchema,
    input_types: Sequence[str | None],
    output_types: Sequence[str | None],
    *,
    providers: Sequence[str],
) -> KernelMatch:
    """Look for a kernel of `schema`'s op on `providers` for a node with these types.

    Args:
        schema: The node's resolved schema.
        input_types: Per node input: its type string, None when unknown, ``""`` when omitted.
        output_types: The same for the node's outputs.
        providers: Execution providers whose kernels count.

    Returns:
        What was found, with the reason when nothing was.

    Examples:
        >>> add = resolve_schema("", "Add", 13)
        >>> match_kernel(add, ["tensor(float)"] * 2, [None], providers=[DEFAULT_PROVIDER]).found
        True
        >>> miss = match_kernel(add, ["tensor(uint8)"] * 2, [None], providers=[DEFAULT_PROVIDER])
        >>> miss.reason[:42]
        'no kernel for these types (T: tensor(doubl'
    """
    kernels = [k for p in providers for k in _kernels(p).get((schema.domain, schema.name), ())]
    in_range = [k for k in kernels if k.covers(schema.since_version)]
    refused: dict[str, set[str]] = {}
    for kernel in in_range:
        verdict = _constraints_verdict(schema, kernel, input_types, output_types)
        if verdict is None or verdict is True:
            return KernelMatch(found=True, unknown_types=verdict is None)
        refused.setdefault(verdict, set()).update(dict(kernel.constraints)[verdict])
    if not kernels:
        return KernelMatch(found=False, reason=f"onnxruntime {ort_version()} has no kernel for it")
    if not in_range:
        ranges = sorted({(k.start, k.end) for k in kernels})
        shown = ", ".join(str(a) if b in (a, _INT_MAX) else f"{a}-{b}" for a, b in ranges)
        return KernelMatch(found=False, reason=f"no kernel for this version (kernels: {shown})")
    name, accepted = next(iter(refused.items()))
    shown = ", ".join(sorted(accepted)[:_SHOWN_TYPES]) + (", ..." * (len(accepted) > _SHOWN_TYPES))
    return KernelMatch(found=False, reason=f"no kernel for these types ({name}: {shown})")


def type_string(type_proto: onnx.TypeProto) -> str | None:
    """Write a TypeProto as ONNX Runtime does; None when it is not known.

    Examples:
        >>> type_string(onnx.helper.make_tensor_type_proto(onnx.TensorProto.FLOAT16, [2]))
        'tensor(float16)'
        >>> type_string(onnx.helper.make_sequence_type_proto(
        ...     onnx.helper.make_tensor_type_proto(onnx.TensorProto.INT64, None)))
        'seq(tensor(int64))'
        >>> type_string(onnx.TypeProto()) is None
        True
    """
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        elem = _elem_name(getattr(type_proto, kind).elem_type)
        prefix = "tensor" if kind == "tensor_type" else "sparse_tensor"
        return None if elem is None else f"{prefix}({elem})"
    if kind in ("sequence_type", "optional_type"):
        inner = type_string(getattr(type_proto, kind).elem_type)
        prefix = "seq" if kind == "sequence_type" else "optional"
        return None if inner is None else f"{prefix}({inner})"
    if kind == "map_type":
        key = _elem_name(type_proto.map_type.key_type)
        value = type_string(type_proto.map_type.value_type)
        return None if key is None or value is None else f"map({key},{value})"
    return None


def expand_function(
    node: onnx.NodeProto,
    schema: OpSchema,
    input_types: Sequence[onnx.TypeProto | None],
    *,
    opsets: Mapping[str, int],
) -> FunctionBody | None:
    """Expand `node` into the function body ONNX Runtime would inline when no kernel takes it.

    ONNX Runtime asks for the body at the model's ``ai.onnx`` opset (at the schema's version in
    other domains), context-dependent bodies first, and resolves the body's nodes at that opset.

    Args:
        node: The node.
        schema: Its resolved schema.
        input_types: The node's input types (None when unknown).
        opsets: The model's opset imports as ONNX Runtime sees them.

    Returns:
        The body's nodes with the types onnx infers for them, or None when the op has no body
        at that opset (or onnx cannot build it).
    """
    requested = (
        opsets.get("", schema.since_version) if schema.domain == "" else schema.since_version
    )
    function = _function_proto(node, schema, input_types, requested)
    return None if function is None else _inline_body(node, function, input_types)


def _function_proto(node, schema: OpSchema, input_types, requested: int):
    try:
        py_schema = onnx.defs.get_schema(schema.name, schema.since_version, schema.domain)
    except onnx.defs.SchemaError:
        return None
    if py_schema.since_version != schema.since_version:
        return None  # onnx and ONNX Runtime disagree on this op's versions: do not guess
    try:
        if py_schema.has_context_dependent_function:
            # onnx's binding wants a version a builder was registered at; ONNX Runtime takes the
            # newest one not above its request, as here.
            versions = [v for v in py_schema.context_dependent_function_opset_versions]
            if not any(v <= requested for v in versions):
                return None
            types = [(t or onnx.TypeProto()).SerializeToString() for t in input_types]
            raw = py_schema.get_context_dependent_function_with_opset_version(
                max(v for v in versions if v <= requested), node.SerializeToString(), types
            )
            return onnx.FunctionProto.FromString(raw) if raw else None
        raw = (
            py_schema.get_function_with_opset_version(requested) if py_schema.has_function else b""
        )
    except Exception:  # onnx refuses to build the body (bad attributes, unknown types)
        return None
    if not raw:
        return None
    registered = max(v for v in py_schema.function_opset_versions if v <= requested)
    function = onnx.FunctionProto.FromString(raw)
    return function if _body_holds(function, registered, requested) else None


def _body_holds(function: onnx.FunctionProto, registered: int, requested: int) -> bool:
    """Tell whether no ``ai.onnx`` op of the body changed (onnx's ``GetFunction`` validation)."""
    return all(
        resolve_schema("", n.op_type, requested) == resolve_schema("", n.op_type, registered)
        for n in function.node
        if _domain(n.domain) == ""
    )


def _inline_body(node, function: onnx.FunctionProto, input_types) -> FunctionBody | None:
    """Call `function` from a one-node model, inline it, and infer the body's types."""
    import onnx.inliner

    function.domain, function.name = _EXPANSION_DOMAIN, "body"
    call = onnx.NodeProto(domain=_EXPANSION_DOMAIN, op_type="body", attribute=node.attribute)
    call.input.extend(node.input)
    call.output.extend(node.output)
    graph = onnx.GraphProto(name="expansion", node=[call])
    for name, type_proto in dict(zip(node.input, input_types, strict=False)).items():
        if name:
            graph.input.add(name=name).type.CopyFrom(type_proto or onnx.TypeProto())
    graph.output.extend(onnx.ValueInfoProto(name=name) for name in node.output if name)
    model = onnx.ModelProto(ir_version=onnx.IR_VERSION, graph=graph, functions=[function])
    model.opset_import.extend(function.opset_import)
    model.opset_import.add(domain=_EXPANSION_DOMAIN, version=1)
    try:
        inlined = onnx.inliner.inline_local_functions(model)
    except Exception:  # the inliner raises bare errors from C++
        return None
    # Types stay partial when inference fails; untyped nodes are matched on version only.
    with contextlib.suppress(Exception):
        inlined = onnx.shape_inference.infer_shapes(inlined, strict_mode=False)
    infos = (*inlined.graph.input, *inlined.graph.value_info, *inlined.graph.output)
    types = {i.name: i.type for i in infos if i.type.WhichOneof("value") is not None}
    imports = {_domain(i.domain): i.version for i in function.opset_import}
    return FunctionBody(nodes=tuple(inlined.graph.node), types=types, opsets=imports)


def _constraints_verdict(
    schema: OpSchema,
    kernel: _Kernel,
    input_types: Sequence[str | None],
    output_types: Sequence[str | None],
) -> bool | str | None:
    """True if every constraint accepts, None if one could not see its type, else its name."""
    unknown = False
    for name, accepted in kernel.constraints:
        actual = _bound_type(schema, name, input_types, output_types)
        if actual is None:
            unknown = True
        elif actual and actual not in accepted:
            return name
    return None if unknown else True


def _bound_type(
    schema: OpSchema,
    constraint: str,
    input_types: Sequence[str | None],
    output_types: Sequence[str | None],
) -> str | None:
    """The type of the first argument the node has for `constraint`; "" when it has none."""
    for formals, actuals in ((schema.inputs, input_types), (schema.outputs, output_types)):
        for index, (name, type_str) in enumerate(formals):
            key = type_str if type_str in schema.type_params else name
            # Only the last formal may be variadic in ONNX, so formal i is actual argument i.
            if key == constraint and index < len(actuals) and actuals[index] != "":
                return actuals[index]
    return ""


def _elem_name(elem_type: int) -> str | None:
    if elem_type == onnx.TensorProto.UNDEFINED:
        return None
    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()  # FLOAT8E4M3FN: float8e4m3fn
    except ValueError:
        return f"elem_type_{elem_type}"


def _domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


@functools.cache
def _schemas() -> Mapping[tuple[str, str], tuple[OpSchema, ...]]:
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    table: dict[tuple[str, str], list[OpSchema]] = {}
    for s in ort_state.get_all_operator_schema():
        schema = OpSchema(
            domain=_domain(s.domain),
            name=s.name,
            since_version=s.since_version,
            inputs=tuple((f.name, f.typeStr) for f in s.inputs),
            outputs=tuple((f.name, f.typeStr) for f in s.outputs),
            type_params=frozenset(t.type_param_str for t in s.type_constraints),
        )
        table.setdefault((schema.domain, schema.name), []).append(schema)
    return {key: tuple(sorted(v, key=lambda s: s.since_version)) for key, v in table.items()}


@functools.cache
def _kernels(provider: str) -> Mapping[tuple[str, str], tuple[_Kernel, ...]]:
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    table: dict[tuple[str, str], list[_Kernel]] = {}
    for k in ort_state.get_all_opkernel_def():
        if k.provider == provider:
            start, end = k.version_range
            constraints = tuple(sorted((n, frozenset(t)) for n, t in k.type_constraints.items()))
            kernel = _Kernel(start=start, end=end, constraints=constraints)
            table.setdefault((_domain(k.domain), k.op_name), []).append(kernel)
    return {key: tuple(v) for key, v in table.items()}
