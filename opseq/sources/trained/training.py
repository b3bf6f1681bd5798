"""Train the ``trained`` source's networks: seeded, on CPU, a few epochs, cached on disk.

Both frameworks see the same thing: the same standardised split, the same batches in the same
order (a permutation per epoch drawn from ``np.random.default_rng([seed, 1])``), Adam at the same
learning rate, cross-entropy on the logits. Weights start from the framework's global seed
(``torch.manual_seed`` / ``keras.utils.set_random_seed``), so the same seed trains the same
weights again.

Training is bounded twice: by `TrainConfig.epochs` (the normal stop, deterministic), and by a
wall-clock budget `TrainConfig.max_seconds` checked after each epoch, a guard for an overloaded
machine that stops early and says so (``stopped_early``); weights trained under the guard are
not cached, since another run would train them differently.

Trained weights are cached under ``<cache>/trained/`` (``$OPSEQ_CACHE_DIR`` or platformdirs'
user cache directory of ``opseq``) as one ``.npz`` per (framework, architecture, dataset, seed,
training configuration, code version), the code version being a digest of this package's source
files, so editing an architecture or the training retrains. A cache file is untrusted: it is read
without pickle, and one that does not load, was written for another key, holds weights of other
names or shapes than the freshly built network's, or whose weights do not match their recorded
SHA-256, is retrained and overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opseq.sources.trained.architectures import LAYOUTS, build_keras, build_torch
from opseq.sources.trained.datasets import Dataset, layout

__all__ = [
    "CODE_VERSION",
    "FRAMEWORKS",
    "TrainConfig",
    "TrainedModel",
    "cache_path",
    "predict",
    "train",
]

logger = logging.getLogger(__name__)

FRAMEWORKS = ("torch", "keras")
_PACKAGE = Path(__file__).parent
_SOURCES = ("architectures.py", "datasets.py", "training.py")


def _code_version() -> str:
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((_PACKAGE / name).read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()
"""Digest of the architecture, dataset and training code: part of every cache key (with the
framework, architecture, dataset, seed, training configuration and, for Keras, TensorFlow's
thread count)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainConfig:
    """How a network is trained.

    Attributes:
        epochs: Epochs per dataset id; `default_epochs` for datasets not listed.
        default_epochs: Epochs for a dataset `epochs` does not name.
        batch_size: Rows per step.
        learning_rate: Adam's step size.
        max_seconds: Wall-clock guard, checked after each epoch.
    """

    epochs: dict[str, int] = field(
        default_factory=lambda: {"digits": 12, "breast_cancer": 30, "wine": 60}
    )
    default_epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 3e-3
    max_seconds: float = 300.0

    def epochs_for(self, dataset: str) -> int:
        """The number of epochs on `dataset`."""
        return self.epochs.get(dataset, self.default_epochs)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (the wall-clock guard is not part of what is trained)."""
        return {
            "epochs": dict(sorted(self.epochs.items())),
            "default_epochs": self.default_epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainedModel:
    """A trained network in eval mode, and how it came to be.

    Attributes:
        model: The ``torch.nn.Module`` (eval mode) or ``keras.Model``.
        framework: ``"torch"`` or ``"keras"``.
        sample_shape: One sample's shape (the model takes ``(batch, *sample_shape)``).
        accuracy: Test accuracy, measured after training or loading.
        from_cache: Whether the weights were loaded rather than trained.
        train_seconds: Seconds spent training (0 when loaded).
        epochs: Epochs trained (as recorded in the cache when loaded).
        stopped_early: Whether the wall-clock guard stopped training.
        key: The cache key.
    """

    model: Any = field(repr=False)
    framework: str
    sample_shape: tuple[int, ...]
    accuracy: float
    from_cache: bool
    train_seconds: float
    epochs: int
    stopped_early: bool
    key: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict (without the model)."""
        return {
            "framework": self.framework,
            "sample_shape": list(self.sample_shape),
            "test_accuracy": self.accuracy,
            "from_cache": self.from_cache,
            "train_seconds": round(self.train_seconds, 3),
            "epochs": self.epochs,
            "stopped_early": self.stopped_early,
            "cache_key": self.key,
        }


