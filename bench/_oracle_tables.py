"""Label the records of `oracle_bench` under every rule and print its tables."""

from __future__ import annotations

import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import _planted_bugs  # bench/ is this script's directory, hence on sys.path
import numpy as np
from _oracle_runs import DEFAULT_RULE, RAN

from opseq.difftest.compare import OutputComparison
from opseq.difftest.measure import OutputErrors
from opseq.tolerance import (
    ALLCLOSE_RULES,
    AllClose,
    CalibratedRule,
    CaseVerdict,
    Tolerance,
    Verdict,
    is_mismatch,
)

log = logging.getLogger("opseq.bench")

SWEEP: tuple[tuple[float, int], ...] = tuple((h, m) for h in (16.0, 64.0, 256.0) for m in (1, 3, 5))
FIXED_RULES: tuple[tuple[str, Tolerance | AllClose], ...] = (
    ("abs 1e-7", Tolerance(atol=1e-7)),
    ("abs 1e-5", Tolerance(atol=1e-5)),
    ("abs 1e-3", Tolerance(atol=1e-3)),
    ("abs 1e-5 & rel 1e-3", Tolerance(atol=1e-5, rtol=1e-3)),
    *((f"allclose {a:g}/{r:g}", AllClose(atol=a, rtol=r)) for a, r in ALLCLOSE_RULES),
)
CALIBRATED = "calibrated 64/3"
"""The name of the default rule in the tables."""
KIND_COLUMNS = (CALIBRATED, "abs 1e-7", "abs 1e-3", "allclose 0.001/0.001")
TARGET_RECALL = 0.95
TARGET_FALSE = 0.01
EFFECT_BUCKETS = (16.0, 256.0, 4096.0)
EFFECT_LABELS = ("<= 16", "16-256", "256-4096", "> 4096", "values/NaN/shape")
"""Buckets of a planted bug's effect on the ONNX outputs, in float32 units; the last: integer or
bool values, NaN/Inf positions or shapes changed."""
MISS_REASONS = ("unstable", f"< {DEFAULT_RULE.min_sets} sets", "within headroom", "ok")


@dataclass(frozen=True, slots=True)
class Labelled:
    """One unplanted conversion or planted copy, with its labels under every rule."""

    record: dict[str, Any]
    kind: str | None  # the planted kind; None for an unplanted conversion
    verdicts: dict[tuple[float, int], Verdict]  # calibrated (headroom, min_sets) -> verdict
    fixed: dict[str, bool]  # fixed rule name -> mismatch
    case: CaseVerdict  # the default rule's verdict, with the sets it rests on
    errors: list[list[OutputErrors]]
    parent: dict[str, Any] | None = None  # the conversion a planted copy was planted into

    def called(self, rule: str | tuple[float, int]) -> bool:
        """Whether `rule` calls it inconsistent (semantic, or a fixed-rule mismatch)."""
        if isinstance(rule, tuple):
            return self.verdicts[rule] is Verdict.SEMANTIC
        return self.fixed[rule]


def label(
    record: dict[str, Any], kind: str | None = None, parent: dict[str, Any] | None = None
) -> Labelled:
    """Judge stored measurements under every rule (nothing is re-run)."""
    errors = [[OutputErrors.from_dict(e) for e in per_set] for per_set in record["errors"]]
    comparisons = [OutputComparison.from_dict(c) for c in record["comparisons"]]
    rules = {(h, m): CalibratedRule(headroom=h, min_sets=m) for h, m in SWEEP}
    rules[(DEFAULT_RULE.headroom, DEFAULT_RULE.min_sets)] = DEFAULT_RULE
    verdicts = {key: rule.judge(errors).verdict for key, rule in rules.items()}
    fixed = {
        name: rule.is_mismatch(comparisons)
        if isinstance(rule, AllClose)
        else is_mismatch(comparisons, rule)
        for name, rule in FIXED_RULES
    }
    case = DEFAULT_RULE.judge(errors)
    return Labelled(
        record=record,
        kind=kind,
        verdicts=verdicts,
        fixed=fixed,
        case=case,
        errors=errors,
        parent=parent,
    )


DEFAULT_KEY = (DEFAULT_RULE.headroom, DEFAULT_RULE.min_sets)


