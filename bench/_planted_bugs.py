"""Semantic bugs planted into converted ONNX models by graph surgery, for ``oracle_bench.py``.

Every planter is a pure function ``ModelProto -> ModelProto | None``: it returns a changed copy
(its argument is never modified) with exactly one site changed, or None when the model has no
site for it. The site is the first one in node order of the main graph (If/Loop bodies are left
alone). A constant is never edited in place: the changed value goes into a fresh initializer that
only the planted node reads, so other readers of a shared constant (tf2onnx deduplicates them,
tied embeddings) are unaffected. The copy records what was changed in its ``metadata_props``
under `SITE_KEY`.

What each kind changes, site first, then the true semantic change (`KINDS` holds it in a line):

- ``norm_eps``: the ``epsilon`` of a LayerNormalization, BatchNormalization or
  InstanceNormalization, or the eps constant of a decomposed norm (``Add(ReduceMean(x*x or
  x**2), eps)``), times 100. Every normalised value is scaled by ``sqrt(v+eps)/sqrt(v+100 eps)``,
  about ``1 - 50 eps/v``: 5e-4 relative for eps 1e-5 at unit variance, 5% for Keras' 1e-3, but
  5e-11 for BERT's 1e-12, below float32 resolution.
- ``gelu_tanh``: a ``Gelu`` with exact ``approximate``, or an ``Erf`` whose input is ``x/sqrt(2)``
  (a Div by 1.414 or a Mul by 0.7071). Exact GELU becomes its tanh approximation: ``erf(u)`` is
  replaced by ``tanh(2/sqrt(pi) (u + 0.089430 u**3))``; GELU moves by up to 4.7e-4 (near
  |x| = 2.7), by far less near 0.
- ``softmax_axis``: a Softmax or LogSoftmax whose input has a known rank >= 2 is normalised over
  another axis (the nearest one of size > 1 when there is one).
- ``round_floor``: a Round becomes Floor: every element Round rounds up (fractional part > 0.5,
  or exactly 0.5 below an even integer) is 1 lower.
- ``resize_mode``: a Resize's ``coordinate_transformation_mode`` changes (half_pixel,
  pytorch_half_pixel, half_pixel_symmetric -> align_corners; align_corners, asymmetric ->
  half_pixel; tf_half_pixel_for_nn -> asymmetric): it samples at other source coordinates.
- ``clip_bound``: a Clip's constant max bound moves inwards by 10% of its magnitude (0.1 when it
  is 0), or its min bound when it has no max: more values are clipped.
- ``weight_first``: output channel 0 (column of a MatMul weight, row of a Gemm weight with
  transB, filter 0 of a Conv) of the first constant MatMul / Gemm / Conv / ConvTranspose weight
  is scaled by 1 + 1e-3: deep in the network, where later layers may attenuate it.
- ``weight_last``: the same on the last such weight, near the outputs.
- ``bias_shift``: the first element of the constant operand of an Add (a vector first, else a
  scalar; else a Conv / Gemm bias) is shifted by ``1e-3 * max(1, rms(bias))``. One channel only:
  a following normalisation would cancel a shift of every channel.
- ``relu_leaky``: a Relu becomes LeakyRelu(alpha=0.01): negative inputs give 0.01 x, not 0.
- ``transpose_perm``: the two ``perm`` entries of a Transpose whose output has two equal
  dimensions > 1 are swapped: the same shape, transposed data.
- ``sigmoid_hard``: a Sigmoid becomes HardSigmoid(alpha=0.2, beta=0.5), ``clip(0.2 x + 0.5, 0,
  1)``: off by up to 0.08.

The first six kinds need a specific pattern; the last six apply to almost every model (every
network has a weight or a bias), so that the benchmark reaches enough planted cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["KINDS", "PLANTERS", "SITE_KEY", "planted_site"]

SITE_KEY = "opseq.bench.planted"
"""The ``metadata_props`` key of a planted copy: ``"<kind>: <what was changed>"``."""

Planter = Callable[[onnx.ModelProto], "onnx.ModelProto | None"]

_DEFAULT_DOMAINS = ("", "ai.onnx")
_NORMS = ("LayerNormalization", "BatchNormalization", "InstanceNormalization")
_SQRT2 = math.sqrt(2.0)
_TANH_SCALE = 2.0 / math.sqrt(math.pi)  # sqrt(2/pi) * sqrt(2): the formula in u = x / sqrt(2)
_TANH_CUBIC = 2.0 * 0.044715
_RESIZE_MODES = {
    "half_pixel": "align_corners",
    "pytorch_half_pixel": "align_corners",
    "half_pixel_symmetric": "align_corners",
    "align_corners": "half_pixel",
    "asymmetric": "half_pixel",
    "tf_half_pixel_for_nn": "asymmetric",
}
_WEIGHT_SCALE = 1.0 + 1e-3
_BIAS_SHIFT = 1e-3


# ------------------------------------------------------------------------------------ helpers


class _Index:
    """Lookups over one graph: producers of tensors and the values of constant tensors."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.graph = graph
        self.initializers = {t.name: t for t in graph.initializer}
        self.producers = {out: node for node in graph.node for out in node.output if out}

    def constant(self, name: str) -> np.ndarray | None:
        """The value of tensor `name` if it is an initializer or a Constant (through Identity)."""
        for _ in range(8):
            if name in self.initializers:
                return numpy_helper.to_array(self.initializers[name])
            node = self.producers.get(name)
            if node is None or node.domain not in _DEFAULT_DOMAINS:
                return None
            if node.op_type == "Identity":
                name = node.input[0]
                continue
            if node.op_type == "Constant":
                return _constant_attribute(node)
            return None
        return None

    def producer(self, name: str) -> onnx.NodeProto | None:
        """The node producing `name`, through Identity nodes."""
        node = self.producers.get(name)
        while node is not None and node.op_type == "Identity":
            node = self.producers.get(node.input[0])
        return node


