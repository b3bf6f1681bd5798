"""Verify one ONNX export against its source model, with the campaign oracle's calibrated rule.

`verify` runs the input sets through ONNX Runtime (all graph optimisations, one thread: the
oracle's `create_session`) and through the source model in its framework (float32), then hands
both to `opseq.difftest.calibration.calibrate`, which runs the source's float64 twin and judges
every output of every input set under the `CalibratedRule`, attributing blame for a semantic
verdict exactly as a campaign does. On top of that it measures the raw differences per output
(`opseq.difftest.compare`), judges each output alone (`opseq.verify.report.output_reports`) and,
with task data, compares predictions (`opseq.verify.task`).

A model whose weights are external data is run from its path (`opseq.verify.external`); blame,
which re-runs the model from its bytes, is then not attributed, and the report says so.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx

from opseq import __version__
from opseq.difftest.calibration import calibrate
from opseq.difftest.compare import compare_outputs, merge_comparisons
from opseq.difftest.execute import create_session, run_framework, run_onnxruntime, select_feeds
from opseq.errors import ConfigError, ModelLoadError, UnsupportedModelError
from opseq.sources.base import Framework, ModelCase
from opseq.tolerance import CalibratedRule, Verdict
from opseq.untrusted import decode_text
from opseq.verify._errors import describe
from opseq.verify.external import session_from_path
from opseq.verify.inputs import DeclaredInput, InputPlan
from opseq.verify.report import VerifyReport, output_reports
from opseq.verify.source import SourceModel
from opseq.verify.task import TaskData, run_task

__all__ = ["Evidence", "verify"]

_T = TypeVar("_T")
Outputs = list[list[np.ndarray]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """The arrays behind a report (for a repro bundle); never serialised.

    Attributes:
        onnx_feeds: Per input set, graph input name -> array, in graph input order.
        framework: Per input set, the framework's float32 outputs.
        onnx: Per input set, ONNX Runtime's outputs.
        output_names: The ONNX model's output names.
    """

    onnx_feeds: tuple[dict[str, np.ndarray], ...]
    framework: Outputs
    onnx: Outputs
    output_names: tuple[str, ...]


def verify(
    model_path: Path,
    model: onnx.ModelProto,
    source: SourceModel,
    plan: InputPlan,
    declared: Sequence[DeclaredInput],
    *,
    rule: CalibratedRule,
    external: tuple[str, ...] = (),
    task_data: TaskData | None = None,
    top_k: int = 5,
) -> tuple[VerifyReport, Evidence]:
    """Run both sides on the input sets and judge the ONNX model (module docstring).

    Args:
        model_path: The ONNX file (sessions of models with external data are read from it).
        model: The parsed model, without external data.
        source: The source model.
        plan: The input sets, already checked against `declared` (`check_feeds`).
        declared: The ONNX model's declared inputs.
        rule: The calibrated rule.
        external: The checked external data locations (`check_external_data`); empty if none.
        task_data: Samples for the task-level checks, or None.
        top_k: The k of the top-k checks.

    Returns:
        The report and the arrays it rests on.

    Raises:
        ModelLoadError: If ONNX Runtime refuses the model.
        UnsupportedModelError: If ONNX Runtime fails on an input set.
        ConfigError: If the source model fails on an input set, or on the task data.
    """
    durations: dict[str, float] = {}
    case = ModelCase(
        case_id=source.spec, framework=source.framework, model=source.model, inputs=plan.specs
    )
    session = _timed(durations, "load", lambda: _session(model_path, model, external))
    names = tuple(decode_text(o.name) for o in model.graph.output)
    feeds = list(plan.feeds)
    onnx_outputs = _timed(durations, "onnxruntime", lambda: _run_onnx(model_path, session, feeds))
    framework = _timed(durations, "framework", lambda: _run_source(case, feeds))
    calibration = calibrate(
        case,
        model,
        feeds,
        framework,
        onnx_outputs,
        names=names,
        rule=rule,
        attribute_blame=not external,
        durations=durations,
    )
    per_set = [
        compare_outputs(f, x, names=names) for f, x in zip(framework, onnx_outputs, strict=True)
    ]
    semantic = [k for k, v in enumerate(calibration.verdict.per_set) if v is Verdict.SEMANTIC]
    task = None
    if task_data is not None:
        task = _timed(
            durations,
            "task",
            lambda: run_task(
                case, session, task_data, k=top_k, output_name=names[0] if names else "output_0"
            ),
        )
    input_names = [item.name for item in declared]
    report = VerifyReport(
        model=str(model_path),
        source=source.spec,
        framework=source.framework.value,
        inputs=plan,
        calibration=calibration,
        outputs=output_reports(calibration, merge_comparisons(per_set)),
        first_semantic_set=semantic[0] if semantic else None,
        blame_note=_blame_note(calibration.verdict.verdict, external),
        task=task,
        notes=tuple(_notes(plan, input_names, external)),
        versions=_versions(source.framework),
        durations=durations,
    )
    evidence = Evidence(
        onnx_feeds=tuple(select_feeds(input_names, feed) for feed in feeds),
        framework=framework,
        onnx=onnx_outputs,
        output_names=names,
    )
    return report, evidence


def _timed(durations: dict[str, float], key: str, call: Callable[[], _T]) -> _T:
    start = time.perf_counter()
    try:
        return call()
    finally:
        durations[key] = durations.get(key, 0.0) + time.perf_counter() - start


def _session(path: Path, model: onnx.ModelProto, external: tuple[str, ...]) -> Any:
    try:
        return session_from_path(path) if external else create_session(model)
    except MemoryError:
        raise
    except Exception as e:  # ONNX Runtime refusing the model is a property of the model
        raise ModelLoadError(f"{path}: ONNX Runtime refuses the model: {describe(e)}") from None


def _run_onnx(path: Path, session: Any, feeds: Sequence[dict[str, np.ndarray]]) -> Outputs:
    try:
        return run_onnxruntime(session, feeds)
    except MemoryError:
        raise
    except Exception as e:
        raise UnsupportedModelError(
            f"{path}: ONNX Runtime fails on the inputs: {describe(e)}"
        ) from None


def _run_source(case: ModelCase, feeds: Sequence[dict[str, np.ndarray]]) -> Outputs:
    try:
        return run_framework(case, feeds)
    except MemoryError:
        raise
    except Exception as e:  # the user's model on the inputs opseq was told to use
        raise ConfigError(
            f"the source model ({case.framework.value}) fails on the inputs: {describe(e)}"
        ) from None


def _blame_note(verdict: Verdict, external: tuple[str, ...]) -> str | None:
    if verdict is not Verdict.SEMANTIC or not external:
        return None
    return (
        "not attributed: the model keeps its weights as external data, which ONNX Runtime "
        "reads only from the model's path, and blame re-runs the model from its bytes"
    )


def _notes(plan: InputPlan, input_names: Sequence[str], external: tuple[str, ...]) -> list[str]:
    notes = []
    if external:
        notes.append(
            f"weights in external data ({', '.join(external)}): run by ONNX Runtime "
            "from the model's path"
        )
    known = set(input_names) | {n.rpartition(":")[0] for n in input_names if ":" in n}
    extra = [s.name for s in plan.specs if s.name not in known]
    if plan.origin == "npz" and extra:
        notes.append(f"inputs fed to the source model only: {', '.join(extra)}")
    return notes


def _versions(framework: Framework) -> dict[str, str]:
    names = ["onnx", "onnxruntime"]
    names += ["torch"] if framework is Framework.TORCH else ["tensorflow", "keras"]
    versions = {"opseq": __version__}
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions
