"""Run synthetic Keras models in a worker process of their own, as a campaign does."""

from __future__ import annotations

from opseq.sources import get_source


def run_keras_cases(task: dict) -> dict:
    """Build and run each case; return how many were checked and the ones that failed."""
    from tests.sources.test_synthetic import _assert_outputs_match_graph, _run_keras

    source = get_source("synthetic-tf")
    failures = []
    for case_id in task["case_ids"]:
        case = source.build(case_id, seed=0)
        try:
            _assert_outputs_match_graph(source, case, _run_keras(case))
        except AssertionError as e:
            failures.append(f"{case_id}: {e}")
    return {"checked": len(task["case_ids"]), "failures": failures}
