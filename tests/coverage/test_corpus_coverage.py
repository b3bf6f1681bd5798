"""Coverage of a corpus: op space, feasible bigrams, growth, Table 12 row 3, and the reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from opseq.corpus import ManifestRow, read_manifest
from opseq.coverage.corpus_coverage import GROWTH_KINDS, corpus_coverage
from opseq.coverage.corpus_report import format_corpus_coverage
from opseq.coverage.index import load_reference
from opseq.coverage.model_coverage import Ratio
from opseq.coverage.opset_space import default_domain_ops, highest_opset, type_feasible_bigrams
from opseq.coverage.references import parse_reference
from opseq.difftest.compare import OutputComparison
from opseq.errors import ConfigError
from tests import models as shapes
from tests.coverage.conftest import parse, relu_exp, relu_neg, write

SPACE17 = default_domain_ops(17)[0] - {"Constant", "Identity"}
FEASIBLE17 = type_feasible_bigrams(17).count_without(["Constant", "Identity"])


def shape_gather() -> onnx.ModelProto:
    """Shape -> Gather: an int64 edge."""
    return parse("""g (float[2,3] x, int64[1] i) => (int64[1] y) {
        s = Shape(x)
        y = Gather(s, i)
    }""")


def upsample_at_9() -> onnx.ModelProto:
    """Relu -> Upsample at opset 9, where Upsample is not yet deprecated."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 9]>
        g (float[1,1,2,2] x, float[4] s) => (float[1,1,N,M] y) {
            a = Relu(x)
            y = Upsample(a, s)
        }""")
    onnx.checker.check_model(model, full_check=True)
    return model


def sigmoid_exp() -> onnx.ModelProto:
    return parse("""g (float[2,3] x) => (float[2,3] y) {
        a = Sigmoid(x)
        y = Exp(a)
    }""")


def relu_neg_exp_chain() -> onnx.ModelProto:
    return parse("""g (float[2,3] x) => (float[2,3] y) {
        a = Relu(x)
        b = Neg(a)
        y = Exp(b)
    }""")


def index_models(directory: Path):
    return load_reference(parse_reference(str(directory)), cache_dir=None).load_models()


@pytest.fixture
def corpus_models(tmp_path: Path):
    """Six models: two chains, Shape>Gather, a custom op, an If reading Relu, Upsample at 9."""
    return index_models(
        write(
            tmp_path / "corpus",
            {
                "relu_neg": relu_neg(),
                "relu_exp": relu_exp(),
                "shape_gather": shape_gather(),
                "custom": shapes.custom_domain(),
                "if": shapes.if_subgraph(),
                "upsample": upsample_at_9(),
            },
        )
    )


def test_op_coverage_of_the_op_space(corpus_models):
    coverage = corpus_coverage(corpus_models, name="tiny")
    ops = coverage.ops
    assert ops.opset == 17  # the highest; Upsample's model is at 9
    used = {"Relu", "Neg", "Exp", "Shape", "Gather", "If", "Sigmoid"}
    assert ops.used == Ratio(covered=7, total=len(SPACE17))
    assert set(ops.unused) == SPACE17 - used
    assert "Sin" in ops.unused and "Constant" not in ops.unused
    assert ops.deprecated_used == ("Upsample",)
    assert ops.other_domains == ("com.example:Frobnicate",)
    assert ops.unknown_used == ()
    assert ops.not_measured == ("Constant", "Identity")
    assert coverage.opsets == {17: 5, 9: 1}
    assert coverage.model_count == 6
    assert coverage.node_count == 2 + 2 + 2 + 3 + 5 + 2


def test_sequence_coverage_of_the_feasible_bigrams(corpus_models):
    sequences = corpus_coverage(corpus_models).sequences
    # Relu>Neg, Relu>Exp, Shape>Gather, Neg>Exp (in the If's then branch) are feasible;
    # Relu>If (an implicit input) and Relu>Upsample (deprecated at 17) are not.
    assert sequences.feasible == Ratio(covered=4, total=FEASIBLE17)
    assert sequences.present == 6
    assert sequences.not_feasible == (("Relu", "If"), ("Relu", "Upsample"))
    assert sequences.other_domains == 2  # Relu>Frobnicate, Frobnicate>Neg


def test_unknown_default_domain_op_is_listed_apart(tmp_path: Path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("NoSuchOp", ["a"], ["y"])]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )
    coverage = corpus_coverage(index_models(write(tmp_path / "c", {"odd": model})))
    assert coverage.ops.unknown_used == ("NoSuchOp",)
    assert coverage.ops.used == Ratio(covered=1, total=len(SPACE17))
    assert coverage.sequences.not_feasible == (("Relu", "NoSuchOp"),)


def test_growth_follows_the_seeded_order(corpus_models):
    coverage = corpus_coverage(corpus_models, seed=7)
    order = np.random.default_rng(7).permutation(len(corpus_models))
    seen: set = set()
    expected = []
    for position in order:
        seen |= {g for g in corpus_models[position].ngrams if len(g) == 2}
        expected.append(len(seen))
    bigrams = coverage.growth.curve("2-grams")
    assert bigrams.models == (1, 2, 3, 4, 5, 6)
    assert bigrams.distinct == tuple(expected)
    assert bigrams.distinct[-1] == 8 == coverage.distinct("2-grams")
    assert coverage.distinct("ops") == 9
    assert coverage.distinct("3-grams") == 1  # Relu>Frobnicate>Neg
    assert coverage.distinct("4-grams") == 0
    assert coverage.growth.curve("4-grams").half_share is None
    assert coverage.growth.to_dict()["seed"] == 7
    assert [c.kind for c in coverage.growth.curves] == list(GROWTH_KINDS)


def test_growth_points_on_a_log_scale(tmp_path: Path):
    chains = {f"m{i}": relu_neg() if i % 2 else relu_exp() for i in range(30)}
    coverage = corpus_coverage(index_models(write(tmp_path / "c", chains)), points=20)
    ops = coverage.growth.curve("ops")
    assert ops.models[0] == 1 and ops.models[-1] == 30
    assert len(ops.models) <= 20
    assert list(ops.models) == sorted(set(ops.models))
    assert ops.distinct[-1] == 3  # Relu, Neg, Exp
    assert all(a <= b for a, b in zip(ops.distinct, ops.distinct[1:], strict=False))


def test_empty_corpus_has_undefined_ratios():
    coverage = corpus_coverage([])
    assert coverage.ops.used.ratio is None and coverage.sequences.feasible.ratio is None
    assert coverage.growth.curve("ops").models == ()
    assert coverage.notes == (
        "no model imports the default domain: no op space to measure against",
    )
    assert json.loads(json.dumps(coverage.to_dict()))["ops"]["used"]["ratio"] is None


# --- Table 12 row 3 ---------------------------------------------------------------------------


ROWS = [  # id, model, outcome, verdict, max_abs_diff, the output's max_abs_diff
    ("a", "relu_neg_exp", "mismatch", "semantic", 1e-3, None),
    ("b", "relu_exp", "ok", "ok", 0.0, None),
    ("c", "relu_neg", "ok", "numerical", 1e-6, None),  # mismatching under the study's 1e-7
    ("d", "sigmoid_exp", "ok", "unstable", 1e-3, 0.0),  # its comparisons say 0: consistent
    ("e", None, "convert_fail", None, None, None),
]


def comparisons(max_abs_diff: float | None) -> list[dict] | None:
    if max_abs_diff is None:
        return None
    output = OutputComparison(
        name="y",
        max_abs_diff=max_abs_diff,
        max_rel_diff=max_abs_diff,
        mean_abs_diff=max_abs_diff,
        nan_mismatch=False,
        inf_mismatch=False,
        shape_match=True,
        dtype_match=True,
        expected_shape=(2, 3),
        actual_shape=(2, 3),
        expected_dtype="float32",
        actual_dtype="float32",
    )
    return [output.to_dict()]


@pytest.fixture
def labelled(tmp_path: Path):
    """A manifest corpus of four models and a failure, and a reference holding Relu>Neg."""
    corpus = tmp_path / "corpus"
    write(
        corpus / "models",
        {
            "relu_neg_exp": relu_neg_exp_chain(),
            "relu_exp": relu_exp(),
            "relu_neg": relu_neg(),
            "sigmoid_exp": sigmoid_exp(),
        },
    )
    lines = [
        {
            "id": row_id,
            "model": None if model is None else f"models/{model}.onnx",
            "outcome": outcome,
            "converter": "torch.onnx-dynamo",
            "source": "synthetic-torch",
            "verdict": verdict,
            "max_abs_diff": diff,
            "comparisons": comparisons(output_diff),
        }
        for row_id, model, outcome, verdict, diff, output_diff in ROWS
    ]
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    reference = load_reference(
        parse_reference(str(write(tmp_path / "reference", {"relu_neg": relu_neg()}))),
        cache_dir=None,
    )
    return index_models(corpus), read_manifest(corpus / "manifest.jsonl"), reference


def test_table12_row3_under_each_labelling(labelled):
    models, rows, reference = labelled
    coverage = corpus_coverage(models, rows=rows, references=[reference])
    assert coverage.unlabelled == 0
    verdict, outcome, study = coverage.unexercised
    assert [u.labelling for u in coverage.unexercised] == ["verdict", "outcome", "study-rule"]

    # verdict: a is semantic; b (ok) and c (numerical) consistent; d (unstable) left out.
    assert (verdict.mismatching_models, verdict.consistent_models, verdict.left_out) == (1, 2, 1)
    assert verdict.overall.mismatching == Ratio(covered=1, total=3)  # Relu>Neg exercised
    assert verdict.overall.consistent == Ratio(covered=1, total=2)  # Relu>Exp, Relu>Neg
    assert [u.ngram for u in verdict.ngrams] == [("Neg", "Exp"), ("Relu", "Neg", "Exp")]
    assert [(u.mismatching_models, u.consistent_models) for u in verdict.ngrams] == [(1, 0)] * 2
    by_n = {share.n: share for share in verdict.by_n}
    assert by_n[2].mismatching == Ratio(covered=1, total=2)
    assert by_n[3].mismatching == Ratio(covered=0, total=1)
    assert by_n[4].mismatching.ratio is None

    # outcome: a mismatches; b, c, d ran ok; e failed.
    assert (outcome.mismatching_models, outcome.consistent_models, outcome.left_out) == (1, 3, 0)
    assert outcome.overall.consistent == Ratio(covered=1, total=3)  # + Sigmoid>Exp

    # the study's rule: a and c are at or above 1e-7; b below, and d by its comparisons.
    assert (study.mismatching_models, study.consistent_models) == (2, 2)
    assert study.overall.mismatching == Ratio(covered=1, total=3)
    assert study.overall.consistent == Ratio(covered=0, total=2)  # Relu>Exp, Sigmoid>Exp
    assert study.to_dict()["overall"]["consistent"]["unexercised_share"] == 1.0


def test_table12_survives_hostile_rows(labelled):
    models, _, reference = labelled
    rows = [
        ManifestRow.from_dict(
            {
                "id": model.name,
                "outcome": "mismatch",
                "converter": "c",
                "source": "s",
                "verdict": ["semantic"],
                "comparisons": ["not a comparison", 3],
                "max_abs_diff": None,
            }
        )
        for model in models
    ]
    verdict, outcome, study = corpus_coverage(models, rows=rows, references=[reference]).unexercised
    assert verdict.left_out == 4 and verdict.mismatching_models == 0
    assert outcome.mismatching_models == 4
    assert study.mismatching_models == 4  # no usable numbers: a null max abs diff disagrees


def test_table12_needs_rows_and_references(labelled):
    models, rows, reference = labelled
    assert corpus_coverage(models, references=[reference]).unexercised == ()
    assert corpus_coverage(models, rows=rows).unexercised == ()
    assert corpus_coverage(models, rows=rows[1:], references=[reference]).unlabelled == 1
    assert corpus_coverage(models).unlabelled is None


def test_table12_lists_at_most_top(labelled):
    models, rows, reference = labelled
    coverage = corpus_coverage(models, rows=rows, references=[reference], top=1)
    assert [u.ngram for u in coverage.unexercised[0].ngrams] == [("Neg", "Exp")]
    assert coverage.unexercised[0].overall.mismatching == Ratio(covered=1, total=3)


# --- reports ----------------------------------------------------------------------------------


def test_text_report_side_by_side(corpus_models, labelled):
    models, rows, reference = labelled
    first = corpus_coverage(corpus_models, name="tiny")
    second = corpus_coverage(models, name="labelled", rows=rows, references=[reference])
    text = format_corpus_coverage([first, second], "text")
    header = next(line for line in text.splitlines() if line.strip().startswith("tiny"))
    assert header.split() == ["tiny", "labelled"]
    ops_row = next(line for line in text.splitlines() if line.startswith("ops used"))
    assert f"7/{len(SPACE17)}" in ops_row and f"4/{len(SPACE17)}" in ops_row
    assert "15.6%" in text and "39.0%" in text and "Keras layer pairs" in text
    assert "deprecated ops used (1): Upsample" in text
    assert "bigrams present but not type-feasible (2): Relu > If, Relu > Upsample" in text
    assert "2 of 3 (66.7%)" in text  # the mismatching models' unexercised n-grams
    assert "Neg > Exp (1 mismatching, 0 consistent)" in text


def test_reports_escape_hostile_names(corpus_models):
    coverage = corpus_coverage(corpus_models, name="evil|<script>\x1b[2J")
    text = format_corpus_coverage(coverage, "text")
    assert "\x1b" not in text and "evil|<script>\\x1b[2J" in text
    markdown = format_corpus_coverage(coverage, "markdown")
    assert "evil\\|\\<script>" in markdown
    page = format_corpus_coverage(coverage, "html")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_html_is_self_contained_with_a_growth_figure(corpus_models):
    page = format_corpus_coverage([corpus_coverage(corpus_models, name="tiny")], "html")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 1
    # Nothing to fetch: no scripts, stylesheets or linked resources (namespaces are not links).
    assert not any(s in page for s in ("<script", "<link", 'src="', 'href="http'))
    assert "distinct 2-grams" in page and "seed 0" in page


def test_json_report_and_unknown_format(corpus_models):
    coverage = corpus_coverage(corpus_models, name="tiny")
    document = json.loads(format_corpus_coverage(coverage, "json"))
    assert document["schema_version"] == 1
    (corpus,) = document["corpora"]
    assert corpus["distinct"] == {"ops": 9, "2-grams": 8, "3-grams": 1, "4-grams": 0}
    assert corpus["sequences"]["not_feasible"] == [["Relu", "If"], ["Relu", "Upsample"]]
    assert corpus["ops"]["used"]["covered"] == 7
    with pytest.raises(ConfigError, match="unknown format"):
        format_corpus_coverage(coverage, "yaml")


def test_opset_beyond_onnx_is_noted(corpus_models):
    import dataclasses

    future = [dataclasses.replace(corpus_models[0], opset=highest_opset() + 5)]
    coverage = corpus_coverage(future)
    assert coverage.ops.opset == highest_opset()
    assert "beyond the installed onnx" in coverage.notes[0]
