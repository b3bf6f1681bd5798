"""The input sets a verification runs on: given in an .npz, or drawn from a seed.

Given inputs (``--inputs FILE.npz``): one array per ONNX input, keyed by its name (or its name
without a ``:<n>`` suffix, as tf2onnx keeps TensorFlow's ``x:0``), in the order the source model
takes them; keys the ONNX model does not declare are passed to the source model only (an input
the converter dropped as unused). Whether the file holds one input set or several is decided by
rank, input by input: an array of the ONNX input's rank is one set, an array of one more
dimension holds one set per index of its first axis. All inputs must agree, and an input of
unknown rank counts as one set.

Seeded inputs (``--seed``, ``--sets``) are drawn by `opseq.sources.make_inputs` from, in order of
preference, the input specs the factory returned, the shapes and dtypes of its example inputs
(integer inputs from their observed range), or the ONNX model's declared inputs, which must then
have static shapes.

Every set is checked against the ONNX model's declared inputs (names as `select_feeds` matches
them, dtypes exactly, ranks and static dimensions) before anything runs. An .npz is read with
``allow_pickle=False``: nothing is ever unpickled.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from opseq.difftest.execute import select_feeds
from opseq.errors import ConfigError
from opseq.sources.base import InputSpec, make_inputs
from opseq.untrusted import decode_text
from opseq.verify._errors import describe
from opseq.verify.source import SourceModel

__all__ = [
    "DeclaredInput",
    "InputPlan",
    "check_feeds",
    "declared_inputs",
    "plan_from_npz",
    "plan_seeded",
    "read_npz",
]

Dim = int | str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclaredInput:
    """An input the ONNX graph declares (initializers excluded).

    Attributes:
        name: Its name, decoded (`opseq.untrusted.decode_text`).
        dtype: Its numpy dtype; None when it has none (see `problem`).
        shape: Per dimension a size, a symbolic name or None (unknown); None for unknown rank.
        problem: Why opseq cannot feed it (a sequence, an element type numpy lacks), or None.
    """

    name: str
    dtype: np.dtype | None
    shape: tuple[Dim, ...] | None
    problem: str | None = None

    def shown_shape(self) -> str:
        """The shape as text: ``[1, batch, ?]``, or ``unknown``."""
        if self.shape is None:
            return "unknown"
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


@dataclass(frozen=True, slots=True, kw_only=True)
class InputPlan:
    """The source model's inputs and the input sets to run.

    Attributes:
        specs: The source model's inputs in the order it takes them (``ModelCase.inputs``).
        feeds: The input sets, keyed by the names in `specs`.
        origin: ``npz``, ``factory-specs``, ``factory-examples`` or ``onnx-declared``.
        seed: The seed of seeded sets; None for given ones.
        path: The .npz file of given sets, or None.
        strategy: How seeded sets were drawn (`opseq.sources.base.INPUT_STRATEGIES`).
    """

    specs: tuple[InputSpec, ...]
    feeds: tuple[dict[str, np.ndarray], ...]
    origin: str
    seed: int | None = None
    path: str | None = None
    strategy: str = "normal"

    def describe(self) -> str:
        """One line: how many sets and where they come from."""
        count = f"{len(self.feeds)} input set{'s' if len(self.feeds) != 1 else ''}"
        if self.origin == "npz":
            return f"{count} from {self.path}"
        where = {
            "factory-specs": "the factory's input specs",
            "factory-examples": "the shapes and dtypes of the factory's example inputs",
            "onnx-declared": "the ONNX model's declared inputs",
        }[self.origin]
        how = "" if self.strategy == "normal" else f" ({self.strategy} values)"
        return f"{count} drawn with seed {self.seed}{how} from {where}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "origin": self.origin,
            "sets": len(self.feeds),
            "seed": self.seed,
            "strategy": self.strategy,
            "path": self.path,
            "specs": [s.to_dict() for s in self.specs],
        }


def declared_inputs(model: onnx.ModelProto) -> tuple[DeclaredInput, ...]:
    """The inputs the ONNX graph declares, in order, initializers excluded."""
    initializers = {t.name for t in model.graph.initializer}
    return tuple(_declared(v) for v in model.graph.input if v.name not in initializers)


def _declared(value: onnx.ValueInfoProto) -> DeclaredInput:
    name = decode_text(value.name)
    if value.type.WhichOneof("value") != "tensor_type":
        kind = value.type.WhichOneof("value") or "untyped"
        return DeclaredInput(
            name=name, dtype=None, shape=None, problem=f"is a {kind}, not a tensor"
        )
    tensor = value.type.tensor_type
    try:
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    except Exception:
        dtype = None
    if dtype is None or dtype.kind not in "biufc":
        try:
            kind = onnx.TensorProto.DataType.Name(tensor.elem_type)
        except ValueError:
            kind = str(tensor.elem_type)
        return DeclaredInput(name=name, dtype=None, shape=None, problem=f"has element type {kind}")
    shape = None
    if tensor.HasField("shape"):
        shape = tuple(_dim(d) for d in tensor.shape.dim)
    return DeclaredInput(name=name, dtype=dtype, shape=shape)


def _dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    if dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim.HasField("dim_param"):
        return decode_text(dim.dim_param)
    return None


def read_npz(path: Path, *, flag: str) -> dict[str, np.ndarray]:
    """Read every array of an .npz archive, in archive order, never unpickling.

    Raises:
        ConfigError: If the file is missing, not a regular file, not an .npz archive, corrupt,
            empty, or holds object arrays.
    """
    where = f"{flag} {path}"
    try:
        info = os.stat(path)
    except OSError as e:
        raise ConfigError(f"{where}: {e.strerror or 'cannot read it'}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{where}: not a regular file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ConfigError(
                f"{where}: a single .npy array, not an .npz archive (write one with numpy.savez)"
            )
        with loaded:
            arrays = {str(key): np.asarray(loaded[key]) for key in loaded.files}
    except ConfigError:
        raise
    except Exception as e:  # a zip archive of arbitrary bytes can fail in many ways
        raise ConfigError(f"{where}: cannot read it as .npz: {describe(e)}") from None
    if not arrays:
        raise ConfigError(f"{where}: the archive holds no arrays")
    for key, array in arrays.items():
        if array.dtype.kind not in "biufc":
            raise ConfigError(f"{where}: array {key!r} has dtype {array.dtype}; expected numbers")
    return arrays


def plan_from_npz(
    arrays: Mapping[str, np.ndarray], declared: Sequence[DeclaredInput], *, path: str
) -> InputPlan:
    """The input sets of an .npz (module docstring).

    Raises:
        ConfigError: If an ONNX input has no array, or the ranks say neither one set nor several.
    """
    where = f"--inputs {path}"
    keys = {item.name: _key_for(item.name, arrays) for item in declared}
    missing = [name for name, key in keys.items() if key is None]
    if missing:
        raise ConfigError(
            f"{where}: no array for the ONNX input {missing[0]!r} "
            f"(the file has {', '.join(map(repr, arrays))})"
        )
    modes = {}
    for item in declared:
        array = arrays[keys[item.name]]  # type: ignore[index]
        if item.shape is None:
            continue
        rank = len(item.shape)
        if array.ndim not in (rank, rank + 1):
            raise ConfigError(
                f"{where}: array {keys[item.name]!r} has shape {list(array.shape)}, the ONNX "
                f"input {item.name!r} has rank {rank} ({item.shown_shape()}): expected rank "
                f"{rank} (one input set) or {rank + 1} (input sets along the first axis)"
            )
        modes[item.name] = array.ndim == rank + 1
    if len(set(modes.values())) > 1:
        stacked = [name for name, many in modes.items() if many]
        single = [name for name, many in modes.items() if not many]
        raise ConfigError(
            f"{where}: {stacked[0]!r} holds several input sets (one more "
            f"dimension than declared) but {single[0]!r} holds one"
        )
    if not any(modes.values()):
        feeds = (dict(arrays),)
    else:
        counts = {key: len(array) if array.ndim else 0 for key, array in arrays.items()}
        if len(set(counts.values())) > 1 or 0 in counts.values():
            shown = ", ".join(f"{k} {n}" for k, n in counts.items())
            raise ConfigError(
                f"{where}: input sets along the first axis must be as many in "
                f"every array, and at least one ({shown})"
            )
        count = next(iter(counts.values()))
        feeds = tuple({key: array[k] for key, array in arrays.items()} for k in range(count))
    return InputPlan(specs=_specs(feeds[0]), feeds=feeds, origin="npz", path=path)


def _key_for(name: str, arrays: Mapping[str, np.ndarray]) -> str | None:
    if name in arrays:
        return name
    base, sep, index = name.rpartition(":")
    return base if sep and index.isdigit() and base in arrays else None


def plan_seeded(
    source: SourceModel,
    declared: Sequence[DeclaredInput],
    *,
    count: int,
    seed: int,
    strategy: str = "normal",
) -> InputPlan:
    """Seeded input sets from the factory's specs, its examples, or the declared inputs.

    Raises:
        ConfigError: If positional examples do not match the declared inputs in number, or the
            declared inputs are needed and some has a symbolic or unknown dimension.
    """
    if source.specs is not None:
        specs, origin = source.specs, "factory-specs"
    elif source.examples is not None:
        specs, origin = _specs_from_examples(source.examples, declared), "factory-examples"
    else:
        specs, origin = _specs_from_declared(declared), "onnx-declared"
    feeds = tuple(make_inputs(specs, count=count, seed=seed, strategy=strategy))
    return InputPlan(specs=tuple(specs), feeds=feeds, origin=origin, seed=seed, strategy=strategy)


def _specs_from_examples(examples, declared: Sequence[DeclaredInput]) -> tuple[InputSpec, ...]:
    if isinstance(examples, Mapping):
        named = list(examples.items())
    else:
        if len(examples) != len(declared):
            raise ConfigError(
                f"the factory gives {len(examples)} example inputs by position, the ONNX model "
                f"declares {len(declared)} inputs; give them as a dict keyed by input name"
            )
        named = [(item.name, array) for item, array in zip(declared, examples, strict=True)]
    return tuple(_spec_like(name, array) for name, array in named)


def _spec_like(name: str, array: np.ndarray) -> InputSpec:
    shape, dtype = tuple(int(d) for d in array.shape), array.dtype.name
    if array.dtype.kind in "iu" and array.size:
        return InputSpec(
            name=name, shape=shape, dtype=dtype, low=int(array.min()), high=int(array.max()) + 1
        )
    return InputSpec(name=name, shape=shape, dtype=dtype)


def _specs_from_declared(declared: Sequence[DeclaredInput]) -> tuple[InputSpec, ...]:
    specs = []
    for item in declared:
        if item.problem is not None:
            raise ConfigError(
                f"ONNX input {item.name!r} {item.problem}: opseq verify feeds "
                "tensors of numbers and booleans only"
            )
        what = _unknown_dims(item)
        if what is not None:
            raise ConfigError(
                f"ONNX input {item.name!r} has {what} (shape {item.shown_shape()}): seeded "
                "inputs need static shapes; give --inputs FILE.npz, or a --source factory that "
                "returns input specs or example inputs"
            )
        dims = tuple(int(d) for d in item.shape or ())
        specs.append(InputSpec(name=item.name, shape=dims, dtype=item.dtype.name))
    return tuple(specs)


def _unknown_dims(item: DeclaredInput) -> str | None:
    if item.shape is None:
        return "no shape"
    unknown = [d for d in item.shape if not isinstance(d, int)]
    if not unknown:
        return None
    return (
        "a dimension of unknown size"
        if unknown[0] is None
        else (f"the symbolic dimension {unknown[0]!r}")
    )


def _specs(feed: Mapping[str, np.ndarray]) -> tuple[InputSpec, ...]:
    return tuple(
        InputSpec(name=name, shape=tuple(int(d) for d in a.shape), dtype=a.dtype.name)
        for name, a in feed.items()
    )


def check_feeds(plan: InputPlan, declared: Sequence[DeclaredInput]) -> None:
    """Check every input set against the declared inputs, before anything runs.

    Raises:
        ConfigError: If an input cannot be fed (by name or position), or a dtype, rank or static
            dimension differs from the declaration.
    """
    where = f"--inputs {plan.path}: " if plan.path else ""
    for item in declared:
        if item.problem is not None:
            raise ConfigError(
                f"ONNX input {item.name!r} {item.problem}: opseq verify feeds "
                "tensors of numbers and booleans only"
            )
    names = [item.name for item in declared]
    for k, feed in enumerate(plan.feeds):
        try:
            selected = select_feeds(names, feed)
        except ValueError as e:
            raise ConfigError(f"{where}{e}") from None
        for item in declared:
            problem = _mismatch(item, np.asarray(selected[item.name]))
            if problem is not None:
                which = f" of input set {k}" if len(plan.feeds) > 1 else ""
                raise ConfigError(f"{where}input {item.name!r}{which}: {problem}")


def _mismatch(item: DeclaredInput, array: np.ndarray) -> str | None:
    if array.dtype != item.dtype:
        return f"dtype {array.dtype}, the ONNX model declares {item.dtype}"
    if item.shape is None:
        return None
    shape = list(array.shape)
    fits = len(shape) == len(item.shape) and all(
        not isinstance(d, int) or d == n for d, n in zip(item.shape, shape, strict=True)
    )
    return None if fits else f"shape {shape}, the ONNX model declares {item.shown_shape()}"
