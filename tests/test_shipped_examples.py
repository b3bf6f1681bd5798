"""The example models shipped in corpus/examples analyse as the architectures they claim to be."""

from __future__ import annotations

from pathlib import Path

import pytest

from opseq.analysis import analyze_model

pytestmark = pytest.mark.corpus

EXAMPLES = Path(__file__).resolve().parents[1] / "corpus" / "examples"


@pytest.mark.parametrize(
    ("name", "ops", "ngram"),
    [
        (
            "resnet_torch",
            {"Conv", "Relu", "Add", "GlobalAveragePool", "Gemm"},
            ("Conv", "Add", "Relu"),
        ),
        (
            "keras_cnn_tf2onnx",
            {"Conv", "Relu", "Concat", "Add", "MatMul", "Softmax"},
            ("Concat", "Conv"),
        ),
        (
            "transformer_block_torch",
            {"LayerNormalization", "MatMul", "Softmax", "Erf"},
            ("Div", "Softmax", "MatMul"),
        ),
        ("lstm_torch", {"LSTM", "Gather", "Gemm"}, ("Transpose", "LSTM")),
    ],
)
def test_shipped_example_structure(name, ops, ngram):
    path = EXAMPLES / f"{name}.onnx"
    analysis = analyze_model(path)
    assert ops <= set(analysis.op_histogram)
    assert analysis.ngrams.counts.get(ngram, 0) >= 1
    assert analysis.info.structure_only and analysis.path_count >= 1
    assert path.stat().st_size < 200_000
