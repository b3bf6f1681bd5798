"""One OpInfo sample as a test case: its tensors taken out, its op in a module, its call written.

An OpInfo sample (``SampleInput``) is an input plus positional and keyword arguments, nested in
lists and tuples (``torch.cat`` takes a list of tensors). `flatten_sample` takes every tensor out,
in order (the input first, then the arguments, then the keyword arguments), and leaves a
`TensorSlot` where each was; what remains are constants baked into the module. A sample is
unusable (`UnusableSample`, with a reason the source records) when it holds a value that cannot
be a constant of a module or a tensor that cannot be a model input, and `check_sample` rejects
samples whose op raises on them, mutates them, returns something that is not tensors, or gives
another output under another random seed.

Sample generators draw their values from the global generators of torch, numpy and Python, so
every draw here runs under `seeded_globals`, with a seed of its own, and leaves the caller's
random state alone.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from opseq.sources.base import InputSpec, check_strategy, make_inputs

__all__ = [
    "FlatSample",
    "SampleInputSets",
    "TensorSlot",
    "UnusableSample",
    "check_sample",
    "draw_sample",
    "fill",
    "flatten_sample",
    "input_specs",
    "json_safe",
    "make_module",
    "render_call",
    "to_numpy",
    "widen_dtypes",
]

logger = logging.getLogger(__name__)

# Tensor dtypes that numpy holds and ONNX Runtime feeds; bfloat16 and the float8s have no numpy
# dtype, so they could be neither an input set nor an output the oracle compares.
_TENSOR_DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "bool",
)
_DETERMINISM_SEEDS = (1, 2)
_REASON_LIMIT = 200


class UnusableSample(Exception):
    """A sample that cannot be a test case; the message is the reason, one line."""


@dataclass(frozen=True, slots=True)
class TensorSlot:
    """Where tensor number `index` of a flattened sample goes back."""

    index: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FlatSample:
    """A sample's tensors (detached, in order) and its structure with `TensorSlot`s in their place.

    ``structure`` is ``(input, args, kwargs)``: the input, a tuple and a dict.
    """

    tensors: tuple[Any, ...]
    structure: tuple[Any, tuple[Any, ...], dict[str, Any]]

    def signature(self) -> str:
        """The structure and every tensor's shape and dtype: equal for two draws of one sample."""
        shapes = [(tuple(t.shape), str(t.dtype)) for t in self.tensors]
        return repr((self.structure, shapes))


def draw_sample(opinfo: Any, dtype: Any, index: int, *, seed: int) -> Any:
    """Return sample number `index` of `opinfo` for `dtype`, drawn with torch seeded by `seed`.

    Raises:
        KeyError: If the generator yields fewer samples.
        Exception: Whatever the sample generator raises.
    """
    samples = draw_samples(opinfo, dtype, count=index + 1, seed=seed)
    if len(samples) <= index:
        raise KeyError(f"{opinfo.name} has {len(samples)} samples for {dtype}, not #{index}")
    return samples[index]


def draw_samples(opinfo: Any, dtype: Any, *, count: int, seed: int) -> list[Any]:
    """The first `count` samples of `opinfo` for `dtype`, drawn with torch seeded by `seed`.

    They are all drawn before any is used, so that what runs on them cannot disturb the random
    stream the later ones come from.
    """
    with seeded_globals(seed):
        # The generator itself, as ``opinfo.sample_inputs`` calls it, without the test-harness
        # wrapper around it, which reseeds with a fixed seed before every sample (the redraws
        # of `SampleInputSets` need the seed to matter) and inspects the caller's stack.
        generator = opinfo.sample_inputs_func(opinfo, "cpu", dtype, False)
        return list(itertools.islice(generator, count))


