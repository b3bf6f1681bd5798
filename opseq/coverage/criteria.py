"""What the gate decides: criteria, each with its threshold, measured value and offenders.

Every check the gate runs (coverage thresholds, valid, runnable, behaves, risky) becomes one
`Criterion`; the gate passes when every criterion that was evaluated passes. The JSON form is a
contract (DESIGN.md, "Gate"): ``{name, passed, threshold, value, offenders: [...]}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Criterion", "Offender"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Offender:
    """One thing that makes a criterion fail: an op, an n-gram, a finer label or a message.

    ``item`` is the offending thing as text (an n-gram as ``A>B>C``, a versioned op as
    ``ai.onnx:Conv@11``); ``nodes`` the names of the model's nodes where it occurs (the node id
    when a node has no name), at most a few; ``detail`` a short explanation (an odds ratio and
    q-value, a checker message).
    """

    item: str
    nodes: tuple[str, ...] = ()
    detail: str | None = None

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {"item": self.item, "nodes": list(self.nodes), "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class Criterion:
    """One gate criterion.

    ``passed`` is None when the criterion could not be evaluated (the reason is in ``note``); an
    unevaluated criterion that was required fails the gate. ``threshold`` and ``value`` are
    numbers, or None when the criterion is a yes/no check; a ratio with a zero denominator is a
    None value with a note, never 1.0.
    """

    name: str
    passed: bool | None
    threshold: float | int | None = None
    value: float | int | None = None
    offenders: tuple[Offender, ...] = ()
    note: str | None = None
    allowed: tuple[Offender, ...] = field(default=())

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "name": self.name,
            "passed": self.passed,
            "threshold": self.threshold,
            "value": self.value,
            "offenders": [o.to_dict() for o in self.offenders],
            "allowed": [o.to_dict() for o in self.allowed],
            "note": self.note,
        }
