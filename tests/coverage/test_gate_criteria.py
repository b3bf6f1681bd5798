"""The gate's coverage, novel and risky criteria: thresholds, allowlist, baseline."""

from __future__ import annotations

from pathlib import Path

from opseq.coverage.criteria import Criterion
from opseq.coverage.gate import GateInputs, coverage_criteria, gate_passed
from opseq.coverage.knowledge import KnowledgeBase, RiskyNgram
from opseq.coverage.model_coverage import model_coverage
from opseq.coverage.profile import profile_model
from opseq.graph import build_opgraph
from tests.coverage.conftest import parse, reference_of, relu_neg, relu_neg_exp


def profile(model):
    return profile_model(model, build_opgraph(model, infer_shapes=True), name="m")


def inputs(model, reference, **extra) -> GateInputs:
    p = profile(model)
    defaults = dict(
        coverage=model_coverage(p, reference),
        profile=p,
        ngram_nodes=lambda ngrams: {g: ("n1",) for g in ngrams},
        allowed_ops={},
        allowed_ngrams={},
    )
    return GateInputs(**{**defaults, **extra})


def criteria(gate_inputs, **thresholds):
    options = dict(
        min_op_coverage=None,
        min_versioned_op_coverage=None,
        min_ngram_coverage=None,
        n=2,
        max_novel=None,
        max_risky=None,
    )
    return {c.name: c for c in coverage_criteria(gate_inputs, **{**options, **thresholds})}


def test_thresholds_decide_and_name_the_offenders(reference_dir: Path):
    result = criteria(
        inputs(relu_neg_exp(), reference_of(reference_dir)),
        min_op_coverage=0.6,
        min_ngram_coverage=0.5,
        max_novel=0,
    )
    assert result["op_coverage"].value == 0.6 and result["op_coverage"].passed
    assert {o.item for o in result["op_coverage"].offenders} == {"Add", "LeakyRelu"}
    ngrams = result["ngram_coverage_2"]
    assert ngrams.value == 0.25 and ngrams.passed is False
    assert {o.item for o in ngrams.offenders} == {"Neg>Exp", "Exp>Add", "LeakyRelu>Add"}
    assert all(o.nodes == ("n1",) for o in ngrams.offenders)
    novel = result["novel_2"]
    assert (novel.value, novel.threshold, novel.passed) == (1, 0, False)
    assert novel.offenders[0].item == "Neg>Exp"


def test_unset_thresholds_are_not_criteria(reference_dir: Path):
    assert criteria(inputs(relu_neg_exp(), reference_of(reference_dir))) == {}


def test_allowlisted_items_count_as_covered(reference_dir: Path):
    gate_inputs = inputs(
        relu_neg_exp(),
        reference_of(reference_dir),
        allowed_ops={"LeakyRelu": "checked by hand", "Add": "trivial"},
        allowed_ngrams={("Neg", "Exp"): "known good"},
    )
    result = criteria(gate_inputs, min_op_coverage=1.0, max_novel=0)
    assert result["op_coverage"].passed and result["op_coverage"].value == 1.0
    assert [o.detail for o in result["op_coverage"].allowed] == ["trivial", "checked by hand"]
    assert result["novel_2"].passed and result["novel_2"].allowed[0].item == "Neg>Exp"


def test_baseline_fails_only_on_what_is_new(reference_dir: Path):
    reference = reference_of(reference_dir)
    old = profile(relu_neg_exp())
    same = inputs(relu_neg_exp(), reference, baseline=(old, model_coverage(old, reference)))
    result = criteria(same, min_ngram_coverage=0.9, max_novel=0)
    assert result["ngram_coverage_2"].passed and "baseline" in result["ngram_coverage_2"].note
    assert result["novel_2"].passed
    # One new sequence: Add feeds a Neg, which the old version did not have.
    new_model = parse("""g (float[2,3] x) => (float[2,3] y) {
        a = Relu(x)
        b = Neg(a)
        c = Exp(b)
        d = LeakyRelu <alpha = 0.2> (x)
        e = Add(c, d)
        y = Neg(e)
    }""")
    changed = inputs(new_model, reference, baseline=(old, model_coverage(old, reference)))
    result = criteria(changed, min_ngram_coverage=0.9, max_novel=0)
    assert result["ngram_coverage_2"].passed is False
    assert [o.item for o in result["ngram_coverage_2"].offenders] == ["Add>Neg"]
    assert result["novel_2"].passed  # Add is not a covered op: Add>Neg is uncovered, not novel


def test_risky_ngrams_from_the_knowledge_base(reference_dir: Path):
    risky = RiskyNgram(ngram=("Relu", "Neg"), odds_ratio=9.0, q_value=0.01)
    knowledge = KnowledgeBase(
        source="kb.json", alpha=0.05, tested=10, answer="yes", risky={risky.ngram: risky}
    )
    result = criteria(
        inputs(relu_neg(), reference_of(reference_dir), knowledge=knowledge), max_risky=0
    )
    assert result["risky"].passed is False and result["risky"].value == 1
    assert result["risky"].offenders[0].detail == "adjusted odds ratio 9, q 0.01"


def test_an_empty_knowledge_base_is_not_called_safe(reference_dir: Path):
    knowledge = KnowledgeBase(
        source="kb.json", alpha=0.05, tested=10, answer="undetermined", risky={}
    )
    result = criteria(
        inputs(relu_neg(), reference_of(reference_dir), knowledge=knowledge), max_risky=0
    )
    assert result["risky"].passed and "no evidence that the model is safe" in result["risky"].note


def test_no_knowledge_base_leaves_risky_unevaluated(reference_dir: Path):
    result = criteria(inputs(relu_neg(), reference_of(reference_dir)), max_risky=0)
    assert result["risky"].passed is None


def test_undefined_ratio_is_unevaluated_not_full(reference_dir: Path):
    single = parse("""g (float[2] x) => (float[2] y) {
        y = Relu(x)
    }""")
    result = criteria(inputs(single, reference_of(reference_dir)), min_ngram_coverage=0.5)
    assert result["ngram_coverage_2"].passed is None and result["ngram_coverage_2"].value is None


def test_gate_passes_only_when_required_criteria_were_evaluated():
    evaluated = Criterion(name="valid", passed=True)
    unevaluated = Criterion(name="behaves", passed=None)
    assert gate_passed([evaluated, unevaluated], required={"valid"})
    assert not gate_passed([evaluated, unevaluated], required={"valid", "behaves"})
    assert not gate_passed([Criterion(name="valid", passed=False)], required=())
