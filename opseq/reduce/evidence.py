"""The evidence a finding carries: the oracle's numbers, the blame, versions, the script's run.

Blame is the calibrated blame the oracle attributes: ``converter``, ``runtime``,
``runtime-optimizer`` or ``unknown``. It is never ``framework``: under the calibrated rule a set
is semantic only where the framework's float32 agrees with float64 (within its own error, and in
NaN/Inf pattern and integer values) and ONNX does not; where float64 says the framework is the
one that is off, the rule calls the set ``unstable``, and such a case is not a finding.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from opseq.difftest.calibration import Calibration
from opseq.difftest.compare import to_json_float
from opseq.difftest.oracle import DiffTestResult
from opseq.reduce.bundle import worst_set

__all__ = ["check_script", "finding_blame", "installed_versions", "oracle_numbers"]

_VERSION_PACKAGES = ("torch", "tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "onnxscript")
SCRIPT_TIMEOUT_S = 600.0


def installed_versions() -> dict[str, str]:
    """Versions of the frameworks, converters and runtimes a finding depends on."""
    versions = {}
    for name in _VERSION_PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


def oracle_numbers(result: DiffTestResult) -> dict[str, Any]:
    """The oracle's numbers for ``finding.json``: verdict, per-output errors, max abs diff.

    Errors are in float32 rounding steps (`opseq.difftest.measure`), one per input set.
    """
    calibration = result.calibration
    numbers: dict[str, Any] = {
        "verdict": None if result.verdict is None else result.verdict.value,
        "max_abs_diff": to_json_float(result.max_abs_diff),
        "max_rel_diff": to_json_float(result.max_rel_diff),
        "opset": result.opset,
    }
    if calibration is None:
        return numbers
    case_verdict = calibration.verdict.to_dict()
    numbers.update(
        reference=case_verdict["reference"],
        sets=case_verdict["sets"],
        semantic_sets=case_verdict["semantic_sets"],
        required_headroom=case_verdict["required_headroom"],
        worst_set=worst_set(calibration),
        outputs=[_output_numbers(calibration, result, i) for i in range(len(calibration.names))],
    )
    return numbers


def _output_numbers(calibration: Calibration, result: DiffTestResult, i: int) -> dict[str, Any]:
    column = [errors[i] for errors in calibration.errors if i < len(errors)]
    verdict = calibration.rule.judge([[e] for e in column]).verdict
    comparison = result.comparisons[i] if i < len(result.comparisons) else None
    return {
        "name": calibration.names[i],
        "verdict": verdict.value,
        "onnx_error": [to_json_float(e.onnx_error) for e in column],
        "framework_error": [
            None if e.framework_error is None else to_json_float(e.framework_error) for e in column
        ],
        "disagreement": [e.structure or e.onnx_disagrees for e in column],
        "max_abs_diff": None if comparison is None else to_json_float(comparison.max_abs_diff),
    }


def finding_blame(calibration: Calibration | None) -> str:
    """The finding's blame (module docstring): the oracle's, or ``unknown``."""
    if calibration is None or calibration.blame is None:
        return "unknown"
    return calibration.blame.value


def check_script(directory: Path, *, timeout_s: float = SCRIPT_TIMEOUT_S) -> dict[str, Any]:
    """Run ``reproduce.py`` in `directory`; return its exit code, last line and duration.

    ``exit_code`` is None when it timed out. The status: ``reproduces`` (1), ``does not
    reproduce`` (0), ``fails`` (2: the line says which step), ``crashed`` (anything else).
    """
    start = time.perf_counter()
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        done = subprocess.run(
            [sys.executable, "reproduce.py"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=environment,
            check=False,
        )
    except subprocess.TimeoutExpired:
        seconds = round(time.perf_counter() - start, 3)
        return {"exit_code": None, "status": "timed out", "line": "", "seconds": seconds}
    code = done.returncode
    stream = done.stdout if code in (0, 1) else done.stderr
    lines = [line for line in stream.splitlines() if line.strip()]
    status = {0: "does not reproduce", 1: "reproduces", 2: "fails"}.get(code, "crashed")
    return {
        "exit_code": code,
        "status": status,
        "line": (lines[-1] if lines else "")[:500],
        "seconds": round(time.perf_counter() - start, 3),
    }
