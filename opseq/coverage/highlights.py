"""What ``opseq render --highlight uncovered|novel|risky`` highlights: n-grams from coverage.

``uncovered`` and ``novel`` are the model's n-grams of length ``--n`` that the reference does not
contain (novel: whose pieces it does); ``risky`` the n-grams the knowledge base associates with
mismatch after adjustment (any length), that the model contains.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import networkx as nx
import onnx

from opseq.ngrams import Ngram

__all__ = ["HIGHLIGHT_KINDS", "add_highlight_args", "highlight_ngrams"]

HIGHLIGHT_KINDS = ("uncovered", "novel", "risky")

logger = logging.getLogger(__name__)


def add_highlight_args(parser: argparse.ArgumentParser) -> None:
    """Add the reference, knowledge base and n options the coverage highlights need."""
    from opseq.cli._references import add_reference_args

    add_reference_args(parser)
    parser.add_argument(
        "--knowledge",
        type=Path,
        metavar="FILE",
        help="hypothesis report (JSON) for --highlight risky (default: the shipped corpus's)",
    )
    parser.add_argument(
        "--n",
        type=int,
        choices=(2, 3, 4),
        default=2,
        help="n-gram length for --highlight uncovered/novel (default: 2)",
    )


def highlight_ngrams(
    kind: str, model_path: Path, model: onnx.ModelProto, graph: nx.DiGraph, args: argparse.Namespace
) -> tuple[Ngram, ...]:
    """The n-grams of `kind` in the model, most frequent first."""
    from opseq.cli._common import limits_from_args
    from opseq.coverage.profile import profile_model

    profile = profile_model(model, graph, name=str(model_path), limits=limits_from_args(args))
    if kind == "risky":
        return _risky(profile, args)
    from opseq.cli._references import references_from_args
    from opseq.coverage.model_coverage import model_coverage

    coverage = model_coverage(profile, references_from_args(args)).ngrams[args.n]
    return coverage.novel if kind == "novel" else coverage.uncovered


def _risky(profile, args: argparse.Namespace) -> tuple[Ngram, ...]:
    from opseq.coverage.knowledge import default_knowledge, load_knowledge
    from opseq.errors import ConfigError

    path = args.knowledge or default_knowledge()
    if path is None:
        raise ConfigError("--highlight risky needs a knowledge base: --knowledge FILE")
    knowledge = load_knowledge(path)
    if not knowledge.risky:
        logger.warning("%s", knowledge.describe())
    present = [g for g in knowledge.risky if g in profile.ngrams]
    return tuple(sorted(present, key=lambda g: knowledge.risky[g].q_value))
