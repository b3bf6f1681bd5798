"""Load the source model that an ONNX export claims to compute: a factory or a saved Keras file.

A ``--source`` spec is one of:

- ``package.module:factory``: imported like ``python -m`` would (the current directory first on
  the module search path);
- ``path/to/file.py:factory``: the file is run as a module of its own, with its directory first
  on the search path (as ``python path/to/file.py`` would), so it may import its neighbours;
- ``path/to/model.keras``: a saved Keras model, loaded with Keras' safe mode (no arbitrary code
  from the file).

The factory is called without arguments and returns the model, or ``(model, extra)`` where
``extra`` is example inputs (a tuple, list or dict of arrays or tensors, or one array) or a list
of `opseq.sources.InputSpec`. The model must be a ``torch.nn.Module`` or a Keras model. Running
the factory runs the user's own code: it is trusted as ``python`` would trust it; the ONNX model
is the untrusted input. Every failure of the spec is a `ConfigError` of one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opseq.errors import ConfigError
from opseq.sources.base import Framework, InputSpec
from opseq.verify._errors import describe as _describe

__all__ = ["SourceModel", "load_source", "search_path", "spec_paths"]

_FORMS = "package.module:factory, path/to/file.py:factory or path/to/model.keras"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceModel:
    """The source model a spec names, with what its factory says about its inputs.

    Attributes:
        spec: The spec as given.
        framework: The framework the model is written in.
        model: The ``torch.nn.Module`` or Keras model.
        specs: Input specs the factory returned, or None.
        examples: Example inputs the factory returned: a name -> array mapping (a dict), or a
            tuple of arrays by position; None when it returned none.
    """

    spec: str
    framework: Framework
    model: Any
    specs: tuple[InputSpec, ...] | None = None
    examples: Mapping[str, np.ndarray] | tuple[np.ndarray, ...] | None = None


def spec_paths(spec: str) -> list[Path]:
    """The files a spec reads (for refusing an ``-o`` that names one of them)."""
    if spec.lower().endswith(".keras"):
        return [Path(spec)]
    target, _, _ = spec.rpartition(":")
    return [Path(target)] if _is_file_target(target) else []


@contextlib.contextmanager
def search_path(spec: str) -> Iterator[None]:
    """Put the directory a spec imports from first on ``sys.path`` while the block runs.

    The current directory for ``package.module:factory`` (like ``python -m``), the file's own
    directory for ``file.py:factory``. Only an entry this added is removed afterwards.
    """
    target, sep, _ = spec.rpartition(":")
    if not sep or spec.lower().endswith(".keras"):
        yield
        return
    directory = str(Path(target).resolve().parent) if _is_file_target(target) else os.getcwd()
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)


def load_source(spec: str) -> SourceModel:
    """Import and call the factory a spec names, or load the Keras file (module docstring).

    Raises:
        ConfigError: If the spec is malformed, does not import, names a missing attribute or
            something not callable, raises, or returns neither a torch module nor a Keras model
            (optionally with example inputs or input specs).
        MissingDependencyError: If a ``.keras`` file is given and Keras is not installed.
    """
    if spec.lower().endswith(".keras"):
        return _load_keras_file(spec)
    target, sep, attribute = spec.rpartition(":")
    if not sep or not target or not attribute:
        raise ConfigError(f"--source {spec}: expected {_FORMS}")
    module = _import_file(spec, target) if _is_file_target(target) else _import(spec, target)
    factory = _attribute(spec, module, attribute)
    if not callable(factory):
        raise ConfigError(
            f"--source {spec}: {attribute} is a {type(factory).__name__}, not a callable factory"
        )
    try:
        returned = factory()
    except (Exception, SystemExit) as e:  # the user's code: its failure is bad input
        raise ConfigError(f"--source {spec}: {attribute}() raised {_describe(e)}") from e
    return _classify(spec, returned)


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def _import(spec: str, name: str) -> Any:
    if not all(part.isidentifier() for part in name.split(".")):
        raise ConfigError(f"--source {spec}: {name!r} is not a module name; expected {_FORMS}")
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(f"{e.name}.")):
            raise ConfigError(
                f"--source {spec}: no module named {e.name!r} (searched the "
                "current directory and sys.path)"
            ) from e
        raise ConfigError(f"--source {spec}: importing {name} failed: {_describe(e)}") from e
    except (Exception, SystemExit) as e:
        raise ConfigError(f"--source {spec}: importing {name} failed: {_describe(e)}") from e


def _import_file(spec: str, target: str) -> Any:
    path = Path(target)
    if not path.is_file():
        raise ConfigError(f"--source {spec}: {target}: no such file")
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"_opseq_source_{digest}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise ConfigError(f"--source {spec}: {target} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        loader_spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        sys.modules.pop(name, None)
        raise ConfigError(f"--source {spec}: importing {target} failed: {_describe(e)}") from e
    return module


def _attribute(spec: str, module: Any, dotted: str) -> Any:
    value = module
    for part in dotted.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigError(
                f"--source {spec}: {getattr(module, '__name__', 'the module')} "
                f"has no attribute {dotted!r}"
            ) from None
    return value


def _load_keras_file(spec: str) -> SourceModel:
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"--source {spec}: no such file")
    from opseq.difftest.execute import import_tensorflow

    import_tensorflow()  # quietens TensorFlow's logging before Keras imports it
    from opseq._optional import import_optional

    keras = import_optional("keras", "tensorflow")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except (Exception, SystemExit) as e:
        raise ConfigError(f"--source {spec}: cannot load the Keras model: {_describe(e)}") from e
    return _classify(spec, model)


def _classify(spec: str, returned: Any) -> SourceModel:
    framework = _framework(returned)
    extra = None
    if framework is None and isinstance(returned, (tuple, list)) and len(returned) == 2:
        framework, extra = _framework(returned[0]), returned[1]
        returned = returned[0]
    if framework is None:
        raise ConfigError(
            f"--source {spec}: returned a {_type_name(returned)}, neither a torch.nn.Module nor "
            "a Keras model (nor a pair of one and its example inputs or input specs)"
        )
    specs, examples = _extra(spec, extra)
    return SourceModel(
        spec=spec, framework=framework, model=returned, specs=specs, examples=examples
    )


def _framework(value: Any) -> Framework | None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.nn.Module):
        return Framework.TORCH
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.Model):
        return Framework.TENSORFLOW
    return None


def _extra(spec: str, extra: Any):
    if extra is None:
        return None, None
    if isinstance(extra, InputSpec):
        extra = [extra]
    if isinstance(extra, (tuple, list)) and extra and all(isinstance(s, InputSpec) for s in extra):
        return tuple(extra), None
    if isinstance(extra, Mapping) and extra:
        return None, {str(k): _array(spec, str(k), v) for k, v in extra.items()}
    if isinstance(extra, (tuple, list)) and extra:
        return None, tuple(_array(spec, f"#{i}", v) for i, v in enumerate(extra))
    if _framework(extra) is None and hasattr(extra, "shape") and hasattr(extra, "dtype"):
        return None, (_array(spec, "#0", extra),)
    raise ConfigError(
        f"--source {spec}: the factory's second item is a {_type_name(extra)}; expected example "
        "inputs (a tuple, list or dict of arrays or tensors) or a list of InputSpec"
    )


def _array(spec: str, name: str, value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as e:
        raise ConfigError(
            f"--source {spec}: example input {name} is not an array: {_describe(e)}"
        ) from e
    if array.dtype.kind not in "biuf":
        raise ConfigError(
            f"--source {spec}: example input {name} has dtype {array.dtype}; "
            "expected numbers or booleans"
        )
    return array


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
