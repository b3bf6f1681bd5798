"""How good a trained model is before and after conversion: accuracy, robustness, cost, size.

A differential test says whether the converted model computes what the source computes on a
few inputs; a deployment also asks whether it classifies the test split as well, resists the
same adversarial inputs, and what it costs. `SourceQuality` measures the source once per case
(clean and FGSM accuracy on the whole test split, latency, memory, file size); `onnx_quality`
measures one converted model against it. A campaign over the ``trained`` source records both
in each row's ``quality`` (the case's ``quality`` hook); ``bench/quality_study.py`` tabulates
them in the layout of Openja et al. (ICSME 2022).

The attack is FGSM crafted on the source model (its framework's gradients) with `eps` in the
standardised units the data are in, clipped to the data's range; the same adversarial rows are
then fed to the converted model (a transfer attack, as a deployed converted model would meet),
and McNemar's exact test compares which rows each side gets right. The exporters fix batch 1,
so ONNX Runtime classifies one row at a time, with all graph optimisations. Memory is the growth
of this process's resident set while a runtime is created and classifies the split: coarse
(allocators keep what they free, so it can read 0), and None where it cannot be read.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opseq.sources.trained.datasets import Dataset
from opseq.sources.trained.training import predict

__all__ = ["DEFAULT_EPS", "LATENCY_REPEATS", "SourceQuality", "onnx_quality"]

DEFAULT_EPS = 0.1
"""FGSM radius in standardised units: a tenth of a standard deviation of every feature."""
LATENCY_REPEATS = 30


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceQuality:
    """The source model's side of the comparison, measured once per case.

    Attributes:
        framework: ``torch`` or ``keras``.
        x: The test split shaped as the model takes it, ``(samples, *sample_shape)``.
        y: Its labels.
        x_adversarial: FGSM versions of `x` crafted on the source.
        clean: The source's class of each row of `x`.
        adversarial: Its class of each row of `x_adversarial`.
        spec: The attack (`opseq.verify.attack.AttackSpec`).
        latency_ms: Median single-row latency in the framework.
        memory_mb: RSS growth while the framework classified the split.
        size_bytes: The framework's file: ``torch.save`` of the state dict, or the ``.keras``
            file of the model without optimizer state.
    """

    framework: str
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    x_adversarial: np.ndarray = field(repr=False)
    clean: np.ndarray = field(repr=False)
    adversarial: np.ndarray = field(repr=False)
    spec: Any
    latency_ms: float
    memory_mb: float | None
    size_bytes: int

    @classmethod
    def measure(
        cls,
        framework: str,
        model: Any,
        data: Dataset,
        shape: tuple[int, ...],
        *,
        eps: float = DEFAULT_EPS,
        repeats: int = LATENCY_REPEATS,
    ) -> SourceQuality:
        """Classify the test split clean and under FGSM, time one row, size the file.

        Args:
            framework: ``torch`` or ``keras``.
            model: The trained network, in eval mode.
            data: Its dataset (the test split is measured).
            shape: One sample's shape as `model` takes it.
            eps: The FGSM radius (standardised units).
            repeats: Timed single-row runs.
        """
        from opseq.difftest.execute import median_latency_ms
        from opseq.sources.trained.source import FRAMEWORK_IDS
        from opseq.verify.attack import attack_spec, craft_adversarial

        x = data.x_test.reshape(len(data.y_test), *shape).astype(np.float32)
        clip = (
            float(min(data.x_train.min(), data.x_test.min())),
            float(max(data.x_train.max(), data.x_test.max())),
        )
        spec = attack_spec("fgsm", eps=eps, clip=clip)
        x_adv = craft_adversarial(
            model, FRAMEWORK_IDS[framework], x, data.y_test, method="fgsm", eps=eps, clip=clip
        )
        clean = predict(framework, model, data.x_test, shape)
        return cls(
            framework=framework,
            x=x,
            y=np.asarray(data.y_test),
            x_adversarial=x_adv,
            clean=clean,
            adversarial=predict(framework, model, x_adv.reshape(len(x_adv), -1), shape),
            spec=spec,
            latency_ms=median_latency_ms(
                lambda: _run_framework(framework, model, x[:1]), repeats=repeats
            ),
            memory_mb=rss_growth(lambda: predict(framework, model, data.x_test, shape)),
            size_bytes=framework_file_size(framework, model),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the source's numbers as a JSON-safe dict."""
        return {
            "samples": len(self.y),
            "attack": {
                "method": self.spec.method,
                "eps": self.spec.eps,
                "clip": list(self.spec.clip),
            },
            "accuracy": accuracy(self.clean, self.y),
            "adversarial_accuracy": accuracy(self.adversarial, self.y),
            "latency_ms": self.latency_ms,
            "memory_mb": None if self.memory_mb is None else round(self.memory_mb, 3),
            "size_bytes": self.size_bytes,
        }


