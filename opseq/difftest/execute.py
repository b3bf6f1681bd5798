"""Run a model in its framework, in ONNX Runtime and in the ONNX reference evaluator.

Every runner takes a list of input sets (tensor name -> array, as `make_inputs` draws them) and
returns, per input set, the outputs as a flat list of numpy arrays in order.

Feeding a converted model: only the inputs the ONNX graph declares are fed (converters drop inputs
the model never reads; an initializer listed as a graph input is not fed). Each graph input is
matched to an input of the case by name, then by its name without a ``:<n>`` suffix (tf2onnx may
keep TensorFlow's ``x:0``). If some graph input still has no match and the graph declares exactly as
many inputs as the case has, they are matched by position instead; otherwise feeding fails with a
`ValueError`, which the oracle records as a run failure.

Flattening framework outputs: torch tensors are leaves; tuples and lists are flattened in order;
dicts (including ``transformers`` ``ModelOutput``) in insertion order; ``None`` is dropped, as the
torch exporters do. TensorFlow/Keras outputs are flattened with ``tf.nest`` (dict keys sorted), as
tf2onnx does.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from opseq._optional import import_optional
from opseq.sources.base import Framework, ModelCase

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = [
    "create_session",
    "graph_input_names",
    "import_tensorflow",
    "median_latency_ms",
    "run_framework",
    "run_onnxruntime",
    "run_reference",
    "select_feeds",
]

Feeds = Sequence[Mapping[str, np.ndarray]]


def import_tensorflow() -> ModuleType:
    """Import TensorFlow with its C++ logging quietened (``TF_CPP_MIN_LOG_LEVEL=2`` by default).

    Raises:
        MissingDependencyError: If TensorFlow is not installed.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return import_optional("tensorflow", "tensorflow")


def is_tf_function(model: Any, tf: ModuleType) -> bool:
    """Tell whether `model` is a ``tf.function`` (called positionally) rather than a Keras model."""
    return isinstance(model, tf.types.experimental.PolymorphicFunction)


def run_framework(case: ModelCase, feeds: Feeds) -> list[list[np.ndarray]]:
    """Run the case's framework model on each input set.

    A torch model runs in eval mode under ``torch.no_grad()`` and is called positionally; a Keras
    model is called with the list of inputs (the single input when there is one) and
    ``training=False``; a ``tf.function`` is called positionally.

    Args:
        case: The model case; inputs are passed in the order of ``case.inputs``.
        feeds: Input sets keyed by input name.

    Returns:
        Per input set, the flattened outputs as numpy arrays (module docstring).

    Raises:
        Exception: Whatever the framework raises.
    """
    runner = {Framework.TORCH: _run_torch, Framework.TENSORFLOW: _run_tensorflow}[case.framework]
    return runner(case, feeds)


def _run_torch(case: ModelCase, feeds: Feeds) -> list[list[np.ndarray]]:
    torch = import_optional("torch", "torch")
    model = case.model.eval()
    results = []
    with torch.no_grad():
        for feed in feeds:
            args = [torch.from_numpy(np.asarray(feed[spec.name])) for spec in case.inputs]
            leaves = _flatten_torch(model(*args), torch)
            results.append([_torch_to_numpy(leaf, torch) for leaf in leaves])
    return results


def _flatten_torch(value: Any, torch: ModuleType) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        items = list(value.values())
    elif isinstance(value, (tuple, list)):
        items = list(value)
    else:
        return [value]
    return [leaf for item in items for leaf in _flatten_torch(item, torch)]


def _torch_to_numpy(value: Any, torch: ModuleType) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _run_tensorflow(case: ModelCase, feeds: Feeds) -> list[list[np.ndarray]]:
    tf = import_tensorflow()
    results = []
    for feed in feeds:
        args = [tf.constant(feed[spec.name]) for spec in case.inputs]
        if is_tf_function(case.model, tf):
            outputs = case.model(*args)
        else:
            outputs = case.model(args[0] if len(args) == 1 else args, training=False)
        results.append([np.asarray(leaf) for leaf in tf.nest.flatten(outputs)])
    return results


