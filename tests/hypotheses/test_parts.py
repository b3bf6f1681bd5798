"""Table 12, labels, the tolerance sweep, prediction and corpus loading, on exact small inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from hypotheses.features import PresenceMatrix, load_corpus, read_reference_ngrams
from hypotheses.labels import SWEEP_TOLERANCES, Tolerance, label_mismatches
from hypotheses.prediction import (
    _run_folds,
    _splits,
    corrected_resampled_t,
    prediction_hypothesis,
)
from hypotheses.table12 import reduce_to_smallest, table12_column
from opseq.errors import ConfigError
from tests.hypotheses.planted import comparison, planted_corpus
from tests.hypotheses.tiny_corpus import chain_model, write_tiny_corpus


def _presence(columns: dict[tuple[str, ...], list[int]]) -> PresenceMatrix:
    names = sorted(columns)
    matrix = np.array([columns[n] for n in names], dtype=np.int8).T
    return PresenceMatrix(names=tuple(names), matrix=sp.csr_array(matrix))


# models:              m1 m2 m3 o1 o2   (m = mismatch, o = ok)
TABLE12_COLUMNS = {
    ("A", "B", "C"): [1, 1, 0, 0, 0],  # shared by 2 mismatching, no ok: mismatch only
    ("A", "B", "C", "D"): [1, 1, 0, 0, 0],  # mismatch only, reduces to A > B > C
    ("B", "C", "D"): [1, 1, 1, 1, 0],  # shared by mismatching, and with ok
    ("X", "Y", "Z"): [0, 0, 1, 0, 1],  # one mismatching and one ok model
    ("Q", "R", "S"): [1, 0, 0, 0, 0],  # one mismatching model only: in no row
    ("A", "B"): [1, 1, 1, 1, 1],  # length 2: not in Table 12
}


def test_table12_rows_by_hand():
    column = table12_column(
        _presence(TABLE12_COLUMNS),
        np.array([True, True, True, False, False]),
        reference=frozenset({("X", "Y", "Z"), ("Q", "R", "S"), ("N", "O", "P")}),
    )
    assert column.mismatching_models == 3
    assert column.rows == {
        "mismatch ∩ mismatch": (3, 2),  # ABC, ABCD, BCD -> ABC, BCD
        "mismatch ∩ ok": (2, 2),  # BCD, XYZ
        "mismatch ∩ reference": (2, 2),  # XYZ, QRS
        "mismatch only": (2, 1),  # ABC, ABCD -> ABC
        "mismatch only, in > 3 models": (0, None),
    }
    assert column.models_with_mismatch_only == 2
    assert column.examples == ((("A", "B", "C"), 2),)


def test_table12_without_reference_has_no_reference_row():
    column = table12_column(_presence(TABLE12_COLUMNS), np.array([1, 1, 1, 0, 0], dtype=bool))
    assert "mismatch ∩ reference" not in column.rows


def test_reduce_to_smallest_keeps_sequences_without_a_member_inside():
    members = {("A", "B", "C"), ("X", "A", "B", "C"), ("A", "B", "D", "E"), ("B", "D", "E")}
    assert reduce_to_smallest(members) == {("A", "B", "C"), ("B", "D", "E")}


def test_labels_follow_the_harness_rule():
    outputs = [(comparison(d),) for d in (1e-9, 1e-7, 5e-4, 2e-2)]
    assert label_mismatches(outputs, Tolerance(atol=1e-7)).tolist() == [False, True, True, True]
    assert label_mismatches(outputs, Tolerance(atol=1e-3)).tolist() == [False, False, False, True]
    # comparison() sets the relative difference equal to the absolute one
    relative = Tolerance(atol=1e-8, rtol=1e-3)
    assert label_mismatches(outputs, relative).tolist() == [False, False, False, True]


def test_sweep_spans_the_study_rule_to_1e_2_and_a_relative_rule():
    atols = [t.atol for t in SWEEP_TOLERANCES if t.rtol is None]
    assert atols == pytest.approx([1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2])
    assert any(t.rtol is not None for t in SWEEP_TOLERANCES)


def test_corrected_resampled_t_by_hand():
    values = np.array([0.02, 0.05, 0.01, 0.04, 0.03, 0.05])
    mean, low, high, t, p = corrected_resampled_t(values, 0.25)
    se = np.sqrt((1 / 6 + 0.25) * values.var(ddof=1))
    assert mean == pytest.approx(0.2 / 6)
    assert t == pytest.approx(mean / se)
    assert high - mean == pytest.approx(mean - low)
    assert 0 < p < 0.05


def test_grouped_folds_never_split_a_source_model():
    y = np.array([True, False] * 50)
    groups = tuple(f"g{i // 2}" for i in range(100))  # twins: rows 2k and 2k+1
    for train, test in _splits(y, groups, folds=5, repeats=2, seed=0):
        assert not {groups[i] for i in train} & {groups[i] for i in test}


def test_planted_sequences_predict_beyond_size():
    table = planted_corpus(
        3, models=800, nulls=100, planted=8, planted_odds=6.0, hazard=0.002
    ).table
    result = prediction_hypothesis(
        table.presence, table.recorded_mismatch, table.nodes, table.converters, table.groups,
        n_range=(2, 3), folds=5, repeats=2,
    )  # fmt: skip
    assert set(result.auc) == {"size", "operators", "ngrams"}
    assert result.auc["ngrams"].mean > result.auc["size"].mean + 0.05
    gain = result.gain("ngrams")
    assert gain is not None and gain.gain > 0 and gain.p_value < 0.05
    assert len(result.auc["size"].fold_aucs) == 10
    fpr, tpr = result.auc["ngrams"].roc
    assert fpr[0] == 0 and tpr[-1] == 1


def test_prediction_is_skipped_with_a_reason_when_a_class_is_tiny():
    table = planted_corpus(3, models=100, nulls=10, planted=2).table
    labels = np.zeros(100, dtype=bool)
    labels[0] = True
    result = prediction_hypothesis(table.presence, labels, table.nodes, table.converters)
    assert result.auc == {} and "smaller class has 1 model" in result.skipped


def test_load_corpus_reads_models_and_counts_exclusions(tmp_path: Path):
    write_tiny_corpus(tmp_path, models=20)
    (tmp_path / "models" / "m005.onnx").write_bytes(b"not a model")
    table = load_corpus(tmp_path, n_max=3)
    assert len(table) == 19
    assert table.excluded == {"outcome load_fail": 3, "unreadable model (ModelLoadError)": 1}
    assert table.outcomes["load_fail"] == 3
    assert int(table.presence.lengths.max()) == 3
    index = table.ids.index("tiny/m000/conv")
    assert table.groups[index] == "tiny/m000"
    # the first model's chain, read back as operators and n-grams
    row = table.presence.matrix[[index]].toarray().ravel()
    present = {name for name, bit in zip(table.presence.names, row, strict=True) if bit}
    assert all(len(n) <= 3 for n in present) and ("Sin", "Cos") in present


def test_load_corpus_filters_by_converter(tmp_path: Path):
    write_tiny_corpus(tmp_path, models=30)
    table = load_corpus(tmp_path, converters=["other-conv"])
    assert set(table.converters) == {"other-conv"} and len(table) == 10


def test_reference_ngrams_from_a_directory(tmp_path: Path):
    (tmp_path / "ref" / "deep").mkdir(parents=True)
    (tmp_path / "ref" / "deep" / "a.onnx").write_bytes(
        chain_model(["Relu", "Sin", "Cos"]).SerializeToString()
    )
    (tmp_path / "ref" / "b.onnx").write_bytes(b"junk")
    ngrams, models, unreadable = read_reference_ngrams(tmp_path / "ref", n_max=3)
    assert (models, unreadable) == (1, 1)
    assert ("Relu", "Sin", "Cos") in ngrams and ("Sin",) in ngrams
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no \.onnx models"):
        read_reference_ngrams(tmp_path / "empty")
    with pytest.raises(ConfigError, match="not a directory"):
        read_reference_ngrams(tmp_path / "missing")


def test_fold_scores_do_not_depend_on_jobs_or_the_run():
    # Wider than tall, so liblinear fits the dual, whose coordinate order is random: every fit
    # must reseed, and fits side by side must not share one generator.
    rng = np.random.default_rng(3)
    x = sp.csr_array((rng.random((120, 400)) < 0.05).astype(np.float64))
    y = rng.random(120) < 0.3
    y[x[:, [0]].toarray().ravel() > 0] = True
    splits = [(i, *split) for i, split in enumerate(_splits(y, None, 3, 2, 0))]
    tasks = [(split, "wide") for split in splits]
    state = ({"wide": x}, y, np.arange(120), 0)
    runs = [_run_folds(tasks, state, jobs) for jobs in (1, 1, 2)]
    for run in runs[1:]:
        for (scores, c), (first_scores, first_c) in zip(run, runs[0], strict=True):
            assert c == first_c and np.array_equal(scores, first_scores)
