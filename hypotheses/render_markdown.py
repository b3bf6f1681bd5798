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
        _twins(report.get("twins"), top),
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
        f"- median nodes: mismatch {_number(corpus['median_nodes']['mismatch'])}, "
        f"ok {_number(corpus['median_nodes']['ok'])}",
        *_units(corpus.get("effective_units")),
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


def _units(units: dict[str, Any] | None) -> list[str]:
    if not units:
        return []
    mismatching, ok = units["mismatching_clusters"], units["ok_clusters"]
    return [
        f"- effective units: {units['clusters']:,} source models ({mismatching:,} with a "
        f"mismatching conversion, {ok:,} without); intraclass correlation "
        f"of the label within source models {units['icc']:.2f}, design effect "
        f"{units['design_effect']:.2f}, effective sample {units['effective_rows']:,.0f} of "
        f"{units['rows']:,} conversions",
        f"- twin pairs: {units['pairs']:,} ({units['concordant_mismatch']:,} mismatch in both "
        f"exports, {units['concordant_ok']:,} in neither, {units['discordant']:,} discordant)",
    ]


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
                t.get("method_adjusted") or DASH,
                format_p(t["p_value_adjusted"]),
                format_p(t["q_value_adjusted"]),
                format_odds_ratio(t.get("min_detectable_or")),
            ]
        )
    return rows


_TEST_HEADER = [
    "",
    "mismatch with",
    "ok with",
    "OR [95% CI]",
    "q",
    "adj. OR [95% CI]",
    "adj. test",
    "adj. p",
    "adj. q",
    "MDOR",
]


def _power(section: dict[str, Any], what: str) -> list[str]:
    """What the family could see: Tarone's screen and the minimum detectable odds ratios."""
    tarone, power = section.get("tarone"), section.get("power")
    if not tarone or not power:
        return []
    quantiles = power["mdor_quantiles"]
    lines = [
        "",
        f"Tarone's rule: {tarone['family']:,} of {power['tested']:,} {what} can reach "
        f"significance and form the family (K = {tarone['k']:,}); {tarone['excluded']:,} cannot "
        "at any effect size and are left out. Minimum detectable odds ratio (MDOR) at "
        f"{power['power']:.0%} power and per-test alpha {format_p(power['per_test_alpha'])}: "
        f"median {format_odds_ratio(quantiles['50%'])} (10%: {format_odds_ratio(quantiles['10%'])}"
        f", 90%: {format_odds_ratio(quantiles['90%'])}); {power['powered']:,} could show OR "
        f"{power['effect_that_matters']:g}, the effect that matters, so "
        + ("a negative answer is supported." if power["sufficient"] else
           "nothing significant here is **not** evidence of no effect.")
    ]  # fmt: skip
    if power["bands"]:
        rows = [
            [
                f"{b['prevalence'][0]:.0%}{DASH}{b['prevalence'][1]:.0%}",
                f"{b['features']:,}",
                format_odds_ratio(b["median_mdor"]),
                f"{b['powered']:,}",
            ]
            for b in power["bands"]
        ]
        header = ["carried by (share of source models)", what, "median MDOR",
                  f"MDOR <= {power['effect_that_matters']:g}"]  # fmt: skip
        lines += ["", markdown_table(header, rows)]
    return lines


def _operators(operators: dict[str, Any], top: int) -> str:
    sets = operators["sets"]
    text = [
        "## Operators",
        "",
        f"Mismatching models use {sets['mismatch']} operators, ok models {sets['ok']}; "
        f"{sets['shared']} are shared. Mismatch only: {_names(sets['mismatch_only'])}. "
        f"Ok only: {_names(sets['ok_only'])}.",
        "",
    ]
    if operators.get("skipped"):
        return "\n".join([*text, f"Not tested: {operators['skipped']}."])
    text.append(
        f"{operators['significant']} operators are significant at the FDR unadjusted, "
        f"{operators['significant_adjusted']} after adjusting for size "
        "(one-sided Fisher exact test; score test given size, or the exact stratified test on "
        "source models where a cell is sparse; Benjamini-Hochberg q within the Tarone family)."
    )
    text += _power(operators, "operators")
    if operators["tests"]:
        header = ["operator", *_TEST_HEADER[1:]]
        text += ["", markdown_table(header, _test_rows(operators["tests"], "op", top))]
    return "\n".join(text)


