"""Each new op of the wide vocabulary, alone in a hand-built graph, in PyTorch and Keras.

Expected values come from numpy (or are written out where numpy has no such op). Integer and
bool results must be exact; float results exact too unless the case gives an rtol (composite
activations such as Mish, evaluated in another order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from opseq.sources.synthetic import OPS, SyntheticGraph, SyntheticNode, TensorType
from opseq.sources.synthetic.ops.wide_index_ops import gather_elements_index, scatter_index

BOTH = ("torch", "tensorflow")
I64, I32, F32 = np.int64, np.int32, np.float32


@dataclass(frozen=True)
class Case:
    """One op on fixed inputs; `expected` per framework when the frameworks differ."""

    op: str
    inputs: tuple[np.ndarray, ...]
    attrs: dict[str, Any]
    expected: np.ndarray | dict[str, np.ndarray]
    frameworks: tuple[str, ...] = BOTH
    rtol: float = 0.0
    label: str = field(default="")


def _a(values, dtype=F32) -> np.ndarray:
    return np.asarray(values, dtype=dtype)


def _scatter_expected(x, updates, attrs):
    index = scatter_index(x.shape, attrs)
    part = updates[tuple(slice(0, s) for s in index.shape)]
    out = x.copy()
    if attrs["reduction"] == "add":
        part = part + np.take_along_axis(x, index, axis=attrs["axis"])
    np.put_along_axis(out, index, part, axis=attrs["axis"])
    return out


_X34 = np.arange(12, dtype=F32).reshape(1, 3, 4) - 5.0
_SCATTER = {"axis": 2, "count": 3, "index_seed": 7, "reduction": "none"}
_SCATTER_ADD = {**_SCATTER, "reduction": "add"}
_GATHER = {"axis": 1, "count": 2, "index_seed": 3}
_IMAGE = np.arange(4, dtype=F32).reshape(1, 1, 2, 2)  # channels first: [[0, 1], [2, 3]]
_ALIGNED = _a([[[[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]]]])
_RAMP = _a([[[0, 1, 2]]])

CASES = [
    Case("DivTrue", (_a([[-7, 7, 3]], I64),), {"divisor": (2,)}, _a([[-3.5, 3.5, 1.5]])),
    Case("DivFloor", (_a([[-7, 7]], I64),), {"divisor": (2,)}, _a([[-4, 3]], I64)),
    Case("DivFloor", (_a([[-7.5, 7.5]]),), {"divisor": (-2.0,)}, _a([[3, -4]]), label="float"),
    Case("DivTrunc", (_a([[-7, 7]], I32),), {"divisor": (2,)}, _a([[-3, 3]], I32)),
    Case("DivTrunc", (_a([[-7, 7]], I64),), {"divisor": (-2, 2)}, _a([[3, 3]], I64), label="per"),
    Case("Remainder", (_a([[-7, 7]], I64),), {"divisor": (3,)}, _a([[2, 1]], I64)),
    Case("Remainder", (_a([[-7, 7]], I64),), {"divisor": (-3,)}, _a([[-1, -2]], I64), label="neg"),
    Case("Remainder", (_a([[-7.5, 7.5]]),), {"divisor": (2.0,)}, _a([[0.5, 1.5]]), label="float"),
    Case("Fmod", (_a([[-7, 7]], I64),), {"divisor": (3,)}, _a([[-1, 1]], I64)),
    Case("Fmod", (_a([[-7.5, 7.5]]),), {"divisor": (-2.0,)}, _a([[-1.5, 1.5]]), label="float"),
    Case("BitShiftLeft", (_a([[-3, 5]], I32),), {"shift": (2,)}, _a([[-12, 20]], I32)),
    Case("BitShiftRight", (_a([[-8, 9]], I64),), {"shift": (1, 2)}, _a([[-4, 2]], I64)),
    Case("BitwiseAnd", (_a([[-6, 5]], I64), _a([[3, 3]], I64)), {}, _a([[2, 1]], I64)),
    Case("BitwiseOr", (_a([[-6, 5]], I32), _a([[3, 3]], I32)), {}, _a([[-5, 7]], I32)),
    Case("BitwiseXor", (_a([[-6, 5]], I64), _a([[3]], I64)), {}, _a([[-7, 6]], I64)),
    Case("BitwiseNot", (_a([[-1, 0, 5]], I64),), {}, _a([[0, -1, -6]], I64)),
    Case("CastWide", (_a([[2.7, -2.7, 0.0]]),), {"to": "int32"}, _a([[2, -2, 0]], I32)),
    Case("CastWide", (_a([[3, 0, -1]], I64),), {"to": "bool"}, _a([[1, 0, 1]], bool), label="b"),
    Case("CastWide", (_a([[3, -1]], I32),), {"to": "float32"}, _a([[3.0, -1.0]]), label="f"),
    Case("CastWide", (_a([[1, 0]], bool),), {"to": "int64"}, _a([[1, 0]], I64), label="i"),
    Case(
        "WhereInt",
        (_a([[True, False]], bool), _a([[1, 2]], I64), _a([[-1, -2]], I64)),
        {},
        _a([[1, -2]], I64),
    ),
    Case("ClampInt", (_a([[-5, 0, 5]], I64),), {"min": -2, "max": 3}, _a([[-2, 0, 3]], I64)),
    Case("MaxInt", (_a([[-5, 7]], I32), _a([[1, 2]], I32)), {}, _a([[1, 7]], I32)),
    Case("MinInt", (_a([[-5, 7]], I64), _a([[1, 2]], I64)), {}, _a([[-5, 2]], I64)),
    Case(
        "MatMulInt",
        (_a([[[1, 2], [3, 4]]], I64), _a([[[5, 6], [7, 8]]], I64)),
        {},
        _a([[[19, 22], [43, 50]]], I64),
    ),
    Case("Sign", (_a([[-2.5, 0.0, 3.0]]),), {}, _a([[-1, 0, 1]])),
    Case("Sign", (_a([[-2, 0, 3]], I32),), {}, _a([[-1, 0, 1]], I32), label="int"),
    Case(
        "ArgMaxTies",
        (_a([[3, 7, 7, 1]], I64),),
        {"axis": 1, "keepdims": False},
        _a([1], I64),
    ),
    Case(
        "ArgMinTies",
        (_a([[3, 1, 1, 3], [0, 0, 2, 2]], I32),),
        {"axis": 1, "keepdims": True},
        _a([[1], [0]], I64),
    ),
    Case(
        "Fmax",
        (_a([[np.nan, 1.0, np.nan]]), _a([[0.0, np.nan, np.nan]])),
        {},
        _a([[0.0, 1.0, np.nan]]),
        frameworks=("torch",),
    ),
    Case(
        "Fmin",
        (_a([[np.nan, 1.0]]), _a([[0.0, np.nan]])),
        {},
        _a([[0.0, 1.0]]),
        frameworks=("torch",),
    ),
    Case(
        "GatherNegative",
        (_a([[10, 20, 30]], I64),),
        {"axis": 1, "indices": (-1, 0, -3)},
        _a([[30, 10, 10]], I64),
    ),
    Case(
        "GatherElements",
        (_X34,),
        _GATHER,
        np.take_along_axis(_X34, gather_elements_index(_X34.shape, _GATHER), axis=1),
    ),
    Case(
        "ScatterElements",
        (_X34, _X34 * 10),
        _SCATTER,
        _scatter_expected(_X34, _X34 * 10, _SCATTER),
    ),
    Case(
        "ScatterElements",
        (_X34.astype(I64), _X34.astype(I64) + 100),
        _SCATTER_ADD,
        _scatter_expected(_X34.astype(I64), _X34.astype(I64) + 100, _SCATTER_ADD),
        label="add",
    ),
    Case(
        "CumSumVariant",
        (_a([[1, 2, 3, 4]], I64),),
        {"axis": 1, "exclusive": True, "reverse": False},
        _a([[0, 1, 3, 6]], I64),
    ),
    Case(
        "CumSumVariant",
        (_a([[1, 2, 3, 4]], I32),),
        {"axis": 1, "exclusive": False, "reverse": True},
        _a([[10, 9, 7, 4]], I32),
        label="reverse",
    ),
    Case(
        "CumSumVariant",
        (_a([[1, 2, 3, 4]]),),
        {"axis": 1, "exclusive": True, "reverse": True},
        _a([[9, 7, 4, 0]]),
        label="both",
    ),
    Case(
        "TopKValues",
        (_a([[1, 5, 3, 5]]),),
        {"axis": 1, "k": 2, "largest": True},
        _a([[5, 5]]),
    ),
    Case(
        "TopKValues",
        (_a([[4, 1], [2, 9], [3, 0]], I64),),
        {"axis": 0, "k": 2, "largest": False},
        _a([[2, 0], [3, 1]], I64),
        label="smallest-axis0",
    ),
    Case(
        "TopKIndices",
        (_a([[1, 5, 3, 4]]),),
        {"axis": 1, "k": 3, "largest": True},
        _a([[1, 3, 2]], I64),
    ),
    Case(
        "TopKIndices",
        (_a([[4, 1], [2, 9], [3, 0]], I32),),
        {"axis": 0, "k": 1, "largest": False},
        _a([[1, 2]], I64),
        label="smallest-axis0",
    ),
    Case(
        "UniqueInverse",
        (_a([[3, 1, 3, 2]], I64),),
        {},
        # PyTorch numbers the sorted unique values, TensorFlow them in order of appearance.
        {"torch": _a([[2, 0, 2, 1]], I64), "tensorflow": _a([[0, 1, 0, 2]], I64)},
    ),
    Case("UniqueCounts", (_a([[3, 1], [3, 2]]),), {}, _a([[2, 1], [2, 1]], I64)),
    Case(
        "Einsum",
        (_a(np.arange(6).reshape(1, 2, 3)), _a(np.arange(6).reshape(1, 3, 2))),
        {"equation": "bij,bjk->bik"},
        np.einsum("bij,bjk->bik", np.arange(6).reshape(1, 2, 3), np.arange(6).reshape(1, 3, 2)),
    ),
    Case(
        "Einsum",
        (_a([[1, 2, 3]]), _a([[4, 5, 6]])),
        {"equation": "bi,bi->b"},
        _a([32]),
        label="dot",
    ),
    Case(
        "EinsumUnary",
        (_a(np.arange(6).reshape(2, 3)),),
        {"equation": "ij->ji"},
        _a(np.arange(6).reshape(2, 3).T),
    ),
    Case(
        "EinsumUnary",
        (_a(np.arange(8).reshape(2, 2, 2)),),
        {"equation": "bii->bi"},
        _a([[0, 3], [4, 7]]),
        label="diagonal",
    ),
    Case(
        "PadReflect",
        (_a([[[0, 1, 2, 3]]]),),
        {"pads": ((2, 1),), "mode": "reflect"},
        np.pad(_a([[[0, 1, 2, 3]]]), ((0, 0), (0, 0), (2, 1)), mode="reflect"),
    ),
    Case(
        "PadReplicate",
        (_a([[[0, 1, 2, 3]]]),),
        {"pads": ((2, 1),), "mode": "replicate"},
        np.pad(_a([[[0, 1, 2, 3]]]), ((0, 0), (0, 0), (2, 1)), mode="edge"),
        frameworks=("torch",),
    ),
    Case(
        "PadCircular",
        (_a([[[0, 1, 2, 3]]]),),
        {"pads": ((2, 1),), "mode": "circular"},
        np.pad(_a([[[0, 1, 2, 3]]]), ((0, 0), (0, 0), (2, 1)), mode="wrap"),
        frameworks=("torch",),
    ),
    Case(
        "PadSymmetric",
        (_a([[[0, 1], [2, 3]]]),),
        {"pads": ((1, 0), (2, 1)), "mode": "symmetric"},
        np.pad(_a([[[0, 1], [2, 3]]]), ((0, 0), (1, 0), (2, 1)), mode="symmetric"),
        frameworks=("tensorflow",),
    ),
    Case(
        "ReduceAxes",
        (_X34,),
        {"kind": "sum", "axes": (1, 2), "keepdims": True},
        _X34.sum(axis=(1, 2), keepdims=True),
    ),
    Case(
        "ReduceAxes",
        (_X34.astype(I32),),
        {"kind": "max", "axes": (0, 2), "keepdims": False},
        _X34.astype(I32).max(axis=(0, 2)),
        label="int-max",
    ),
    Case(
        "ReduceAxes",
        (_X34.astype(I32),),
        {"kind": "sum", "axes": (1, 2), "keepdims": False},
        _X34.astype(I32).sum(axis=(1, 2), dtype=I32),
        label="int32-sum",
    ),
    Case(
        "ReduceAxes",
        (_X34,),
        {"kind": "mean", "axes": (0, 1), "keepdims": True},
        _X34.mean(axis=(0, 1), keepdims=True),
        label="mean",
    ),
    Case(
        "ReduceProd",
        (_a([[1, -2, 3], [4, 5, -6]], I64),),
        {"axes": (1,), "keepdims": False},
        _a([-6, -120], I64),
    ),
    Case(
        "ReduceDimEmpty",
        (_X34,),
        {"kind": "min", "keepdims": True},
        _X34.min(keepdims=True),
        frameworks=("torch",),
    ),
    Case(
        "ReduceDimEmpty",
        (_X34.astype(I32),),
        {"kind": "sum", "keepdims": True},
        _X34.astype(I32).sum(keepdims=True, dtype=I32),
        frameworks=("torch",),
        label="int32",
    ),
    Case(
        "ReduceAxisEmpty",
        (_X34,),
        {"kind": "sum", "keepdims": False},
        _X34,
        frameworks=("tensorflow",),
    ),
    Case(
        "RoundDecimals",
        (_a([[1.25, 2.75, -0.5, 13.0]]),),
        {"decimals": 1},
        np.round(_a([[1.25, 2.75, -0.5, 13.0]]), 1),
    ),
    Case(
        "RoundDecimals",
        (_a([[15.0, 25.0, -35.0]]),),
        {"decimals": -1},
        _a([[20.0, 20.0, -40.0]]),  # half to even: 1.5 -> 2, 2.5 -> 2, -3.5 -> -4
        label="tens",
    ),
    Case("IsNaN", (_a([[np.nan, np.inf, 1.0]]),), {}, _a([[1, 0, 0]], bool)),
    Case("IsInf", (_a([[np.nan, -np.inf, 1.0]]),), {}, _a([[0, 1, 0]], bool)),
    Case("Reciprocal", (_a([[2.0, -4.0, 0.5]]),), {}, _a([[0.5, -0.25, 2.0]])),
    Case(
        "HardSwish",
        (_a([[-4.0, -1.0, 0.0, 1.0, 4.0]]),),
        {},
        _a([[0.0, -1 / 3, 0.0, 2 / 3, 4.0]]),
        rtol=1e-6,
    ),
    Case(
        "Mish",
        (_a([[-1.0, 0.0, 2.0]]),),
        {},
        _a([[-1.0, 0.0, 2.0]]) * np.tanh(np.log1p(np.exp(_a([[-1.0, 0.0, 2.0]])))),
        rtol=1e-6,
    ),
]

_INTERPOLATE = {"align_corners": None, "antialias": False, "size": None, "scale": None}
_RESIZE_CASES = [
    Case(
        "InterpolateModes",
        (_a([[[1, 2]]]),),
        {**_INTERPOLATE, "mode": "nearest", "scale": 2.0},
        _a([[[1, 1, 2, 2]]]),
        frameworks=("torch",),
    ),
    Case(
        "InterpolateModes",
        (_RAMP,),
        {**_INTERPOLATE, "mode": "linear", "align_corners": True, "size": (5,)},
        _a([[[0, 0.5, 1, 1.5, 2]]]),
        frameworks=("torch",),
        label="linear",
    ),
    Case(
        "InterpolateModes",
        (_IMAGE,),
        {**_INTERPOLATE, "mode": "bilinear", "align_corners": True, "size": (3, 3)},
        _ALIGNED,
        frameworks=("torch",),
        label="bilinear",
    ),
    Case(
        "InterpolateModes",
        (np.full((1, 1, 3, 3), 2.5, F32),),
        {**_INTERPOLATE, "mode": "bicubic", "align_corners": False, "scale": 1.75},
        np.full((1, 1, 5, 5), 2.5, F32),
        frameworks=("torch",),
        rtol=1e-6,
        label="bicubic",
    ),
    Case(
        "InterpolateModes",
        (np.arange(2, dtype=F32).reshape(1, 1, 1, 1, 2),),
        {**_INTERPOLATE, "mode": "trilinear", "align_corners": True, "size": (2, 1, 3)},
        _a([[[[[0, 0.5, 1]], [[0, 0.5, 1]]]]]),
        frameworks=("torch",),
        label="trilinear",
    ),
    Case(
        "InterpolateModes",
        (_a([[[1, 3, 5, 7]]]),),
        {**_INTERPOLATE, "mode": "area", "scale": 0.5},
        _a([[[2, 6]]]),
        frameworks=("torch",),
        label="area",
    ),
    Case(
        "InterpolateModes",
        (_IMAGE,),
        {**_INTERPOLATE, "mode": "nearest-exact", "size": (4, 4)},
        _IMAGE.repeat(2, axis=2).repeat(2, axis=3),
        frameworks=("torch",),
        label="nearest-exact",
    ),
    Case(
        "ResizeMethods",
        (_IMAGE.transpose(0, 2, 3, 1),),
        {"method": "nearest", "antialias": False, "size": (4, 4)},
        _IMAGE.transpose(0, 2, 3, 1).repeat(2, axis=1).repeat(2, axis=2),
        frameworks=("tensorflow",),
    ),
    Case(
        "ResizeMethods",
        (np.arange(16, dtype=F32).reshape(1, 4, 4, 1),),
        {"method": "area", "antialias": False, "size": (2, 2)},
        _a([[[[2.5], [4.5]], [[10.5], [12.5]]]]),
        frameworks=("tensorflow",),
        label="area",
    ),
    Case(
        "ResizeMethods",
        (np.full((1, 3, 3, 2), -1.5, F32),),
        {"method": "lanczos3", "antialias": True, "size": (5, 2)},
        np.full((1, 5, 2, 2), -1.5, F32),
        frameworks=("tensorflow",),
        rtol=1e-6,
        label="lanczos3",
    ),
    Case(
        "ResizingLayer",
        (_IMAGE.transpose(0, 2, 3, 1),),
        {"interpolation": "nearest", "crop_to_aspect_ratio": False, "size": (4, 4)},
        _IMAGE.transpose(0, 2, 3, 1).repeat(2, axis=1).repeat(2, axis=2),
        frameworks=("tensorflow",),
    ),
    Case(
        "ResizeV1",
        (_IMAGE.transpose(0, 2, 3, 1),),
        {"method": "bilinear", "align_corners": True, "half_pixel": False, "size": (3, 3)},
        _ALIGNED.transpose(0, 2, 3, 1),
        frameworks=("tensorflow",),
    ),
]


def _params():
    for case in (*CASES, *_RESIZE_CASES):
        for framework in case.frameworks:
            name = f"{case.op}-{case.label}" if case.label else case.op
            marks = [pytest.mark.torch] if framework == "torch" else [pytest.mark.tf]
            yield pytest.param(case, framework, id=f"{name}-{framework}", marks=marks)


def _graph(case: Case, framework: str) -> SyntheticGraph:
    inputs = tuple(
        (f"x{i}", TensorType(shape=a.shape, dtype=a.dtype.name)) for i, a in enumerate(case.inputs)
    )
    output = OPS[case.op].infer(tuple(t for _, t in inputs), case.attrs)
    node = SyntheticNode(
        name="n0", op=case.op, inputs=tuple(n for n, _ in inputs), attrs=case.attrs, output=output
    )
    return SyntheticGraph(
        framework=framework, seed=0, inputs=inputs, nodes=(node,), outputs=("n0",)
    )


def _run(graph: SyntheticGraph, arrays) -> np.ndarray:
    if graph.framework == "torch":
        import torch

        from opseq.sources.synthetic.torch_model import to_torch_module

        with torch.no_grad():
            (out,) = to_torch_module(graph, 0)(*(torch.from_numpy(a) for a in arrays))
        return out.numpy()
    from opseq.sources.synthetic.tf_model import to_keras_model

    out = to_keras_model(graph, 0)(list(arrays))
    return np.asarray(out[0] if isinstance(out, list | tuple) else out)


def test_every_new_op_has_a_value_case_in_each_of_its_frameworks():
    from tests.sources.test_synthetic_wide import NEW_OPS

    covered = {(case.op, fw) for case in (*CASES, *_RESIZE_CASES) for fw in case.frameworks}
    wanted = {(op, fw) for op in NEW_OPS for fw in OPS[op].frameworks}
    assert wanted <= covered


@pytest.mark.parametrize(("case", "framework"), list(_params()))
def test_new_op_alone_gives_the_numpy_values(case, framework):
    graph = _graph(case, framework)
    expected = case.expected[framework] if isinstance(case.expected, dict) else case.expected
    out = _run(graph, case.inputs)
    declared = graph.nodes[0].output
    assert out.shape == declared.shape == expected.shape
    assert out.dtype.name == declared.dtype
    if case.rtol:
        np.testing.assert_allclose(out, expected, rtol=case.rtol, atol=1e-7)
    else:
        np.testing.assert_array_equal(out, expected.astype(out.dtype))


@pytest.mark.torch
def test_torch_float64_twin_keeps_integers_integer_and_widens_integer_division():
    import torch

    from opseq.sources.synthetic.torch_model import to_float64_module, to_torch_module

    case = CASES[0]  # DivTrue: int64 in, float out
    module = to_torch_module(_graph(case, "torch"), 0)
    twin = to_float64_module(module)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # as opseq.difftest.float64 runs a torch twin
    try:
        with torch.no_grad():
            (out,) = twin(torch.from_numpy(case.inputs[0]))
    finally:
        torch.set_default_dtype(previous)
    assert out.dtype == torch.float64
    np.testing.assert_array_equal(out.numpy(), [[-3.5, 3.5, 1.5]])
    bits = next(c for c in CASES if c.op == "BitwiseAnd")
    with torch.no_grad():
        (out,) = to_float64_module(to_torch_module(_graph(bits, "torch"), 0))(
            *(torch.from_numpy(a) for a in bits.inputs)
        )
    assert out.dtype == torch.int64


@pytest.mark.tf
def test_keras_float64_twin_keeps_integers_integer_and_computes_floats_in_float64():
    from opseq.difftest.float64 import keras_float64
    from opseq.sources.synthetic.tf_model import to_keras_model

    for case, dtype in ((CASES[0], np.float64), (CASES[3], np.int32)):  # DivTrue, DivTrunc
        twin = keras_float64(to_keras_model(_graph(case, "tensorflow"), 0))
        out = twin(list(case.inputs))
        out = np.asarray(out[0] if isinstance(out, list | tuple) else out)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, case.expected.astype(dtype))
