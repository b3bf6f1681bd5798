"""Build real-size converted models for the benchmarks, once, offline, into a cache directory.

Every model is a real architecture with random weights (nothing is downloaded), converted the way
users convert: Keras applications through tf2onnx, transformers models through torch.onnx, all at
opset 17. A model is written as ``<cache>/<name>.onnx`` only when that file does not exist yet, and
through a temporary file, so an interrupted build never leaves a partial model behind.

Run ``python bench/_zoo.py [--cache DIR] [NAME ...]`` to build the named models, or all of them
(about 1.1 GB of ONNX files, a few minutes); DIR defaults to ``$OPSEQ_BENCH_CACHE`` or
``~/.cache/opseq/bench``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["MODELS", "OPSET", "build", "build_all", "default_cache_dir"]

OPSET = 17
SEED = 0

log = logging.getLogger("opseq.bench.zoo")


def default_cache_dir() -> Path:
    """Return ``$OPSEQ_BENCH_CACHE``, or ``~/.cache/opseq/bench`` when it is unset."""
    return Path(os.environ.get("OPSEQ_BENCH_CACHE") or Path.home() / ".cache" / "opseq" / "bench")


def build_keras_application(app_name: str, out: Path) -> None:
    """Convert ``keras.applications.<app_name>`` (random weights, 224x224x3) with tf2onnx."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import onnx
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(SEED)
    model = getattr(keras.applications, app_name)(weights=None, input_shape=(224, 224, 3))
    signature = (tf.TensorSpec((None, 224, 224, 3), tf.float32, name="input"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=OPSET)
    onnx.save(proto, out)


def build_transformer(family: str, out: Path) -> None:
    """Export a transformers model built from its default config with torch.onnx (TorchScript).

    ``family`` is ``"bert"`` (BertModel) or ``"gpt2"`` (GPT2Model without KV cache). Inputs are
    ``input_ids`` and ``attention_mask``, batch 1, sequence length 16; the output is the last hidden
    state. GPT-2 needs the mask: without one, transformers derives it with ``aten::diff``, which the
    exporter cannot convert.
    """
    import torch
    import transformers

    torch.manual_seed(SEED)
    if family == "bert":
        model = transformers.BertModel(transformers.BertConfig())
    elif family == "gpt2":
        model = transformers.GPT2Model(transformers.GPT2Config(use_cache=False))
    else:
        raise ValueError(f"unknown transformers family {family!r}")
    token_ids = torch.randint(0, model.config.vocab_size, (1, 16))
    with torch.no_grad():
        torch.onnx.export(
            _called_by_keyword(model),
            (token_ids, torch.ones_like(token_ids)),
            out,
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            opset_version=OPSET,
            dynamo=False,
        )


def _called_by_keyword(model):
    """Wrap a transformers model as ``(input_ids, attention_mask) -> last_hidden_state`` (eval).

    The TorchScript exporter passes every parameter of ``forward`` positionally, filling unset ones
    with their defaults; transformers 5 then also passes ``use_cache`` as a keyword and the call
    fails with "got multiple values for argument 'use_cache'". The wrapper calls by keyword.
    """
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return LastHiddenState().eval()


MODELS: dict[str, Callable[[Path], None]] = {
    "resnet50": functools.partial(build_keras_application, "ResNet50"),
    "mobilenetv2": functools.partial(build_keras_application, "MobileNetV2"),
    "densenet121": functools.partial(build_keras_application, "DenseNet121"),
    "efficientnetb0": functools.partial(build_keras_application, "EfficientNetB0"),
    "bert-base": functools.partial(build_transformer, "bert"),
    "gpt2": functools.partial(build_transformer, "gpt2"),
}
"""Benchmark models by name; each builder writes one ONNX file to the path it is given."""


def build(name: str, cache_dir: Path) -> Path:
    """Build model `name` into `cache_dir` unless it is there already; return its path."""
    path = Path(cache_dir) / f"{name}.onnx"
    if path.exists():
        log.info("%s: cached at %s", name, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    log.info("%s: building", name)
    start = time.perf_counter()
    try:
        MODELS[name](partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    size_mb = path.stat().st_size / 1e6
    log.info("%s: built in %.0f s, %.1f MB", name, time.perf_counter() - start, size_mb)
    return path


def build_all(cache_dir: Path) -> dict[str, Path]:
    """Build every model of `MODELS` that `cache_dir` lacks; return the path of each model."""
    return {name: build(name, cache_dir) for name in MODELS}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the benchmark models into a cache.")
    parser.add_argument("--cache", type=Path, default=default_cache_dir(), help="cache directory")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {', '.join(MODELS)}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models: {', '.join(unknown)}")
    logging.basicConfig(format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    for name in args.names or MODELS:
        build(name, args.cache)


if __name__ == "__main__":
    main()
