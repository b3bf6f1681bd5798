"""Run the source model in float64: the ground truth the float32 runs are judged against.

The float64 twin of a case is the same architecture with the same weights, computing in float64:

- a case may bring its own (`ModelCase.float64_model`, a zero-argument builder): the synthetic
  sources and the Keras zoo build theirs, so that casts to float32 inside the graph become
  casts to float64;
- a torch module is deep-copied and converted with ``.double()``, and runs with float64 as the
  default dtype (tensors it creates itself are float64 too);
- a functional or sequential Keras model is cloned with every floating dtype policy, input and
  cast set to float64, and the float32 weights copied in;
- a ``tf.function`` has no generic twin.

Inputs are the same values: floating inputs are widened to float64, others are unchanged. A twin
that cannot be built or run, or that still returns float32 where the framework returns a
floating output, makes the reference unavailable; the oracle then says why and falls back to
judging ONNX against the framework's float32.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from opseq.difftest.execute import Feeds, import_tensorflow, is_tf_function, run_framework
from opseq.sources.base import Framework, ModelCase

__all__ = ["Float64Reference", "float64_twin", "run_float64"]

_FLOAT_NAMES = frozenset({"float16", "bfloat16", "float32", "float64"})


class Float64Reference:
    """The float64 outputs of a case, or why there are none.

    Attributes:
        outputs: Per input set, the flattened float64 outputs; None when unavailable.
        note: Why the reference is unavailable (None when it is available).
    """

    __slots__ = ("note", "outputs")

    def __init__(self, outputs: list[list[np.ndarray]] | None, note: str | None) -> None:
        self.outputs, self.note = outputs, note


def float64_twin(case: ModelCase) -> ModelCase:
    """The case with its model replaced by a float64 twin (module docstring).

    Raises:
        Exception: Whatever building the twin raises; ValueError for a ``tf.function`` without
            a twin.
    """
    if case.float64_model is not None:
        model = case.float64_model()
    elif case.framework is Framework.TORCH:
        model = copy.deepcopy(case.model).double().eval()
    else:
        tf = import_tensorflow()
        if is_tf_function(case.model, tf):
            raise ValueError("a tf.function has no float64 twin (its source does not build one)")
        model = keras_float64(case.model)
    return ModelCase(
        case_id=case.case_id,
        framework=case.framework,
        model=model,
        inputs=case.inputs,
        metadata=case.metadata,
    )


def run_float64(
    case: ModelCase, feeds: Feeds, framework_outputs: Sequence[Sequence[np.ndarray]]
) -> Float64Reference:
    """Run the case's float64 twin on `feeds`; never raises for a failure of the twin.

    Args:
        case: The case (its float32 model).
        feeds: The input sets the float32 runs used.
        framework_outputs: The framework's float32 outputs on them, to check the twin's dtypes.

    Returns:
        The float64 outputs, or the reason there are none.
    """
    try:
        twin = float64_twin(case)
        with _float64_default(case.framework):
            outputs = run_framework(twin, [_widen(feed) for feed in feeds])
    except MemoryError:
        raise
    except Exception as e:  # the twin is a best effort: its failure is a note, not a result
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return Float64Reference(None, f"float64 unavailable: {type(e).__name__}: {first}"[:300])
    problem = _dtype_problem(outputs, framework_outputs)
    if problem is not None:
        return Float64Reference(None, f"float64 unavailable: {problem}")
    return Float64Reference(outputs, None)


def keras_float64(model: Any) -> Any:
    """Clone a functional or sequential Keras model to compute in float64, weights copied in."""
    import keras

    inputs = [
        keras.Input(
            batch_shape=tensor.shape,
            dtype="float64" if _is_float_name(tensor.dtype) else tensor.dtype,
            name=tensor.name,
        )
        for tensor in model.inputs
    ]
    structured = keras.tree.pack_sequence_as(model.input, inputs)  # a single input is no list
    clone = keras.models.clone_model(model, input_tensors=structured, clone_function=_float64_layer)
    clone.set_weights([_widen_array(np.asarray(w)) for w in model.get_weights()])
    return clone


def _float64_layer(layer: Any) -> Any:
    config = layer.get_config()
    dtype = config.get("dtype")
    name = dtype.get("config", {}).get("name", "") if isinstance(dtype, dict) else dtype
    if _is_float_name(name):  # a float policy, input or cast; integer casts stay as they are
        config["dtype"] = "float64"
    return layer.__class__.from_config(config)


def _is_float_name(name: Any) -> bool:
    return str(name) in _FLOAT_NAMES


@contextlib.contextmanager
def _float64_default(framework: Framework) -> Iterator[None]:
    """Tensors a torch model creates itself default to float64 while its twin runs."""
    if framework is not Framework.TORCH:
        yield
        return
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _widen(feed: dict[str, np.ndarray] | Any) -> dict[str, np.ndarray]:
    return {name: _widen_array(np.asarray(value)) for name, value in feed.items()}


def _widen_array(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float64) if array.dtype.kind == "f" else array


def _dtype_problem(
    outputs: Sequence[Sequence[np.ndarray]], framework_outputs: Sequence[Sequence[np.ndarray]]
) -> str | None:
    for twin_set, framework_set in zip(outputs, framework_outputs, strict=False):
        if len(twin_set) != len(framework_set):
            return f"the twin returns {len(twin_set)} outputs, the model {len(framework_set)}"
        for i, (twin, framework) in enumerate(zip(twin_set, framework_set, strict=True)):
            if np.asarray(framework).dtype.kind == "f" and np.asarray(twin).dtype != np.float64:
                return f"output {i} is still computed in {np.asarray(twin).dtype}"
    return None
