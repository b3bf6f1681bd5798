"""The result of ``opseq verify``: the calibrated verdict, per output and overall, with its numbers.

`VerifyReport` is what every output format renders; its `to_dict` is the JSON document
(``schema_version`` 1). Per output it gives the output's own verdict under the rule (its column
of the measurements judged alone, so a case may be semantic over all outputs while no single
output is semantic in enough sets), the smallest headroom under which the output would pass, and
Polygraphy's "minimum required tolerance": the max absolute and max relative difference between
ONNX Runtime and the framework's float32, over all input sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opseq.difftest.calibration import Calibration
from opseq.difftest.compare import OutputComparison, to_json_float
from opseq.outcomes import Blame
from opseq.tolerance import CalibratedRule, CaseVerdict, Verdict
from opseq.verify.inputs import InputPlan
from opseq.verify.robustness import RobustnessReport
from opseq.verify.task import TaskReport

__all__ = ["SCHEMA_VERSION", "OutputReport", "VerifyReport", "output_reports"]

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputReport:
    """One output of the ONNX model, judged on its own.

    Attributes:
        name: The ONNX output name (or ``output_<i>`` for one only the framework returns).
        verdict: Its verdict over the input sets.
        semantic_sets: Input sets in which it is semantic.
        unstable_sets: Input sets in which it is unstable.
        required_headroom: The smallest ``--headroom`` under which it is not semantic.
        max_abs_diff: Max absolute difference, ONNX Runtime vs the framework's float32.
        max_rel_diff: Max relative difference, likewise.
        mean_abs_diff: Mean absolute difference, likewise.
        onnx_error: The largest ONNX error against the reference, in float32 steps.
        framework_error: The largest framework float32 error against float64, in float32 steps
            (None without a float64 reference).
        structure: ``missing``, ``shape`` or ``dtype`` when ONNX cannot be compared, else None.
        comparison: The raw comparison the differences come from.
    """

    name: str
    verdict: Verdict
    semantic_sets: int
    unstable_sets: int
    required_headroom: float
    max_abs_diff: float
    max_rel_diff: float
    mean_abs_diff: float
    onnx_error: float
    framework_error: float | None
    structure: str | None
    comparison: OutputComparison | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (non-finite numbers as strings)."""
        comparison = self.comparison
        return {
            "name": self.name,
            "verdict": self.verdict.value,
            "semantic_sets": self.semantic_sets,
            "unstable_sets": self.unstable_sets,
            "required_headroom": to_json_float(self.required_headroom),
            "max_abs_diff": to_json_float(self.max_abs_diff),
            "max_rel_diff": to_json_float(self.max_rel_diff),
            "mean_abs_diff": to_json_float(self.mean_abs_diff),
            "onnx_error": to_json_float(self.onnx_error),
            "framework_error": to_json_float(self.framework_error),
            "structure": self.structure,
            "expected_shape": None if comparison is None else list(comparison.expected_shape),
            "actual_shape": None if comparison is None else list(comparison.actual_shape),
            "expected_dtype": None if comparison is None else comparison.expected_dtype,
            "actual_dtype": None if comparison is None else comparison.actual_dtype,
        }


def output_reports(
    calibration: Calibration, comparisons: Sequence[OutputComparison]
) -> tuple[OutputReport, ...]:
    """Judge each output's column of measurements alone, under the calibration's rule."""
    reports = []
    count = max(len(comparisons), max((len(e) for e in calibration.errors), default=0))
    for i in range(count):
        column = [errors[i] for errors in calibration.errors if i < len(errors)]
        verdict = calibration.rule.judge([[e] for e in column])
        comparison = comparisons[i] if i < len(comparisons) else None
        framework = [e.framework_error for e in column]
        reports.append(
            OutputReport(
                name=comparison.name if comparison is not None else f"output_{i}",
                verdict=verdict.verdict,
                semantic_sets=verdict.semantic_sets,
                unstable_sets=verdict.unstable_sets,
                required_headroom=verdict.required_headroom,
                max_abs_diff=_field(comparison, "max_abs_diff"),
                max_rel_diff=_field(comparison, "max_rel_diff"),
                mean_abs_diff=_field(comparison, "mean_abs_diff"),
                onnx_error=max((e.onnx_error for e in column), default=0.0),
                framework_error=None if None in framework else max(framework, default=0.0),
                structure=next((e.structure for e in column if e.structure), None),
                comparison=comparison,
            )
        )
    return tuple(reports)


