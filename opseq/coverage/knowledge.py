"""A knowledge base: the n-grams a hypothesis report found associated with mismatch.

The knowledge base is an ``opseq hypotheses --format json`` report (schema_version 2); the
corpus ships one (``corpus/hypotheses.json``). An n-gram is *risky* when the report's
size-adjusted test is significant after multiple-testing adjustment (``q_value_adjusted`` at
most the report's alpha). A report in which nothing is significant says only that: the reports
of underpowered corpora answer "undetermined", and the gate says so instead of "no risk".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opseq.coverage.references import shipped_corpus
from opseq.errors import ConfigError
from opseq.ngrams import Ngram
from opseq.untrusted import escape_controls

__all__ = [
    "KNOWLEDGE_SCHEMA_VERSION",
    "KnowledgeBase",
    "RiskyNgram",
    "default_knowledge",
    "load_knowledge",
]

KNOWLEDGE_SCHEMA_VERSION = 2
_MAX_BYTES = 256 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskyNgram:
    """One n-gram the report found associated with mismatch after adjustment."""

    ngram: Ngram
    odds_ratio: float | None
    q_value: float

    def detail(self) -> str:
        """``OR 8.8, q 0.012`` for reports."""
        odds = "inf" if self.odds_ratio is None else f"{self.odds_ratio:.3g}"
        return f"adjusted odds ratio {odds}, q {self.q_value:.2g}"


@dataclass(frozen=True, slots=True, kw_only=True)
class KnowledgeBase:
    """The risky n-grams of one report, and what the report could and could not say."""

    source: str
    alpha: float
    tested: int
    answer: str | None  # the report's answer to the sequences question: yes / no / undetermined
    risky: Mapping[Ngram, RiskyNgram]

    def describe(self) -> str:
        """One sentence: what the knowledge base marks, and how much that means."""
        if self.risky:
            return (
                f"{len(self.risky)} of {self.tested:,} tested n-grams are associated with "
                f"mismatch after adjustment (q <= {self.alpha:g}) in {self.source}"
            )
        answer = f" (its answer to the sequences question: {self.answer})" if self.answer else ""
        return (
            f"{self.source} marks none of its {self.tested:,} tested n-grams as associated with "
            f"mismatch after adjustment{answer}: that is no evidence that the model is safe"
        )

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "source": self.source,
            "alpha": self.alpha,
            "tested": self.tested,
            "answer": self.answer,
            "risky": len(self.risky),
        }


def default_knowledge() -> Path | None:
    """The shipped corpus's knowledge base, when opseq runs from a checkout."""
    corpus = shipped_corpus()
    path = None if corpus is None else corpus / "hypotheses.json"
    return path if path is not None and path.is_file() else None


def load_knowledge(path: Path) -> KnowledgeBase:
    """Read a hypothesis report as a knowledge base.

    Raises:
        ConfigError: If the file is unreadable, too large, not JSON, or not a hypothesis report
            of schema version 2 (the message says which).
    """
    where = escape_controls(str(path))
    try:
        with path.open("rb") as stream:
            raw = stream.read(_MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"knowledge base {where}: {e.strerror or e}") from None
    if len(raw) > _MAX_BYTES:
        raise ConfigError(f"knowledge base {where}: larger than 256 MiB")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ConfigError(f"knowledge base {where}: not JSON ({e})") from None
    return _parse(data, where)


def _parse(data, where: str) -> KnowledgeBase:
    if not isinstance(data, dict) or "sequences" not in data:
        raise ConfigError(f"knowledge base {where}: not an opseq hypotheses report")
    version = data.get("schema_version")
    if version != KNOWLEDGE_SCHEMA_VERSION:
        raise ConfigError(
            f"knowledge base {where}: schema_version {escape_controls(repr(version))}, opseq "
            f"reads {KNOWLEDGE_SCHEMA_VERSION}; regenerate it with 'opseq hypotheses --format json'"
        )
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    alpha = config.get("alpha", 0.05)
    sequences = data["sequences"]
    tests = sequences.get("tests") if isinstance(sequences, dict) else None
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0 < alpha < 1:
        raise ConfigError(f"knowledge base {where}: config.alpha must be a number in (0, 1)")
    if not isinstance(tests, list):
        raise ConfigError(f"knowledge base {where}: sequences.tests must be a list")
    risky = {}
    for position, test in enumerate(tests):
        entry = _risky(test, alpha)
        if entry is None:
            continue
        if isinstance(entry, str):
            raise ConfigError(f"knowledge base {where}: sequences.tests[{position}]: {entry}")
        risky[entry.ngram] = entry
    return KnowledgeBase(
        source=where,
        alpha=float(alpha),
        tested=len(tests),
        answer=_answer(data),
        risky=risky,
    )


def _risky(test, alpha: float) -> RiskyNgram | str | None:
    """The test's risky n-gram, None when not significant, or what is malformed."""
    if not isinstance(test, dict):
        return "not an object"
    ngram, q = test.get("ngram"), test.get("q_value_adjusted")
    if not isinstance(ngram, list) or not ngram or not all(isinstance(x, str) for x in ngram):
        return "ngram must be a list of labels"
    if q is None:
        return None  # not tested after adjustment (left out of the family)
    if not isinstance(q, (int, float)) or isinstance(q, bool):
        return "q_value_adjusted must be a number"
    if q > alpha:
        return None
    odds = test.get("odds_ratio_adjusted")
    odds = float(odds) if isinstance(odds, (int, float)) and not isinstance(odds, bool) else None
    return RiskyNgram(ngram=tuple(ngram), odds_ratio=odds, q_value=float(q))


def _answer(data: Mapping) -> str | None:
    for verdict in data.get("verdicts") or ():
        if isinstance(verdict, dict) and verdict.get("key") == "sequences":
            answer = verdict.get("answer")
            return answer if isinstance(answer, str) else None
    return None