def rule_names() -> list[tuple[str, str | tuple[float, int]]]:
    """(table name, key) of every rule: the default first, then the fixed rules."""
    return [(CALIBRATED, DEFAULT_KEY), *((name, name) for name, _ in FIXED_RULES)]


def real_reason(item: Labelled) -> str | None:
    """Why an unplanted conversion is a verified real inconsistency, or None (see `explain`).

    Verified: in at least ``min_sets`` of its input sets, ONNX disagrees with the framework in
    integer/bool values or in NaN/Inf positions while the float64 twin agrees with the
    framework's float32 exactly there (so the framework's result is what the model computes, not
    a rounding accident), and the disagreement is not confined to one element that float32
    rounding could flip: more than one element differs, or an integer differs by more than 1.
    """
    record = item.record
    by_set: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for entry in record.get("disagreements", ()):
        by_set[entry["set"]].append(entry)
    strong = 0
    for entries in by_set.values():
        if any(_strong(entry) for entry in entries):
            strong += 1
    if strong < DEFAULT_RULE.min_sets:
        return None
    return explain(item)


def _strong(entry: dict[str, Any]) -> bool:
    if not entry["float64_agrees"]:
        return False
    if entry["what"] == "values":
        return entry["differing"] > 1 or entry["max_diff"] > 1
    return entry["differing"] > 1


