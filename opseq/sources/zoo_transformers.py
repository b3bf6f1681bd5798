"""Transformers architectures from small configs, with random weights, for torch.onnx.

Each case is a real transformers model class built from a config (nothing is downloaded) shrunk
so that export and inference take seconds: width 64, 2 layers, 4 heads, feed-forward 128,
vocabulary 1000, at most 64 positions. Text models take ``input_ids`` and ``attention_mask``
(batch 1, 16 tokens), encoder-decoders also ``decoder_input_ids`` (8 tokens), vision models
``pixel_values`` (1, 3, 32, 32).

The attention mask is all ones (its `InputSpec` draws from ``[1, 2)``): a random mask would mask
whole causal rows and compare two frameworks' handling of fully masked softmax rows, which is
not what a deployed model sees.

Every model is wrapped in a module that calls it by keyword and returns a tuple of the named
output tensors: the TorchScript exporter passes every ``forward`` parameter positionally, which
transformers 5 rejects ("got multiple values for argument 'use_cache'").
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from types import SimpleNamespace
from typing import Any

from opseq._optional import import_optional
from opseq.sources.base import Framework, InputSpec, ModelCase

__all__ = ["FAMILIES", "SOURCE", "TransformersZoo"]

VOCAB = 1000
SEQUENCE = 16
DECODER_SEQUENCE = 8
IMAGE = 32

_BERT_LIKE = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "max_position_embeddings": 64,
}


class _Kind(str, Enum):
    """Which inputs a model takes (and so which wrapper calls it)."""

    TEXT = "text"
    SEQ2SEQ = "seq2seq"
    VISION = "vision"


@dataclass(frozen=True, slots=True, kw_only=True)
class _Family:
    """A transformers model class, its config class and the small config's arguments."""

    model: str
    config: str
    kwargs: dict[str, Any]
    kind: _Kind = _Kind.TEXT
    outputs: tuple[str, ...] = ("last_hidden_state",)


FAMILIES: dict[str, _Family] = {
    "bert": _Family(
        model="BertModel",
        config="BertConfig",
        kwargs=_BERT_LIKE,
        outputs=("last_hidden_state", "pooler_output"),
    ),
    "distilbert": _Family(
        model="DistilBertModel",
        config="DistilBertConfig",
        kwargs={
            "vocab_size": VOCAB,
            "dim": 64,
            "n_layers": 2,
            "n_heads": 4,
            "hidden_dim": 128,
            "max_position_embeddings": 64,
        },
    ),
    "roberta": _Family(model="RobertaModel", config="RobertaConfig", kwargs=_BERT_LIKE),
    "gpt2": _Family(
        model="GPT2Model",
        config="GPT2Config",
        kwargs={
            "vocab_size": VOCAB,
            "n_embd": 64,
            "n_layer": 2,
            "n_head": 4,
            "n_inner": 128,
            "n_positions": 64,
            "bos_token_id": 0,
            "eos_token_id": 0,
            "use_cache": False,
        },
    ),
    "vit": _Family(
        model="ViTModel",
        config="ViTConfig",
        kwargs={**_BERT_LIKE, "image_size": IMAGE, "patch_size": 8, "num_channels": 3},
        kind=_Kind.VISION,
        outputs=("last_hidden_state", "pooler_output"),
    ),
    "t5": _Family(
        model="T5Model",
        config="T5Config",
        kwargs={
            "vocab_size": VOCAB,
            "d_model": 64,
            "d_kv": 16,
            "d_ff": 128,
            "num_layers": 2,
            "num_decoder_layers": 2,
            "num_heads": 4,
            "decoder_start_token_id": 0,
            "use_cache": False,
        },
        kind=_Kind.SEQ2SEQ,
        outputs=("last_hidden_state", "encoder_last_hidden_state"),
    ),
    "bart": _Family(
        model="BartModel",
        config="BartConfig",
        kwargs={
            "vocab_size": VOCAB,
            "d_model": 64,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 128,
            "decoder_ffn_dim": 128,
            "max_position_embeddings": 64,
            "use_cache": False,
        },
        kind=_Kind.SEQ2SEQ,
        outputs=("last_hidden_state", "encoder_last_hidden_state"),
    ),
    "albert": _Family(
        model="AlbertModel",
        config="AlbertConfig",
        kwargs={**_BERT_LIKE, "embedding_size": 32},
        outputs=("last_hidden_state", "pooler_output"),
    ),
    "electra": _Family(
        model="ElectraModel", config="ElectraConfig", kwargs={**_BERT_LIKE, "embedding_size": 32}
    ),
    "deberta-v2": _Family(
        model="DebertaV2Model",
        config="DebertaV2Config",
        kwargs={
            **_BERT_LIKE,
            "relative_attention": True,
            "pos_att_type": ["p2c", "c2p"],
            "position_buckets": 32,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
        },
    ),
    "llama": _Family(
        model="LlamaModel",
        config="LlamaConfig",
        kwargs={**_BERT_LIKE, "num_key_value_heads": 2, "use_cache": False},
    ),
}
"""Case id -> model family, in a fixed order (the six required families first)."""