@contextlib.contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    """Seed torch's, numpy's and Python's global generators, and restore them afterwards.

    Sample generators draw from all three; nothing of opseq's own uses them.
    """
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone: torch.manual_seed also queues seeds for every
            # accelerator, formatting the call stack each time (milliseconds per sample).
            torch.default_generator.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def flatten_sample(sample: Any) -> FlatSample:
    """Take the tensors out of `sample` (see the module docstring).

    Raises:
        UnusableSample: If the sample holds a value that can be neither a tensor input nor a
            constant.
    """
    import torch

    tensors: list[Any] = []

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            tensors.append(_usable_tensor(value, torch))
            return TensorSlot(len(tensors) - 1)
        if isinstance(value, torch.Size) or _is_constant(value, torch):
            return value
        if isinstance(value, (list, tuple)):
            items = [walk(item) for item in value]
            return items if isinstance(value, list) else tuple(items)
        raise UnusableSample(f"holds a {type(value).__name__} (not a tensor, scalar or list)")

    structure = (walk(sample.input), tuple(walk(a) for a in sample.args), {})
    for key, value in sample.kwargs.items():
        structure[2][key] = walk(value)
    return FlatSample(tensors=tuple(tensors), structure=structure)


def _usable_tensor(tensor: Any, torch: Any) -> Any:
    if tensor.layout != torch.strided:
        raise UnusableSample(f"holds a {str(tensor.layout).removeprefix('torch.')} tensor")
    if tensor.is_quantized:
        raise UnusableSample("holds a quantized tensor")
    if tensor.is_complex():
        raise UnusableSample("holds a complex tensor")
    if tensor.device.type != "cpu":
        raise UnusableSample(f"holds a tensor on {tensor.device.type}")
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in _TENSOR_DTYPES:
        raise UnusableSample(f"holds a {name} tensor (numpy has no such dtype)")
    return tensor.detach().resolve_conj().resolve_neg()


def _is_constant(value: Any, torch: Any) -> bool:
    if value is None or value is Ellipsis or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (torch.dtype, torch.memory_format, torch.layout, torch.device)):
        return True
    if isinstance(value, slice):
        return all(_is_constant(part, torch) for part in (value.start, value.stop, value.step))
    if isinstance(value, complex):
        raise UnusableSample("holds a Python complex number")
    return False


def fill(value: Any, tensors: Sequence[Any]) -> Any:
    """Put `tensors` back into a flattened structure (the inverse of `flatten_sample`)."""
    if isinstance(value, TensorSlot):
        return tensors[value.index]
    if isinstance(value, list):
        return [fill(item, tensors) for item in value]
    if type(value) is tuple:
        return tuple(fill(item, tensors) for item in value)
    if isinstance(value, dict):
        return {key: fill(item, tensors) for key, item in value.items()}
    return value


def call_op(op: Callable[..., Any], structure: Any, tensors: Sequence[Any]) -> Any:
    """Call `op` on a flattened structure with `tensors` in its slots."""
    value, args, kwargs = fill(structure, tensors)
    return op(value, *args, **kwargs)


def check_sample(op: Callable[..., Any], flat: FlatSample) -> None:
    """Reject a sample that is no deterministic function of its tensors.

    The op runs twice on copies of the tensors, under two torch seeds.

    Raises:
        UnusableSample: If the sample has no tensor, the op raises on it, changes its
            tensors, returns something other than tensors in lists and tuples (or a tensor the
            oracle cannot compare), or returns another value under another seed.
    """
    import torch

    if not flat.tensors:
        raise UnusableSample("takes no tensor (a factory function)")
    outputs = []
    for seed in _DETERMINISM_SEEDS:
        copies = [t.clone() for t in flat.tensors]
        with seeded_globals(seed), torch.no_grad():
            try:
                output = call_op(op, flat.structure, copies)
            except Exception as e:  # the op's own failure on its sample: recorded as a reason
                raise UnusableSample(_first_line(f"raises on its sample: {_describe(e)}")) from e
        if not all(_same(a, b) for a, b in zip(copies, flat.tensors, strict=True)):
            raise UnusableSample("changes its input tensors (in place)")
        outputs.append(_output_leaves(output, torch))
    first, second = outputs
    if len(first) != len(second) or not all(
        _same(a, b) for a, b in zip(first, second, strict=True)
    ):
        raise UnusableSample("gives another output under another torch seed (random)")


