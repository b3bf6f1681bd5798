"""Behavioural verification of one ONNX export against its source model (``opseq verify``).

The deployment half of opseq for a user who has the source model and its export: the input sets
(`opseq.verify.inputs`), the source model (`opseq.verify.source`), the run and the calibrated
verdict of the campaign oracle (`opseq.verify.check`), task-level agreement
(`opseq.verify.task`), adversarial robustness (`opseq.verify.attack`,
`opseq.verify.robustness`), the report (`opseq.verify.report`, `opseq.verify.render`), external data
(`opseq.verify.external`) and the repro bundle of a failure (`opseq.verify.repro`). Importing
this package imports no framework: torch and TensorFlow load when a source needs them.
"""

from __future__ import annotations

from opseq.verify.check import Evidence, verify
from opseq.verify.report import OutputReport, VerifyReport
from opseq.verify.task import TaskReport

__all__ = ["Evidence", "OutputReport", "TaskReport", "VerifyReport", "verify"]