def _constant_attribute(node: onnx.NodeProto) -> np.ndarray | None:
    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t)
        if attribute.name == "value_float":
            return np.array(attribute.f, dtype=np.float32)
        if attribute.name == "value_floats":
            return np.array(list(attribute.floats), dtype=np.float32)
        if attribute.name == "value_int":
            return np.array(attribute.i, dtype=np.int64)
        if attribute.name == "value_ints":
            return np.array(list(attribute.ints), dtype=np.int64)
    return None


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _nodes(model: onnx.ModelProto, *op_types: str) -> Iterator[tuple[int, onnx.NodeProto]]:
    for i, node in enumerate(model.graph.node):
        if node.op_type in op_types and node.domain in _DEFAULT_DOMAINS:
            yield i, node


def _describe(index: int, node: onnx.NodeProto) -> str:
    return f"{node.op_type} node {index} ({node.name or 'unnamed'})"


def _mark(model: onnx.ModelProto, kind: str, site: str) -> onnx.ModelProto:
    entry = model.metadata_props.add()
    entry.key, entry.value = SITE_KEY, f"{kind}: {site}"
    return model


def planted_site(model: onnx.ModelProto) -> str | None:
    """What was planted into `model` (the `SITE_KEY` entry), or None."""
    return next((p.value for p in model.metadata_props if p.key == SITE_KEY), None)


def _replace_input(graph: onnx.GraphProto, node: onnx.NodeProto, position: int, value) -> str:
    """Feed input `position` of `node` from a fresh initializer holding `value`."""
    taken = {t.name for t in graph.initializer} | {o for n in graph.node for o in n.output}
    base = f"{node.input[position] or 'const'}__planted"
    name, suffix = base, 0
    while name in taken:
        suffix += 1
        name = f"{base}{suffix}"
    graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
    node.input[position] = name
    return name