def _field(comparison: OutputComparison | None, name: str) -> float:
    return float("inf") if comparison is None else float(getattr(comparison, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """Everything ``opseq verify`` found about one ONNX model and its source.

    Attributes:
        model: The ONNX model file.
        source: The ``--source`` spec.
        framework: ``torch`` or ``tensorflow``.
        inputs: Where the input sets come from.
        calibration: The campaign oracle's judgement (`opseq.difftest.calibration.calibrate`).
        outputs: Each output judged alone, with its differences.
        first_semantic_set: The first input set judged semantic (the repro bundle's), or None.
        blame_note: Why blame was not attributed, when it was not.
        task: The task-level checks, with ``--data``.
        robustness: The adversarial checks, with ``--attack`` (`opseq.verify.robustness`).
        repro: The repro bundle written, or None.
        repro_note: Why no bundle was written although the verdict is semantic.
        notes: Other remarks (external data, inputs passed to the source only, ...).
        versions: Versions of opseq and the libraries that ran.
        durations: Seconds per stage.
    """

    model: str
    source: str
    framework: str
    inputs: InputPlan
    calibration: Calibration
    outputs: tuple[OutputReport, ...]
    first_semantic_set: int | None = None
    blame_note: str | None = None
    task: TaskReport | None = None
    robustness: RobustnessReport | None = None
    repro: str | None = None
    repro_note: str | None = None
    notes: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    @property
    def case(self) -> CaseVerdict:
        """The case verdict, over all outputs and input sets."""
        return self.calibration.verdict

    @property
    def verdict(self) -> Verdict:
        """The overall verdict."""
        return self.calibration.verdict.verdict

    @property
    def rule(self) -> CalibratedRule:
        """The rule the verdict is under."""
        return self.calibration.rule

    @property
    def passed(self) -> bool:
        """Whether the model passes: every verdict but ``semantic`` does."""
        return self.verdict is not Verdict.SEMANTIC

    @property
    def blame(self) -> Blame | None:
        """Who a semantic inconsistency is attributed to."""
        return self.calibration.blame

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document (``schema_version`` 1).

        ``robustness`` is there only with ``--attack``: a key added, so documents without it
        are what they were.
        """
        case = self.case
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "source": self.source,
            "framework": self.framework,
            "verdict": self.verdict.value,
            "passed": self.passed,
            "reference": case.reference,
            "reference_note": self.calibration.reference_note,
            "rule": self.rule.to_dict(),
            "inputs": self.inputs.to_dict(),
            "sets": case.sets,
            "semantic_sets": case.semantic_sets,
            "unstable_sets": case.unstable_sets,
            "required_headroom": to_json_float(case.required_headroom),
            "per_set": [v.value for v in case.per_set],
            "first_semantic_set": self.first_semantic_set,
            "outputs": [o.to_dict() for o in self.outputs],
            "blame": None if self.blame is None else self.blame.value,
            "blame_verdicts": dict(self.calibration.blame_verdicts),
            "blame_note": self.blame_note,
            "task": None if self.task is None else self.task.to_dict(),
            **({} if self.robustness is None else {"robustness": self.robustness.to_dict()}),
            "repro": self.repro,
            "repro_note": self.repro_note,
            "notes": list(self.notes),
            "versions": dict(self.versions),
            "durations": dict(self.durations),
            "oracle": self.calibration.to_dict(),
        }
