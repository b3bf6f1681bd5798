"""Text, Markdown, HTML and JSON reports of `CorpusCoverage`, one corpus or several side by side.

Every format shows the same blocks: a side-by-side table of the corpora, COMET's published
layer-sequence coverage as a yardstick, per corpus the ops it leaves unused and the bigrams the
type rule calls infeasible, and Table 12 row 3 where it was asked. HTML is one self-contained
page with an inline SVG figure of the growth curves (matplotlib, the ``report`` extra).
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import onnx

from opseq._optional import import_optional
from opseq.coverage.corpus_coverage import (
    GROWTH_KINDS,
    SCHEMA_VERSION,
    CorpusCoverage,
    UnexercisedNgrams,
)
from opseq.coverage.model_coverage import Ratio
from opseq.coverage.model_report import format_ratio
from opseq.errors import ConfigError
from opseq.report import format_ngram
from opseq.untrusted import escape_controls

__all__ = ["COMET_LAYER_SEQUENCE_COVERAGE", "FORMATS", "format_corpus_coverage"]

FORMATS = ("text", "markdown", "html", "json")

#: COMET's published layer-sequence coverage, as the issue quotes it: Keras layer pairs.
COMET_LAYER_SEQUENCE_COVERAGE = (("best earlier generator", 0.156), ("COMET", 0.390))
COMET_CAVEAT = (
    "COMET reports layer-sequence coverage of {earlier} for the best earlier generator and "
    "{comet} for COMET; those are Keras layer pairs, not ONNX op pairs, so they are a "
    "yardstick, not a like-for-like comparison."
)


@dataclass(frozen=True, slots=True)
class _Heading:
    text: str


@dataclass(frozen=True, slots=True)
class _Paragraph:
    text: str


@dataclass(frozen=True, slots=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class _Figure:
    """Where HTML draws the growth curves (every format also has them as a table per corpus)."""


_Block = _Heading | _Paragraph | _Table | _Figure


def format_corpus_coverage(
    results: CorpusCoverage | Sequence[CorpusCoverage], fmt: str, *, top: int = 10
) -> str:
    """Render one corpus's coverage, or several side by side.

    Args:
        results: One `CorpusCoverage` or several.
        fmt: ``text``, ``markdown``, ``html`` or ``json``.
        top: How many items each list shows (unused ops, infeasible bigrams, n-grams).

    Returns:
        The report, ending with a newline.

    Raises:
        ConfigError: If `fmt` is not one of `FORMATS`.
        MissingDependencyError: For ``html`` without matplotlib (the ``report`` extra).
    """
    corpora = (results,) if isinstance(results, CorpusCoverage) else tuple(results)
    if fmt == "json":
        document = {"schema_version": SCHEMA_VERSION, "corpora": [c.to_dict() for c in corpora]}
        return json.dumps(document, indent=2) + "\n"
    renderers = {"text": _render_text, "markdown": _render_markdown, "html": _render_html}
    if fmt not in renderers:
        raise ConfigError(
            f"unknown format {escape_controls(str(fmt))!r} (use {', '.join(FORMATS)})"
        )
    return renderers[fmt](_blocks(corpora, top), corpora)


# --- content, the same in every format --------------------------------------------------------


def _blocks(corpora: Sequence[CorpusCoverage], top: int) -> list[_Block]:
    blocks: list[_Block] = [
        _Heading("Corpus coverage"),
        _Paragraph(
            f"Op space and type-feasible bigrams at each corpus's highest opset, from the "
            f"schemas of onnx {onnx.__version__}; Constant and Identity are left out (every "
            "OpGraph splices them out)."
        ),
        _side_by_side(corpora),
        _Paragraph(_comet_line()),
        _Figure(),
    ]
    for corpus in corpora:
        blocks += _details(corpus, top)
    return blocks


def _comet_line() -> str:
    earlier, comet = (f"{share:.1%}" for _, share in COMET_LAYER_SEQUENCE_COVERAGE)
    return COMET_CAVEAT.format(earlier=earlier, comet=comet)


def _side_by_side(corpora: Sequence[CorpusCoverage]) -> _Table:
    def row(title: str, cell) -> tuple[str, ...]:
        return (title, *(cell(c) for c in corpora))

    rows = [
        row("models", lambda c: f"{c.model_count:,}"),
        row("nodes", lambda c: f"{c.node_count:,}"),
        row("highest opset", lambda c: "-" if c.ops.opset is None else str(c.ops.opset)),
        row("ops used, of the op space", lambda c: format_ratio(c.ops.used)),
        row("deprecated ops used", lambda c: f"{len(c.ops.deprecated_used):,}"),
        row("unknown default-domain ops", lambda c: f"{len(c.ops.unknown_used):,}"),
        row("other-domain ops", lambda c: f"{len(c.ops.other_domains):,}"),
        *(row(f"distinct {kind}", lambda c, k=kind: f"{c.distinct(k):,}") for kind in GROWTH_KINDS),
        row("bigram coverage, of type-feasible", lambda c: format_ratio(c.sequences.feasible)),
        row("bigrams present, not feasible", lambda c: f"{len(c.sequences.not_feasible):,}"),
        *(
            row(f"{kind} seen at half the models", lambda c, k=kind: _half(c, k))
            for kind in GROWTH_KINDS
        ),
    ]
    return _Table(("", *(escape_controls(c.name) for c in corpora)), tuple(rows))


def _half(corpus: CorpusCoverage, kind: str) -> str:
    share = corpus.growth.curve(kind).half_share
    return "-" if share is None else f"{share:.1%}"


def _details(corpus: CorpusCoverage, top: int) -> list[_Block]:
    name = escape_controls(corpus.name)
    blocks: list[_Block] = [_Heading(f"{name}")]
    blocks += [_Paragraph(escape_controls(note)) for note in corpus.notes]
    lists = (
        ("unused ops", corpus.ops.unused),
        ("deprecated ops used", corpus.ops.deprecated_used),
        ("unknown default-domain ops used", corpus.ops.unknown_used),
        ("other-domain ops used", corpus.ops.other_domains),
        (
            "bigrams present but not type-feasible",
            tuple(map(format_ngram, corpus.sequences.not_feasible)),
        ),
    )
    for title, items in lists:
        if items:
            blocks.append(_Paragraph(f"{title} ({len(items):,}): {_listed(items, top)}"))
    blocks.append(_growth_table(corpus))
    if corpus.unexercised:
        blocks += _table12(corpus, top)
    return blocks


def _growth_table(corpus: CorpusCoverage) -> _Table:
    """Distinct items after the first k models (seeded order): the growth curves as a table."""
    curves = [corpus.growth.curve(kind) for kind in GROWTH_KINDS]
    points = curves[0].models if curves else ()
    rows = tuple(
        (f"{k:,}", *(f"{curve.distinct[i]:,}" for curve in curves)) for i, k in enumerate(points)
    )
    return _Table(header=("models", *(f"distinct {kind}" for kind in GROWTH_KINDS)), rows=rows)


def _listed(items: Sequence[str], top: int) -> str:
    shown = ", ".join(escape_controls(item) for item in items[:top])
    return shown + (f" ... and {len(items) - top:,} more" if len(items) > top else "")


def _table12(corpus: CorpusCoverage, top: int) -> list[_Block]:
    references = ", ".join(
        f"{escape_controls(r['name'])} ({r['models']:,} models)" for r in corpus.references
    )
    rows = []
    for answer in corpus.unexercised:
        for share in (answer.overall, *answer.by_n):
            rows.append(
                (
                    answer.labelling if share.n is None else "",
                    "all n" if share.n is None else f"{share.n}-grams",
                    f"{answer.mismatching_models:,}" if share.n is None else "",
                    _unexercised(share.mismatching),
                    f"{answer.consistent_models:,}" if share.n is None else "",
                    _unexercised(share.consistent),
                )
            )
    header = (
        "labelling",
        "n",
        "mismatching models",
        "their n-grams never exercised",
        "consistent models",
        "their n-grams never exercised",
    )
    blocks: list[_Block] = [
        _Paragraph(
            "Table 12 row 3, asked directly: which n-grams of the mismatching models does the "
            f"reference never exercise? Reference: {references}."
        ),
        _Table(header, tuple(rows)),
    ]
    for answer in corpus.unexercised:
        blocks.append(_Paragraph(_labelling_line(answer, top)))
    return blocks


def _unexercised(ratio: Ratio) -> str:
    if ratio.total == 0:
        return "no n-grams"
    return f"{ratio.total - ratio.covered:,} of {ratio.total:,} ({1 - ratio.ratio:.1%})"


def _labelling_line(answer: UnexercisedNgrams, top: int) -> str:
    shown = "; ".join(
        f"{format_ngram(u.ngram)} ({u.mismatching_models:,} mismatching, "
        f"{u.consistent_models:,} consistent)"
        for u in answer.ngrams[:top]
    )
    return f"{answer.labelling}: {answer.description}. Top unexercised: {shown or 'none'}."


# --- text -------------------------------------------------------------------------------------


def _render_text(blocks: Sequence[_Block], corpora: Sequence[CorpusCoverage]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            lines += ["", block.text, "=" * len(block.text)] if lines else [block.text]
        elif isinstance(block, _Paragraph):
            lines += ["", block.text]
        elif isinstance(block, _Table):
            lines += ["", *_text_table(block)]
    return "\n".join(lines) + "\n"


def _text_table(table: _Table) -> list[str]:
    rows = (table.header, *table.rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.header))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


# --- Markdown ---------------------------------------------------------------------------------


def _render_markdown(blocks: Sequence[_Block], corpora: Sequence[CorpusCoverage]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            lines += [("# " if not lines else "## ") + _md(block.text), ""]
        elif isinstance(block, _Paragraph):
            lines += [_md(block.text), ""]
        elif isinstance(block, _Table):
            lines += [*_markdown_table(block), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_table(table: _Table) -> list[str]:
    def line(cells) -> str:
        return "| " + " | ".join(_md(cell) for cell in cells) + " |"

    align = "|" + "|".join(["---", *(["---:"] * (len(table.header) - 1))]) + "|"
    return [line(table.header), align, *(line(row) for row in table.rows)]


def _md(text: str) -> str:
    # Cells and paragraphs are already escaped for controls; keep Markdown from reading them.
    for char in "\\|`*_<[]":
        text = text.replace(char, "\\" + char)
    return text


# --- HTML -------------------------------------------------------------------------------------

_STYLE = (
    "body{font-family:sans-serif;max-width:72em;margin:2em auto;line-height:1.4}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.2em .5em}"
    "td:not(:first-child),th:not(:first-child){text-align:right}figure{margin:1em 0}"
)


def _render_html(blocks: Sequence[_Block], corpora: Sequence[CorpusCoverage]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>opseq corpus coverage</title>',
        f"<style>{_STYLE}</style></head><body>",
    ]
    for index, block in enumerate(blocks):
        if isinstance(block, _Heading):
            level = 1 if index == 0 else 2
            parts.append(f"<h{level}>{html.escape(block.text)}</h{level}>")
        elif isinstance(block, _Paragraph):
            parts.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, _Table):
            parts.append(_html_table(block))
        else:
            parts.append(_growth_figure(corpora))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_table(table: _Table) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _growth_figure(corpora: Sequence[CorpusCoverage]) -> str:
    """An inline SVG: distinct items against models, one panel per kind, one line per corpus."""
    matplotlib = import_optional("matplotlib", extra="report")
    from matplotlib.figure import Figure  # the object API: no pyplot state, no backend choice

    figure = Figure(figsize=(3.2 * len(GROWTH_KINDS), 3.2), layout="constrained")
    axes = figure.subplots(1, len(GROWTH_KINDS))
    for ax, kind in zip(axes, GROWTH_KINDS, strict=True):
        plotted = False
        for corpus in corpora:
            curve = corpus.growth.curve(kind)
            # A log axis cannot show zero: a curve starts at its first model with an item.
            points = [(k, d) for k, d in zip(curve.models, curve.distinct, strict=True) if d > 0]
            if points:
                ax.plot(*zip(*points, strict=True), marker=".", label=_plain(corpus.name))
                plotted = True
        ax.set_xscale("log")
        ax.set_yscale("log" if plotted else "linear")
        ax.set_title(f"distinct {kind}")
        ax.set_xlabel("models")
        ax.grid(True, alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize="small")
    stream = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "opseq", "svg.fonttype": "none"}):
        figure.savefig(stream, format="svg", metadata={"Date": None})
    svg = stream.getvalue()
    seed = corpora[0].growth.seed if corpora else 0
    caption = html.escape(f"Growth of distinct items, models in a random order (seed {seed}).")
    return f"<figure>{svg[svg.index('<svg') :]}<figcaption>{caption}</figcaption></figure>"


def _plain(name: str) -> str:
    # Matplotlib reads $...$ as mathematics and hides labels starting with "_"; a name is text.
    text = escape_controls(name).replace("$", r"\$")
    return f" {text}" if text.startswith("_") else text
