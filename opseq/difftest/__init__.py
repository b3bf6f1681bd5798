"""Differential testing: convert a framework model to ONNX and compare it with the framework.

`convert` holds the converters (torch.onnx's two exporters, tf2onnx), `execute` runs a model in
its framework, ONNX Runtime or the ONNX reference evaluator, `float64` runs the source model in
float64, `compare` and `measure` measure output differences (`opseq.tolerance` judges them), and
`oracle.run_difftest` puts them together into one `DiffTestResult`. Importing this package
imports neither torch nor TensorFlow.
"""

from __future__ import annotations

from opseq.difftest.compare import OutputComparison, compare_outputs, merge_comparisons
from opseq.difftest.convert import CONVERTERS, Converter, get_converter
from opseq.difftest.oracle import DiffTestResult, StageFailure, decide_blame, run_difftest
from opseq.tolerance import Tolerance, is_mismatch

__all__ = [
    "CONVERTERS",
    "Converter",
    "DiffTestResult",
    "OutputComparison",
    "StageFailure",
    "Tolerance",
    "compare_outputs",
    "decide_blame",
    "get_converter",
    "is_mismatch",
    "merge_comparisons",
    "run_difftest",
]
