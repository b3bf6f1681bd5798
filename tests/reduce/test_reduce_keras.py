"""Reduction and reproduce.py for a Keras model converted by a planted tf2onnx."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opseq.reduce.bundle import stage_reproducer
from opseq.reduce.corpus_reduction import reduce_corpus
from opseq.reduce.replay import judge, rebuild_case, resolve_converter
from opseq.reduce.shrink import Budget
from tests.reduce.planted import TF_PLANTED, TF_SOURCE_NAME, write_corpus

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def run_script(directory):
    return subprocess.run(
        [sys.executable, "reproduce.py"], cwd=directory, capture_output=True, text=True, check=False
    )


def test_keras_case_reduces_to_the_sigmoid_and_both_scripts_reproduce(tmp_path):
    (row,) = write_corpus(tmp_path, [(TF_SOURCE_NAME, "keras")], converter=TF_PLANTED)
    assert row.extra["verdict"] == "semantic"
    report = reduce_corpus(tmp_path, budget=Budget(max_tests=30, deadline_s=300), workers=1)
    (finding,) = report.findings
    assert finding.recipe.graph.ops == ("Sigmoid",) and finding.blame == "converter"
    assert finding.reproduce["framework_file"] == "model.keras"
    assert finding.script_check["exit_code"] == 1, finding.script_check

    # the unreduced case: its script must rebuild the materialiser's own Keras layers
    case = rebuild_case(row)
    spec = report.reproducers[0].oracle
    result = judge(case, spec, converter=resolve_converter(TF_PLANTED))
    whole = tmp_path / "whole"
    stage_reproducer(
        whole,
        case=case,
        result=result,
        converter=TF_PLANTED,
        opset=spec.opset,
        seed=spec.seed,
        n_inputs=spec.n_inputs,
        input_strategy=spec.input_strategy,
        title="whole",
    )
    done = run_script(whole)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout.strip().endswith(": reproduces")
    assert "over 2 outputs" in done.stdout