def _output_leaves(output: Any, torch: Any) -> list[Any]:
    if isinstance(output, torch.Tensor):
        if output.layout != torch.strided:
            raise UnusableSample(f"returns a {str(output.layout).removeprefix('torch.')} tensor")
        if output.is_complex() or output.is_quantized:
            raise UnusableSample(f"returns a {str(output.dtype).removeprefix('torch.')} tensor")
        name = str(output.dtype).removeprefix("torch.")
        if name not in _TENSOR_DTYPES:
            raise UnusableSample(f"returns a {name} tensor (numpy has no such dtype)")
        return [output]
    if isinstance(output, (list, tuple)):
        return [leaf for item in output for leaf in _output_leaves(item, torch)]
    raise UnusableSample(f"returns a {type(output).__name__}, not tensors")


def _same(a: Any, b: Any) -> bool:
    """Bitwise-equal values with NaN equal to NaN (a deterministic op repeats its NaNs)."""
    import torch

    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    if not a.is_floating_point():
        return False
    return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".strip()


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return (lines[0] if lines else "")[:_REASON_LIMIT]


def to_numpy(tensor: Any) -> np.ndarray:
    """A contiguous numpy copy of a CPU tensor."""
    return np.ascontiguousarray(tensor.detach().numpy()).copy()


def input_specs(arrays: Sequence[np.ndarray]) -> tuple[InputSpec, ...]:
    """The specs ``x0``, ``x1``, ... of a sample's tensors.

    An integer tensor's ``[low, high)`` is the range of its own values (a valid range of
    indices, so values drawn from it stay valid); an empty one keeps the default range.

    Examples:
        >>> [s.to_dict() for s in input_specs([np.zeros((2,), np.float32), np.array([3, 1])])]
        ... # doctest: +NORMALIZE_WHITESPACE
        [{'name': 'x0', 'shape': [2], 'dtype': 'float32', 'low': 0, 'high': 2, 'role': 'index'},
         {'name': 'x1', 'shape': [2], 'dtype': 'int64', 'low': 1, 'high': 4, 'role': 'index'}]
    """
    specs = []
    for i, array in enumerate(arrays):
        bounds = {}
        if array.dtype.kind in "iu" and array.size:
            bounds = {"low": int(array.min()), "high": int(array.max()) + 1}
        specs.append(
            InputSpec(name=f"x{i}", shape=tuple(array.shape), dtype=array.dtype.name, **bounds)
        )
    return tuple(specs)


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleInputSets:
    """`ModelCase.input_sets` of an opinfo case: its own sample first, then redraws of it.

    Under ``normal``, set k >= 1 is the same sample drawn again with torch seeded from
    ``(seed, k)``: the generator's own distribution, so values stay in the op's domain (positive
    definite matrices, valid indices). A redraw whose structure or shapes differ from the
    sample's is not used; the sample's own values stand in. Under ``edge``, sets k >= 1 take
    float tensors from ``make_inputs(..., strategy="edge")`` and keep the sample's own integer
    and boolean tensors (indices must stay valid).
    """

    own: tuple[np.ndarray, ...]
    specs: tuple[InputSpec, ...]
    signature: str
    redraw: Callable[[int], FlatSample]

    def __call__(self, count: int, seed: int, strategy: str) -> list[dict[str, np.ndarray]]:
        """Return `count` input sets (tensor name -> array)."""
        check_strategy(strategy)
        own = {spec.name: array for spec, array in zip(self.specs, self.own, strict=True)}
        sets = [dict(own)] if count > 0 else []
        if strategy == "edge":
            edge = make_inputs(self.specs, count=count, seed=seed, strategy="edge")
            for k in range(1, count):
                sets.append(
                    {
                        spec.name: edge[k][spec.name] if spec.dtype.startswith("float") else array
                        for spec, array in zip(self.specs, self.own, strict=True)
                    }
                )
            return [{name: array.copy() for name, array in s.items()} for s in sets]
        for k in range(1, count):
            sets.append(self._redrawn(redraw_seed(seed, k)) or dict(own))
        return [{name: array.copy() for name, array in s.items()} for s in sets]

    def _redrawn(self, torch_seed: int) -> dict[str, np.ndarray] | None:
        try:
            flat = self.redraw(torch_seed)
        except (UnusableSample, KeyError) as e:
            logger.debug("redraw under torch seed %d unusable: %s", torch_seed, e)
            return None
        if flat.signature() != self.signature:
            logger.debug("redraw under torch seed %d has another structure", torch_seed)
            return None
        return {spec.name: to_numpy(t) for spec, t in zip(self.specs, flat.tensors, strict=True)}


