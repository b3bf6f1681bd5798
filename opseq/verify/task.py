"""Task-level checks: do the source model and its ONNX export make the same predictions?

No numeric tolerance maps to accuracy (Polygraphy's maintainers point users to task-level checks
for that reason), so with ``--data FILE.npz`` the source model (float32, in its framework) and
the ONNX model (optimised ONNX Runtime) classify the samples ``x`` and opseq reports:

- top-1 agreement: the share of samples whose highest-scoring class is the same on both sides;
- top-k agreement: the share whose k highest-scoring classes are the same set on both sides;
- with labels ``y``: the top-1 and top-k accuracy of each side.

The model must take one input; ``x`` holds the samples along its first axis, which is the
model's batch axis, and the scores are the model's first output, of shape (batch, classes).
Samples go in batches of ``--batch-size``; a model exported with a fixed batch size gets batches
of that size, the last one padded with copies of the last sample whose predictions are dropped.
Floating ``x`` of another precision (float64 data, a float32 model) is cast to the model's
dtype. Ties between scores go to the lower class index on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opseq.difftest.execute import run_framework, run_onnxruntime
from opseq.errors import ConfigError
from opseq.sources.base import ModelCase
from opseq.verify._errors import describe
from opseq.verify.inputs import DeclaredInput, read_npz

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "TaskData",
    "TaskReport",
    "load_task_data",
    "run_task",
    "top_classes",
]

DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskData:
    """Samples and labels, checked against the model's input, ready to batch.

    Attributes:
        path: The .npz file.
        x: The samples, in the model's dtype.
        y: The labels (integers), or None.
        batch_size: Samples per batch.
        fixed_batch: Whether the model's batch size is fixed (the last batch is padded).
        notes: What was adapted (a cast, a batch size the model imposes).
    """

    path: str
    x: np.ndarray
    y: np.ndarray | None
    batch_size: int
    fixed_batch: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskReport:
    """Prediction agreement between the source model and the ONNX model on labelled data.

    Attributes:
        data: The .npz file.
        samples: How many samples.
        batch_size: Samples per batch.
        output: The output scored (the first).
        classes: Its number of classes.
        k: The k of top-k (at most `classes`).
        top1_agreeing: Samples whose top-1 class agrees.
        topk_agreeing: Samples whose top-k class sets agree.
        accuracy: With labels, ``source_top1``, ``onnx_top1``, ``source_topk``, ``onnx_topk``
            (fractions); None without.
        notes: What was adapted.
    """

    data: str
    samples: int
    batch_size: int
    output: str
    classes: int
    k: int
    top1_agreeing: int
    topk_agreeing: int
    accuracy: dict[str, float] | None = None
    notes: tuple[str, ...] = ()

    @property
    def top1_agreement(self) -> float:
        """The share of samples whose top-1 class agrees."""
        return self.top1_agreeing / self.samples if self.samples else 1.0

    @property
    def topk_agreement(self) -> float:
        """The share of samples whose top-k class sets agree."""
        return self.topk_agreeing / self.samples if self.samples else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "data": self.data,
            "samples": self.samples,
            "batch_size": self.batch_size,
            "output": self.output,
            "classes": self.classes,
            "k": self.k,
            "top1_agreement": self.top1_agreement,
            "top1_agreeing": self.top1_agreeing,
            "topk_agreement": self.topk_agreement,
            "topk_agreeing": self.topk_agreeing,
            "accuracy": self.accuracy,
            "notes": list(self.notes),
        }


def load_task_data(
    path: Path, declared: Sequence[DeclaredInput], *, batch_size: int | None
) -> TaskData:
    """Read ``x`` and ``y`` and check them against the model's one input (module docstring).

    Raises:
        ConfigError: If the file is unreadable, has no ``x``, does not fit the model's input,
            the model has several inputs, or ``y`` is not one integer label per sample.
    """
    where = f"--data {path}"
    arrays = read_npz(path, flag="--data")
    if "x" not in arrays:
        raise ConfigError(
            f"{where}: no array 'x' (the samples); the file has {', '.join(map(repr, arrays))}"
        )
    if len(declared) != 1:
        raise ConfigError(
            f"{where}: task-level checks need a model with one input; this ONNX "
            f"model declares {len(declared)}"
        )
    (item,) = declared
    x, notes = _fit_samples(where, arrays["x"], item)
    y = arrays.get("y")
    if y is not None:
        y = _labels(where, y, notes)
        if len(y) != len(x):
            raise ConfigError(f"{where}: 'y' has {len(y)} labels, 'x' has {len(x)} samples")
    fixed = item.shape[0] if item.shape and isinstance(item.shape[0], int) else None
    size = batch_size or DEFAULT_BATCH_SIZE
    if fixed is not None:
        if batch_size is not None and batch_size != fixed:
            notes.append(f"the ONNX model's batch size is fixed at {fixed}: batches of {fixed}")
        size = fixed
    return TaskData(
        path=str(path), x=x, y=y, batch_size=size, fixed_batch=fixed is not None, notes=tuple(notes)
    )


def _labels(where: str, y: np.ndarray, notes: list[str]) -> np.ndarray:
    """Integer labels; floating labels that are all whole numbers (as some tools save them) too."""
    if y.ndim != 1 or y.dtype.kind not in "iuf":
        raise ConfigError(
            f"{where}: 'y' must be one integer label per sample, got "
            f"{y.dtype} of shape {list(y.shape)}"
        )
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y)) & (np.abs(y) < 2**53)
        if not np.all(whole):
            bad = int(np.argmin(whole))
            raise ConfigError(
                f"{where}: 'y' must be one integer label per sample; it is {y.dtype} and "
                f"y[{bad}] = {float(y[bad])!r} is not a whole number"
            )
        notes.append(f"'y' cast from {y.dtype} to int64 (whole numbers)")
        y = y.astype(np.int64)
    return y


def _fit_samples(where: str, x: np.ndarray, item: DeclaredInput) -> tuple[np.ndarray, list[str]]:
    notes: list[str] = []
    if x.ndim == 0 or len(x) == 0:
        raise ConfigError(f"{where}: 'x' holds no samples (shape {list(x.shape)})")
    if item.problem is not None:
        raise ConfigError(f"{where}: the ONNX input {item.name!r} {item.problem}")
    if item.shape is not None:
        fits = x.ndim == len(item.shape) and all(
            not isinstance(d, int) or d == n
            for d, n in zip(item.shape[1:], x.shape[1:], strict=True)
        )
        if not fits:
            raise ConfigError(
                f"{where}: 'x' has shape {list(x.shape)}, the ONNX input {item.name!r} is "
                f"{item.shown_shape()} (samples along its first axis)"
            )
    if x.dtype != item.dtype:
        if x.dtype.kind != "f" or item.dtype.kind != "f":
            raise ConfigError(
                f"{where}: 'x' has dtype {x.dtype}, the ONNX input {item.name!r} {item.dtype}"
            )
        notes.append(f"'x' cast from {x.dtype} to {item.dtype}")
        x = x.astype(item.dtype)
    return x, notes


def run_task(
    case: ModelCase, session: Any, data: TaskData, *, k: int, output_name: str
) -> TaskReport:
    """Classify every sample on both sides and count agreements (module docstring).

    Raises:
        ConfigError: If either side fails on a batch, or the first output is not
            (batch, classes) on both sides.
    """
    source_top, onnx_top, classes = top_classes(case, session, data, k=k)
    notes = list(data.notes)
    if k > classes:
        notes.append(f"top-{k} asked for, the output has {classes} classes: top-{classes}")
    return TaskReport(
        data=data.path,
        samples=len(data.x),
        batch_size=data.batch_size,
        output=output_name,
        classes=classes,
        k=min(k, classes),
        top1_agreeing=int(np.sum(source_top[:, 0] == onnx_top[:, 0])),
        topk_agreeing=int(np.sum(np.all(np.sort(source_top, 1) == np.sort(onnx_top, 1), 1))),
        accuracy=None if data.y is None else _accuracy(data, source_top, onnx_top, classes),
        notes=tuple(notes),
    )


def top_classes(
    case: ModelCase, session: Any, data: TaskData, *, k: int, x: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """The k highest-scoring classes of every sample on both sides, batched as `data` says.

    Args:
        case: The source model, its one input first in ``case.inputs``.
        session: The ONNX Runtime session.
        data: The task data (its batching; its samples unless `x` is given).
        k: How many classes per sample (at most the number of classes).
        x: Other samples of the same shape and dtype (adversarial ones), or None.

    Returns:
        The source's and ONNX Runtime's classes, each (samples, min(k, classes)), best first,
        and the number of classes.

    Raises:
        ConfigError: If either side fails on a batch, or the first output is not
            (batch, classes) on both sides.
    """
    samples = data.x if x is None else x
    name = case.inputs[0].name
    top_source, top_onnx = [], []
    classes = None
    for start in range(0, len(samples), data.batch_size):
        chunk = samples[start : start + data.batch_size]
        real = len(chunk)
        if data.fixed_batch and real < data.batch_size:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], data.batch_size - real, 0)])
        feed = [{name: chunk}]
        source = _first_output(data.path, "the source model", run_framework, case, feed)
        onnx = _first_output(data.path, "ONNX Runtime", run_onnxruntime, session, feed)
        for who, scores in (("the source model", source), ("ONNX Runtime", onnx)):
            if scores.ndim != 2 or len(scores) != len(chunk):
                raise ConfigError(
                    f"--data {data.path}: {who}'s first output has shape "
                    f"{list(scores.shape)}; expected (batch, classes)"
                )
        if classes is None:
            classes = source.shape[1]
        if source.shape[1] != classes or onnx.shape[1] != classes:
            raise ConfigError(
                f"--data {data.path}: the two sides score "
                f"{source.shape[1]} and {onnx.shape[1]} classes"
            )
        top_source.append(_top(source[:real], min(k, classes)))
        top_onnx.append(_top(onnx[:real], min(k, classes)))
    return np.concatenate(top_source), np.concatenate(top_onnx), int(classes or 0)


def _first_output(path: str, who: str, runner, target, feed) -> np.ndarray:
    try:
        outputs = runner(target, feed)[0]
    except MemoryError:
        raise
    except Exception as e:  # the system under test, or the user's model, on the user's data
        raise ConfigError(f"--data {path}: {who} fails on a batch: {describe(e)}") from None
    if not outputs:
        raise ConfigError(f"--data {path}: {who} returns no output")
    return np.asarray(outputs[0])


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-scores.astype(np.float64), axis=1, kind="stable")[:, :k]


def _accuracy(data: TaskData, source_top, onnx_top, classes) -> dict[str, float]:
    y = data.y
    if y.size and (y.min() < 0 or y.max() >= classes):
        raise ConfigError(
            f"--data {data.path}: labels 'y' range over {int(y.min())}.."
            f"{int(y.max())}, the model scores {classes} classes"
        )
    return {
        "source_top1": float(np.mean(source_top[:, 0] == y)),
        "onnx_top1": float(np.mean(onnx_top[:, 0] == y)),
        "source_topk": float(np.mean(np.any(source_top == y[:, None], axis=1))),
        "onnx_topk": float(np.mean(np.any(onnx_top == y[:, None], axis=1))),
    }
