"""Raw differences and the mismatch rule, on hand-made arrays with exactly known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from opseq.difftest.compare import (
    MISSING_DTYPE,
    OutputComparison,
    compare_outputs,
    merge_comparisons,
)
from opseq.errors import ConfigError
from opseq.tolerance import Tolerance, is_mismatch

INF, NAN = np.inf, np.nan
TINY = np.finfo(np.float64).tiny


def _one(expected, actual) -> OutputComparison:
    (comparison,) = compare_outputs([np.asarray(expected)], [np.asarray(actual)], names=["y"])
    return comparison


def _f32(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_compare_outputs_abs_rel_mean_exact():
    c = _one(_f32(1.0, 2.0, -4.0), _f32(1.5, 2.0, -3.0))
    assert (c.max_abs_diff, c.max_rel_diff, c.mean_abs_diff) == (1.0, 0.5, 0.5)
    assert c.shape_match and c.dtype_match and not c.nan_mismatch and not c.inf_mismatch
    assert (c.expected_shape, c.actual_shape, c.expected_dtype) == ((3,), (3,), "float32")


def test_compare_outputs_zero_expected_relative_uses_tiny():
    c = _one(_f32(0.0, 1.0), _f32(0.5, 1.0))
    assert c.max_abs_diff == 0.5
    assert c.max_rel_diff == pytest.approx(0.5 / TINY, rel=1e-6)  # stored to 7 digits


def test_compare_outputs_identical_arrays_all_zero():
    c = _one(_f32(1.0, -2.0), _f32(1.0, -2.0))
    assert (c.max_abs_diff, c.max_rel_diff, c.mean_abs_diff) == (0.0, 0.0, 0.0)


def test_compare_outputs_same_nan_pattern_excluded_from_diffs():
    c = _one(_f32(NAN, 1.0, 2.0), _f32(NAN, 1.0, 2.5))
    assert not c.nan_mismatch
    assert (c.max_abs_diff, c.mean_abs_diff) == (0.5, 0.25)


def test_compare_outputs_different_nan_pattern_flagged():
    c = _one(_f32(NAN, 1.0), _f32(3.0, 1.0))
    assert c.nan_mismatch and not c.inf_mismatch
    assert c.max_abs_diff == 0.0  # the NaN position is not compared numerically
    assert is_mismatch([c], Tolerance(atol=1e9))


def test_compare_outputs_same_inf_pattern_not_flagged():
    c = _one(_f32(INF, -INF, 1.0), _f32(INF, -INF, 1.0))
    assert not c.inf_mismatch and c.max_abs_diff == 0.0
    assert not is_mismatch([c], Tolerance())


@pytest.mark.parametrize(("expected", "actual"), [((INF, 0.0), (1.0, 0.0)), ((INF,), (-INF,))])
def test_compare_outputs_different_inf_pattern_flagged(expected, actual):
    c = _one(_f32(*expected), _f32(*actual))
    assert c.inf_mismatch and not c.nan_mismatch
    assert c.max_abs_diff == 0.0
    assert is_mismatch([c], Tolerance(atol=1e9))


def test_compare_outputs_shape_disagreement_diffs_are_inf():
    c = _one(np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32))
    assert not c.shape_match and c.dtype_match
    assert c.max_abs_diff == c.max_rel_diff == c.mean_abs_diff == INF
    assert (c.expected_shape, c.actual_shape) == ((2, 3), (3, 2))
    assert is_mismatch([c], Tolerance(atol=1e9))


def test_compare_outputs_dtype_disagreement_keeps_diffs():
    c = _one(np.array([1.0, 2.0], np.float32), np.array([1.0, 2.0], np.float64))
    assert not c.dtype_match and c.shape_match
    assert (c.expected_dtype, c.actual_dtype) == ("float32", "float64")
    assert c.max_abs_diff == 0.0
    assert is_mismatch([c], Tolerance(atol=1e9))


def test_compare_outputs_bool_and_int_diffs_are_floats():
    b = _one(np.array([True, False]), np.array([False, False]))
    i = _one(np.array([3, 5], np.int64), np.array([3, 9], np.int64))
    assert (b.max_abs_diff, b.expected_dtype) == (1.0, "bool")
    assert (i.max_abs_diff, i.max_rel_diff, i.mean_abs_diff) == (4.0, 0.8, 2.0)
    assert isinstance(i.max_abs_diff, float)


def test_compare_outputs_scalars():
    c = _one(np.float32(2.0), np.float32(3.0))
    assert (c.max_abs_diff, c.expected_shape) == (1.0, ())


def test_compare_outputs_strings_equal_or_inf():
    assert _one(np.array(["a", "b"]), np.array(["a", "b"])).max_abs_diff == 0.0
    assert _one(np.array(["a", "b"]), np.array(["a", "c"])).max_abs_diff == INF


def test_compare_outputs_output_count_disagreement_is_missing_output():
    expected = [_f32(1.0), _f32(2.0)]
    comparisons = compare_outputs(expected, [_f32(1.0)], names=["a", "b"])
    assert len(comparisons) == 2
    extra = comparisons[1]
    assert extra.name == "b" and extra.actual_dtype == MISSING_DTYPE
    assert not extra.shape_match and not extra.dtype_match and extra.max_abs_diff == INF
    assert is_mismatch(comparisons, Tolerance(atol=1e9))
    assert compare_outputs([_f32(1.0)], expected, names=[])[1].name == "output_1"


def test_merge_comparisons_takes_maxima_and_combines_flags():
    first = compare_outputs([_f32(0.0, 4.0)], [_f32(1.0, 4.0)], names=["y"])
    second = compare_outputs([_f32(NAN, 1.0)], [_f32(0.0, 1.25)], names=["y"])
    (merged,) = merge_comparisons([first, second])
    assert merged.max_abs_diff == 1.0  # from the first set
    assert merged.max_rel_diff == pytest.approx(1.0 / TINY, rel=1e-6)  # expected 0 in set 1
    assert merged.mean_abs_diff == (0.5 + 0.25) / 2
    assert merged.nan_mismatch and merged.shape_match and merged.dtype_match


def test_merge_comparisons_shape_from_disagreeing_set_and_ragged_counts():
    good = compare_outputs([_f32(1.0)], [_f32(1.0)], names=["y"])
    bad = compare_outputs([_f32(1.0)], [_f32(1.0, 2.0)], names=["y"])
    (merged,) = merge_comparisons([good, bad, good])
    assert not merged.shape_match and merged.actual_shape == (2,)
    ragged = merge_comparisons(
        [good, compare_outputs([_f32(1.0)] * 2, [_f32(1.0)] * 2, names=["y", "z"])]
    )
    assert len(ragged) == 2 and ragged[1].name == "z" and not ragged[1].shape_match
    assert merge_comparisons([]) == ()


@pytest.mark.parametrize(("atol", "expected"), [(0.25, True), (0.2500001, False), (0.0, True)])
def test_is_mismatch_at_boundary_diff_equal_to_atol_mismatches(atol, expected):
    c = _one(_f32(0.0), _f32(0.25))
    assert is_mismatch([c], Tolerance(atol=atol)) is expected


def test_is_mismatch_zero_diff_with_zero_atol_mismatches():
    # The rule is >=: with atol 0 even identical outputs are labelled a mismatch.
    assert is_mismatch([_one(_f32(1.0), _f32(1.0))], Tolerance(atol=0.0))


def test_is_mismatch_rtol_also_required():
    c = _one(np.array([100.0]), np.array([101.0]))
    assert (c.max_abs_diff, c.max_rel_diff) == (1.0, 0.01)
    assert is_mismatch([c], Tolerance(atol=0.5))
    assert not is_mismatch([c], Tolerance(atol=0.5, rtol=0.02))
    assert is_mismatch([c], Tolerance(atol=0.5, rtol=0.01))
    assert not is_mismatch([c], Tolerance(atol=2.0, rtol=0.001))


def test_is_mismatch_no_outputs_false():
    assert not is_mismatch([], Tolerance())


def test_tolerance_round_trip_and_defaults():
    assert Tolerance() == Tolerance(atol=1e-7, rtol=None)
    for tol in (Tolerance(), Tolerance(atol=1e-3, rtol=1e-2)):
        assert Tolerance.from_dict(json.loads(json.dumps(tol.to_dict()))) == tol


@pytest.mark.parametrize("kwargs", [{"atol": -1.0}, {"atol": NAN}, {"rtol": -0.1}])
def test_tolerance_invalid_raises_config_error(kwargs):
    with pytest.raises(ConfigError, match="tolerance"):
        Tolerance(**kwargs)


def test_output_comparison_round_trip_json_safe_with_inf():
    c = _one(np.zeros((2,), np.float32), np.zeros((3,), np.float32))
    text = json.dumps(c.to_dict(), allow_nan=False)
    assert json.loads(text)["max_abs_diff"] == "inf"
    assert OutputComparison.from_dict(json.loads(text)) == c
