"""The ``edge`` input strategy: corner values, ranges kept, replayable from the seed."""

from __future__ import annotations

import numpy as np
import pytest

from opseq.errors import ConfigError
from opseq.sources.base import (
    Framework,
    InputSpec,
    ModelCase,
    case_inputs,
    make_inputs,
)
from opseq.sources.edge_values import CORNER_FAMILIES, corner_family

FLOAT = InputSpec(name="x", shape=(64, 64))
INDEX = InputSpec(name="i", shape=(64, 64), dtype="int64", low=-5, high=5)
DATA = InputSpec(name="d", shape=(64, 64), dtype="int32", low=-3, high=3, role="data")
FLAGS = InputSpec(name="b", shape=(4, 4), dtype="bool")
SPECS = (FLOAT, INDEX, DATA, FLAGS)


def _sets(count=10, seed=3):
    return make_inputs(SPECS, count=count, seed=seed, strategy="edge")


def test_normal_strategy_draws_as_before():
    rng = np.random.default_rng(11)
    expected = rng.standard_normal((64, 64)).astype(np.float32)
    (got,) = make_inputs([FLOAT], count=1, seed=11, strategy="normal")
    assert np.array_equal(got["x"], expected)


def test_edge_set_zero_is_the_normal_set_zero():
    normal = make_inputs(SPECS, count=1, seed=3)[0]
    edge = _sets()[0]
    for name in normal:
        assert np.array_equal(normal[name], edge[name])


def test_every_family_gets_three_of_ten_sets():
    families = [corner_family(k) for k in range(10)]
    assert families[0] is None
    assert all(families.count(f) == 3 for f in CORNER_FAMILIES)


def test_edge_sets_replay_from_the_seed():
    first, again = _sets(), _sets()
    for a, b in zip(first, again, strict=True):
        for name in a:
            assert np.array_equal(a[name], b[name], equal_nan=True)
    other = _sets(seed=4)
    assert not np.array_equal(first[1]["x"], other[1]["x"], equal_nan=True)


def test_specials_hold_signed_zeros_subnormals_infinities_and_nan():
    x = _sets()[1]["x"]  # set 1: specials
    assert x.dtype == np.float32
    assert np.isnan(x).any() and np.isposinf(x).any() and np.isneginf(x).any()
    assert (np.signbit(x) & (x == 0)).any() and (~np.signbit(x) & (x == 0)).any()
    tiny = np.abs(x[np.isfinite(x) & (x != 0)])
    assert (tiny < np.finfo(np.float32).tiny).any()
    assert 0.6 < np.isfinite(x).mean() < 0.95  # most values stay normal


def test_ties_hold_halves_and_duplicated_extremes():
    x = _sets()[2]["x"]  # set 2: ties
    assert np.isfinite(x).all()
    assert np.isin(x, [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]).any()
    assert (x == x.max()).sum() >= 2 and (x == x.min()).sum() >= 2


def test_magnitudes_reach_float16_and_float32_limits():
    x = _sets()[3]["x"]  # set 3: magnitudes
    assert (np.abs(x) == np.float32(np.finfo(np.float16).max)).any()
    assert (np.abs(x) == np.finfo(np.float32).max).any()


def test_bounded_integers_stay_in_range_and_reach_negative_indices():
    for inputs in _sets():
        i = inputs["i"]
        assert i.dtype == np.int64 and i.min() >= -5 and i.max() <= 4
    assert any((inputs["i"] == -5).any() for inputs in _sets()[1:])


def test_data_integers_reach_the_dtype_extremes():
    specials = _sets()[1]["d"]
    info = np.iinfo(np.int32)
    assert specials.dtype == np.int32
    assert (specials == info.min).any() and (specials == info.max).any()
    magnitudes = _sets()[3]["d"]
    assert (magnitudes == 2**24 + 1).any()


def test_booleans_are_boolean():
    assert all(inputs["b"].dtype == np.bool_ for inputs in _sets())


def test_zero_size_tensors_pass_through():
    empty = InputSpec(name="e", shape=(0, 3))
    sets = make_inputs([empty], count=4, seed=0, strategy="edge")
    assert [s["e"].shape for s in sets] == [(0, 3)] * 4


def test_unknown_strategy_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown input strategy 'corners'"):
        make_inputs(SPECS, count=1, seed=0, strategy="corners")


def test_case_inputs_prefers_the_case_own_input_sets():
    fixed = {"x": np.arange(3, dtype=np.float32)}
    calls = []

    def own(count, seed, strategy):
        calls.append((count, seed, strategy))
        return [fixed] * count

    case = ModelCase(
        case_id="c",
        framework=Framework.TORCH,
        model=None,
        inputs=(InputSpec(name="x", shape=(3,)),),
        input_sets=own,
    )
    assert case_inputs(case, count=2, seed=5, strategy="edge") == [fixed, fixed]
    assert calls == [(2, 5, "edge")]
    plain = ModelCase(case_id="p", framework=Framework.TORCH, model=None, inputs=(FLOAT,))
    got = case_inputs(plain, count=2, seed=5)
    assert np.array_equal(got[1]["x"], make_inputs([FLOAT], count=2, seed=5)[1]["x"])