def _attribute(node: onnx.NodeProto, name: str) -> onnx.AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _set_attribute(node: onnx.NodeProto, name: str, value) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend([*kept, helper.make_attribute(name, value)])


def _default_opset(model: onnx.ModelProto) -> int:
    return next((e.version for e in model.opset_import if e.domain in _DEFAULT_DOMAINS), 1)


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    """Static shapes by tensor name from ONNX shape inference ({} if inference fails)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # a model shape inference cannot handle: sites needing shapes are absent
        return {}
    shapes = {}
    graph = inferred.graph
    for info in (*graph.value_info, *graph.input, *graph.output):
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            shapes[info.name] = tuple(
                d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim
            )
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _float_scalar(value: np.ndarray | None) -> float | None:
    if value is None or value.size != 1 or value.dtype.kind != "f":
        return None
    return float(value.reshape(()))


def _swap_op(
    model: onnx.ModelProto, kind: str, old: str, new: str, **attributes
) -> onnx.ModelProto | None:
    for i, node in _nodes(model, old):
        planted = _copy(model)
        target = planted.graph.node[i]
        target.op_type = new
        del target.attribute[:]
        target.attribute.extend(helper.make_attribute(k, v) for k, v in attributes.items())
        settings = ", ".join(f"{k}={v}" for k, v in attributes.items())
        return _mark(planted, kind, f"{_describe(i, node)} -> {new}({settings})")
    return None


# ----------------------------------------------------------------------------------- planters


def plant_norm_eps(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Multiply the first normalisation epsilon (attribute or decomposed constant) by 100."""
    index = _Index(model.graph)
    for i, node in enumerate(model.graph.node):
        if node.domain not in _DEFAULT_DOMAINS:
            continue
        if node.op_type in _NORMS:
            attribute = _attribute(node, "epsilon")
            old = attribute.f if attribute is not None else 1e-5
            if not old > 0:
                continue
            planted = _copy(model)
            _set_attribute(planted.graph.node[i], "epsilon", old * 100)
            return _mark(planted, "norm_eps", f"{_describe(i, node)} epsilon {old:g} -> x100")
        if node.op_type == "Add":
            for position in (0, 1):
                eps = index.constant(node.input[position])
                value = _float_scalar(eps)
                if value is None or not 0 < value <= 0.1:
                    continue
                if not _is_mean_of_squares(index, node.input[1 - position]):
                    continue
                planted = _copy(model)
                _replace_input(planted.graph, planted.graph.node[i], position, eps * 100)
                site = f"{_describe(i, node)} eps {value:g} after ReduceMean of squares -> x100"
                return _mark(planted, "norm_eps", site)
    return None


def _is_mean_of_squares(index: _Index, name: str) -> bool:
    mean = index.producer(name)
    if mean is None or mean.op_type != "ReduceMean":
        return False
    square = index.producer(mean.input[0])
    if square is None:
        return False
    if square.op_type == "Mul":
        return square.input[0] == square.input[1]
    if square.op_type == "Pow":
        return _float_scalar(_as_float(index.constant(square.input[1]))) == 2.0
    return False


def _as_float(value: np.ndarray | None) -> np.ndarray | None:
    return None if value is None else value.astype(np.float64)


