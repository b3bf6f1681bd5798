"""Reduce a corpus's semantic cases to minimal reproducers and deduplicate them into findings.

For one manifest row, in a worker process (`opseq.reduce.corpus_reduction` runs them):

1. replays the case under its own oracle (`opseq.reduce.replay`); a case that is no longer
   semantic is reported with the reason and kept in ``cases.jsonl``;
2. shrinks a synthetic graph (`opseq.reduce.shrink`), judging each candidate with
   `run_difftest` under the same oracle; a case of any other source (zoo models, one-op
   ``opinfo`` cases) is recorded as its own minimal reproducer;
3. judges the minimal case once more with blame, and stages its files (`opseq.reduce.bundle`).

The parent groups the reproducers by signature into findings.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opseq.corpus import ManifestRow
from opseq.reduce.bundle import stage_reproducer
from opseq.reduce.evidence import finding_blame, installed_versions, oracle_numbers
from opseq.reduce.finding import Reproducer
from opseq.reduce.recipe import SOURCE_CASE, SYNTHETIC_GRAPH, Recipe, case_from_graph
from opseq.reduce.replay import judge, replay_row, resolve_converter, source_of
from opseq.reduce.shrink import Budget, shrink_graph
from opseq.reduce.signature import case_signature, graph_signature
from opseq.sources.base import ModelCase
from opseq.sources.synthetic.builder import SyntheticGraph
from opseq.tolerance import Verdict

__all__ = ["reduce_row", "reduce_task"]

logger = logging.getLogger(__name__)


def reduce_row(row: ManifestRow, *, staging: Path, budget: Budget = Budget()) -> Reproducer:  # noqa: B008
    """Replay, reduce and stage one row (module docstring); never raises for the case.

    Args:
        row: A manifest row.
        staging: Directory for this row's files.
        budget: Tests and seconds the search may spend.

    Returns:
        The reproducer, or why there is none.
    """
    start = time.monotonic()
    base = {"row_id": row.id, "source": row.source, "converter": row.converter,
            "case": str(row.extra.get("case", ""))}  # fmt: skip
    replayed = replay_row(row)
    if not replayed.reproduces:
        status = "failed" if replayed.outcome is None else "not-reproduced"
        return Reproducer(status=status, reason=replayed.reason, oracle=replayed.spec, **base)
    spec, case = replayed.spec, replayed.case
    assert spec is not None and case is not None  # a replay that reproduces has both
    converter = resolve_converter(spec.converter)
    graph = _synthetic_graph(row, case)
    if graph is None:
        minimal, reduction = _Minimal(case=case), _not_reduced(row)
        signature = case_signature(base["case"], [s.dtype for s in case.inputs], row.converter)
    else:
        minimal, reduction = _shrink(graph, case, replayed.result, spec, converter, budget)
        signature = graph_signature(minimal.graph, row.converter)
    final = judge(minimal.case, spec, converter=converter, attribute_blame=True)
    if final.verdict is not Verdict.SEMANTIC:  # the search judged it semantic: not expected
        return Reproducer(
            status="failed", reason="the minimal case is not semantic when judged again", **base
        )
    directory = staging / _row_key(row.id)
    try:
        files = stage_reproducer(
            directory,
            case=minimal.case,
            result=final,
            converter=row.converter,
            opset=spec.opset,
            seed=spec.seed,
            n_inputs=spec.n_inputs,
            input_strategy=spec.input_strategy,
            title=_title(row, case, signature),
        )
    except MemoryError:
        raise
    except Exception as e:  # the framework fails on the minimal case: report, do not hide
        return Reproducer(
            status="failed", reason=f"cannot write the reproducer: {_line(e)}", **base
        )
    return Reproducer(
        status="own" if minimal.graph is None else "reduced",
        reason=reduction.get("note"),
        signature=signature,
        recipe=_recipe(row, spec, case, minimal),
        oracle=spec,
        numbers=oracle_numbers(final),
        blame=finding_blame(final.calibration),
        reduction={**reduction, "total_seconds": round(time.monotonic() - start, 3)},
        versions={**installed_versions(), **final.versions},
        staged=str(directory),
        files=files.to_dict(),
        **base,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Minimal:
    """The minimal case, and its graph when it is a synthetic one."""

    case: ModelCase
    graph: SyntheticGraph | None = None


def _shrink(graph, case, result, spec, converter, budget) -> tuple[_Minimal, dict[str, Any]]:
    """Shrink a synthetic case's graph, each candidate judged under the row's oracle."""
    weight_seed = int(case.metadata["weight_seed"])
    specs = {s.name: s for s in case.inputs}

    def build(candidate: SyntheticGraph) -> ModelCase:
        return case_from_graph(
            candidate, weight_seed=weight_seed, case_id=case.case_id, input_specs=specs
        )

    def still_semantic(candidate: SyntheticGraph) -> bool:
        try:
            built = build(candidate)
        except MemoryError:
            raise
        except Exception:  # a candidate that cannot be built is rejected
            return False
        return judge(built, spec, converter=converter).verdict is Verdict.SEMANTIC

    order = _output_order(graph, result)
    shrunk = shrink_graph(graph, still_semantic, output_order=order, budget=budget)
    minimal = case if shrunk.graph == graph else build(shrunk.graph)
    reduction = {**shrunk.to_dict(), "nodes_before": len(graph.nodes),
                 "nodes_after": len(shrunk.graph.nodes)}  # fmt: skip
    return _Minimal(case=minimal, graph=shrunk.graph), reduction


def _recipe(row: ManifestRow, spec, case: ModelCase, minimal: _Minimal) -> Recipe:
    return Recipe(
        kind=SOURCE_CASE if minimal.graph is None else SYNTHETIC_GRAPH,
        source=row.source,
        case=str(row.extra.get("case", "")),
        seed=spec.seed,
        graph=minimal.graph,
        weight_seed=None if minimal.graph is None else int(case.metadata["weight_seed"]),
        input_specs=minimal.case.inputs,
    )


def _title(row: ManifestRow, case: ModelCase, signature) -> str:
    dtypes = ", ".join(signature.input_dtypes) or "no inputs"
    return (
        f"{row.converter} disagrees with {case.framework.value} on "
        f"{' -> '.join(signature.labels)} ({dtypes})"
    )


def _synthetic_graph(row: ManifestRow, case) -> SyntheticGraph | None:
    """The row's synthetic graph, if its source builds cases from one."""
    source = source_of(row)
    graph_of = getattr(source, "graph", None)
    if not callable(graph_of) or "weight_seed" not in case.metadata:
        return None
    graph = graph_of(str(row.extra["case"]))
    return graph if isinstance(graph, SyntheticGraph) else None