def onnx_quality(
    source: SourceQuality, model: Any, *, repeats: int = LATENCY_REPEATS
) -> dict[str, Any]:
    """The converted `model` (an ``onnx.ModelProto``) measured against `source`.

    Returns:
        ``accuracy``, ``adversarial_accuracy``, ``agreement`` (clean rows where both sides
        give the same class), ``mcnemar_p`` (exact, on the adversarial rows), ``latency_ms``
        (ONNX Runtime with all optimisations and with none), ``memory_mb`` (likewise: RSS
        growth while the session is created and classifies the split), ``size_bytes``
        (with its weights) and ``nodes``.
    """
    from opseq.difftest.execute import create_session, median_latency_ms
    from opseq.verify.robustness import robustness_from_predictions

    # A throwaway session first: ONNX Runtime's one-time start-up is not the model's memory.
    create_session(model, optimize=False)
    sessions, memory = {}, {}
    for level, optimize in (("none", False), ("all", True)):
        sessions[level], memory[f"ort_{level}"] = _session_memory(model, optimize, source.x)
    name = sessions["all"].get_inputs()[0].name
    clean = classify(sessions["all"], name, source.x)
    adversarial = classify(sessions["all"], name, source.x_adversarial)
    first = source.x[:1]
    latency = {
        level: median_latency_ms(lambda s=session: s.run(None, {name: first}), repeats=repeats)
        for level, session in sessions.items()
    }
    report = robustness_from_predictions(
        source.y, source.clean, clean, source.adversarial, adversarial, spec=source.spec
    )
    return {
        "accuracy": accuracy(clean, source.y),
        "adversarial_accuracy": accuracy(adversarial, source.y),
        "agreement": float(np.mean(clean == source.clean)),
        "mcnemar_p": report.mcnemar.p_value,
        "latency_ms": {"ort_all": latency["all"], "ort_none": latency["none"]},
        "memory_mb": memory,
        "size_bytes": model.ByteSize(),
        "nodes": len(model.graph.node),
    }


def _session_memory(model: Any, optimize: bool, x: np.ndarray) -> tuple[Any, float | None]:
    """A session and the RSS growth (MiB) of creating it and classifying `x` with it."""
    from opseq.difftest.execute import create_session

    made = []
    growth = [rss_growth(lambda: made.append(create_session(model, optimize=optimize)))]
    session = made[0]
    name = session.get_inputs()[0].name
    growth.append(rss_growth(lambda: classify(session, name, x)))
    return session, None if None in growth else round(sum(growth), 3)


def classify(session: Any, name: str, x: np.ndarray) -> np.ndarray:
    """Top-1 class of every row of `x`, one ONNX Runtime run per row (batch 1)."""
    return np.array([int(np.argmax(session.run(None, {name: row[None]})[0])) for row in x])


def accuracy(predicted: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows classified as labelled."""
    return float(np.mean(np.asarray(predicted) == y))


def rss_growth(call) -> float | None:
    """MiB by which this process's resident set grew while `call` ran (never negative).

    None where the platform cannot tell (then memory is not measured).
    """
    from opseq.difftest.isolate import rss_mb

    before = rss_mb(os.getpid())
    call()
    after = rss_mb(os.getpid())
    if before is None or after is None:
        return None
    return max(0.0, after - before)


def framework_file_size(framework: str, model: Any) -> int:
    """Bytes of the model as its framework saves it."""
    if framework == "torch":
        import torch

        buffer = io.BytesIO()
        torch.save(model.state_dict(), buffer)
        return len(buffer.getvalue())
    import keras

    # An uncompiled copy: a freshly trained model would also save Adam's two moments per
    # weight, one loaded from the cache would not; the torch side is the weights alone too.
    # (clone_model and the model's JSON both carry compile_config, which recompiles.)
    config = json.loads(model.to_json())
    config.pop("compile_config", None)
    clone = keras.models.model_from_json(json.dumps(config))
    clone.set_weights(model.get_weights())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        clone.save(path)
        return path.stat().st_size


def _run_framework(framework: str, model: Any, x: np.ndarray):
    if framework == "torch":
        import torch

        with torch.no_grad():
            return model(torch.from_numpy(x))
    return model(x, training=False)