class TransformersZoo:
    """The ``zoo-transformers`` source: transformers models from small configs, batch 1."""

    name = "zoo-transformers"
    framework = Framework.TORCH

    def case_ids(self, *, count: int | None = None, seed: int = 0) -> Sequence[str]:
        """Return the family ids in a fixed order (the seed does not change it).

        Args:
            count: Return only the first `count` ids; all of them when None.
            seed: Unused: the zoo is a fixed list.

        Returns:
            Case ids.
        """
        ids = list(FAMILIES)
        return ids if count is None else ids[:count]

    def build(self, case_id: str, *, seed: int = 0) -> ModelCase:
        """Build one model in eval mode with weights initialised from `seed`.

        Args:
            case_id: One of `case_ids()`.
            seed: Seed of the weight initialisation (``torch.manual_seed``).

        Returns:
            The wrapped model (called positionally, returns a tuple), its inputs, and metadata.

        Raises:
            KeyError: If `case_id` is not a case of this source.
        """
        family = _lookup(case_id)
        torch = import_optional("torch", extra="torch")
        transformers = import_optional("transformers", extra="zoo")
        config = getattr(transformers, family.config)(**family.kwargs)
        torch.manual_seed(seed)
        inner = getattr(transformers, family.model)(config)
        wrapper = getattr(_wrappers(), family.kind.value)
        model = wrapper(inner, family.outputs).eval()
        return ModelCase(
            case_id=case_id,
            framework=self.framework,
            model=model,
            inputs=_inputs(family.kind),
            metadata={
                "architecture": family.model,
                "parameters": sum(p.numel() for p in model.parameters()),
                "config": copy.deepcopy(family.kwargs),
                "outputs": list(family.outputs),
            },
        )


def _lookup(case_id: str) -> _Family:
    try:
        return FAMILIES[case_id]
    except KeyError:
        raise KeyError(
            f"unknown zoo-transformers case {case_id!r}; known: {', '.join(FAMILIES)}"
        ) from None


def _inputs(kind: _Kind) -> tuple[InputSpec, ...]:
    if kind is _Kind.VISION:
        return (InputSpec(name="pixel_values", shape=(1, 3, IMAGE, IMAGE), dtype="float32"),)
    text = (
        InputSpec(name="input_ids", shape=(1, SEQUENCE), dtype="int64", low=0, high=VOCAB),
        InputSpec(name="attention_mask", shape=(1, SEQUENCE), dtype="int64", low=1, high=2),
    )
    if kind is _Kind.TEXT:
        return text
    decoder = InputSpec(
        name="decoder_input_ids", shape=(1, DECODER_SEQUENCE), dtype="int64", low=0, high=VOCAB
    )
    return (*text, decoder)


@functools.cache
def _wrappers() -> SimpleNamespace:
    """Define the keyword-calling wrappers (imports torch), one per `_Kind` value."""
    from torch import nn

    class _Wrapper(nn.Module):
        def __init__(self, model: nn.Module, outputs: tuple[str, ...]) -> None:
            super().__init__()
            self.model = model
            self.outputs = outputs

        def _select(self, result) -> tuple:
            return tuple(getattr(result, name) for name in self.outputs)

    class Text(_Wrapper):
        """``(input_ids, attention_mask) -> outputs``."""

        def forward(self, input_ids, attention_mask):
            return self._select(self.model(input_ids=input_ids, attention_mask=attention_mask))

    class Seq2Seq(_Wrapper):
        """``(input_ids, attention_mask, decoder_input_ids) -> outputs``."""

        def forward(self, input_ids, attention_mask, decoder_input_ids):
            result = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids,
            )
            return self._select(result)

    class Vision(_Wrapper):
        """``(pixel_values) -> outputs``."""

        def forward(self, pixel_values):
            return self._select(self.model(pixel_values=pixel_values))

    return SimpleNamespace(text=Text, seq2seq=Seq2Seq, vision=Vision)


SOURCE = TransformersZoo()
"""The registered ``zoo-transformers`` source."""
