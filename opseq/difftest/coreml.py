"""Convert a case to CoreML with coremltools, read its op structure, and run it where possible.

CoreML is the third target of the conversion studies opseq reproduces (Openja et al., ICSME
2022): the same source model converted to ONNX and to CoreML, compared for accuracy, size and
robustness. coremltools converts on any platform, but runs a model only on macOS, where the
CoreML framework is; elsewhere `predict_coreml` says so in its result instead of returning
nothing, so a table never shows a blank or a zero for an accuracy that was not measured.

Conversion: a torch module is traced on the case's example input (``torch.jit.trace``) and
converted to an ML program (``convert_to="mlprogram"``) with one ``TensorType`` per input, of
the case's static shape; a Keras model is handed to coremltools' TensorFlow 2 frontend. The
compute precision is float32 unless asked otherwise (coremltools' default for ML programs is
float16, which would mix a precision change into a comparison of converters). The op structure
is the op types of the main function's block, nested blocks (loops, conditions) in order
after their op; the size is that of the saved ``.mlpackage`` directory.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opseq._optional import import_optional
from opseq.errors import ConfigError
from opseq.sources.base import Framework, ModelCase, case_inputs

__all__ = [
    "NOT_ON_MACOS",
    "PRECISIONS",
    "CoreMLConversion",
    "CoreMLPredictions",
    "convert_coreml",
    "mlprogram_ops",
    "package_size",
    "predict_coreml",
]

logger = logging.getLogger(__name__)

EXTRA = "coreml"
PRECISIONS = ("float32", "float16")
NOT_ON_MACOS = "CoreML predictions not run: coremltools runs predictions only on macOS"
_EXAMPLE_SEED = 0  # the seed of the converters' example input (opseq.difftest.convert)


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreMLConversion:
    """The outcome of one CoreML conversion.

    Attributes:
        case_id: The case converted.
        converted: Whether coremltools produced a model.
        error: The first line of the failure, when it did not.
        precision: The compute precision asked for.
        ops: Op types of the ML program (nested blocks included), in order.
        size_bytes: Size of the saved ``.mlpackage`` directory.
        seconds: Conversion time (tracing included).
        versions: coremltools' version.
        mlmodel: The ``coremltools.models.MLModel`` (not serialised).
        path: Where the ``.mlpackage`` was saved, when asked to keep it.
    """

    case_id: str
    converted: bool
    error: str | None = None
    precision: str = "float32"
    ops: tuple[str, ...] = ()
    size_bytes: int | None = None
    seconds: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    mlmodel: Any = field(default=None, repr=False, compare=False)
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (without the model)."""
        return {
            "case": self.case_id,
            "converted": self.converted,
            "error": self.error,
            "precision": self.precision,
            "ops": list(self.ops),
            "op_count": len(self.ops),
            "size_bytes": self.size_bytes,
            "seconds": round(self.seconds, 3),
            "versions": dict(self.versions),
            "path": None if self.path is None else str(self.path),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreMLPredictions:
    """CoreML outputs per input set, or why there are none.

    Attributes:
        ran: Whether CoreML ran.
        note: Why it did not (`NOT_ON_MACOS`, or the error); None when it ran.
        outputs: Per input set, the outputs in the model's output order (empty when not run).
    """

    ran: bool
    note: str | None = None
    outputs: tuple[tuple[np.ndarray, ...], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe summary (without the arrays)."""
        return {"ran": self.ran, "note": self.note, "sets": len(self.outputs)}


def convert_coreml(
    case: ModelCase, *, precision: str = "float32", keep_dir: Path | None = None
) -> CoreMLConversion:
    """Convert ``case.model`` to a CoreML ML program; a failure is a result, not an exception.

    Args:
        case: A torch or Keras case with static input shapes.
        precision: ``"float32"`` or ``"float16"``, the compute precision.
        keep_dir: Save the ``.mlpackage`` there (named after the case); a temporary directory
            that is removed afterwards when None.

    Returns:
        The conversion, with the op structure and the package size when it converted.

    Raises:
        ConfigError: If `precision` is unknown.
        MissingDependencyError: If coremltools is not installed (the extra ``coreml``).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown CoreML precision {precision!r}; known: {', '.join(PRECISIONS)}")
    ct = _import_coremltools()
    versions = {"coremltools": str(ct.__version__)}
    start = time.perf_counter()
    try:
        with _quiet():
            mlmodel = _convert(ct, case, precision)
    except MemoryError:
        raise
    except Exception as e:  # a converter that fails is a measurement of the converter
        message = f"{type(e).__name__}: {e}".strip().splitlines()[0][:500]
        return CoreMLConversion(
            case_id=case.case_id,
            converted=False,
            error=message,
            precision=precision,
            seconds=time.perf_counter() - start,
            versions=versions,
        )
    seconds = time.perf_counter() - start
    with contextlib.ExitStack() as stack:
        root = keep_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        root.mkdir(parents=True, exist_ok=True)
        target = root / (_safe(case.case_id) + ".mlpackage")
        with _quiet():
            mlmodel.save(str(target))
        size = package_size(target)
    return CoreMLConversion(
        case_id=case.case_id,
        converted=True,
        precision=precision,
        ops=mlprogram_ops(mlmodel.get_spec()),
        size_bytes=size,
        seconds=seconds,
        versions=versions,
        mlmodel=mlmodel,
        path=target if keep_dir is not None else None,
    )


def predict_coreml(
    conversion: CoreMLConversion, feeds: Sequence[Mapping[str, np.ndarray]]
) -> CoreMLPredictions:
    """Run a converted model on each input set, on macOS; elsewhere say why not.

    Args:
        conversion: From `convert_coreml`.
        feeds: Input sets keyed by the case's input names.

    Returns:
        The outputs, or ``ran=False`` with `NOT_ON_MACOS` (or the conversion's or CoreML's
        error) as the note.
    """
    if not conversion.converted or conversion.mlmodel is None:
        return CoreMLPredictions(ran=False, note=f"not converted: {conversion.error}")
    if sys.platform != "darwin":
        return CoreMLPredictions(ran=False, note=NOT_ON_MACOS)
    spec = conversion.mlmodel.get_spec()
    names = [o.name for o in spec.description.output]
    try:
        outputs = tuple(
            tuple(np.asarray(result[n]) for n in names)
            for result in (conversion.mlmodel.predict(dict(feed)) for feed in feeds)
        )
    except Exception as e:  # CoreML refusing a model at run time is a result too
        return CoreMLPredictions(ran=False, note=f"CoreML prediction failed: {e}".splitlines()[0])
    return CoreMLPredictions(ran=True, outputs=outputs)


def mlprogram_ops(spec: Any) -> tuple[str, ...]:
    """Op types of an ML program's main function, each op's nested blocks after it.

    Args:
        spec: ``MLModel.get_spec()`` of an ML program.

    Returns:
        Op types in program order (``const`` included: in an ML program weights are ops).
    """
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    return tuple(_block_ops(block))


def package_size(path: Path) -> int:
    """Total size in bytes of the files under `path` (a ``.mlpackage`` is a directory)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _block_ops(block: Any) -> Iterator[str]:
    for op in block.operations:
        yield op.type
        for nested in op.blocks:
            yield from _block_ops(nested)


def _import_coremltools():
    # coremltools imports TensorFlow when it is installed: keep its C++ start-up log quiet.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet():
        return import_optional("coremltools", EXTRA)


def _convert(ct, case: ModelCase, precision: str):
    (feed,) = case_inputs(case, count=1, seed=_EXAMPLE_SEED)
    types = [ct.TensorType(name=s.name, shape=s.shape) for s in case.inputs]
    options = {
        "inputs": types,
        "convert_to": "mlprogram",
        "compute_precision": getattr(ct.precision, precision.upper()),
    }
    if case.framework is Framework.TORCH:
        torch = import_optional("torch", "torch")
        args = tuple(torch.from_numpy(feed[s.name]) for s in case.inputs)
        with torch.no_grad():
            traced = torch.jit.trace(case.model.eval(), args)
        return ct.convert(traced, source="pytorch", **options)
    return ct.convert(case.model, source="tensorflow", **options)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence coremltools' progress bars, version warnings and missing-library notices."""
    loggers = [logging.getLogger(n) for n in ("coremltools", "root")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    sink = io.StringIO()
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(sink),
            contextlib.redirect_stdout(sink),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    logger.debug("coremltools said: %s", sink.getvalue()[-2000:])


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
