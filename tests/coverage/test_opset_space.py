"""The op space and the type-feasible bigrams of onnx's schemas, checked on pairs read by hand."""

from __future__ import annotations

import onnx
import pytest

from opseq.coverage.opset_space import default_domain_ops, highest_opset, type_feasible_bigrams
from opseq.errors import ConfigError


def allowed(op: str, opset: int, constraint: str) -> set[str]:
    schema = onnx.defs.get_schema(op, opset)
    return next(
        set(c.allowed_type_strs) for c in schema.type_constraints if c.type_param_str == constraint
    )


def test_default_domain_ops_follow_since_version():
    current16, _ = default_domain_ops(16)
    current17, deprecated17 = default_domain_ops(17)
    assert "LayerNormalization" not in current16  # since 17
    assert "LayerNormalization" in current17
    assert {"Relu", "Shape", "Gather", "If"} <= current17
    assert deprecated17 == {"Scatter", "Upsample"}  # deprecated at 11 and 10
    assert not current17 & deprecated17


def test_deprecation_is_the_schema_in_force():
    # Upsample exists from 7 and is deprecated from 10; GroupNormalization-18 is deprecated
    # until GroupNormalization-21 replaces it.
    assert "Upsample" in default_domain_ops(9)[0]
    assert "Upsample" in default_domain_ops(10)[1]
    assert "GroupNormalization" in default_domain_ops(20)[1]
    assert "GroupNormalization" in default_domain_ops(21)[0]
    assert "GroupNormalization" not in default_domain_ops(17)[0] | default_domain_ops(17)[1]


def test_other_domains_are_not_in_the_space():
    current, deprecated = default_domain_ops(highest_opset())
    assert "LabelEncoder" not in current | deprecated  # ai.onnx.ml
    assert "Adam" not in current | deprecated  # ai.onnx.preview.training


def test_shape_to_gather_is_feasible():
    # Shape outputs tensor(int64) (constraint T1); Gather's indices Tind allow int32 and int64.
    assert allowed("Shape", 17, "T1") == {"tensor(int64)"}
    assert "tensor(int64)" in allowed("Gather", 17, "Tind")
    assert type_feasible_bigrams(17).is_feasible("Shape", "Gather")


def test_shape_to_relu_is_feasible_only_once_relu_takes_integers():
    # Relu-13 takes float types only; Relu-14 adds int8..int64.
    assert "tensor(int64)" not in allowed("Relu", 13, "T")
    assert "tensor(int64)" in allowed("Relu", 14, "T")
    assert not type_feasible_bigrams(13).is_feasible("Shape", "Relu")
    assert type_feasible_bigrams(14).is_feasible("Shape", "Relu")


def test_feasibility_is_directed_and_typed():
    space = type_feasible_bigrams(17)
    assert not space.is_feasible("Shape", "Sin")  # Sin: float types only
    assert space.is_feasible("Relu", "Shape")  # Shape takes any tensor
    assert space.is_feasible("Greater", "If")  # bool output, If's cond is bool
    assert not space.is_feasible("Relu", "If")  # If reads only its bool cond explicitly
    assert not space.is_feasible("Relu", "Upsample")  # deprecated at 17: not current
    assert not space.is_feasible("Relu", "NoSuchOp")


def test_count_and_count_without():
    space = type_feasible_bigrams(17)
    current, _ = default_domain_ops(17)
    assert space.count == len(space.pairs) <= len(current) ** 2
    assert {op for pair in space.pairs for op in pair} <= current
    with_identity = sum(1 for pair in space.pairs if "Identity" in pair)
    assert with_identity > 0
    assert space.count_without(["Identity"]) == space.count - with_identity
    assert space.to_dict() == {"opset": 17, "count": space.count}


def test_results_are_cached():
    assert type_feasible_bigrams(17) is type_feasible_bigrams(17)
    assert default_domain_ops(17) is default_domain_ops(17)


@pytest.mark.parametrize("opset", [0, -1, highest_opset() + 1, True, "17"])
def test_unknown_opsets_are_config_errors(opset):
    with pytest.raises(ConfigError, match="not a default-domain opset"):
        default_domain_ops(opset)
    with pytest.raises(ConfigError, match="not a default-domain opset"):
        type_feasible_bigrams(opset)
