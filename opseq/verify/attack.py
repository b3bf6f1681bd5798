"""Adversarial inputs crafted on the source model: FGSM and PGD under the L-infinity norm.

ONNX Runtime gives no gradients, and the question a deployment engineer asks is whether the
export resists the examples that attack the original as well as the original does; so the
examples are crafted on the *source* model, with gradients from its own framework (torch
autograd, or ``tf.GradientTape`` for a Keras 3 model on the TensorFlow backend), and then judged
on both sides (`opseq.verify.robustness`).

The loss is the cross-entropy of the model's first output against the labels, summed over the
batch, so each sample's gradient is its own whatever shares its batch (a model in eval mode has
no batch statistics), and the result does not depend on the batch size. An output whose rows are
probabilities (non-negative, summing to 1: a softmax head) has its log taken instead, which has
the same gradient as the cross-entropy of the logits; ``scores="auto"`` decides from the first
batch's clean output.

The steps themselves are numpy, the same for both frameworks. PGD starts at ``x`` (or, with
``random_start``, at a seeded uniform draw in the eps-ball) and takes ``steps`` steps
``x <- P(x + step_size * sign(gradient))``, where P clips to the eps-ball around the clean
sample and to the data range; FGSM is one such step of size ``eps`` from ``x``. A component
whose gradient is 0 does not move. The ball's bounds are rounded inward to the input's dtype, so
every adversarial value is within ``eps`` of its clean value and inside the data range exactly,
not merely after rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from opseq._optional import import_optional
from opseq.errors import ConfigError
from opseq.sources.base import Framework
from opseq.verify._errors import describe

__all__ = [
    "DEFAULT_PGD_STEPS",
    "METHODS",
    "AttackSpec",
    "attack_spec",
    "craft",
    "craft_adversarial",
    "data_range",
    "score_kind",
]

METHODS = ("fgsm", "pgd")
DEFAULT_PGD_STEPS = 10
SCORE_KINDS = ("auto", "logits", "probabilities")
# Madry et al. (2018) take steps of 2.5 * eps / steps: enough to cross the ball and come back.
_STEP_FACTOR = 2.5
_PROBABILITY_SUM_TOLERANCE = 1e-3

Gradient = Callable[[np.ndarray, np.ndarray, str], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True, kw_only=True)
class AttackSpec:
    """One L-infinity attack, checked (`attack_spec`).

    Attributes:
        method: ``fgsm`` or ``pgd``.
        eps: The radius of the ball around each clean sample.
        steps: Gradient steps (1 for FGSM).
        step_size: The size of each step (``eps`` for FGSM).
        clip: The data range ``(low, high)`` every adversarial value stays in.
        random_start: Whether PGD starts at a seeded uniform draw in the ball.
        seed: The seed of that draw.
    """

    method: str
    eps: float
    steps: int
    step_size: float
    clip: tuple[float, float]
    random_start: bool = False
    seed: int = 0

    def describe(self) -> str:
        """One line: the attack and its parameters."""
        text = f"{self.method.upper()}, L-inf eps {self.eps:g}"
        if self.method == "pgd":
            start = f", random start (seed {self.seed})" if self.random_start else ""
            text += f", {self.steps} steps of {self.step_size:g}{start}"
        low, high = self.clip
        return f"{text}, clipped to [{low:g}, {high:g}]"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "method": self.method,
            "eps": self.eps,
            "steps": self.steps,
            "step_size": self.step_size,
            "clip": list(self.clip),
            "random_start": self.random_start,
            "seed": self.seed,
        }


def data_range(x: np.ndarray) -> tuple[float, float]:
    """The smallest and largest value of the samples: the range adversarial inputs stay in.

    Raises:
        ConfigError: If `x` is empty or holds NaN or an infinity.
    """
    if x.size == 0:
        raise ConfigError("--attack: 'x' holds no values")
    low, high = float(np.min(x)), float(np.max(x))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(
            "--attack: 'x' holds NaN or an infinity, so it has no data range to clip to"
        )
    return low, high


def attack_spec(
    method: str,
    *,
    eps: float,
    clip: tuple[float, float],
    steps: int | None = None,
    step_size: float | None = None,
    random_start: bool = False,
    seed: int = 0,
) -> AttackSpec:
    """Check an attack's parameters against each other and the data range (module docstring).

    Args:
        method: ``fgsm`` or ``pgd``.
        eps: The ball's radius: positive, finite, at most ``clip[1] - clip[0]``.
        clip: The data range.
        steps: PGD's steps (default `DEFAULT_PGD_STEPS`); must be None for FGSM.
        step_size: PGD's step (default ``2.5 * eps / steps``); must be None for FGSM.
        random_start: PGD only: start at a seeded uniform draw in the ball.
        seed: The seed of that draw.

    Returns:
        The checked attack.

    Raises:
        ConfigError: If a parameter is out of range or does not apply to the method.
    """
    if method not in METHODS:
        raise ConfigError(f"--attack {method}: expected one of {', '.join(METHODS)}")
    low, high = float(clip[0]), float(clip[1])
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ConfigError(f"--attack {method}: the data range [{low:g}, {high:g}] is not a range")
    if not math.isfinite(eps) or eps <= 0:
        raise ConfigError(f"--eps {eps:g}: must be a positive finite number")
    if eps > high - low:
        raise ConfigError(
            f"--eps {eps:g}: larger than the data range [{low:g}, {high:g}] "
            f"(max - min = {high - low:g}): every input could become any other"
        )
    if method == "fgsm":
        # An error, not a note: someone who asked for 10 steps believes they ran an iterative
        # attack, and a warning on stderr is easily missed in CI.
        given = [
            flag for flag, v in (("--steps", steps), ("--step-size", step_size)) if v is not None
        ]
        given += ["--random-start"] if random_start else []
        if given:
            raise ConfigError(
                f"{given[0]} applies to --attack pgd; FGSM takes one step of size --eps"
            )
        return AttackSpec(
            method=method, eps=float(eps), steps=1, step_size=float(eps), clip=(low, high)
        )
    steps = DEFAULT_PGD_STEPS if steps is None else int(steps)
    if steps < 1:
        raise ConfigError(f"--steps {steps}: must be at least 1")
    if step_size is None:
        step_size = _STEP_FACTOR * eps / steps
    if not math.isfinite(step_size) or step_size <= 0:
        raise ConfigError(f"--step-size {step_size:g}: must be a positive finite number")
    return AttackSpec(
        method=method,
        eps=float(eps),
        steps=steps,
        step_size=float(step_size),
        clip=(low, high),
        random_start=random_start,
        seed=int(seed),
    )


def craft_adversarial(
    model: Any,
    framework: Framework,
    x: np.ndarray,
    y: np.ndarray,
    *,
    method: str,
    eps: float,
    clip: tuple[float, float],
    steps: int | None = None,
    step_size: float | None = None,
    seed: int = 0,
    random_start: bool = False,
    batch_size: int = 64,
    fixed_batch: bool = False,
    scores: str = "auto",
) -> np.ndarray:
    """Adversarial versions of the samples `x` against `model` (module docstring).

    Args:
        model: A ``torch.nn.Module`` or a Keras 3 model on the TensorFlow backend.
        framework: Its framework.
        x: The samples along the first axis, floating, in the model's input dtype.
        y: One integer label per sample.
        method: ``fgsm`` or ``pgd``.
        eps: The L-infinity radius (see `attack_spec`).
        clip: The data range adversarial values stay in.
        steps: PGD's steps (default 10); None for FGSM.
        step_size: PGD's step (default ``2.5 * eps / steps``); None for FGSM.
        seed: The seed of PGD's random start.
        random_start: Whether PGD starts at a uniform draw in the ball.
        batch_size: Samples per gradient batch.
        fixed_batch: Pad the last batch to `batch_size` (a model with a fixed batch size).
        scores: ``logits``, ``probabilities`` or ``auto`` (module docstring).

    Returns:
        The adversarial samples: the shape and dtype of `x`.

    Raises:
        ConfigError: If a parameter is out of range, the labels do not fit, the model has no
            gradient with respect to its input, or it fails on a batch.
        MissingDependencyError: If the framework is not installed.
    """
    spec = attack_spec(
        method,
        eps=eps,
        clip=clip,
        steps=steps,
        step_size=step_size,
        random_start=random_start,
        seed=seed,
    )
    adversarial, _ = craft(
        model, framework, x, y, spec, batch_size=batch_size, fixed_batch=fixed_batch, scores=scores
    )
    return adversarial


def craft(
    model: Any,
    framework: Framework,
    x: np.ndarray,
    y: np.ndarray,
    spec: AttackSpec,
    *,
    batch_size: int = 64,
    fixed_batch: bool = False,
    scores: str = "auto",
) -> tuple[np.ndarray, str]:
    """`craft_adversarial` with an already checked `AttackSpec`.

    Returns:
        The adversarial samples, and how the scores were read (``logits`` or ``probabilities``;
        ``auto`` only if nothing ran).
    """
    x, y = _check_samples(x, y)
    if scores not in SCORE_KINDS:
        raise ConfigError(f"scores {scores!r}: expected one of {', '.join(SCORE_KINDS)}")
    if batch_size < 1:
        raise ConfigError(f"batch size {batch_size}: must be at least 1")
    gradient = _gradient_function(model, framework)
    lower, upper = _ball(x, spec)
    start = x
    if spec.random_start:
        noise = np.random.default_rng(spec.seed).uniform(-spec.eps, spec.eps, size=x.shape)
        start = np.clip((x + noise).astype(x.dtype), lower, upper)
    result = np.empty_like(x)
    kind = scores
    for begin in range(0, len(x), batch_size):
        end = min(begin + batch_size, len(x))
        current = start[begin:end].copy()
        for _ in range(spec.steps):
            grad, kind = _batch_gradient(
                gradient, current, y[begin:end], kind, batch_size, fixed_batch
            )
            # A NaN in the gradient (a model that overflows there) moves nothing, not to NaN.
            direction = np.sign(np.nan_to_num(grad, nan=0.0))
            moved = current.astype(np.float64) + spec.step_size * direction
            current = np.clip(moved.astype(x.dtype), lower[begin:end], upper[begin:end])
        result[begin:end] = current
    return result, kind


def score_kind(scores: np.ndarray) -> str:
    """``probabilities`` when every row is non-negative and sums to 1, else ``logits``."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or not np.all(np.isfinite(values)):
        return "logits"
    sums = values.sum(axis=1)
    if np.all(values >= 0) and np.all(np.abs(sums - 1) <= _PROBABILITY_SUM_TOLERANCE):
        return "probabilities"
    return "logits"


