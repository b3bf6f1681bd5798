"""The calibrated stage of a conversion test: float64 reference, measurements, verdict, blame.

`calibrate` runs the source model's float64 twin on the input sets (`opseq.difftest.float64`),
measures each output of each input set (`opseq.difftest.measure`), and judges them with a
`CalibratedRule` (`opseq.tolerance`). For a semantic verdict it attributes blame under the same
rule: ONNX Runtime without graph optimisations is judged on every input set, and, if it is
semantic too, the ONNX reference evaluator on the worst ``min_sets`` sets.

Everything measured is kept (`Calibration.to_dict`), so a verdict under another headroom or
``min_sets`` is recomputed from the manifest without re-running anything
(`Calibration.rejudge`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from opseq.difftest.execute import Feeds, create_session, run_onnxruntime, run_reference
from opseq.difftest.float64 import run_float64
from opseq.difftest.measure import (
    OutputErrors,
    errors_from_columns,
    errors_to_columns,
    per_set_errors,
    ulp_distances,
    ulp_quantiles,
)
from opseq.outcomes import Blame
from opseq.sources.base import ModelCase
from opseq.tolerance import CalibratedRule, CaseVerdict, Verdict, calibrated_blame

__all__ = ["SCHEMA_VERSION", "Calibration", "calibrate", "judge_evaluator"]

SCHEMA_VERSION = 1
Outputs = list[list[np.ndarray]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """The float64-calibrated judgement of one conversion test.

    Attributes:
        rule: The rule the verdict is under.
        verdict: The case verdict.
        errors: ``errors[k][i]``: output ``i`` of input set ``k`` (optimised ONNX Runtime).
        names: Output names, by position.
        reference_note: Why there is no float64 reference (None when there is one).
        ulps: Per output name, float32 ulp quantiles of ONNX and of the framework against the
            reference, over all input sets (None where nothing was finite).
        blame: Who a semantic inconsistency is attributed to (None unless semantic).
        blame_verdicts: The verdict of each other evaluator that ran (``unoptimised``,
            ``reference_evaluator``), and ``skipped``: why one did not run.
    """

    rule: CalibratedRule
    verdict: CaseVerdict
    errors: tuple[tuple[OutputErrors, ...], ...]
    names: tuple[str, ...]
    reference_note: str | None = None
    ulps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    blame: Blame | None = None
    blame_verdicts: Mapping[str, Any] = field(default_factory=dict)

    def rejudge(self, rule: CalibratedRule) -> CaseVerdict:
        """The verdict under another rule, from the stored measurements."""
        return rule.judge(self.errors)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict: the manifest's ``oracle`` entry."""
        return {
            "schema_version": SCHEMA_VERSION,
            "rule": self.rule.to_dict(),
            **self.verdict.to_dict(),
            "reference_note": self.reference_note,
            "outputs": [
                {
                    "name": name,
                    **errors_to_columns([errors[i] for errors in self.errors if i < len(errors)]),
                    "ulps": self.ulps.get(name),
                }
                for i, name in enumerate(self.names)
            ],
            "blame": None if self.blame is None else self.blame.value,
            "blame_verdicts": dict(self.blame_verdicts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """Rebuild a calibration from `to_dict` output (a manifest row's ``oracle``)."""
        outputs = data["outputs"]
        columns = [errors_from_columns(o) for o in outputs]
        sets = max((len(c) for c in columns), default=0)
        errors = tuple(tuple(c[k] for c in columns if k < len(c)) for k in range(sets))
        rule = CalibratedRule.from_dict(data.get("rule", {}))
        return cls(
            rule=rule,
            verdict=rule.judge(errors),
            errors=errors,
            names=tuple(o["name"] for o in outputs),
            reference_note=data.get("reference_note"),
            ulps={o["name"]: o["ulps"] for o in outputs if o.get("ulps")},
            blame=None if data.get("blame") is None else Blame(data["blame"]),
            blame_verdicts=dict(data.get("blame_verdicts", {})),
        )


def calibrate(
    case: ModelCase,
    model: onnx.ModelProto,
    feeds: Feeds,
    framework: Outputs,
    onnx_outputs: Outputs,
    *,
    names: Sequence[str],
    rule: CalibratedRule,
    attribute_blame: bool,
    durations: dict[str, float],
) -> Calibration:
    """Judge a conversion test against the float64 twin of its source model.

    Args:
        case: The case (its float32 model; the twin is built from it).
        model: The converted model (for blame, which re-runs it).
        feeds: The input sets.
        framework: The framework's float32 outputs per input set.
        onnx_outputs: Optimised ONNX Runtime's outputs per input set.
        names: Output names.
        rule: The rule.
        attribute_blame: Re-run a semantic model in other ONNX evaluators to attribute blame.
        durations: Seconds per stage; ``float64`` and ``blame`` are added.

    Returns:
        The calibration.
    """
    start = time.perf_counter()
    reference = run_float64(case, feeds, framework)
    durations["float64"] = time.perf_counter() - start
    errors = _errors(framework, onnx_outputs, reference.outputs)
    verdict = rule.judge(errors)
    blame, blame_verdicts = None, {}
    if verdict.verdict is Verdict.SEMANTIC and attribute_blame:
        start = time.perf_counter()
        blame, blame_verdicts = _blame(model, feeds, framework, reference.outputs, rule, verdict)
        durations["blame"] = time.perf_counter() - start
    return Calibration(
        rule=rule,
        verdict=verdict,
        errors=errors,
        names=tuple(names),
        reference_note=reference.note,
        ulps=_ulps(names, framework, onnx_outputs, reference.outputs),
        blame=blame,
        blame_verdicts=blame_verdicts,
    )


def judge_evaluator(
    framework: Outputs, outputs: Outputs, reference: Outputs | None, rule: CalibratedRule
) -> CaseVerdict:
    """The calibrated verdict of any evaluator's outputs (the same rule as the main verdict)."""
    return rule.judge(_errors(framework, outputs, reference))


def _errors(
    framework: Outputs, outputs: Outputs, reference: Outputs | None
) -> tuple[tuple[OutputErrors, ...], ...]:
    return tuple(
        per_set_errors(framework[k], outputs[k], None if reference is None else reference[k])
        for k in range(len(framework))
    )


def _blame(model, feeds, framework, reference, rule: CalibratedRule, verdict: CaseVerdict):
    """Judge unoptimised ONNX Runtime on every set; the reference evaluator on the worst ones."""
    verdicts: dict[str, Any] = {"skipped": {}}
    unoptimised = _try(
        verdicts,
        "unoptimised",
        lambda: run_onnxruntime(create_session(model, optimize=False), feeds),
    )
    unoptimised_verdict = None
    if unoptimised is not None:
        unoptimised_verdict = judge_evaluator(framework, unoptimised, reference, rule).verdict
        verdicts["unoptimised"] = unoptimised_verdict.value
    reference_verdict = None
    if unoptimised_verdict is Verdict.SEMANTIC:
        worst = [k for k, v in enumerate(verdict.per_set) if v is Verdict.SEMANTIC]
        worst = worst[: rule.min_sets]
        evaluated = _try(
            verdicts, "reference_evaluator", lambda: run_reference(model, [feeds[k] for k in worst])
        )
        if evaluated is not None:
            picked = [framework[k] for k in worst]
            truth = None if reference is None else [reference[k] for k in worst]
            reference_verdict = judge_evaluator(picked, evaluated, truth, rule).verdict
            verdicts["reference_evaluator"] = reference_verdict.value
            verdicts["reference_evaluator_sets"] = worst
    elif unoptimised_verdict is not None:
        verdicts["skipped"]["reference_evaluator"] = "not needed: unoptimised ONNX Runtime agrees"
    blame = calibrated_blame(Verdict.SEMANTIC, unoptimised_verdict, reference_verdict)
    return blame, verdicts


def _try(verdicts: dict[str, Any], key: str, call: Callable[[], Outputs]) -> Outputs | None:
    try:
        return call()
    except MemoryError:
        raise
    except Exception as e:  # an evaluator that fails cannot take part in blame
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        verdicts["skipped"][key] = f"{type(e).__name__}: {first}"[:300]
        return None


def _ulps(names, framework: Outputs, onnx_outputs: Outputs, reference: Outputs | None):
    """Per float output: ulp quantiles of ONNX and the framework against the reference."""
    found: dict[str, dict[str, Any]] = {}
    truth = reference if reference is not None else framework
    for i, name in enumerate(names):
        columns = [(f[i], x[i], r[i]) for f, x, r in zip(framework, onnx_outputs, truth,
                                                        strict=True)
                   if i < min(len(f), len(x), len(r))]  # fmt: skip
        if not columns or not all(_comparable(f, x, r) for f, x, r in columns):
            continue
        onnx_ulps = np.concatenate([ulp_distances(x, r) for _, x, r in columns])
        quantiles = {"onnx": ulp_quantiles(onnx_ulps)}
        if reference is not None:
            framework_ulps = np.concatenate([ulp_distances(f, r) for f, _, r in columns])
            quantiles["framework"] = ulp_quantiles(framework_ulps)
        found[name] = quantiles
    return found


def _comparable(framework, onnx_output, reference) -> bool:
    framework, onnx_output = np.asarray(framework), np.asarray(onnx_output)
    return (
        framework.dtype == np.float32
        and onnx_output.dtype == np.float32
        and framework.shape == onnx_output.shape == np.shape(reference)
    )
