"""The calibrated rule, branch by branch, and the measurements it judges (exact values)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opseq.difftest.compare import compare_outputs, merge_comparisons
from opseq.difftest.measure import OutputErrors, measure_output, normalised_error, ulp_distances
from opseq.errors import ConfigError
from opseq.outcomes import Blame
from opseq.tolerance import AllClose, CalibratedRule, Tolerance, Verdict, calibrated_blame

EPS = 2.0**-23
RULE = CalibratedRule(headroom=64, floor_units=4, unstable_units=8192, min_sets=3)


def errors(**fields) -> OutputErrors:
    return OutputErrors(kind="float", **fields)


# --- measurements


def test_normalised_error_is_max_error_over_eps_times_magnitude_plus_rms():
    reference = np.array([3.0, 4.0])  # rms = sqrt(12.5)
    actual = np.array([3.0 + 1e-5, 4.0])
    expected = 1e-5 / (EPS * (3.0 + np.sqrt(12.5)))
    assert normalised_error(actual, reference, eps=EPS) == pytest.approx(expected, rel=1e-9)


def test_normalised_error_ignores_non_finite_positions():
    reference = np.array([1.0, np.inf, np.nan])
    assert normalised_error(np.array([1.0, 5.0, 7.0]), reference, eps=EPS) == 0.0


def test_ulp_distances_count_float32_steps_across_zero():
    one = np.float32(1.0)
    up = np.nextafter(one, np.float32(2))
    tiny = np.nextafter(np.float32(0), np.float32(1))
    got = ulp_distances(np.float32([up, tiny]), np.array([1.0, -float(tiny)]))
    assert got.tolist() == [1, 2]


def test_measure_output_float_against_float64_reference():
    reference = np.array([1.0, -2.0])
    framework = np.float32([1.0, -2.0])
    onnx = np.float32([1.0, np.float32(-2.0) + np.float32(2.0**-21)])
    e = measure_output(framework, onnx, reference)
    rms = np.sqrt(2.5)
    assert e.kind == "float" and e.structure is None and e.reference_disagrees is None
    assert e.framework_error == 0.0
    assert e.onnx_error == pytest.approx(2.0**-21 / (EPS * (2.0 + rms)), rel=1e-3)  # 4 digits
    assert e.scale == pytest.approx(rms, rel=1e-3)


@pytest.mark.parametrize(
    ("framework", "onnx", "reference", "field", "value"),
    [
        (np.zeros(2, np.float32), np.zeros(3, np.float32), None, "structure", "shape"),
        (np.zeros(2, np.float32), np.zeros(2, np.float64), None, "structure", "dtype"),
        (np.float32([1, np.inf]), np.float32([1, 2]), None, "onnx_disagrees", "nonfinite"),
        (np.float32([1, np.inf]), np.float32([1, np.inf]), [1, np.inf], "reference_disagrees",
         None),
        # float32 overflowed where float64 did not: the inputs are at float32's limit
        (np.float32([1, np.inf]), np.float32([1, np.inf]), [1, 3e39], "reference_disagrees",
         "nonfinite"),
        (np.int64([1, 2]), np.int64([1, 3]), np.int64([1, 2]), "onnx_disagrees", "values"),
        (np.int64([1, 2]), np.int64([1, 2]), np.int64([1, 3]), "reference_disagrees", "values"),
    ],
)  # fmt: skip
def test_measure_output_patterns(framework, onnx, reference, field, value):
    reference = None if reference is None else np.asarray(reference)
    assert getattr(measure_output(framework, onnx, reference), field) == value


def test_measure_output_missing_side():
    assert measure_output(None, np.zeros(1)).structure == "missing"


def test_output_errors_round_trip():
    e = errors(framework_error=None, onnx_error=float("inf"), scale=2.0, onnx_disagrees="nonfinite")
    assert OutputErrors.from_dict(e.to_dict()) == e


# --- the rule, per output


@pytest.mark.parametrize(
    ("measured", "verdict"),
    [
        (errors(framework_error=3.0, onnx_error=4.0), Verdict.OK),  # within the floor of 4
        (errors(framework_error=10.0, onnx_error=10.0), Verdict.OK),
        (errors(framework_error=10.0, onnx_error=640.0), Verdict.NUMERICAL),  # 64 x
        (errors(framework_error=10.0, onnx_error=641.0), Verdict.SEMANTIC),
        (errors(framework_error=0.0, onnx_error=256.0), Verdict.NUMERICAL),  # 64 x floor 4
        (errors(framework_error=0.0, onnx_error=257.0), Verdict.SEMANTIC),
        (errors(framework_error=9000.0, onnx_error=1.0), Verdict.UNSTABLE),
        (errors(reference_disagrees="nonfinite", onnx_error=1e9), Verdict.UNSTABLE),
        (errors(onnx_disagrees="nonfinite"), Verdict.SEMANTIC),
        (errors(structure="shape"), Verdict.SEMANTIC),
        (OutputErrors(kind="integer", onnx_disagrees="values"), Verdict.SEMANTIC),
        (OutputErrors(kind="integer", reference_disagrees="values"), Verdict.UNSTABLE),
        (OutputErrors(kind="bool"), Verdict.OK),
        # without a float64 reference: fixed bounds against the framework's float32
        (errors(framework_error=None, onnx_error=4.0), Verdict.OK),
        (errors(framework_error=None, onnx_error=8192.0), Verdict.NUMERICAL),
        (errors(framework_error=None, onnx_error=8193.0), Verdict.SEMANTIC),
    ],
)
def test_judge_output_branches(measured, verdict):
    assert RULE.judge_output(measured)[0] is verdict


# --- the rule, per case


def test_semantic_needs_min_sets_and_sporadic_sets_are_numerical():
    off, fine = [errors(onnx_error=1e6)], [errors(onnx_error=1.0)]
    assert RULE.judge([off, off] + [fine] * 8).verdict is Verdict.NUMERICAL
    judged = RULE.judge([off] * 3 + [fine] * 7)
    assert judged.verdict is Verdict.SEMANTIC and judged.semantic_sets == 3
    assert judged.required_headroom == pytest.approx(1e6 / 4)


def test_too_few_stable_sets_are_unstable():
    shaky = [errors(framework_error=1e5, onnx_error=1e5)]
    fine = [errors(onnx_error=1.0)]
    assert RULE.judge([shaky] * 8 + [fine] * 2).verdict is Verdict.UNSTABLE
    assert RULE.judge([shaky] * 7 + [fine] * 3).verdict is Verdict.OK


def test_min_sets_is_capped_at_the_number_of_sets():
    judged = RULE.judge([[errors(onnx_error=1e6)]])
    assert judged.verdict is Verdict.SEMANTIC and judged.sets == 1


def test_a_set_is_as_severe_as_its_worst_output():
    judged = RULE.judge([[errors(onnx_error=1.0), errors(structure="dtype")]] * 3)
    assert judged.verdict is Verdict.SEMANTIC and judged.required_headroom == float("inf")


def test_reference_is_named():
    assert RULE.judge([[errors(framework_error=None)]]).reference == "framework-float32"
    assert RULE.judge([[errors()]]).reference == "float64"


def test_rule_round_trip_and_validation():
    assert CalibratedRule.from_dict(RULE.to_dict()) == RULE
    with pytest.raises(ConfigError, match="headroom"):
        CalibratedRule(headroom=0.5)
    with pytest.raises(ConfigError, match="min_sets"):
        CalibratedRule(min_sets=0)


@pytest.mark.parametrize(
    ("unoptimised", "reference", "blame"),
    [
        (Verdict.OK, None, Blame.RUNTIME_OPTIMIZER),
        (Verdict.NUMERICAL, Verdict.SEMANTIC, Blame.RUNTIME_OPTIMIZER),
        (Verdict.SEMANTIC, Verdict.NUMERICAL, Blame.RUNTIME),
        (Verdict.SEMANTIC, Verdict.SEMANTIC, Blame.CONVERTER),
        (Verdict.SEMANTIC, None, Blame.UNKNOWN),
        (None, None, Blame.UNKNOWN),
        (Verdict.UNSTABLE, None, Blame.UNKNOWN),
    ],
)
def test_calibrated_blame(unoptimised, reference, blame):
    assert calibrated_blame(Verdict.SEMANTIC, unoptimised, reference) is blame


# --- the fixed and element-wise rules


def test_allclose_is_element_wise_unlike_tolerance_with_rtol():
    # Element 0: large abs diff on a large value; element 1: large rel diff on a tiny value.
    expected, actual = np.array([1000.0, 1e-6]), np.array([1000.01, 2e-6])
    comparisons = merge_comparisons([compare_outputs([expected], [actual], names=["y"])])
    assert Tolerance(atol=1e-3, rtol=1e-3).__class__ is Tolerance
    assert is_fixed_mismatch(comparisons)  # max abs 0.01 >= 1e-3 and max rel 1 >= 1e-3
    assert not AllClose(atol=1e-3, rtol=1e-3).is_mismatch(comparisons)  # each element passes


def is_fixed_mismatch(comparisons) -> bool:
    from opseq.tolerance import is_mismatch

    return is_mismatch(comparisons, Tolerance(atol=1e-3, rtol=1e-3))


def test_allclose_excess_is_stored_per_rule_and_merged_by_max():
    first = compare_outputs([np.array([1.0])], [np.array([1.003])], names=["y"])
    second = compare_outputs([np.array([1.0])], [np.array([1.0005])], names=["y"])
    (merged,) = merge_comparisons([first, second])
    assert merged.allclose["0.001/0.001"] == pytest.approx(0.003 / (1e-3 + 1e-3))
    assert AllClose(atol=1e-3, rtol=1e-3).is_mismatch([merged])


def test_allclose_rule_must_be_stored():
    with pytest.raises(ConfigError, match="not stored"):
        AllClose(atol=0.5, rtol=0.5)


@pytest.mark.parametrize(
    "per_set",
    [
        [errors(framework_error=None, onnx_error=2.0)] * 3,
        [OutputErrors(kind="bool")] * 2,
        [OutputErrors(kind="bool", framework_error=None)] * 4,
        [errors(onnx_disagrees="nonfinite", onnx_error=float("inf")), errors(scale=1.5)],
        [OutputErrors(kind="other", structure="missing", onnx_error=float("inf")), errors()],
    ],
)
def test_error_columns_round_trip(per_set):
    from opseq.difftest.measure import errors_from_columns, errors_to_columns

    columns = errors_to_columns(per_set)
    assert errors_from_columns(json.loads(json.dumps(columns))) == per_set