def plant_gelu_tanh(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Swap the first exact GELU (Gelu op or erf(x/sqrt 2) subgraph) for its tanh approximation."""
    index = _Index(model.graph)
    for i, node in enumerate(model.graph.node):
        if node.op_type == "Gelu" and node.domain in _DEFAULT_DOMAINS:
            attribute = _attribute(node, "approximate")
            if attribute is not None and attribute.s.decode() != "none":
                continue
            planted = _copy(model)
            _set_attribute(planted.graph.node[i], "approximate", "tanh")
            return _mark(planted, "gelu_tanh", f"{_describe(i, node)} approximate none -> tanh")
        if (
            node.op_type == "Erf"
            and node.domain in _DEFAULT_DOMAINS
            and _is_x_over_sqrt2(index, node.input[0])
        ):
            site = f"{_describe(i, node)} of x/sqrt(2) -> tanh formula"
            return _mark(_erf_to_tanh(model, i), "gelu_tanh", site)
    return None


def _is_x_over_sqrt2(index: _Index, name: str) -> bool:
    node = index.producer(name)
    if node is None or node.op_type not in ("Div", "Mul"):
        return False
    target = _SQRT2 if node.op_type == "Div" else 1 / _SQRT2
    positions = (1,) if node.op_type == "Div" else (0, 1)
    for position in positions:
        value = _float_scalar(index.constant(node.input[position]))
        if value is not None and math.isclose(value, target, rel_tol=1e-3):
            return True
    return False


def _erf_to_tanh(model: onnx.ModelProto, position: int) -> onnx.ModelProto:
    """Replace Erf node `position` by ``tanh(a (u + b u**3))`` on the same input and output."""
    planted = _copy(model)
    graph = planted.graph
    erf = graph.node[position]
    u, out = erf.input[0], erf.output[0]
    tag = f"{out}__planted_tanh"
    scale = numpy_helper.from_array(np.array(_TANH_SCALE, dtype=np.float32), f"{tag}_a")
    cubic = numpy_helper.from_array(np.array(_TANH_CUBIC, dtype=np.float32), f"{tag}_b")
    graph.initializer.extend([scale, cubic])
    added = [
        helper.make_node("Mul", [u, u], [f"{tag}_u2"]),
        helper.make_node("Mul", [f"{tag}_u2", u], [f"{tag}_u3"]),
        helper.make_node("Mul", [f"{tag}_u3", cubic.name], [f"{tag}_bu3"]),
        helper.make_node("Add", [u, f"{tag}_bu3"], [f"{tag}_sum"]),
        helper.make_node("Mul", [f"{tag}_sum", scale.name], [f"{tag}_z"]),
        helper.make_node("Tanh", [f"{tag}_z"], [out]),
    ]
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes[:position], *added, *nodes[position + 1 :]])
    return planted


def plant_softmax_axis(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Move the axis of the first Softmax/LogSoftmax of known rank >= 2 to another axis."""
    shapes = None
    for i, node in _nodes(model, "Softmax", "LogSoftmax"):
        shapes = _shapes(model) if shapes is None else shapes
        shape = shapes.get(node.input[0])
        if shape is None or len(shape) < 2:
            continue
        rank = len(shape)
        attribute = _attribute(node, "axis")
        default = -1 if _default_opset(model) >= 13 else 1
        axis = (attribute.i if attribute is not None else default) % rank
        others = sorted(
            (b for b in range(rank) if b != axis),
            key=lambda b: (not (shape[b] or 0) > 1, abs(b - axis), b),
        )
        new = others[0]
        planted = _copy(model)
        _set_attribute(planted.graph.node[i], "axis", new)
        site = f"{_describe(i, node)} axis {axis} -> {new} of shape {list(shape)}"
        return _mark(planted, "softmax_axis", site)
    return None


def plant_round_floor(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Replace the first Round by Floor."""
    return _swap_op(model, "round_floor", "Round", "Floor")


def plant_resize_mode(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Change the coordinate_transformation_mode of the first Resize (module docstring)."""
    for i, node in _nodes(model, "Resize"):
        attribute = _attribute(node, "coordinate_transformation_mode")
        old = attribute.s.decode() if attribute is not None else "half_pixel"
        new = _RESIZE_MODES.get(old)
        if new is None:
            continue
        planted = _copy(model)
        _set_attribute(planted.graph.node[i], "coordinate_transformation_mode", new)
        return _mark(planted, "resize_mode", f"{_describe(i, node)} {old} -> {new}")
    return None


def plant_clip_bound(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Move the max bound (else the min bound) of the first Clip inwards by 10% (or 0.1)."""
    index = _Index(model.graph)
    for i, node in _nodes(model, "Clip"):
        for position, name, sign in ((2, "max", -1.0), (1, "min", 1.0)):
            if _default_opset(model) < 11:
                attribute = _attribute(node, name)
                if attribute is None:
                    continue
                old = attribute.f
                new = old + sign * (0.1 * abs(old) if old else 0.1)
                planted = _copy(model)
                _set_attribute(planted.graph.node[i], name, new)
            else:
                if len(node.input) <= position or not node.input[position]:
                    continue
                value = index.constant(node.input[position])
                old = _float_scalar(value)
                if old is None:
                    continue
                new = old + sign * (0.1 * abs(old) if old else 0.1)
                planted = _copy(model)
                target = planted.graph.node[i]
                _replace_input(planted.graph, target, position, np.asarray(new, value.dtype))
            return _mark(planted, "clip_bound", f"{_describe(i, node)} {name} {old:g} -> {new:g}")
    return None


def plant_weight_first(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Scale output channel 0 of the first constant MatMul/Gemm/Conv weight by 1 + 1e-3."""
    return _scale_weight(model, "weight_first", last=False)


def plant_weight_last(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Scale output channel 0 of the last constant MatMul/Gemm/Conv weight by 1 + 1e-3."""
    return _scale_weight(model, "weight_last", last=True)


def _scale_weight(model: onnx.ModelProto, kind: str, *, last: bool) -> onnx.ModelProto | None:
    index = _Index(model.graph)
    sites = list(_nodes(model, "MatMul", "Gemm", "Conv", "ConvTranspose"))
    for i, node in reversed(sites) if last else sites:
        if len(node.input) < 2:
            continue
        weight = index.constant(node.input[1])
        if weight is None or weight.dtype.kind != "f" or weight.ndim < 2:
            continue
        if node.op_type == "MatMul":
            axis = weight.ndim - 1
        elif node.op_type == "Gemm":
            trans = _attribute(node, "transB")
            axis = 0 if trans is not None and trans.i else 1
        else:
            axis = 1 if node.op_type == "ConvTranspose" else 0
        if weight.shape[axis] < 2 or not np.any(np.take(weight, 0, axis=axis)):
            continue
        scaled = weight.copy()
        selector = [slice(None)] * weight.ndim
        selector[axis] = 0
        scaled[tuple(selector)] *= weight.dtype.type(_WEIGHT_SCALE)
        planted = _copy(model)
        _replace_input(planted.graph, planted.graph.node[i], 1, scaled)
        site = (
            f"{_describe(i, node)} weight {list(weight.shape)} channel 0 of axis {axis} x(1+1e-3)"
        )
        return _mark(planted, kind, site)
    return None


def plant_bias_shift(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Shift element 0 of the first Add bias (a vector first, else any; else a Conv/Gemm bias)."""
    index = _Index(model.graph)
    candidates = []
    for i, node in _nodes(model, "Add"):
        for position in (0, 1):
            value = index.constant(node.input[position])
            if _usable_bias(value) and index.constant(node.input[1 - position]) is None:
                candidates.append((value.size <= 1, 0, i, position, value))
    for i, node in _nodes(model, "Conv", "Gemm", "ConvTranspose"):
        value = index.constant(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if _usable_bias(value):
            candidates.append((True, 1, i, 2, value))
    if not candidates:
        return None
    _, _, i, position, value = min(candidates, key=lambda c: c[:3])
    rms = float(np.sqrt(np.mean(value.astype(np.float64) ** 2)))
    delta = _BIAS_SHIFT * max(1.0, rms)
    shifted = value.copy()
    shifted.reshape(-1)[0] += value.dtype.type(delta)
    planted = _copy(model)
    _replace_input(planted.graph, planted.graph.node[i], position, shifted)
    site = (
        f"{_describe(i, model.graph.node[i])} input {position} {list(value.shape)}[0] + {delta:.3g}"
    )
    return _mark(planted, "bias_shift", site)


def _usable_bias(value: np.ndarray | None) -> bool:
    """A float constant without huge or non-finite values (those are masks, not biases)."""
    if value is None or value.dtype.kind != "f" or value.size == 0:
        return False
    return bool(np.all(np.isfinite(value)) and np.max(np.abs(value)) < 1e4)


def plant_relu_leaky(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Replace the first Relu by LeakyRelu(alpha=0.01)."""
    return _swap_op(model, "relu_leaky", "Relu", "LeakyRelu", alpha=0.01)


def plant_transpose_perm(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Swap two perm entries of the first Transpose whose output has two equal dims > 1."""
    shapes = None
    for i, node in _nodes(model, "Transpose"):
        shapes = _shapes(model) if shapes is None else shapes
        shape = shapes.get(node.output[0])
        if shape is None or len(shape) < 2:
            continue
        attribute = _attribute(node, "perm")
        perm = list(attribute.ints) if attribute is not None else list(range(len(shape)))[::-1]
        pair = next(
            (
                (a, b)
                for a in range(len(shape))
                for b in range(a + 1, len(shape))
                if shape[a] is not None and shape[a] > 1 and shape[a] == shape[b]
            ),
            None,
        )
        if pair is None:
            continue
        a, b = pair
        new = list(perm)
        new[a], new[b] = perm[b], perm[a]
        planted = _copy(model)
        _set_attribute(planted.graph.node[i], "perm", new)
        site = f"{_describe(i, node)} perm {perm} -> {new} (output {list(shape)})"
        return _mark(planted, "transpose_perm", site)
    return None


def plant_sigmoid_hard(model: onnx.ModelProto) -> onnx.ModelProto | None:
    """Replace the first Sigmoid by HardSigmoid(alpha=0.2, beta=0.5)."""
    return _swap_op(model, "sigmoid_hard", "Sigmoid", "HardSigmoid", alpha=0.2, beta=0.5)


PLANTERS: dict[str, Planter] = {
    "norm_eps": plant_norm_eps,
    "gelu_tanh": plant_gelu_tanh,
    "softmax_axis": plant_softmax_axis,
    "round_floor": plant_round_floor,
    "resize_mode": plant_resize_mode,
    "clip_bound": plant_clip_bound,
    "weight_first": plant_weight_first,
    "weight_last": plant_weight_last,
    "bias_shift": plant_bias_shift,
    "relu_leaky": plant_relu_leaky,
    "transpose_perm": plant_transpose_perm,
    "sigmoid_hard": plant_sigmoid_hard,
}
"""Kind -> planter, in the order of the module docstring's table."""

KINDS: dict[str, str] = {
    "norm_eps": "normalisation epsilon x100: outputs scaled by sqrt(v+eps)/sqrt(v+100eps)",
    "gelu_tanh": "exact GELU -> tanh approximation: up to 4.7e-4 off (near |x| = 2.7)",
    "softmax_axis": "Softmax/LogSoftmax normalised over another axis",
    "round_floor": "Round -> Floor: elements Round rounds up are 1 lower",
    "resize_mode": "Resize samples at other source coordinates (coordinate_transformation_mode)",
    "clip_bound": "Clip bound moved inwards by 10% of its magnitude (0.1 at 0)",
    "weight_first": "output channel 0 of the first MatMul/Gemm/Conv weight x(1 + 1e-3)",
    "weight_last": "output channel 0 of the last MatMul/Gemm/Conv weight x(1 + 1e-3)",
    "bias_shift": "element 0 of an Add (or Conv/Gemm) bias + 1e-3 * max(1, rms(bias))",
    "relu_leaky": "Relu -> LeakyRelu(0.01): negatives give 0.01 x instead of 0",
    "transpose_perm": "two equal-size axes of a Transpose swapped: same shape, transposed data",
    "sigmoid_hard": "Sigmoid -> HardSigmoid(0.2, 0.5): up to 0.08 off",
}
"""Kind -> the true semantic change, in one line."""
