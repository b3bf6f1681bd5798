"""The hypothesis report as Markdown, written to read well in a pull request or a terminal.

Rendered from the JSON dict (`HypothesisReport.to_dict`), so a report saved as JSON can be
rendered again later without the corpus.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from hypotheses.formatting import DASH, format_odds_ratio, format_p

__all__ = ["markdown_table", "render_markdown"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, right: int = 1) -> str:
    """A GitHub Markdown table; columns from index `right` on are right-aligned.

    Examples:
        >>> print(markdown_table(["op", "n"], [["Relu", 3]]))
        | op | n |
        | --- | ---: |
        | Relu | 3 |
    """
    align = ["---" if i < right else "---:" for i in range(len(header))]
    lines = [_row(header), _row(align)]
    lines += [_row([_cell(v) for v in row]) for row in rows]
    return "\n".join(lines)


def render_markdown(report: dict[str, Any], *, top: int = 20) -> str:
    """Render the report; `top` bounds the rows of the per-feature tables."""
    sections = [
        _title(report),
        _verdicts(report["verdicts"]),
        _corpus(report),
        _operators(report["operators"], top),
        _sequences(report["sequences"], top),
        _prediction(report.get("prediction")),
        _table12(report.get("table12") or []),
        _sweep(report.get("tolerance_sweep") or []),
        f"<sub>opseq hypothesis report, schema {report['schema_version']}</sub>",
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _title(report: dict[str, Any]) -> str:
    corpus, config = report["corpus"], report["config"]
    return (
        f"# Hypothesis report\n\n{corpus['labelled']} labelled models "
        f"({corpus['mismatch']} mismatch, {corpus['ok']} ok under `{config['tolerance']}`), "
        f"n-grams of length {config['n'][0]}..{config['n'][1]} in at least "
        f"{config['min_support']} models, false discovery rate {config['alpha']:g}."
    )


def _verdicts(verdicts: list[dict[str, str]]) -> str:
    rows = [[v["question"], f"**{v['answer']}**", v["evidence"]] for v in verdicts]
    return "## Verdicts\n\n" + markdown_table(["question", "answer", "evidence"], rows, right=9)


def _corpus(report: dict[str, Any]) -> str:
    corpus = report["corpus"]
    outcomes = ", ".join(f"{k} {v}" for k, v in corpus["outcomes"].items())
    excluded = ", ".join(f"{k}: {v}" for k, v in corpus["excluded"].items()) or "none"
    converters = ", ".join(f"{k} {v}" for k, v in corpus["converters"].items())
    lines = [
        "## Corpus",
        "",
        f"- rows: {corpus['rows']} ({outcomes})",
        f"- labelled (ok or mismatch, model on disk): {corpus['labelled']}, from "
        f"{corpus.get('source_models', corpus['labelled'])} source models; converters: "
        f"{converters}",
        f"- under `{report['config']['tolerance']}`: {corpus['mismatch']} mismatch, "
        f"{corpus['ok']} ok (the manifest recorded {corpus['recorded_mismatch']} mismatch)",
        f"- median nodes: mismatch {corpus['median_nodes']['mismatch']:g}, "
        f"ok {corpus['median_nodes']['ok']:g}",
        f"- excluded rows: {excluded}",
        f"- distinct operators {corpus['distinct_operators']}, "
        f"distinct n-grams (n >= 2) {corpus['distinct_ngrams']}",
    ]
    reference = corpus.get("reference")
    if reference:
        lines.append(
            f"- reference corpus: {reference.get('path')} "
            f"({reference.get('models')} models, {reference.get('unreadable', 0)} unreadable)"
        )
    return "\n".join(lines)


def _test_rows(tests: list[dict[str, Any]], key: str, top: int) -> list[list[str]]:
    rows = []
    for t in tests[:top]:
        name = t[key] if key == "op" else " > ".join(t[key])
        rows.append(
            [
                f"`{name}`",
                t["mismatch_with"],
                t["ok_with"],
                _ratio(t["odds_ratio"], t["ci_low"], t["ci_high"]),
                format_p(t["q_value"]),
                _ratio(t["odds_ratio_adjusted"], t["ci_low_adjusted"], t["ci_high_adjusted"]),
                format_p(t["p_value_adjusted"]),
                format_p(t["q_value_adjusted"]),
            ]
        )
    return rows


_TEST_HEADER = ["", "mismatch with", "ok with", "OR [95% CI]", "q", "adj. OR [95% CI]", "adj. p"]


def _operators(operators: dict[str, Any], top: int) -> str:
    sets = operators["sets"]
    text = [
        "## Operators",
        "",
        f"Mismatching models use {sets['mismatch']} operators, ok models {sets['ok']}; "
        f"{sets['shared']} are shared. Mismatch only: {_names(sets['mismatch_only'])}. "
        f"Ok only: {_names(sets['ok_only'])}.",
        "",
        f"{operators['significant']} operators are significant at the FDR unadjusted, "
        f"{operators['significant_adjusted']} after adjusting for size "
        "(one-sided Fisher exact test; score test given size; Benjamini-Hochberg q).",
    ]
    if operators["tests"]:
        header = ["operator", *_TEST_HEADER[1:], "adj. q"]
        text += ["", markdown_table(header, _test_rows(operators["tests"], "op", top))]
    return "\n".join(text)


def _sequences(sequences: dict[str, Any], top: int) -> str:
    explained = len(sequences.get("explained_by") or [])
    text = [
        "## Sequences",
        "",
        f"{sequences['tested']} of {sequences['candidates']} n-grams of length "
        f"{sequences['n'][0]}..{sequences['n'][1]} occur in at least {sequences['min_support']} "
        f"models (and not in all) and were tested. Significant: {sequences['significant']} "
        f"unadjusted, **{sequences['significant_adjusted']} adjusted for size** "
        f"({sequences['adjustment']}).",
        "",
        f"Minimal significant n-grams: {len(sequences['minimal'])}; {explained} other significant "
        "n-grams are left out because they contain a significant sub-n-gram or occur in exactly "
        "the models of one.",
    ]
    if sequences["minimal"]:
        header = ["n-gram", *_TEST_HEADER[1:], "adj. q"]
        text += ["", markdown_table(header, _test_rows(sequences["minimal"], "ngram", top))]
    elif sequences["tests"]:
        text += ["", "Most significant n-grams (none passes the FDR after adjustment):", ""]
        header = ["n-gram", *_TEST_HEADER[1:], "adj. q"]
        text.append(markdown_table(header, _test_rows(sequences["tests"], "ngram", min(top, 10))))
    return "\n".join(text)


def _prediction(prediction: dict[str, Any] | None) -> str:
    if prediction is None:
        return ""
    if prediction.get("skipped"):
        return f"## Prediction\n\nNot run: {prediction['skipped']}."
    rows = [
        [
            name,
            estimate["features"],
            _ratio(estimate["auc"], estimate["ci_low"], estimate["ci_high"]),
        ]
        for name, estimate in prediction["auc"].items()
    ]
    gains = [
        [
            f"{g['larger']} over {g['smaller']}",
            f"{g['gain']:+.3f} [{g['ci_low']:+.3f}, {g['ci_high']:+.3f}]",
            f"{g['t']:.2f}",
            format_p(g["p_value"]),
        ]
        for g in prediction["gains"]
    ]
    return "\n".join(
        [
            "## Prediction",
            "",
            f"{prediction['model']}, {prediction['folds']} folds x {prediction['repeats']} "
            f"repeats; intervals: {prediction['interval']}.",
            "",
            markdown_table(["features", "count", "ROC AUC [95% CI]"], rows),
            "",
            markdown_table(["gain", "AUC gain [95% CI]", "t", "p (gain > 0)"], gains),
        ]
    )


def _table12(columns: list[dict[str, Any]]) -> str:
    if not columns:
        return ""
    row_names = list(columns[0]["rows"])
    header = ["set (n >= 3)", *(c["group"] for c in columns)]
    rows = [["mismatching models", *(c["mismatching_models"] for c in columns)]]
    for name in row_names:
        cells = []
        for c in columns:
            unique, reduced = c["rows"][name]["unique"], c["rows"][name]["reduced"]
            cells.append(f"{unique:,}" if reduced is None else f"{unique:,} / {reduced:,}")
        rows.append([name, *cells])
    rows.append(
        [
            "mismatching models with a mismatch-only sequence",
            *(c["models_with_mismatch_only"] for c in columns),
        ]
    )
    examples = [
        f"- {c['group']}: "
        + "; ".join(f"`{' > '.join(e['ngram'])}` ({e['models']})" for e in c["examples"][:5])
        for c in columns
        if c["examples"]
    ]
    return "\n".join(
        [
            "## Table 12: shared operator sequences",
            "",
            "Cells are unique / reduced (smallest shared subsequences) counts.",
            "",
            markdown_table(header, rows),
            *(["", "Most shared mismatch-only sequences (reduced; models):", "", *examples]
              if examples else []),
        ]
    )  # fmt: skip


def _sweep(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    header = [
        "rule",
        "mismatch",
        "ok",
        "ops sig.",
        "ops adj.",
        "n-grams sig.",
        "n-grams adj.",
        "minimal",
        "sequences?",
    ]
    body = [
        [
            f"`{r['rule']}`",
            r["mismatch"],
            r["ok"],
            r["operators_significant"],
            r["operators_significant_adjusted"],
            r["ngrams_significant"],
            r["ngrams_significant_adjusted"],
            r["ngrams_minimal"],
            r["note"] or ("yes" if r["sequences_associated"] else "no"),
        ]
        for r in rows
    ]
    return "## Tolerance sweep\n\n" + markdown_table(header, body)


def _ratio(value: float | None, low: float | None, high: float | None) -> str:
    return f"{format_odds_ratio(value)} [{format_odds_ratio(low)}, {format_odds_ratio(high)}]"


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) if names else "none"


def _cell(value: Any) -> str:
    if value is None:
        return DASH
    return str(value).replace("|", "\\|").replace("\n", " ")


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
