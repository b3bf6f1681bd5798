"""Tiny models and references for the coverage tests, each with known items."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import parser

from opseq.coverage.index import load_reference
from opseq.coverage.model_coverage import ReferenceUnion
from opseq.coverage.references import parse_reference

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'


def parse(text: str) -> onnx.ModelProto:
    model = parser.parse_model(f"{HEADER}\n{text}")
    onnx.checker.check_model(model, full_check=True)
    return model


def relu_neg() -> onnx.ModelProto:
    """x -> Relu -> Neg -> y."""
    return parse("""g (float[2,3] x) => (float[2,3] y) {
        a = Relu(x)
        y = Neg(a)
    }""")


def relu_exp() -> onnx.ModelProto:
    """x -> Relu -> Exp -> y."""
    return parse("""g (float[2,3] x) => (float[2,3] y) {
        a = Relu(x)
        y = Exp(a)
    }""")


def relu_neg_exp() -> onnx.ModelProto:
    """x -> Relu -> Neg -> Exp -> y, plus a LeakyRelu(alpha 0.2) on a branch into Add."""
    return parse("""g (float[2,3] x) => (float[2,3] y) {
        a = Relu(x)
        b = Neg(a)
        c = Exp(b)
        d = LeakyRelu <alpha = 0.2> (x)
        y = Add(c, d)
    }""")


def write(directory: Path, models: dict[str, onnx.ModelProto]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, model in models.items():
        onnx.save(model, directory / f"{name}.onnx")
    return directory


def reference_of(directory: Path, cache_dir: Path | None = None) -> ReferenceUnion:
    index = load_reference(parse_reference(str(directory)), cache_dir=cache_dir)
    return ReferenceUnion((index,))


@pytest.fixture
def reference_dir(tmp_path: Path) -> Path:
    """A reference of two models: Relu>Neg and Relu>Exp."""
    return write(tmp_path / "reference", {"relu_neg": relu_neg(), "relu_exp": relu_exp()})