def create_session(model: onnx.ModelProto, *, optimize: bool = True) -> ort.InferenceSession:
    """Create a single-threaded ONNX Runtime CPU session for `model`.

    Args:
        model: The converted model.
        optimize: Apply all graph optimisations (``ORT_ENABLE_ALL``) or none (``ORT_DISABLE_ALL``).

    Returns:
        The session.

    Raises:
        Exception: Whatever ONNX Runtime raises when it refuses the model.
    """
    import onnxruntime as ort  # a core dependency, imported late to keep `import opseq` light

    options = ort.SessionOptions()
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if optimize else level.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only; failures still raise
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def run_onnxruntime(session: ort.InferenceSession, feeds: Feeds) -> list[list[np.ndarray]]:
    """Run an ONNX Runtime session on each input set.

    Args:
        session: From `create_session`.
        feeds: Input sets keyed by the case's input names (matched as in the module docstring).

    Returns:
        Per input set, the outputs in graph order.

    Raises:
        ValueError: If the graph's inputs cannot be matched to the input set.
        Exception: Whatever ONNX Runtime raises.
    """
    names = [i.name for i in session.get_inputs()]
    return [
        [np.asarray(out) for out in session.run(None, select_feeds(names, feed))] for feed in feeds
    ]


def run_reference(model: onnx.ModelProto, feeds: Feeds) -> list[list[np.ndarray]]:
    """Run `model` in ``onnx.reference.ReferenceEvaluator`` on each input set.

    Args:
        model: The converted model.
        feeds: Input sets keyed by the case's input names.

    Returns:
        Per input set, the outputs in graph order.

    Raises:
        Exception: Whatever the evaluator raises, e.g. for an operator it does not implement.
    """
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(model)
    names = graph_input_names(model)
    return [
        [np.asarray(out) for out in evaluator.run(None, select_feeds(names, feed))]
        for feed in feeds
    ]


def graph_input_names(model: onnx.ModelProto) -> list[str]:
    """Return the names of the graph inputs that must be fed (initializers excluded)."""
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def select_feeds(input_names: Sequence[str], feed: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Pick from `feed` the value of each graph input, as in the module docstring.

    Args:
        input_names: The graph inputs to feed, in graph order.
        feed: One input set keyed by the case's input names, in the case's order.

    Returns:
        Graph input name -> array.

    Raises:
        ValueError: If the inputs can be matched neither by name nor by position.

    Examples:
        >>> x, y = np.zeros(1), np.ones(1)
        >>> list(select_feeds(["y"], {"x": x, "y": y}))  # an unused input was dropped
        ['y']
        >>> select_feeds(["x:0", "y:0"], {"x": x, "y": y})["y:0"] is y
        True
        >>> select_feeds(["a", "b"], {"x": x, "y": y})["b"] is y  # by position
        True
    """
    selected = {name: _lookup(name, feed) for name in input_names}
    if all(value is not None for value in selected.values()):
        return selected
    if len(input_names) == len(feed):
        return dict(zip(input_names, feed.values(), strict=True))
    missing = [name for name, value in selected.items() if value is None]
    raise ValueError(
        f"cannot feed ONNX inputs {missing}: no input of that name among {list(feed)}, "
        f"and the graph has {len(input_names)} inputs, not {len(feed)}"
    )


def _lookup(name: str, feed: Mapping[str, np.ndarray]) -> np.ndarray | None:
    if name in feed:
        return feed[name]
    base, sep, index = name.rpartition(":")
    if sep and index.isdigit() and base in feed:
        return feed[base]
    return None


def median_latency_ms(run: Callable[[], object], *, repeats: int) -> float:
    """Call `run` `repeats` times and return the median wall time of one call, in milliseconds.

    Args:
        run: The call to time; its result is discarded.
        repeats: How many calls to time, at least 1.

    Returns:
        The median latency in milliseconds.

    Raises:
        ValueError: If `repeats` is below 1.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0