def _check_samples(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind != "f":
        raise ConfigError(f"--attack: 'x' has dtype {x.dtype}; attacks need floating inputs")
    if x.ndim < 1 or len(x) == 0:
        raise ConfigError(f"--attack: 'x' holds no samples (shape {list(x.shape)})")
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
        raise ConfigError(
            f"--attack: expected one integer label per sample ({len(x)}), got {y.dtype} of "
            f"shape {list(y.shape)}"
        )
    return x, y.astype(np.int64)


def _ball(x: np.ndarray, spec: AttackSpec) -> tuple[np.ndarray, np.ndarray]:
    """The eps-ball intersected with the data range, its bounds rounded inward to x's dtype."""
    low, high = spec.clip
    wide = x.astype(np.float64)
    lower64 = np.maximum(wide - spec.eps, low)
    upper64 = np.minimum(wide + spec.eps, high)
    lower, upper = lower64.astype(x.dtype), upper64.astype(x.dtype)
    lower = np.where(lower < lower64, np.nextafter(lower, np.inf, dtype=x.dtype), lower)
    upper = np.where(upper > upper64, np.nextafter(upper, -np.inf, dtype=x.dtype), upper)
    # A sample outside the data range itself keeps its value (its ball misses the range).
    return np.minimum(lower, x), np.maximum(upper, x)


def _batch_gradient(
    gradient: Gradient,
    chunk: np.ndarray,
    labels: np.ndarray,
    kind: str,
    batch_size: int,
    fixed_batch: bool,
) -> tuple[np.ndarray, str]:
    real = len(chunk)
    if fixed_batch and real < batch_size:
        pad = batch_size - real
        chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
        labels = np.concatenate([labels, np.repeat(labels[-1:], pad, 0)])
    grad, kind = gradient(np.ascontiguousarray(chunk), labels, kind)
    return grad[:real], kind


def _gradient_function(model: Any, framework: Framework) -> Gradient:
    if framework is Framework.TORCH:
        return _torch_gradient(model)
    if framework is Framework.TENSORFLOW:
        return _keras_gradient(model)
    raise ConfigError(  # pragma: no cover - Framework has two members
        f"--attack needs gradients from torch or Keras; the source is {framework}"
    )


def _check_scores(scores_shape: tuple[int, ...], batch: int, labels: np.ndarray) -> None:
    if len(scores_shape) != 2 or scores_shape[0] != batch:
        raise ConfigError(
            f"--attack: the source model's first output has shape {list(scores_shape)}; "
            "expected (batch, classes)"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= scores_shape[1]):
        raise ConfigError(
            f"--attack: labels 'y' range over {int(labels.min())}..{int(labels.max())}, the "
            f"model scores {scores_shape[1]} classes"
        )


def _no_gradient(why: str) -> ConfigError:
    return ConfigError(
        f"--attack: the source model has no gradient with respect to its input ({why}); "
        "attacks need a model differentiable in its input"
    )


def _torch_gradient(model: Any) -> Gradient:
    torch = import_optional("torch", "torch")
    model.eval()

    def gradient(x: np.ndarray, y: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
        inputs = torch.from_numpy(x).requires_grad_(True)
        with torch.enable_grad():
            try:
                scores = _first_torch_output(model(inputs), torch)
            except MemoryError:
                raise
            except Exception as e:  # the user's model on the user's data
                raise ConfigError(
                    f"--attack: the source model fails on a batch: {describe(e)}"
                ) from None
            _check_scores(tuple(scores.shape), len(x), y)
            if kind == "auto":
                kind = score_kind(scores.detach().numpy())
            labels = torch.from_numpy(y)
            if kind == "probabilities":
                logp = torch.log(scores.clamp_min(torch.finfo(scores.dtype).tiny))
                loss = torch.nn.functional.nll_loss(logp, labels, reduction="sum")
            else:
                loss = torch.nn.functional.cross_entropy(scores, labels, reduction="sum")
            if not loss.requires_grad:
                raise _no_gradient("its output does not require grad")
            (grad,) = torch.autograd.grad(loss, inputs, allow_unused=True)
        if grad is None:
            raise _no_gradient("its output does not depend on the input")
        return grad.detach().numpy(), kind

    return gradient


def _first_torch_output(value: Any, torch: Any) -> Any:
    while not isinstance(value, torch.Tensor):
        if isinstance(value, dict) and value:
            value = next(iter(value.values()))
        elif isinstance(value, (tuple, list)) and value:
            value = value[0]
        else:
            raise ConfigError(
                f"--attack: the source model returns a {type(value).__name__}, not a tensor"
            )
    return value


def _keras_gradient(model: Any) -> Gradient:
    from opseq.difftest.execute import import_tensorflow

    tf = import_tensorflow()
    keras = import_optional("keras", "tensorflow")
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ConfigError(
            f"--attack: Keras runs on the {backend} backend; opseq takes a Keras model's "
            "gradients with tf.GradientTape, so it needs KERAS_BACKEND=tensorflow"
        )

    def gradient(x: np.ndarray, y: np.ndarray, kind: str) -> tuple[np.ndarray, str]:
        inputs = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            try:
                scores = tf.nest.flatten(model(inputs, training=False))[0]
            except MemoryError:
                raise
            except Exception as e:
                raise ConfigError(
                    f"--attack: the source model fails on a batch: {describe(e)}"
                ) from None
            _check_scores(tuple(scores.shape), len(x), y)
            if kind == "auto":
                kind = score_kind(np.asarray(scores))
            labels = tf.constant(y)
            if kind == "probabilities":
                tiny = np.finfo(scores.dtype.as_numpy_dtype).tiny
                picked = tf.gather(scores, labels, axis=1, batch_dims=1)
                loss = -tf.reduce_sum(tf.math.log(tf.maximum(picked, tiny)))
            else:
                loss = tf.reduce_sum(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=scores)
                )
        grad = tape.gradient(loss, inputs)
        if grad is None:
            raise _no_gradient("its output does not depend on the input")
        return np.asarray(grad), kind

    return gradient
