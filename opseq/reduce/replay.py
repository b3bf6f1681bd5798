"""Case replay: rebuild a manifest row's case and judge it again under the row's own oracle.

The oracle of a row (`OracleSpec`) is everything its verdict depends on: converter, requested
opset, number of input sets, seed, input strategy and calibrated rule. Replaying builds the case
from its source with the recorded seed (`rebuild_case`) and runs `run_difftest` under that oracle
(`judge`); the reducer judges every candidate the same way, so "still semantic" always means the
same thing. A case that no longer reproduces is a result with the reason, never an exception.

Converters are the registered ones (`opseq.difftest.convert.CONVERTERS`) or, like sources, any
object with the attributes of `Converter` named ``package.module:attribute``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opseq.corpus import ManifestRow
from opseq.difftest.campaign import configured_source
from opseq.difftest.convert import CONVERTERS, Converter, get_converter
from opseq.difftest.oracle import DiffTestResult, run_difftest
from opseq.errors import ConfigError, OpseqError
from opseq.sources.base import ModelCase, Source
from opseq.tolerance import CalibratedRule, Tolerance, Verdict

__all__ = [
    "OracleSpec",
    "ReplayResult",
    "judge",
    "rebuild_case",
    "replay_row",
    "resolve_converter",
    "source_of",
]

FIXED_RULE_NOTE = (
    "the row was labelled by the fixed rule; replayed under the default calibrated rule"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class OracleSpec:
    """Everything a verdict depends on besides the model.

    Attributes:
        converter: Converter name (registered, or ``package.module:attribute``).
        opset: The opset asked of the converter.
        n_inputs: Input sets compared.
        seed: Seed of the input sets (and of the case's weights).
        rule: The calibrated rule.
        input_strategy: How input sets are drawn (``normal`` or ``edge``).
        atol: The fixed rule's threshold (raw measurements only).
        rtol: Likewise.
        note: Why the rule is not the row's own, if it is not.
    """

    converter: str
    opset: int
    n_inputs: int
    seed: int
    rule: CalibratedRule = field(default_factory=CalibratedRule)
    input_strategy: str = "normal"
    atol: float = 1e-7
    rtol: float | None = None
    note: str | None = None

    @classmethod
    def from_row(cls, row: ManifestRow) -> OracleSpec:
        """Read the oracle of a manifest row.

        Raises:
            ConfigError: If the row lacks its case, seed or input count, or holds a bad rule.
        """
        extra = row.extra
        missing = [k for k in ("case", "seed", "n_inputs") if extra.get(k) is None]
        if missing:
            raise ConfigError(f"row {row.id!r} has no {', '.join(missing)}")
        rule = extra.get("rule")
        try:
            return cls(
                converter=row.converter,
                opset=int(extra.get("opset_requested") or extra.get("opset") or 17),
                n_inputs=int(extra["n_inputs"]),
                seed=int(extra["seed"]),
                rule=CalibratedRule() if rule is None else CalibratedRule.from_dict(rule),
                input_strategy=str(extra.get("input_strategy") or "normal"),
                atol=float(extra.get("atol") if extra.get("atol") is not None else 1e-7),
                rtol=None if extra.get("rtol") is None else float(extra["rtol"]),
                note=FIXED_RULE_NOTE if rule is None else None,
            )
        except (TypeError, ValueError) as e:
            raise ConfigError(f"row {row.id!r}: bad oracle field: {e}") from e

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "converter": self.converter,
            "opset": self.opset,
            "n_inputs": self.n_inputs,
            "seed": self.seed,
            "rule": self.rule.to_dict(),
            "input_strategy": self.input_strategy,
            "atol": self.atol,
            "rtol": self.rtol,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OracleSpec:
        """Build a spec from `to_dict` output.

        Raises:
            ConfigError: If a field is missing or malformed.
        """
        try:
            return cls(
                converter=str(data["converter"]),
                opset=int(data["opset"]),
                n_inputs=int(data["n_inputs"]),
                seed=int(data["seed"]),
                rule=CalibratedRule.from_dict(data.get("rule") or {}),
                input_strategy=str(data.get("input_strategy") or "normal"),
                atol=float(data.get("atol", 1e-7)),
                rtol=None if data.get("rtol") is None else float(data["rtol"]),
                note=data.get("note"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"malformed oracle: {type(e).__name__}: {e}") from e


def resolve_converter(name: str) -> Converter:
    """Return the registered converter `name`, or the object ``package.module:attribute`` names.

    Raises:
        ConfigError: If there is no such converter, or the object is not a `Converter`.
        MissingDependencyError: If a registered converter's framework is not installed.
    """
    if name in CONVERTERS or ":" not in name:
        return get_converter(name)
    module_name, _, attribute = name.partition(":")
    if os.getcwd() not in sys.path:  # as for sources: a plugin in the current directory is found
        sys.path.insert(0, os.getcwd())
    try:
        converter = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load converter {name!r}: {e}") from e
    if not isinstance(converter, Converter):
        raise ConfigError(f"{name} is not a converter (needs name, framework, convert, versions)")
    return converter


def source_of(row: ManifestRow) -> Source:
    """The row's source, restricted to the ops the campaign restricted it to (``ops``).

    Raises:
        ConfigError: If the source is unknown or cannot be restricted so.
    """
    metadata = row.extra.get("metadata") or {}
    patterns = row.extra.get("ops") or metadata.get("ops_filter") or ()
    return configured_source(row.source, tuple(str(p) for p in patterns))


def rebuild_case(row: ManifestRow) -> ModelCase:
    """Build the row's case from its source (`source_of`) with the recorded seed.

    Raises:
        ConfigError: If the source is unknown or the row names no case.
        Exception: Whatever building the case raises.
    """
    if row.extra.get("case") is None:
        raise ConfigError(f"row {row.id!r} has no case")
    return source_of(row).build(str(row.extra["case"]), seed=int(row.extra.get("seed") or 0))


def judge(
    case: ModelCase, spec: OracleSpec, *, converter: Converter, attribute_blame: bool = False
) -> DiffTestResult:
    """Run `run_difftest` on `case` under `spec` (no latency timing)."""
    return run_difftest(
        case,
        converter,
        opset=spec.opset,
        n_inputs=spec.n_inputs,
        seed=spec.seed,
        tolerance=Tolerance(atol=spec.atol, rtol=spec.rtol),
        rule=spec.rule,
        attribute_blame=attribute_blame,
        latency_repeats=0,
        input_strategy=spec.input_strategy,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayResult:
    """Whether a row's case is still semantic under its own oracle.

    Attributes:
        row_id: The manifest row.
        reproduces: The replay's verdict is ``semantic``.
        outcome: The replay's outcome (None when the case could not be replayed).
        verdict: The replay's verdict (None for failures).
        reason: Why it does not reproduce (None when it does).
        spec: The oracle it was judged under (None if the row holds none).
        result: The replay's result, with its model; not serialised.
        case: The rebuilt case; not serialised.
    """

    row_id: str
    reproduces: bool
    outcome: str | None = None
    verdict: str | None = None
    reason: str | None = None
    spec: OracleSpec | None = None
    result: DiffTestResult | None = field(default=None, repr=False, compare=False)
    case: ModelCase | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "row_id": self.row_id,
            "reproduces": self.reproduces,
            "outcome": self.outcome,
            "verdict": self.verdict,
            "reason": self.reason,
            "oracle": None if self.spec is None else self.spec.to_dict(),
        }


def replay_row(row: ManifestRow, *, converter: Converter | None = None) -> ReplayResult:
    """Rebuild the case of `row` and judge it again under its oracle; never raises for the case.

    Args:
        row: A manifest row.
        converter: The converter to use instead of the row's (e.g. a fixed one).

    Returns:
        The replay; ``reason`` says why a case does not reproduce or could not be replayed.
    """
    try:
        spec = OracleSpec.from_row(row)
        chosen = converter or resolve_converter(spec.converter)
    except OpseqError as e:
        return ReplayResult(row_id=row.id, reproduces=False, reason=f"cannot replay: {e}")
    try:
        case = rebuild_case(row)
    except MemoryError:
        raise
    except Exception as e:  # a case that no longer builds is a result of the replay
        return ReplayResult(
            row_id=row.id, reproduces=False, spec=spec, reason=f"cannot build the case: {_line(e)}"
        )
    result = judge(case, spec, converter=chosen)
    semantic = result.verdict is Verdict.SEMANTIC
    return ReplayResult(
        row_id=row.id,
        reproduces=semantic,
        outcome=result.outcome.value,
        verdict=None if result.verdict is None else result.verdict.value,
        reason=None if semantic else _not_semantic(result),
        spec=spec,
        result=result,
        case=case,
    )


def _not_semantic(result: DiffTestResult) -> str:
    if result.failure is not None:
        return f"does not reproduce: {result.outcome.value}: {result.failure.message}"
    verdict = "none" if result.verdict is None else result.verdict.value
    return f"does not reproduce: the replay's verdict is {verdict}"


def _line(error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300]
