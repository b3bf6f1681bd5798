"""The hypothesis report as one self-contained HTML page.

`render_html` reads the JSON-safe report dict (the JSON contract of `hypotheses.report`), not the
result classes, so a report written by an older or newer version renders as long as the keys it
uses are there; optional parts (prediction, the sweep, the reference corpus, new keys) are read
with ``.get`` and shown as missing when absent. The page has an inline stylesheet, figures as
``data:`` PNG images and no scripts or external resources. Every string taken from the report is
escaped with `html.escape`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypotheses import html_parts as h
from hypotheses.figures import roc_png, sweep_png, volcano_png
from hypotheses.formatting import (
    DASH,
    as_number,
    format_count,
    format_odds_ratio,
    format_p,
)
from hypotheses.html_power import power_parts, twins_section

__all__ = ["render_html"]

_TOP_OPERATORS = 30
_TOP_NGRAMS = 50
_TEST_HEADERS = (
    "mismatch with",
    "ok with",
    "OR [95% CI]",
    "p",
    "q",
    "adjusted OR [95% CI]",
    "adjusted p",
    "adjusted q",
    "adjusted test",
    "MDOR",
)

_SWEEP_HEADERS = {
    "rule": "rule",
    "atol": "atol",
    "rtol": "rtol",
    "mismatch": "mismatch",
    "ok": "ok",
    "operators_significant": "operators sig.",
    "operators_significant_adjusted": "operators sig. adj.",
    "ngrams_tested": "n-grams tested",
    "ngrams_significant": "n-grams sig.",
    "ngrams_significant_adjusted": "n-grams sig. adj.",
    "ngrams_minimal": "minimal n-grams",
    "top_ngram": "top n-gram",
    "sequences_associated": "sequences associated",
    "ngrams_family": "n-grams in the Tarone family",
    "ngrams_exact": "n-grams tested exactly",
    "mdor_median": "median MDOR",
    "answer": "sequences verdict",
    "note": "note",
}


def render_html(report: dict) -> str:
    """Render a hypothesis report as one self-contained HTML5 page.

    Args:
        report: The JSON-safe report (``HypothesisReport.to_dict()`` or the parsed JSON file).

    Returns:
        The page: inline CSS, figures as base64 ``data:`` PNGs, no scripts, no external links.

    Raises:
        MissingDependencyError: If the report has data for a figure and matplotlib (the
            ``report`` extra) is not installed.
    """
    sections = (
        _verdicts_section,
        _corpus_section,
        _operators_section,
        _sequences_section,
        twins_section,
        _prediction_section,
        _table12_section,
        _sweep_section,
    )
    body = [_header(report), *(section(report) for section in sections), _footer(report)]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>opseq hypothesis report</title>\n<style>{h.STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# --- number formatting ----------------------------------------------------------------------


def _header(report: dict) -> str:
    return (
        "<header>\n<h1>opseq hypothesis report</h1>\n"
        + h.p(_summary(report), "summary")
        + ("\n</header>")
    )


def _summary(report: dict) -> str:
    corpus = report.get("corpus") or {}
    config = report.get("config") or {}
    rule = config.get("tolerance") or DASH
    return (
        f"{format_count(corpus.get('rows'))} manifest rows, "
        f"{format_count(corpus.get('labelled'))} labelled: "
        f"{format_count(corpus.get('mismatch'))} mismatch and {format_count(corpus.get('ok'))} ok "
        f"under {rule}; {format_count(corpus.get('distinct_operators'))} operators, "
        f"{format_count(corpus.get('distinct_ngrams'))} distinct n-grams."
    )


def _verdicts_section(report: dict) -> str:
    verdicts = report.get("verdicts") or []
    parts = [_verdict(v) for v in verdicts] or [h.p("No verdicts in this report.", "note")]
    return h.section("Verdicts", "verdicts", parts)


def _verdict(verdict: dict) -> str:
    answer = str(verdict.get("answer") or "undetermined")
    css = h.ANSWER_CLASSES.get(answer.lower(), "other")
    return (
        f'<div class="verdict"><p class="question"><span class="badge {css}">{h.e(answer)}</span>'
        f"{h.e(verdict.get('question') or verdict.get('key') or '')}</p>"
        f'<p class="evidence">{h.e(verdict.get("evidence") or "")}</p></div>'
    )


def _corpus_section(report: dict) -> str:
    corpus = report.get("corpus") or {}
    config = report.get("config") or {}
    rule = config.get("tolerance") or DASH
    nodes = corpus.get("median_nodes") or {}
    rows = [
        ("manifest rows", corpus.get("rows")),
        ("recorded outcomes", corpus.get("outcomes") or {}),
        ("labelled models", corpus.get("labelled")),
        (f"mismatch under {rule}", corpus.get("mismatch")),
        (f"ok under {rule}", corpus.get("ok")),
        ("recorded as mismatch", corpus.get("recorded_mismatch")),
        ("excluded", corpus.get("excluded") or "none"),
        ("converters", corpus.get("converters") or {}),
    ]
    if "source_models" in corpus:
        rows.append(("source models", corpus.get("source_models")))
    rows += _units_rows(corpus.get("effective_units") or {})
    rows += [
        ("median nodes, mismatch", nodes.get("mismatch")),
        ("median nodes, ok", nodes.get("ok")),
        ("distinct operators", corpus.get("distinct_operators")),
        ("distinct n-grams", corpus.get("distinct_ngrams")),
        ("reference corpus", corpus.get("reference") or "none"),
    ]
    return h.section(
        "Corpus",
        "corpus",
        [h.key_values(rows), "<h3>Configuration</h3>", h.key_values(_config_rows(config))],
    )


def _config_rows(config: dict) -> list[tuple[str, Any]]:
    n = config.get("n")
    n_range = f"{n[0]}{DASH}{n[1]}" if isinstance(n, list) and len(n) == 2 else n
    folds, repeats = config.get("folds"), config.get("repeats")
    return [
        ("tolerance rule", config.get("tolerance")),
        ("n-gram lengths", n_range),
        ("minimum support (models)", config.get("min_support")),
        ("alpha (false discovery rate)", config.get("alpha")),
        ("folds \u00d7 repeats", f"{h.plain(folds)} \u00d7 {h.plain(repeats)}"),
        ("seed", config.get("seed")),
    ]


def _alpha(report: dict) -> float:
    alpha = as_number((report.get("config") or {}).get("alpha"))
    return 0.05 if alpha is None else alpha


def _operators_section(report: dict) -> str:
    operators = report.get("operators") or {}
    sets = operators.get("sets") or {}
    tests = operators.get("tests") or []
    alpha = _alpha(report)
    parts = [
        h.key_values(
            [
                ("in mismatching models", sets.get("mismatch")),
                ("in ok models", sets.get("ok")),
                ("shared", sets.get("shared")),
                ("mismatch only", h.listing(sets.get("mismatch_only") or [])),
                ("ok only", h.listing(sets.get("ok_only") or [])),
                ("untestable", h.listing(operators.get("untestable") or [])),
                (f"significant at q \u2264 {alpha:g}", operators.get("significant")),
                ("significant after size adjustment", operators.get("significant_adjusted")),
            ]
        )
    ]
    parts += power_parts(operators, "operators")
    if operators.get("skipped"):
        parts.append(h.p(f"Not tested: {operators['skipped']}.", "note"))
    if tests:
        shown = tests[:_TOP_OPERATORS]
        parts.append(f"<h3>Top {len(shown)} of {len(tests)} operator tests</h3>")
        parts.append(_tests_table("operator", shown, alpha, "op"))
    else:
        parts.append(h.p("No operator was tested.", "note"))
    return h.section("Operators", "operators", parts)


def _tests_table(first: str, tests: Sequence[dict], alpha: float, key: str) -> str:
    rows = [_test_row(test, key) for test in tests]
    classes = [_significance_class(test, alpha) for test in tests]
    return h.table(
        (first, *_TEST_HEADERS),
        rows,
        numeric=range(1, len(_TEST_HEADERS) + 1),
        row_classes=classes,
        caption=(
            "In the report's order (most significant after size adjustment first); bold: "
            f"adjusted q \u2264 {alpha:g}. OR: odds ratio of mismatch given presence."
        ),
    )


def _test_row(test: dict, key: str) -> list[str]:
    label = test.get("op") if key == "op" else h.ngram(test.get("ngram"))
    return [
        str(label) if label is not None else DASH,
        format_count(test.get("mismatch_with")),
        format_count(test.get("ok_with")),
        h.interval(
            test.get("odds_ratio"), test.get("ci_low"), test.get("ci_high"), format_odds_ratio
        ),
        format_p(test.get("p_value")),
        format_p(test.get("q_value")),
        h.interval(
            test.get("odds_ratio_adjusted"),
            test.get("ci_low_adjusted"),
            test.get("ci_high_adjusted"),
            format_odds_ratio,
        ),
        format_p(test.get("p_value_adjusted")),
        format_p(test.get("q_value_adjusted")),
        str(test.get("method_adjusted") or DASH),
        format_odds_ratio(test.get("min_detectable_or")),
    ]


def _significance_class(test: dict, alpha: float) -> str:
    q = as_number(test.get("q_value_adjusted"))
    return "sig" if q is not None and q <= alpha else ""


def _sequences_section(report: dict) -> str:
    sequences = report.get("sequences") or {}
    tests = sequences.get("tests") or []
    minimal = sequences.get("minimal") or []
    alpha = _alpha(report)
    parts = [h.key_values(_sequence_counts(sequences, alpha))]
    if sequences.get("adjustment"):
        parts.append(h.p(f"Size adjustment: {sequences['adjustment']}.", "note"))
    if sequences.get("skipped"):
        parts.append(h.p(f"Not tested: {sequences['skipped']}.", "note"))
    parts += power_parts(sequences, "n-grams")
    if tests:
        parts.append(
            h.figure(
                volcano_png(tests, alpha),
                "Volcano plot of the n-gram tests: size-adjusted log odds ratio against "
                "-log10 adjusted q-value",
                f"Each point is one tested n-gram; red: adjusted q \u2264 {alpha:g}; dashed line: "
                f"q = {alpha:g}. The tests are one-sided (mismatch more likely with the n-gram).",
            )
        )
    if minimal:
        shown = minimal[:_TOP_NGRAMS]
        parts.append(f"<h3>Top {len(shown)} of {len(minimal)} minimal significant n-grams</h3>")
        parts.append(_tests_table("n-gram", shown, alpha, "ngram"))
    else:
        parts.append(h.p("No n-gram is significant after size adjustment.", "note"))
    parts.append(_explained_note(sequences.get("explained_by") or []))
    return h.section("Sequences", "sequences", parts)


def _units_rows(units: dict) -> list[tuple[str, Any]]:
    if not units:
        return []
    return [
        ("source models with a mismatching conversion", units.get("mismatching_clusters")),
        ("intraclass correlation of the label", _plain_float(units.get("icc"))),
        (
            "effective sample (conversions / design effect)",
            format_count(round(units.get("effective_rows") or 0)),
        ),
        (
            "twin pairs: both mismatch / neither / discordant",
            f"{format_count(units.get('concordant_mismatch'))} / "
            f"{format_count(units.get('concordant_ok'))} / {format_count(units.get('discordant'))}",
        ),
    ]


def _sequence_counts(sequences: dict, alpha: float) -> list[tuple[str, Any]]:
    n = sequences.get("n")
    lengths = f"{n[0]}{DASH}{n[1]}" if isinstance(n, list) and len(n) == 2 else n
    support = h.plain(sequences.get("min_support"))
    return [
        ("n-gram lengths", lengths),
        ("candidates (distinct n-grams)", sequences.get("candidates")),
        (f"tested (in \u2265 {support} models)", sequences.get("tested")),
        (f"significant at q \u2264 {alpha:g}", sequences.get("significant")),
        ("significant after size adjustment", sequences.get("significant_adjusted")),
        ("minimal significant", len(sequences.get("minimal") or [])),
    ]


def _explained_note(explained: Sequence[dict]) -> str:
    if not explained:
        return h.p(
            "No significant n-gram was explained by its parts (contained in exactly the models "
            "of a sub-n-gram, or not significant given its significant sub-n-grams and operators).",
            "note",
        )
    examples = "; ".join(
        f"{h.ngram(item.get('ngram'))} by {h.ngram(item.get('by'))}" for item in explained[:5]
    )
    more = ", \u2026" if len(explained) > 5 else ""
    return h.p(
        f"{len(explained):,} significant n-gram(s) were explained by their parts (contained in "
        "exactly the models of a sub-n-gram, or not significant given their significant "
        f"sub-n-grams and operators) and are left out of the minimal set "
        f"(e.g. {examples}{more}).",
        "note",
    )


def _prediction_section(report: dict) -> str:
    prediction = report.get("prediction")
    if not prediction:
        return h.section("Prediction", "prediction", [h.p("Prediction was not run.", "note")])
    auc = prediction.get("auc") or {}
    parts = []
    if prediction.get("skipped"):
        parts.append(h.p(f"Skipped: {prediction['skipped']}", "note"))
    parts.append(h.p(_prediction_method(prediction), "note"))
    if auc:
        parts.append(_auc_table(auc))
    if prediction.get("gains"):
        parts.append(_gains_table(prediction["gains"]))
    if any((entry or {}).get("roc") for entry in auc.values()):
        parts.append(
            h.figure(
                roc_png(auc),
                "ROC curves of mismatch prediction for each feature set",
                "Out-of-fold ROC of each feature set; legend: mean AUC over folds and its "
                "interval.",
            )
        )
    return h.section("Prediction", "prediction", parts)


def _prediction_method(prediction: dict) -> str:
    return (
        f"Model: {prediction.get('model') or DASH}; "
        f"{h.plain(prediction.get('folds'))} folds \u00d7 {h.plain(prediction.get('repeats'))} "
        f"repeats; interval: {prediction.get('interval') or DASH}."
    )


def _auc_table(auc: dict) -> str:
    rows = [
        (
            name,
            format_count((entry or {}).get("features")),
            h.interval(
                (entry or {}).get("auc"),
                (entry or {}).get("ci_low"),
                (entry or {}).get("ci_high"),
                h.auc,
            ),
        )
        for name, entry in auc.items()
    ]
    return h.table(("feature set", "features", "AUC [CI]"), rows, numeric=(1, 2))


def _gains_table(gains: Sequence[dict]) -> str:
    rows = [
        (
            f"{gain.get('larger', DASH)} over {gain.get('smaller', DASH)}",
            h.interval(gain.get("gain"), gain.get("ci_low"), gain.get("ci_high"), h.signed),
            _plain_float(gain.get("t")),
            format_p(gain.get("p_value")),
        )
        for gain in gains
    ]
    return h.table(
        ("comparison", "AUC gain [CI]", "t", "p (one-sided)"),
        rows,
        numeric=(1, 2, 3),
        caption="Gain of the richer feature set, paired by fold.",
    )


def _plain_float(value: Any) -> str:
    number = as_number(value)
    return DASH if number is None else f"{number:.2f}"


def _table12_section(report: dict) -> str:
    columns = [c for c in report.get("table12") or [] if isinstance(c, dict)]
    if not columns:
        return h.section("Table 12", "table12", [h.p("Table 12 was not computed.", "note")])
    parts = [_table12_table(columns), "<h3>Most shared mismatch-only sequences</h3>"]
    parts += [_table12_examples(column) for column in columns]
    return h.section("Table 12", "table12", parts)


def _table12_table(columns: Sequence[dict]) -> str:
    names = list(dict.fromkeys(name for c in columns for name in (c.get("rows") or {})))
    rows = [("mismatching models", *(format_count(c.get("mismatching_models")) for c in columns))]
    for name in names:
        rows.append((name, *(_unique_reduced((c.get("rows") or {}).get(name)) for c in columns)))
    rows.append(
        (
            "mismatching models with a mismatch-only sequence",
            *(format_count(c.get("models_with_mismatch_only")) for c in columns),
        )
    )
    return h.table(
        ("", *(str(c.get("group", DASH)) for c in columns)),
        rows,
        numeric=range(1, len(columns) + 1),
        row_header=True,
        caption=(
            "Cells: unique / reduced sequences (n-grams of length \u2265 3; reduced keeps the "
            "smallest sequences of each set)."
        ),
    )


def _unique_reduced(cell: Any) -> str:
    if not isinstance(cell, dict):
        return DASH
    return f"{format_count(cell.get('unique'))} / {format_count(cell.get('reduced'))}"


def _table12_examples(column: dict) -> str:
    examples = column.get("examples") or []
    title = f"<h4>{h.e(column.get('group', DASH))}</h4>"
    if not examples:
        return title + h.p("none", "note")
    items = "".join(
        f'<li><span class="seq">{h.e(h.ngram(ex.get("ngram")))}</span> '
        f"({h.e(format_count(ex.get('models')))} models)</li>"
        for ex in examples
    )
    return f"{title}<ol>{items}</ol>"


def _sweep_section(report: dict) -> str:
    rows = [row for row in report.get("tolerance_sweep") or [] if isinstance(row, dict)]
    if not rows:
        return h.section("Tolerance sweep", "sweep", [h.p("No tolerance sweep was run.", "note")])
    keys = list(dict.fromkeys(key for row in rows for key in row))
    headers = [_SWEEP_HEADERS.get(key, key.replace("_", " ")) for key in keys]
    numeric = [i for i, key in enumerate(keys) if _is_numeric_column(rows, key)]
    table = h.table(
        headers, ([h.plain(row.get(key)) for key in keys] for row in rows), numeric=numeric
    )
    figure = h.figure(
        sweep_png(rows),
        "Tolerance sweep: model counts and significant tests for each tolerance rule",
        "Top: models labelled mismatch and ok; bottom: significant n-grams and operators. "
        "Open markers: rules with a relative part, drawn at their absolute tolerance.",
    )
    return h.section("Tolerance sweep", "sweep", [table, figure])


def _is_numeric_column(rows: Sequence[dict], key: str) -> bool:
    values = [row.get(key) for row in rows if row.get(key) is not None]
    return bool(values) and all(as_number(v) is not None for v in values)


def _footer(report: dict) -> str:
    return (
        f"<footer>opseq hypothesis report \u00b7 schema version "
        f"{h.e(report.get('schema_version', DASH))}</footer>"
    )
