"""Converters: strategies that turn a framework model into ONNX, held in a plain dict registry.

Every converter exports with static shapes, taking the example input
``case_inputs(case, count=1, seed=EXAMPLE_SEED)[0]``. A converter raises on failure; the
oracle turns any exception into a ``convert_fail`` outcome. What the exporters warn while they
work is logged at debug level on this module's logger, and their own loggers are quietened to
errors for the duration; errors still raise.

A converter may not honour the requested opset: the dynamo exporter implements opset 18 and up,
converts down when asked for less, and keeps 18 when it cannot. The model is returned as produced;
the oracle records the opset it really has.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import onnx

from opseq._optional import import_optional
from opseq.difftest.execute import import_tensorflow, is_tf_function
from opseq.errors import ConfigError, MissingDependencyError
from opseq.sources.base import Framework, ModelCase, case_inputs

__all__ = [
    "CONVERTERS",
    "EXAMPLE_SEED",
    "Converter",
    "Tf2OnnxConverter",
    "TorchDynamoConverter",
    "TorchScriptConverter",
    "default_opset",
    "get_converter",
]

logger = logging.getLogger(__name__)

EXAMPLE_SEED = 0
"""Seed of the example input the exporters trace with."""


@runtime_checkable
class Converter(Protocol):
    """Turns the model of a `ModelCase` into ONNX."""

    name: str
    framework: Framework

    def convert(self, case: ModelCase, *, opset: int) -> onnx.ModelProto:
        """Convert ``case.model``, asking for default-domain opset `opset`; raise on failure."""
        ...

    def versions(self) -> dict[str, str]:
        """Return the installed versions of the packages the converter uses."""
        ...


class TorchScriptConverter:
    """``torch.onnx.export(..., dynamo=False)``: the TorchScript (tracing) exporter."""

    name = "torch.onnx-torchscript"
    framework = Framework.TORCH
    requires = ("torch",)
    extra = "torch"

    def convert(self, case: ModelCase, *, opset: int) -> onnx.ModelProto:
        """Trace ``case.model`` on the example input and export it at `opset`."""
        torch = import_optional("torch", "torch")
        model, args = _torch_example(case, torch)
        buffer = io.BytesIO()
        with torch.no_grad(), _quiet_exporter(("torch.onnx",)):
            torch.onnx.export(
                model,
                args,
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[spec.name for spec in case.inputs],
            )
        return onnx.load_from_string(buffer.getvalue())

    def versions(self) -> dict[str, str]:
        """Return the versions of torch."""
        return _installed_versions(self.requires)


class TorchDynamoConverter:
    """``torch.onnx.export(..., dynamo=True)``: the torch.export-based exporter (onnxscript)."""

    name = "torch.onnx-dynamo"
    framework = Framework.TORCH
    requires = ("torch", "onnxscript")
    extra = "torch"

    def convert(self, case: ModelCase, *, opset: int) -> onnx.ModelProto:
        """Export ``case.model`` with ``torch.export`` on the example input, asking for `opset`."""
        torch = import_optional("torch", "torch")
        model, args = _torch_example(case, torch)
        with torch.no_grad(), _quiet_exporter(("torch.onnx", "onnxscript", "onnx_ir")):
            program = torch.onnx.export(
                model,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=[spec.name for spec in case.inputs],
                verbose=False,
            )
        proto = program.model_proto
        actual = default_opset(proto)
        if actual != opset:
            logger.info("%s: %s produced opset %s, not %s", case.case_id, self.name, actual, opset)
        return proto

    def versions(self) -> dict[str, str]:
        """Return the versions of torch and onnxscript."""
        return _installed_versions(self.requires)


class Tf2OnnxConverter:
    """tf2onnx: ``from_keras`` for Keras models, ``from_function`` for a ``tf.function``."""

    name = "tf2onnx"
    framework = Framework.TENSORFLOW
    requires = ("tensorflow", "tf2onnx")
    extra = "tensorflow"

    def convert(self, case: ModelCase, *, opset: int) -> onnx.ModelProto:
        """Convert ``case.model`` with an input signature of the case's static shapes."""
        tf = import_tensorflow()
        tf2onnx_convert = import_optional("tf2onnx.convert", "tensorflow")
        signature = tuple(
            tf.TensorSpec(spec.shape, tf.as_dtype(spec.dtype), name=spec.name)
            for spec in case.inputs
        )
        exporter = (
            tf2onnx_convert.from_function
            if is_tf_function(case.model, tf)
            else tf2onnx_convert.from_keras
        )
        with _quiet_exporter(("tf2onnx",)):
            proto, _ = exporter(case.model, input_signature=signature, opset=opset)
        return proto

    def versions(self) -> dict[str, str]:
        """Return the versions of tensorflow, keras and tf2onnx."""
        return _installed_versions((*self.requires, "keras"))


CONVERTERS: dict[str, Converter] = {
    c.name: c for c in (TorchScriptConverter(), TorchDynamoConverter(), Tf2OnnxConverter())
}


def get_converter(name: str) -> Converter:
    """Return the registered converter `name`, checking that its framework is installed.

    The check looks for the packages without importing them.

    Args:
        name: A key of `CONVERTERS`, e.g. ``"torch.onnx-dynamo"``.

    Returns:
        The converter.

    Raises:
        ConfigError: If no converter has that name.
        MissingDependencyError: If a package the converter needs is not installed.
    """
    try:
        converter = CONVERTERS[name]
    except KeyError:
        known = ", ".join(sorted(CONVERTERS))
        raise ConfigError(f"unknown converter {name!r}; known: {known}") from None
    for module in getattr(converter, "requires", ()):
        if importlib.util.find_spec(module) is None:
            extra = getattr(converter, "extra", converter.framework.value)
            raise MissingDependencyError(
                f"converter {name!r} needs {module}, which is not installed; "
                f"install it with: pip install 'opseq[{extra}]'"
            )
    return converter


def default_opset(model: onnx.ModelProto) -> int | None:
    """Return the version of the default ONNX domain that `model` imports, or None."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _torch_example(case: ModelCase, torch) -> tuple[object, tuple[object, ...]]:
    (feed,) = case_inputs(case, count=1, seed=EXAMPLE_SEED)
    args = tuple(torch.from_numpy(feed[spec.name]) for spec in case.inputs)
    return case.model.eval(), args


def _installed_versions(distributions: Sequence[str]) -> dict[str, str]:
    versions = {}
    for dist in distributions:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return versions


@contextlib.contextmanager
def _quiet_exporter(logger_names: Sequence[str]) -> Iterator[None]:
    """Quieten exporter loggers to errors and log its Python warnings at debug level."""
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    for warning in caught:
        logger.debug("exporter warning %s: %s", warning.category.__name__, warning.message)
