"""The files of one reproducer: converted model, test data, framework model, ``reproduce.py``.

Written by the worker that reduced the case, into a staging directory; the parent moves the
files of one reproducer per finding into the finding's directory (`opseq.reduce.finding`). The
layout is that of `opseq.verify.repro` (ONNX's backend test data)::

    model.onnx                   the minimal converted model, with its weights
    test_data_set_0/input_<i>.pb the inputs of the input set that disagrees most, named like the
                                 model inputs, in input order
    test_data_set_0/output_<i>.pb the framework's float32 outputs on them
    model.pt2 | model.pt | model.keras | saved_model/   the source model (none for a one-op
                                 call expression; saved_model/ for Keras models with layers
                                 only opseq can rebuild)
    reproduce.py                 the self-contained replay (`opseq.reduce.scripts`)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnx import numpy_helper

from opseq.difftest.calibration import Calibration
from opseq.difftest.execute import create_session, run_framework, run_onnxruntime
from opseq.difftest.oracle import DiffTestResult
from opseq.reduce.keras_script import keras_script
from opseq.reduce.scripts import bound_for, safe_call, torch_script
from opseq.sources.base import Framework, ModelCase, case_inputs
from opseq.tolerance import Verdict

__all__ = ["StagedFiles", "array_difference", "stage_reproducer", "worst_set"]

logger = logging.getLogger(__name__)

_KERAS_LAYER_ARGUMENTS = {
    "DepthToSpace": ("block",),
    "SpaceToDepth": ("block",),
    "ArgReduce": ("function", "axis", "keepdims"),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedFiles:
    """What `stage_reproducer` wrote.

    Attributes:
        input_set: The input set stored in ``test_data_set_0``.
        max_abs_diff: The difference on it, as ``reproduce.py`` measures it (inf when NaN/Inf
            positions, shapes or the number of outputs differ).
        bound: The script's bound.
        framework_file: ``model.pt2``, ``model.pt``, ``model.keras``, ``saved_model``, or None.
        framework_note: Why the source model could not be saved, if it could not.
    """

    input_set: int
    max_abs_diff: float
    bound: float
    framework_file: str | None
    framework_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (an infinite difference as the string ``"inf"``)."""
        diff = self.max_abs_diff
        return {
            "input_set": self.input_set,
            "max_abs_diff": diff if math.isfinite(diff) else str(diff),
            "bound": self.bound,
            "framework_file": self.framework_file,
            "framework_note": self.framework_note,
        }


def worst_set(calibration: Calibration) -> int:
    """The input set that disagrees most: semantic first, then the largest error over bound."""
    rule = calibration.rule
    judged = [rule.judge_set(errors) for errors in calibration.errors]
    if not judged:
        return 0
    return max(range(len(judged)), key=lambda k: (judged[k][0] is Verdict.SEMANTIC, judged[k][1]))


def array_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    """The largest difference as ``reproduce.py`` computes it (module docstring of scripts).

    Examples:
        >>> array_difference(np.array([1.0, np.nan]), np.array([1.5, np.nan]))
        0.5
        >>> array_difference(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
        inf
    """
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return float("inf")
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    odd_e, odd_a = ~np.isfinite(e), ~np.isfinite(a)
    if not np.array_equal(odd_e, odd_a) or not np.array_equal(e[odd_e], a[odd_a], equal_nan=True):
        return float("inf")
    return float(np.max(np.abs(e[~odd_e] - a[~odd_a]), initial=0.0))


