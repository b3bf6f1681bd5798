from __future__ import annotations

import onnx

from opseq.graph import build_opgraph
from opseq.ngrams import mine_ngrams
from opseq.strip import STRUCTURE_ONLY_KEY, is_structure_only, strip_weights, tensor_nbytes
from tests import models


def test_strip_weights_clears_large_keeps_small_and_flags():
    model = models.with_weights()
    stripped = strip_weights(model)
    weight, bias = stripped.graph.initializer
    assert (weight.name, list(weight.dims), weight.raw_data) == ("W", [16, 3, 3, 3], b"")
    assert bias.raw_data == model.graph.initializer[1].raw_data  # 64 bytes: kept
    assert is_structure_only(stripped) and not is_structure_only(model)
    assert [p.key for p in stripped.metadata_props] == [STRUCTURE_ONLY_KEY]
    assert len(stripped.SerializeToString()) < len(model.SerializeToString()) - 1500


def test_strip_weights_structure_analyses_identically():
    model = models.with_weights()
    stripped = onnx.load_model_from_string(strip_weights(model).SerializeToString())
    original, reduced = build_opgraph(model), build_opgraph(stripped)
    assert list(original.nodes(data=True)) == list(reduced.nodes(data=True))
    assert mine_ngrams(original) == mine_ngrams(reduced)


def test_strip_weights_drops_external_references():
    stripped = strip_weights(models.with_external_data("../secret.bin"))
    weight = stripped.graph.initializer[0]
    assert weight.data_location == onnx.TensorProto.DEFAULT and not weight.external_data


def test_tensor_nbytes_from_dims():
    assert tensor_nbytes(models.with_weights().graph.initializer[0]) == 16 * 3 * 3 * 3 * 4


def test_strip_weights_drops_node_metadata_unless_kept():
    model = models.with_weights()
    model.graph.node[0].doc_string = "converted from layer conv1"
    model.graph.node[0].metadata_props.add(key="pkg.torch.onnx.stack_trace", value="x" * 5000)
    stripped = strip_weights(model)
    assert not stripped.graph.node[0].doc_string and not stripped.graph.node[0].metadata_props
    kept = strip_weights(model, keep_node_metadata=True)
    assert kept.graph.node[0].metadata_props[0].key == "pkg.torch.onnx.stack_trace"