def explain(item: Labelled, limit: int = 3) -> str:
    """Why the default rule calls a conversion semantic: each output semantic in its sets."""
    record = item.record
    diagnostics = {(e["set"], e["output"]): e for e in record.get("disagreements", ())}
    producers = record.get("producers", [])
    found: dict[int, list[tuple[int, OutputErrors, float]]] = defaultdict(list)
    for k, per_set in enumerate(item.errors):
        if item.case.per_set[k] is not Verdict.SEMANTIC:
            continue
        for i, errors in enumerate(per_set):
            verdict, ratio = DEFAULT_RULE.judge_output(errors)
            if verdict is Verdict.SEMANTIC:
                found[i].append((k, errors, ratio))
    parts = []
    for i, sets in sorted(found.items()):
        entries = [diagnostics[(k, i)] for k, _, _ in sets if (k, i) in diagnostics]
        producer = producers[i] if i < len(producers) else "?"
        if producer == "?" and entries:
            producer = entries[0]["producer"]
        _, errors, ratio = max(sets, key=lambda s: s[2])
        if errors.structure is not None:
            detail = f"{errors.structure} differs"
        elif entries and entries[0]["what"] == "values":
            worst = max(entries, key=lambda e: e["differing"])
            detail = (
                f"{worst['dtype']} values differ at {worst['differing']}/{worst['size']} "
                f"elements (max |diff| {worst['max_diff']:.3g}), float64 == float32"
            )
        elif entries:
            counts = max(entries, key=lambda e: e["differing"])["nonfinite"]
            detail = "NaN/+Inf/-Inf " + ", ".join(
                f"{side} {c[0]}/{c[1]}/{c[2]}" for side, c in counts.items()
            )
        else:
            detail = (
                f"ONNX error {ratio:.0f}x its bound (framework error "
                f"{errors.framework_error:.1f} units)"
            )
        parts.append(f"out{i} ({producer}), {len(sets)} sets: {detail}")
    more = f"; +{len(parts) - limit} more outputs" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def analyse(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Label everything and collect what the tables show."""
    ran = [r for r in records if r.get("outcome") in RAN]
    unplanted = [label(r) for r in ran]
    planted = [
        label(p, p["kind"], r) for r in ran for p in r["planted"] if p["status"] == "changed"
    ]
    real = {id(item.record): real_reason(item) for item in unplanted}
    return {
        "records": records,
        "ran": ran,
        "unplanted": unplanted,
        "planted": planted,
        "real": real,
    }


def _rate(items: Sequence[Labelled], rule) -> tuple[int, int]:
    return sum(item.called(rule) for item in items), len(items)


def _fmt_rate(called: int, total: int, *, percent: bool = False) -> str:
    if not total:
        return "-"
    value = called / total
    return f"{value:.1%} ({called}/{total})" if percent else f"{value:.3f} ({called}/{total})"


def _clean(analysis: dict[str, Any]) -> list[Labelled]:
    """Unplanted conversions not verified to be real inconsistencies."""
    return [u for u in analysis["unplanted"] if analysis["real"][id(u.record)] is None]


def _clean_planted(analysis: dict[str, Any]) -> list[Labelled]:
    """Planted copies of conversions not verified to be real inconsistencies."""
    return [p for p in analysis["planted"] if analysis["real"][id(p.parent)] is None]


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(recall, false) `a` is better than `b` on one and no worse on the other."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def _scores(analysis: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Rule name -> (recall, false rate excl. real), for every rule and sweep point."""
    planted, clean = analysis["planted"], _clean(analysis)
    keys = [*rule_names(), *((f"calibrated {h:g}/{m}", (h, m)) for h, m in SWEEP)]
    scores = {}
    for name, key in keys:
        recall, false = _rate(planted, key), _rate(clean, key)
        scores[name] = (recall[0] / max(1, recall[1]), false[0] / max(1, false[1]))
    return scores


def rules_table(analysis: dict[str, Any]) -> list[list[str]]:
    planted, unplanted, clean = analysis["planted"], analysis["unplanted"], _clean(analysis)
    scores = _scores(analysis)
    rows = [
        [
            "rule",
            "recall",
            "recall excl. real",
            "false",
            "false excl. real",
            "unstable",
            "targets",
            "vs fixed",
        ]
    ]
    for name, key in rule_names():
        calibrated = isinstance(key, tuple)
        unstable = sum(u.verdicts[key] is Verdict.UNSTABLE for u in unplanted) if calibrated else 0
        beats = sum(_dominates(scores[name], scores[f]) for f, _ in FIXED_RULES)
        rows.append(
            [
                name,
                _fmt_rate(*_rate(planted, key)),
                _fmt_rate(*_rate(_clean_planted(analysis), key)),
                _fmt_rate(*_rate(unplanted, key), percent=True),
                _fmt_rate(*_rate(clean, key), percent=True),
                str(unstable) if calibrated else "",
                _targets(scores[name]),
                f"{beats}/{len(FIXED_RULES)}" if calibrated else "",
            ]
        )
    return rows


def verdict_lines(analysis: dict[str, Any]) -> str:
    """The default rule against the targets and against each fixed rule, in words."""
    scores = _scores(analysis)
    recall, false = scores[CALIBRATED]
    met = {True: "met", False: "not met"}
    lines = [
        f"default rule: recall {recall:.3f} (target >= {TARGET_RECALL}: "
        f"{met[recall >= TARGET_RECALL]}), false rate excl. real {false:.1%} "
        f"(target <= {TARGET_FALSE:.0%}: {met[false <= TARGET_FALSE]})"
    ]
    for name, _ in FIXED_RULES:
        other = scores[name]
        if _dominates(scores[CALIBRATED], other):
            how = "beaten"
        elif _dominates(other, scores[CALIBRATED]):
            how = "BEATS the default rule"
        else:
            how = "neither beats the other"
        lines.append(f"  vs {name}: {how} (recall {other[0]:.3f}, false excl. real {other[1]:.1%})")
    return "\n".join(lines)


def _targets(score: tuple[float, float]) -> str:
    return "yes" if score[0] >= TARGET_RECALL and score[1] <= TARGET_FALSE else "no"


def sweep_table(analysis: dict[str, Any]) -> list[list[str]]:
    planted, unplanted, clean = analysis["planted"], analysis["unplanted"], _clean(analysis)
    fixed = {}
    for name, _ in FIXED_RULES:
        recall, false = _rate(planted, name), _rate(clean, name)
        fixed[name] = (recall[0] / max(1, recall[1]), false[0] / max(1, false[1]))
    rows = [
        [
            "headroom",
            "min_sets",
            "recall",
            "false",
            "false excl. real",
            "unstable",
            "targets",
            "vs fixed",
        ]
    ]
    for key in SWEEP:
        recall, false = _rate(planted, key), _rate(clean, key)
        score = (recall[0] / max(1, recall[1]), false[0] / max(1, false[1]))
        rows.append(
            [
                f"{key[0]:g}" + (" (default)" if key == DEFAULT_KEY else ""),
                str(key[1]),
                _fmt_rate(*recall),
                _fmt_rate(*_rate(unplanted, key), percent=True),
                _fmt_rate(*false, percent=True),
                str(sum(u.verdicts[key] is Verdict.UNSTABLE for u in unplanted)),
                _targets(score),
                f"{sum(_dominates(score, f) for f in fixed.values())}/{len(fixed)}",
            ]
        )
    return rows


def kinds_table(analysis: dict[str, Any]) -> list[list[str]]:
    statuses: dict[str, Counter] = defaultdict(Counter)
    for record in analysis["ran"]:
        for entry in record["planted"]:
            statuses[entry["kind"]][entry["status"]] += 1
    rows = [["kind", "sites", "refused", "identical", "kept", *KIND_COLUMNS]]
    keys = dict(rule_names())
    for kind in _planted_bugs.PLANTERS:
        counts = statuses[kind]
        items = [p for p in analysis["planted"] if p.kind == kind]
        sites = sum(v for s, v in counts.items() if s not in ("absent", "plant_error"))
        refused = counts["load_fail"] + counts["run_fail"]
        rows.append(
            [
                kind,
                str(sites),
                str(refused),
                str(counts["identical"]),
                str(len(items)),
                *(_fmt_rate(*_rate(items, keys[column])) for column in KIND_COLUMNS),
            ]
        )
    total = Counter()
    for counts in statuses.values():
        total.update(counts)
    rows.append(
        [
            "all",
            str(sum(v for s, v in total.items() if s not in ("absent", "plant_error"))),
            str(total["load_fail"] + total["run_fail"]),
            str(total["identical"]),
            str(len(analysis["planted"])),
            *(_fmt_rate(*_rate(analysis["planted"], keys[c])) for c in KIND_COLUMNS),
        ]
    )
    return rows


def effect_bucket(effect: dict[str, Any]) -> str:
    """The effect bucket of a planted copy (`EFFECT_LABELS`)."""
    if effect["values"] or effect["nonfinite"] or effect["structure"]:
        return EFFECT_LABELS[-1]
    return EFFECT_LABELS[sum(effect["units"] > edge for edge in EFFECT_BUCKETS)]


def miss_reason(item: Labelled) -> str:
    """Why the default rule does not call a planted copy semantic (`MISS_REASONS`)."""
    if item.case.verdict is Verdict.UNSTABLE:
        return "unstable"
    if item.case.semantic_sets:
        return f"< {DEFAULT_RULE.min_sets} sets"
    return "within headroom" if item.case.verdict is Verdict.NUMERICAL else "ok"


def misses_table(analysis: dict[str, Any]) -> list[list[str]]:
    rows = [["kind", "missed", *MISS_REASONS, *EFFECT_LABELS]]
    for kind in [*_planted_bugs.PLANTERS, "all"]:
        missed = [
            p for p in analysis["planted"] if kind in ("all", p.kind) and not p.called(DEFAULT_KEY)
        ]
        if not missed:
            continue
        reasons = Counter(miss_reason(item) for item in missed)
        buckets = Counter(effect_bucket(item.record["effect"]) for item in missed)
        rows.append(
            [
                kind,
                str(len(missed)),
                *(str(reasons[r]) for r in MISS_REASONS),
                *(str(buckets[b]) for b in EFFECT_LABELS),
            ]
        )
    return rows


def effect_table(analysis: dict[str, Any]) -> list[list[str]]:
    keys = dict(rule_names())
    rows = [["effect (units)", "copies", *KIND_COLUMNS]]
    for bucket in EFFECT_LABELS:
        items = [p for p in analysis["planted"] if effect_bucket(p.record["effect"]) == bucket]
        rows.append(
            [bucket, str(len(items)), *(_fmt_rate(*_rate(items, keys[c])) for c in KIND_COLUMNS)]
        )
    return rows


def sources_table(analysis: dict[str, Any]) -> list[list[str]]:
    rows = [
        [
            "source",
            "ran",
            "ok",
            "numerical",
            "unstable",
            "semantic",
            "fw err median",
            "fw err p90",
            "fw err max",
        ]
    ]
    groups: dict[str, list[Labelled]] = defaultdict(list)
    for item in analysis["unplanted"]:
        groups[item.record["source"]].append(item)
    for source, items in [*sorted(groups.items()), ("all", analysis["unplanted"])]:
        verdicts = Counter(item.case.verdict for item in items)
        framework = [
            max(
                (
                    e.framework_error
                    for e in per_set
                    if e.kind == "float"
                    and e.framework_error is not None
                    and e.reference_disagrees is None
                ),
                default=0.0,
            )
            for item in items
            for per_set in item.errors
        ]
        quantiles = np.quantile(framework, [0.5, 0.9, 1.0]) if framework else [0, 0, 0]
        rows.append(
            [
                source,
                str(len(items)),
                *(
                    str(verdicts[v])
                    for v in (Verdict.OK, Verdict.NUMERICAL, Verdict.UNSTABLE, Verdict.SEMANTIC)
                ),
                *(f"{q:.1f}" for q in quantiles),
            ]
        )
    return rows


def unplanted_semantic(analysis: dict[str, Any]) -> list[list[str]]:
    rows = [["source", "case", "converter", "real?", "why semantic"]]
    for item in analysis["unplanted"]:
        if not item.called(DEFAULT_KEY):
            continue
        r = item.record
        real = "verified" if analysis["real"][id(r)] is not None else "no"
        rows.append([r["source"], r["case"], r["converter"], real, explain(item)])
    return rows


def outcomes_table(records: list[dict[str, Any]]) -> list[list[str]]:
    groups: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in records:
        groups[(r["source"], r["converter"])][r.get("outcome", "?")] += 1
    outcomes = sorted({o for c in groups.values() for o in c}, key=lambda o: (o not in RAN, o))
    rows = [["source", "converter", "tasks", *outcomes]]
    for (source, converter), counts in sorted(groups.items()):
        rows.append(
            [source, converter, str(sum(counts.values())), *(str(counts[o]) for o in outcomes)]
        )
    totals = Counter()
    for counts in groups.values():
        totals.update(counts)
    rows.append(["all", "", str(sum(totals.values())), *(str(totals[o]) for o in outcomes)])
    return rows


def cost_table(ran: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["source", "cases", "off s", "on s", "ratio", "sum ratio", "float64 s"]]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in ran:
        groups[r["source"]].append(r)
    for source, group in [*sorted(groups.items()), ("all", ran)]:
        if not group:
            continue
        off = [r["time_off_s"] for r in group]
        on = [r["time_on_s"] for r in group]
        float64 = [r["durations_on"].get("float64", 0.0) for r in group]
        rows.append(
            [
                source,
                str(len(group)),
                f"{statistics.median(off):.2f}",
                f"{statistics.median(on):.2f}",
                f"{statistics.median(b / a for a, b in zip(off, on, strict=True)):.2f}",
                f"{sum(on) / sum(off):.2f}",
                f"{statistics.median(float64):.2f}",
            ]
        )
    return rows


def format_table(rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Align rows under their header: the first `left` columns left, the others right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(records: list[dict[str, Any]]) -> str:
    """Every table, as text."""
    analysis = analyse(records)
    ran, planted = analysis["ran"], analysis["planted"]
    reference = Counter("float64" if r.get("reference_note") is None else "none" for r in ran)
    rerun = Counter(bool(r.get("rerun_agrees")) for r in ran)
    sections = [
        f"conversions: {len(records)} tasks, {len(ran)} ran (float64 reference: "
        f"{reference['float64']}, none: {reference['none']}; rerun verdicts agree with "
        f"run_difftest's: {rerun[True]}/{len(ran)}); planted copies that change outputs: "
        f"{len(planted)}",
        "outcomes (run_difftest, default rule)\n" + format_table(outcomes_table(records), left=2),
        "unplanted verdicts (default rule) and the framework's float32 error against float64 "
        "(max over float outputs per input set, units)\n" + format_table(sources_table(analysis)),
        "rules: recall on planted bugs, false rate on unplanted conversions\n"
        + format_table(rules_table(analysis))
        + "\n"
        + verdict_lines(analysis),
        "calibrated sweep\n" + format_table(sweep_table(analysis)),
        "kinds: recall per planted kind\n"
        + format_table(kinds_table(analysis))
        + "\n"
        + "\n".join(f"  {kind}: {change}" for kind, change in _planted_bugs.KINDS.items()),
        "recall by effect of the planted bug on the ONNX outputs (float32 units)\n"
        + format_table(effect_table(analysis)),
        "misses of the default rule: why (its verdict), and by effect\n"
        + format_table(misses_table(analysis)),
        "unplanted conversions the default rule calls semantic\n"
        + format_table(unplanted_semantic(analysis), left=5),
        "cost of float64: run_difftest wall time per case, rule=None (off) vs default (on)\n"
        + format_table(cost_table(ran)),
    ]
    return "\n\n".join(sections)


# --------------------------------------------------------------------------------- main
