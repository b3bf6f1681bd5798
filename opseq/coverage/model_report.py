"""Text and Markdown reports of `ModelCoverage` (JSON is its ``to_dict``)."""

from __future__ import annotations

from collections.abc import Sequence

from opseq.coverage.model_coverage import SCHEMA_VERSION, ModelCoverage, Ratio
from opseq.coverage.profile import FINER_KINDS
from opseq.report import format_ngram
from opseq.untrusted import escape_controls

__all__ = ["coverage_json", "format_coverage_markdown", "format_coverage_text"]

_TITLES = {
    "ops": "ops",
    "versioned_ops": "versioned ops",
    "dtypes": "op + input dtypes",
    "ranks": "op + input ranks",
    "attributes": "op + attribute values",
}


def coverage_json(coverages: Sequence[ModelCoverage], references: Sequence[dict]) -> dict:
    """The ``opseq coverage --format json`` document (DESIGN.md, "Coverage")."""
    return {
        "schema_version": SCHEMA_VERSION,
        "reference": list(references),
        "models": [coverage.to_dict() for coverage in coverages],
    }


def format_ratio(ratio: Ratio) -> str:
    """``12/20 (60.0%)``, or ``0/0 (no items: undefined)``."""
    if ratio.ratio is None:
        return f"{ratio.covered:,}/{ratio.total:,} (no items: undefined)"
    return f"{ratio.covered:,}/{ratio.total:,} ({100 * ratio.ratio:.1f}%)"


def format_coverage_text(
    coverages: Sequence[ModelCoverage], references: Sequence[dict], *, top: int = 10
) -> str:
    """One block per model: every kind's coverage and its first uncovered items."""
    lines = [f"reference: {_references_line(references)}"]
    for coverage in coverages:
        lines += ["", f"{escape_controls(coverage.model)}  ({coverage.node_count:,} nodes)"]
        for kind in ("ops", "versioned_ops"):
            lines += _item_lines(coverage, kind, top)
        for n, ngrams in coverage.ngrams.items():
            lines.append(
                f"  {n}-grams: distinct {format_ratio(ngrams.distinct)}, "
                f"by paths {format_ratio(ngrams.weighted)}, {len(ngrams.novel):,} novel"
            )
            lines += _listed("uncovered", [format_ngram(g) for g in ngrams.uncovered], top)
            lines += _listed("novel", [format_ngram(g) for g in ngrams.novel], top)
        for kind in FINER_KINDS:
            lines += _item_lines(coverage, kind, top)
    return "\n".join(lines) + "\n"


def _item_lines(coverage: ModelCoverage, kind: str, top: int) -> list[str]:
    items = coverage.items[kind]
    lines = [f"  {_TITLES[kind]}: {format_ratio(items.distinct)}"]
    shown = [
        f"{escape_controls(item)} ({', '.join(escape_controls(n) for n in items.nodes[item][:3])})"
        if items.nodes.get(item)
        else escape_controls(item)
        for item in items.uncovered
    ]
    return lines + _listed("uncovered", shown, top)


def _listed(title: str, items: Sequence[str], top: int) -> list[str]:
    if not items:
        return []
    more = f" ... and {len(items) - top:,} more" if len(items) > top else ""
    return [f"    {title}: {'; '.join(items[:top])}{more}"]


def _references_line(references: Sequence[dict]) -> str:
    return ", ".join(
        f"{escape_controls(r['name'])} ({r['models']:,} models, {r['fingerprint'][:12]})"
        for r in references
    )


def format_coverage_markdown(
    coverages: Sequence[ModelCoverage],
    references: Sequence[dict],
    *,
    top: int = 10,
    picture: str | None = None,
) -> str:
    """A Markdown table per model, with the uncovered items in ``<details>`` blocks."""
    lines = ["# opseq coverage", "", f"Reference: {_md(_references_line(references))}"]
    if picture:
        lines += ["", f"![uncovered sequences]({picture})"]
    for coverage in coverages:
        lines += [
            "",
            f"## `{_md(coverage.model)}` ({coverage.node_count:,} nodes)",
            "",
            "| items | covered | uncovered | novel |",
            "|---|---:|---:|---:|",
        ]
        for kind in ("ops", "versioned_ops"):
            items = coverage.items[kind]
            lines.append(
                f"| {_TITLES[kind]} | {format_ratio(items.distinct)} | {len(items.uncovered):,} | |"
            )
        for n, ngrams in coverage.ngrams.items():
            lines.append(
                f"| {n}-grams (distinct / by paths) | {format_ratio(ngrams.distinct)} / "
                f"{format_ratio(ngrams.weighted)} | {len(ngrams.uncovered):,} | "
                f"{len(ngrams.novel):,} |"
            )
        for kind in FINER_KINDS:
            items = coverage.items[kind]
            lines.append(
                f"| {_TITLES[kind]} | {format_ratio(items.distinct)} | {len(items.uncovered):,} | |"
            )
        for n, ngrams in coverage.ngrams.items():
            if ngrams.novel:
                shown = ", ".join(f"`{_md(format_ngram(g))}`" for g in ngrams.novel[:top])
                lines += [
                    "",
                    f"<details><summary>novel {n}-grams</summary>",
                    "",
                    shown,
                    "",
                    "</details>",
                ]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return escape_controls(text).replace("|", "\\|").replace("`", "'")