def _not_reduced(row: ManifestRow) -> dict[str, Any]:
    return {
        "tests": 0,
        "seconds": 0.0,
        "stopped": "not-reduced",
        "steps": [],
        "note": f"not reduced: {row.source} cases are not synthetic graphs (one model per case); "
        "the case is its own minimal reproducer",
    }


def _output_order(graph: SyntheticGraph, result) -> list[str]:
    """Outputs semantic over the sets first, then those semantic in some set (graph order)."""
    calibration = result.calibration
    if calibration is None or len(calibration.names) != len(graph.outputs):
        return list(graph.outputs)
    rule = calibration.rule
    ranked = []
    for i, output in enumerate(graph.outputs):
        column = [errors[i] for errors in calibration.errors if i < len(errors)]
        case_verdict = rule.judge([[e] for e in column]).verdict
        some = any(rule.judge_output(e)[0] is Verdict.SEMANTIC for e in column)
        if case_verdict is Verdict.SEMANTIC or some:
            ranked.append((case_verdict is not Verdict.SEMANTIC, i, output))
    return [output for *_, output in sorted(ranked)]


def reduce_task(task: dict[str, Any]) -> dict[str, Any]:
    """Worker entry point: reduce ``task["row"]`` (a manifest row as a dict)."""
    budget = Budget(max_tests=int(task["max_tests"]), deadline_s=float(task["deadline_s"]))
    row = ManifestRow.from_dict(task["row"])
    return reduce_row(row, staging=Path(task["staging"]), budget=budget).to_dict()


def _row_key(row_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in row_id)[-60:]
    return f"{safe}-{hashlib.sha256(row_id.encode()).hexdigest()[:8]}"


def _line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]