def redraw_seed(seed: int, set_index: int) -> int:
    """The torch seed of input set `set_index` (>= 1) under the oracle's `seed`.

    Examples:
        >>> redraw_seed(0, 1) == redraw_seed(0, 1) != redraw_seed(0, 2)
        True
    """
    return int(np.random.SeedSequence([seed, set_index]).generate_state(1)[0])


@functools.cache
def _module_class() -> type:
    """Define the module class (imports torch); importing this module must not import torch."""
    import torch

    class OpInfoCall(torch.nn.Module):
        """One op call: tensors in, the op applied with its constants baked in."""

        def __init__(self, op: Callable[..., Any], structure: Any) -> None:
            super().__init__()
            self.op, self.structure = op, structure

        def forward(self, *tensors: Any) -> Any:
            return call_op(self.op, self.structure, tensors)

    return OpInfoCall


def make_module(op: Callable[..., Any], structure: Any) -> Any:
    """A ``torch.nn.Module`` (eval mode) whose forward takes the tensors and calls `op`."""
    return _module_class()(op, structure).eval()


def widen_dtypes(value: Any) -> Any:
    """The structure with every ``torch.float32`` constant made ``torch.float64`` (the twin)."""
    import torch

    if value is torch.float32:
        return torch.float64
    if isinstance(value, list):
        return [widen_dtypes(item) for item in value]
    if type(value) is tuple:
        return tuple(widen_dtypes(item) for item in value)
    if isinstance(value, dict):
        return {key: widen_dtypes(item) for key, item in value.items()}
    return value


def json_safe(value: Any) -> Any:
    """A JSON-safe rendering: tensors by input name, JSON scalars as they are, others by repr.

    Examples:
        >>> json_safe({"dim": -1, "p": float("inf"), "pair": (TensorSlot(1), None)})
        {'dim': -1, 'p': 'inf', 'pair': ['x1', None]}
    """
    if isinstance(value, TensorSlot):
        return f"x{value.index}"
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        return [json_safe(item) for item in value]
    return repr(value)


def render_call(callee: str, structure: Any, *, method: bool) -> str:
    """A one-line Python expression calling `callee` on ``x0``, ``x1``, ...

    With `method`, the input is the receiver: ``x0.callee(args)``.

    Examples:
        >>> render_call("torch.div", (TensorSlot(0), (TensorSlot(1),), {"rounding_mode": "floor"}),
        ...             method=False)
        "torch.div(x0, x1, rounding_mode='floor')"
        >>> render_call("view", (TensorSlot(0), ((2, -1),), {}), method=True)
        'x0.view((2, -1))'
    """
    value, args, kwargs = structure
    parts = [_literal(a) for a in args] + [f"{k}={_literal(v)}" for k, v in kwargs.items()]
    if method:
        return f"{_literal(value)}.{callee}({', '.join(parts)})"
    return f"{callee}({', '.join([_literal(value), *parts])})"


def _literal(value: Any) -> str:
    """Python source for one value of a flattened structure."""
    if isinstance(value, TensorSlot):
        return f"x{value.index}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float('{value}')"
    if isinstance(value, list):
        return f"[{', '.join(_literal(item) for item in value)}]"
    if type(value) is tuple:
        items = [_literal(item) for item in value]
        return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
    if value is Ellipsis:
        return "..."
    if type(value).__name__ == "device":
        return f"torch.device({str(value)!r})"
    if type(value).__name__ == "Size":
        return f"torch.Size({list(value)!r})"
    return repr(value)