def cache_key(framework: str, arch: str, dataset: str, seed: int, config: TrainConfig) -> str:
    """The SHA-256 (hex, 24 digits) of everything that determines the trained weights."""
    payload = {
        "threads": _keras_threads() if framework == "keras" else 1,
        "framework": framework,
        "arch": arch,
        "dataset": dataset,
        "seed": seed,
        "config": config.to_dict(),
        "code": CODE_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def _keras_threads() -> int:
    """TensorFlow's intra-op threads: Keras's trained weights depend on them (torch trains on one).

    Reductions split over other thread counts round differently, so weights trained with one
    thread are not those of two; the count is part of the key rather than forced, because
    TensorFlow fixes it when it starts.
    """
    import tensorflow as tf

    configured = tf.config.threading.get_intra_op_parallelism_threads()
    return configured or int(os.environ.get("TF_NUM_INTRAOP_THREADS") or os.cpu_count() or 1)


def cache_path(
    framework: str, arch: str, dataset: str, seed: int, config: TrainConfig, cache_dir: Path
) -> Path:
    """Where the weights of this training are cached."""
    key = cache_key(framework, arch, dataset, seed, config)
    return cache_dir / "trained" / f"{framework}-{arch}-{dataset}-s{seed}-{key}.npz"


def default_cache_dir() -> Path:
    """``$OPSEQ_CACHE_DIR``, else platformdirs' user cache directory of ``opseq``."""
    from opseq.coverage.index import default_cache_dir as shared

    return shared()


def train(
    framework: str,
    arch: str,
    data: Dataset,
    *,
    seed: int,
    config: TrainConfig | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> TrainedModel:
    """Return the network `arch` trained on `data`: loaded from the cache, else trained now.

    Args:
        framework: ``"torch"`` or ``"keras"``.
        arch: An architecture id (`opseq.sources.trained.architectures.ARCHITECTURES`).
        data: The dataset (`opseq.sources.trained.datasets.load_dataset`).
        seed: Seed of the initial weights and of the batch order.
        config: Training configuration; `TrainConfig()` when None.
        cache_dir: The cache root; `default_cache_dir()` when None.
        use_cache: False to train without reading or writing the cache.

    Returns:
        The trained model, in eval mode.

    Raises:
        ValueError: If `framework` is not one of `FRAMEWORKS`.
        KeyError: If `arch` is unknown.
    """
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    config = config or TrainConfig()
    shape = layout(data.name, data.features, LAYOUTS[arch], framework)
    key = cache_key(framework, arch, data.name, seed, config)
    path = cache_path(framework, arch, data.name, seed, config, cache_dir or default_cache_dir())
    model = _build(framework, arch, shape, data.classes, seed)
    cached = _read_cache(path, key, _get_weights(framework, model)) if use_cache else None
    if cached is not None:
        weights, meta = cached
        _set_weights(framework, model, weights)
        epochs, stopped, seconds = int(meta["epochs"]), False, 0.0
    else:
        start = time.perf_counter()
        epochs, stopped = _fit(framework, model, data, shape, seed, config)
        seconds = time.perf_counter() - start
        if use_cache and not stopped:
            _write_cache(path, key, _get_weights(framework, model), epochs=epochs)
    _eval_mode(framework, model)
    accuracy = float(np.mean(predict(framework, model, data.x_test, shape) == data.y_test))
    return TrainedModel(
        model=model,
        framework=framework,
        sample_shape=shape,
        accuracy=round(accuracy, 6),
        from_cache=cached is not None,
        train_seconds=seconds,
        epochs=epochs,
        stopped_early=stopped,
        key=key,
    )


def predict(framework: str, model: Any, rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Predicted classes of flat feature `rows`, reshaped to `shape` per sample (eval mode)."""
    x = rows.reshape(len(rows), *shape).astype(np.float32)
    if framework == "torch":
        import torch

        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy().argmax(axis=1)
    return np.asarray(model(x, training=False)).argmax(axis=1)


def _build(framework: str, arch: str, shape: tuple[int, ...], classes: int, seed: int) -> Any:
    if framework == "torch":
        import torch

        torch.manual_seed(seed)
        return build_torch(arch, shape, classes)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(seed)
    return build_keras(arch, shape, classes)


def _row_order(data: Dataset, seed: int, epochs: int) -> np.ndarray:
    """The order rows are trained in: one permutation per epoch, back to back.

    Batches are cut from this one sequence in both frameworks, so they see the same batches,
    and Keras trains in one ``fit`` call (one call per epoch costs more than the epoch itself
    on a 142-row dataset).
    """
    rng = np.random.default_rng([seed, 1])
    return np.concatenate([rng.permutation(len(data.y_train)) for _ in range(epochs)])


def _fit(
    framework: str, model: Any, data: Dataset, shape, seed: int, config: TrainConfig
) -> tuple[int, bool]:
    """Train in place; return (epochs trained, whether the wall-clock guard stopped it)."""
    total = config.epochs_for(data.name)
    order = _row_order(data, seed, total)
    x = data.x_train.reshape(len(data.y_train), *shape)[order]
    y = data.y_train[order]
    steps_per_epoch = -(-len(data.y_train) // config.batch_size)
    deadline = time.perf_counter() + config.max_seconds
    with _one_thread(framework):
        if framework == "torch":
            steps = _fit_torch(model, x, y, config, deadline)
        else:
            steps = _fit_keras(model, x, y, config, deadline)
    planned = -(-len(y) // config.batch_size)
    if steps < planned:
        logger.warning("training stopped after %d of %d steps (time budget)", steps, planned)
        return min(total, -(-steps // steps_per_epoch)), True
    return total, False


def _fit_torch(model: Any, x: np.ndarray, y: np.ndarray, config: TrainConfig, deadline) -> int:
    import torch

    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss = torch.nn.CrossEntropyLoss()
    steps = 0
    for begin in range(0, len(y), config.batch_size):
        if time.perf_counter() > deadline:
            break
        optimiser.zero_grad()
        end = begin + config.batch_size
        loss(model(torch.from_numpy(x[begin:end])), torch.from_numpy(y[begin:end])).backward()
        optimiser.step()
        steps += 1
    return steps


def _fit_keras(model: Any, x: np.ndarray, y: np.ndarray, config: TrainConfig, deadline) -> int:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    done = [0]

    class Guard(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            done[0] = batch + 1
            if time.perf_counter() > deadline:
                self.model.stop_training = True

    model.fit(
        x, y, batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0, callbacks=[Guard()]
    )
    return done[0]


@contextlib.contextmanager
def _one_thread(framework: str) -> Iterator[None]:
    """Train torch on one thread (Keras runs as TensorFlow is configured, see `_keras_threads`).

    The weights then do not depend on the machine's core count (reductions in another order
    round otherwise), and tiny batches run faster than on several threads of a busy machine.
    """
    if framework != "torch":
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _eval_mode(framework: str, model: Any) -> None:
    if framework == "torch":
        model.eval()


def _get_weights(framework: str, model: Any) -> list[tuple[str, np.ndarray]]:
    if framework == "torch":
        return [(name, t.detach().numpy().copy()) for name, t in model.state_dict().items()]
    # Position and the variable's own name: layer paths carry a per-process counter
    # ("conv1d_27/kernel") that a model built second in a process does not share.
    return [(f"{k}:{w.name}", np.asarray(w.numpy())) for k, w in enumerate(model.weights)]


def _set_weights(framework: str, model: Any, weights: list[np.ndarray]) -> None:
    if framework == "torch":
        import torch

        names = list(model.state_dict())
        state = {n: torch.from_numpy(w.copy()) for n, w in zip(names, weights, strict=True)}
        model.load_state_dict(state)
    else:
        for variable, value in zip(model.weights, weights, strict=True):
            variable.assign(value)


def _digest(weights: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for w in weights:
        digest.update(str((w.dtype.str, w.shape)).encode())
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def _write_cache(path: Path, key: str, named: list[tuple[str, np.ndarray]], *, epochs: int) -> None:
    weights = [w for _, w in named]
    meta = {
        "key": key,
        "names": [n for n, _ in named],
        "sha256": _digest(weights),
        "epochs": epochs,
    }
    arrays = {f"w{k}": w for k, w in enumerate(weights)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with partial.open("wb") as f:
            np.savez(f, **arrays)
        os.replace(partial, path)
    except OSError as e:  # a read-only cache costs a retraining next time, nothing more
        logger.warning("cannot cache trained weights at %s: %s", path, e)
        partial.unlink(missing_ok=True)


def _read_cache(
    path: Path, key: str, fresh: list[tuple[str, np.ndarray]]
) -> tuple[list[np.ndarray], dict[str, Any]] | None:
    """The cached weights if the file is present and sound for `key` and the fresh network."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(bytes(stored["meta"]).decode())
            weights = [stored[f"w{k}"] for k in range(len(fresh))]
            extra = set(stored.files) - {"meta"} - {f"w{k}" for k in range(len(fresh))}
    except Exception as e:  # any unreadable file is retrained, never trusted
        logger.warning("ignoring unreadable weight cache %s: %s", path, e)
        return None
    problem = _cache_problem(meta, weights, extra, key, fresh)
    if problem:
        logger.warning("ignoring weight cache %s: %s", path, problem)
        return None
    return weights, meta


def _cache_problem(meta, weights, extra, key, fresh) -> str | None:
    if not isinstance(meta, dict) or meta.get("key") != key:
        return "written for another key"
    if extra or meta.get("names") != [n for n, _ in fresh]:
        return "weights of other names"
    for w, (_, f) in zip(weights, fresh, strict=True):
        if w.shape != f.shape or w.dtype != f.dtype:
            return "weights of other shapes or dtypes"
    if meta.get("sha256") != _digest(weights) or not isinstance(meta.get("epochs"), int):
        return "weights do not match their digest"
    return None
