"""Human-readable text for analysis results (JSON comes from each result's ``to_dict``).

Every string that comes from a model or a manifest (paths, names, labels, producers, notes) is
written through `escape_controls`: text reports go to terminals and CI logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opseq.analysis import CorpusSummary, ModelAnalysis
from opseq.corpus import TABLE_OUTCOMES, TABLE_VERDICTS, OutcomeTable
from opseq.ngrams import Ngram, to_decimal
from opseq.untrusted import escape_controls

__all__ = [
    "format_corpus_summary",
    "format_model_analysis",
    "format_ngram",
    "format_outcome_table",
    "format_path_count",
    "format_size",
]

_ARROW = " > "
_LONGEST_PATH_HEAD, _LONGEST_PATH_TAIL = 8, 4
# Path counts with more digits are shown in scientific notation with their digit count.
_PATH_COUNT_MAX_DIGITS = 30


def format_ngram(ngram: Ngram) -> str:
    """Join labels with an arrow (labels escaped).

    Examples:
        >>> format_ngram(("Conv", "Relu"))
        'Conv > Relu'
    """
    return _ARROW.join(escape_controls(label) for label in ngram)


def format_path_count(count: int) -> str:
    """Format a path count with thousands separators, or abbreviated when it is very long.

    Examples:
        >>> format_path_count(288230376151711744)
        '288,230,376,151,711,744'
        >>> format_path_count(4**7200)
        '6.791e+4334 (4,335 digits)'
    """
    digits = to_decimal(count)
    if len(digits) <= _PATH_COUNT_MAX_DIGITS:
        return f"{count:,}"
    return f"{digits[0]}.{digits[1:4]}e+{len(digits) - 1} ({len(digits):,} digits)"


def format_size(size: int | None) -> str:
    """Format a byte count with a binary unit.

    Examples:
        >>> format_size(1536)
        '1.5 KiB'
    """
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_model_analysis(analysis: ModelAnalysis, *, top: int | None = 10) -> str:
    """Render one model: summary, op histogram and the top n-grams per length."""
    lines = [escape_controls(analysis.info.path), *_summary_lines(analysis), ""]
    lines.append("  op histogram")
    histogram = sorted(analysis.op_histogram.items(), key=lambda i: (-i[1], i[0]))
    lines.extend(_count_table((escape_controls(op), count) for op, count in histogram))
    for n in range(analysis.ngrams.n_min, analysis.ngrams.n_max + 1):
        ranked = analysis.ngrams.most_common(n, top)
        heading = f"top {len(ranked)} {n}-grams" if top else f"all {n}-grams"
        lines.extend(["", f"  {heading} (count = node paths realising it)"])
        lines.extend(_count_table((format_ngram(g), c) for g, c in ranked) or ["    (none)"])
    return "\n".join(lines) + "\n"


def _summary_lines(analysis: ModelAnalysis) -> list[str]:
    info = analysis.info
    opsets = ", ".join(
        f"{escape_controls(domain)} {version}"
        for domain, version in sorted(info.opset_imports.items())
    )
    producer = f"{info.producer_name} {info.producer_version}".strip() or "(unknown)"
    producer = escape_controls(producer)
    file_line = format_size(info.file_size) + (", structure only" if info.structure_only else "")
    rows = [
        ("file", file_line),
        ("producer", f"{producer}; IR version {info.ir_version}; opsets {opsets}"),
        (
            "graph",
            f"{analysis.nodes} nodes, {analysis.edges} edges, "
            f"{len(analysis.op_histogram)} distinct ops, "
            f"{len(analysis.subgraphs)} subgraphs",
        ),
        ("inputs", _names(analysis.inputs)),
        ("outputs", _names(analysis.outputs)),
        ("paths", f"{format_path_count(analysis.path_count)} input->output paths"),
        ("longest path", _longest_path(analysis.longest_path)),
    ]
    if analysis.ignored:
        ignored = sorted(analysis.ignored.items())
        rows.append(("ignored", ", ".join(f"{escape_controls(op)} {c}" for op, c in ignored)))
    rows.extend(
        (
            "subgraph",
            f"{escape_controls(s.path)} ({escape_controls(s.parent_op)}): {s.nodes} nodes, "
            f"{format_path_count(s.path_count)} paths",
        )
        for s in analysis.subgraphs
    )
    rows.extend(("note", escape_controls(note)) for note in analysis.notes)
    return [f"  {key:<13}{value}" for key, value in rows]


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(escape_controls(name) for name in names[:6])
    return f"{len(names)}: {shown}" + (", ..." if len(names) > 6 else "") if names else "0"


def _longest_path(labels: Sequence[str]) -> str:
    if len(labels) <= _LONGEST_PATH_HEAD + _LONGEST_PATH_TAIL:
        shown = format_ngram(tuple(labels))
    else:
        head, tail = labels[:_LONGEST_PATH_HEAD], labels[-_LONGEST_PATH_TAIL:]
        shown = f"{format_ngram(tuple(head))} > ... > {format_ngram(tuple(tail))}"
    return f"{len(labels)} ops: {shown}"


def _count_table(rows: Iterable[tuple[str, int]]) -> list[str]:
    rows = list(rows)
    width = max((len(f"{count:,}") for _, count in rows), default=1)
    return [f"    {count:>{width},}  {text}" for text, count in rows]


def format_corpus_summary(summary: CorpusSummary, *, failed: int = 0) -> str:
    """Render the aggregate of several models."""
    lines = [f"corpus: {summary.models} models analysed" + (f", {failed} failed" if failed else "")]
    lines.append(f"  distinct ops      {len(summary.distinct_ops)}")
    in_every = ", ".join(escape_controls(op) for op in summary.ops_in_every_model)
    lines.append(f"  in every model    {in_every or '(none)'}")
    per_length = ", ".join(f"{n}-grams {count:,}" for n, count in summary.distinct_ngrams.items())
    lines.append(f"  distinct n-grams  {per_length}")
    for n, shared in summary.shared_ngrams.items():
        lines.extend(["", f"  {n}-grams shared by most models (models containing it)"])
        width = len(f"{summary.models}/{summary.models}")
        lines.extend(
            f"    {f'{count}/{summary.models}':>{width}}  {format_ngram(g)}" for g, count in shared
        )
    return "\n".join(lines) + "\n"


def format_outcome_table(table: OutcomeTable, *, markdown: bool = False) -> str:
    """Render outcomes as the study's Table 11: one column per converter x source.

    Each cell is ``count (percent of the column's total)``. When the corpus records calibrated
    verdicts, the models that ran are also split by the study's rule (abs >= 1e-7) and by
    verdict (ok, numerical, semantic, unstable), and ``mismatch`` is the calibrated label
    (semantic). The last rows give the median and maximum of the max abs diffs of the models
    that ran.
    """
    header = [
        "outcome",
        *(escape_controls(f"{converter} {source}") for converter, source in table.groups),
    ]
    rows = [["total models", *(f"{table.total(g):,}" for g in table.groups)]]
    for outcome in TABLE_OUTCOMES:
        if (
            any(table.counts[g].get(outcome, 0) for g in table.groups)
            or outcome in TABLE_OUTCOMES[:5]
        ):
            rows.append([outcome.value, *(_count_cell(table, g, outcome) for g in table.groups)])
    if table.verdicts:
        rows.append(
            [
                "mismatch at abs >= 1e-7 (the study's rule)",
                *(_cell(table.study_mismatch.get(g, 0), table.total(g)) for g in table.groups),
            ]
        )
        for verdict in TABLE_VERDICTS:
            rows.append(
                [
                    f"verdict {verdict}",
                    *(
                        _cell(table.verdicts.get(g, {}).get(verdict, 0), table.total(g))
                        for g in table.groups
                    ),
                ]
            )
    rows.append(
        [
            "median max abs diff",
            *(_diff_cell(table.max_abs_diffs[g], median=True) for g in table.groups),
        ]
    )
    rows.append(
        [
            "largest max abs diff",
            *(_diff_cell(table.max_abs_diffs[g], median=False) for g in table.groups),
        ]
    )
    return _markdown_table(header, rows) if markdown else _text_table(header, rows)


def _count_cell(table: OutcomeTable, group: tuple[str, str], outcome) -> str:
    return _cell(table.counts[group].get(outcome, 0), table.total(group))


def _cell(count: int, total: int) -> str:
    return f"{count:,} ({100 * count / total:.0f}%)" if total else "0"


def _diff_cell(values: tuple[float, ...], *, median: bool) -> str:
    if not values:
        return "-"
    return f"{(values[len(values) // 2] if median else values[-1]):.2g}"


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines) + "\n"