def stage_reproducer(
    directory: Path,
    *,
    case: ModelCase,
    result: DiffTestResult,
    converter: str,
    opset: int,
    seed: int,
    n_inputs: int,
    input_strategy: str,
    title: str,
) -> StagedFiles:
    """Write the files of one reproducer into `directory` (created; module docstring).

    Args:
        directory: Where to write; created with its parents.
        case: The minimal case.
        result: Its semantic `run_difftest` result, with the model.
        converter: The converter name.
        opset: The opset the converter was asked for.
        seed: Seed of the input sets.
        n_inputs: Number of input sets.
        input_strategy: How they were drawn.
        title: First line of the script's docstring.

    Returns:
        What was written.

    Raises:
        ValueError: If `result` carries no model or calibration.
        Exception: Whatever the framework raises running the case again.
    """
    if result.model is None or result.calibration is None:
        raise ValueError("a reproducer needs a converted model and a calibration")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(result.model.SerializeToString())
    k = worst_set(result.calibration)
    feed = case_inputs(case, count=n_inputs, seed=seed, strategy=input_strategy)[k]
    (expected,) = run_framework(case, [feed])
    (actual,) = run_onnxruntime(create_session(result.model), [feed])
    _write_test_data(directory / "test_data_set_0", case, feed, expected, result.calibration.names)
    diffs = [array_difference(e, a) for e, a in zip(expected, actual, strict=False)]
    if len(expected) != len(actual):
        diffs.append(float("inf"))
    diff = max(diffs, default=0.0)
    bound = bound_for(diff)
    names = [spec.name for spec in case.inputs]
    if case.framework is Framework.TORCH:
        framework_file, note, call = _save_torch(directory, case, feed)
        script = torch_script(
            title=title,
            converter=converter,
            opset=opset,
            bound=bound,
            input_names=names,
            model_file=framework_file,
            call=None if call is None else call[0],
            call_imports=() if call is None else call[1],
        )
    else:
        framework_file, note, layers = _save_keras(directory, case)
        script = keras_script(
            title=title,
            converter=converter,
            opset=opset,
            bound=bound,
            inputs=[(s.name, s.shape, s.dtype) for s in case.inputs],
            model_file=framework_file or "model.keras",
            custom_layers=layers,
        )
    (directory / "reproduce.py").write_text(script, encoding="utf-8")
    return StagedFiles(
        input_set=k,
        max_abs_diff=diff,
        bound=bound,
        framework_file=framework_file,
        framework_note=note,
    )


def _write_test_data(directory: Path, case: ModelCase, feed, expected, names: Sequence[str]):
    directory.mkdir(parents=True, exist_ok=True)
    for i, spec in enumerate(case.inputs):
        _write_tensor(directory / f"input_{i}.pb", np.asarray(feed[spec.name]), spec.name)
    for i, array in enumerate(expected):
        name = names[i] if i < len(names) else f"output_{i}"
        _write_tensor(directory / f"output_{i}.pb", np.asarray(array), name)


def _write_tensor(path: Path, array: np.ndarray, name: str) -> None:
    path.write_bytes(numpy_helper.from_array(array, name).SerializeToString())


def _save_torch(directory: Path, case: ModelCase, feed) -> tuple[str | None, str | None, Any]:
    """Save the module (torch.export, else a TorchScript trace); a call expression needs none.

    Returns:
        The file written, why the first choice failed, and the checked call and its imports.
    """
    import torch

    call = case.metadata.get("call")
    if call is not None:
        imports = [str(i) for i in case.metadata.get("call_imports") or ()]
        checked = safe_call(call, [spec.name for spec in case.inputs], imports)
        if checked is not None:
            return None, None, (checked, imports)
        logger.warning(
            "%s: metadata call is not a plain call expression; saving the module", case.case_id
        )
    args = tuple(torch.from_numpy(np.array(feed[spec.name])) for spec in case.inputs)
    try:
        program = torch.export.export(case.model.eval(), args)
        torch.export.save(program, str(directory / "model.pt2"))
        return "model.pt2", None, None
    except Exception as e:  # some modules do not export: fall back to a trace
        export_error = f"torch.export failed: {type(e).__name__}: {_first_line(e)}"
    try:
        with torch.no_grad():
            traced = torch.jit.trace(case.model.eval(), args, check_trace=False)
        torch.jit.save(traced, str(directory / "model.pt"))
        return "model.pt", export_error, None
    except Exception as e:  # neither: the script will say the framework step fails
        return None, f"{export_error}; torch.jit.trace failed: {_first_line(e)}", None


def _save_keras(directory: Path, case: ModelCase) -> tuple[str | None, str | None, dict]:
    """Save ``model.keras``, or a SavedModel when a layer needs opseq to be rebuilt."""
    layers = getattr(case.model, "layers", ())
    arguments = {
        layer.name: {a: getattr(layer, a) for a in _KERAS_LAYER_ARGUMENTS[type(layer).__name__]}
        for layer in layers
        if type(layer).__name__ in _KERAS_LAYER_ARGUMENTS
    }
    foreign = [
        type(layer).__name__
        for layer in layers
        if type(layer).__module__.startswith("opseq")
        and type(layer).__name__ not in (*_KERAS_LAYER_ARGUMENTS, "Add")
    ]
    try:
        if foreign:
            case.model.export(str(directory / "saved_model"), verbose=False)
            return "saved_model", None, arguments
        case.model.save(str(directory / "model.keras"))
        return "model.keras", None, arguments
    except Exception as e:  # e.g. a tf.function: no Keras file; the script says so
        return None, f"saving the Keras model failed: {type(e).__name__}: {_first_line(e)}", {}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else "")[:300]