def _sequences(sequences: dict[str, Any], top: int) -> str:
    explained = len(sequences.get("explained_by") or [])
    text = ["## Sequences", ""]
    if sequences.get("skipped"):
        return "\n".join([*text, f"Not tested: {sequences['skipped']}."])
    methods = sequences.get("methods") or {}
    conditional = [c for c in sequences.get("conditional") or [] if c.get("given")]
    text += [
        f"{sequences['tested']} of {sequences['candidates']} n-grams of length "
        f"{sequences['n'][0]}..{sequences['n'][1]} occur in at least {sequences['min_support']} "
        f"models (and not in all) and were tested ({methods.get('score', 0):,} by the score test, "
        f"{methods.get('exact', 0):,} by the exact test). Significant: "
        f"{sequences['significant']} unadjusted, **{sequences['significant_adjusted']} adjusted "
        f"for size** ({sequences['adjustment']}).",
        *_power(sequences, "n-grams"),
        "",
        f"Minimal significant n-grams: {len(sequences['minimal'])}; {explained} other significant "
        "n-grams are explained by their parts: contained in exactly the models of a sub-n-gram, "
        f"or not significant given their significant sub-n-grams and operators "
        f"({len(conditional)} such conditional tests).",
    ]
    if sequences["minimal"]:
        header = ["n-gram", *_TEST_HEADER[1:]]
        text += ["", markdown_table(header, _test_rows(sequences["minimal"], "ngram", top))]
    elif sequences["tests"]:
        text += ["", "Most significant n-grams (none passes the FDR after adjustment):", ""]
        header = ["n-gram", *_TEST_HEADER[1:]]
        text.append(markdown_table(header, _test_rows(sequences["tests"], "ngram", min(top, 10))))
    return "\n".join(text)


def _twins(twins: dict[str, Any] | None, top: int) -> str:
    if not twins:
        return ""
    text = [
        "## Twin pairs",
        "",
        f"{twins['pairs']:,} source models were converted by two converters: "
        f"{twins['concordant_mismatch']:,} mismatch in both exports, {twins['concordant_ok']:,} "
        f"in neither, **{twins['discordant']:,} discordant**. On the discordant pairs, "
        f"{twins['method']}: {twins['tested']:,} n-grams differ within some pair, "
        f"{twins['significant']:,} significant.",
        *_power(twins, "n-grams"),
    ]
    tests = twins.get("tests") or []
    if tests:
        rows = [
            [
                f"`{' > '.join(t['ngram'])}`",
                t["mismatching_only"],
                t["ok_only"],
                format_odds_ratio(t["odds_ratio"]),
                format_p(t["p_value"]),
                format_p(t["q_value"]),
                format_odds_ratio(t["min_detectable_or"]),
            ]
            for t in tests[: min(top, 10)]
        ]
        header = ["n-gram", "only in the mismatching export", "only in the ok export", "OR",
                  "p", "q", "MDOR"]  # fmt: skip
        text += ["", markdown_table(header, rows)]
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
        "family",
        "median MDOR",
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
            r.get("ngrams_family"),
            format_odds_ratio(r.get("mdor_median")) if r.get("answer") else DASH,
            r["note"] or r.get("answer") or ("yes" if r["sequences_associated"] else "no"),
        ]
        for r in rows
    ]
    return "## Tolerance sweep\n\n" + markdown_table(header, body)


def _ratio(value: float | None, low: float | None, high: float | None) -> str:
    return f"{format_odds_ratio(value)} [{format_odds_ratio(low)}, {format_odds_ratio(high)}]"


def _number(value: Any) -> str:
    return DASH if value is None else f"{value:g}"


def _names(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) if names else "none"


def _cell(value: Any) -> str:
    if value is None:
        return DASH
    return str(value).replace("|", "\\|").replace("\n", " ")


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
