"""The HTML parts that say what a family of tests could see, and the twin-pair section.

Tarone's screen and the minimum detectable odds ratios of a family (`hypotheses.power`), and the
matched-pairs analysis of twin conversions (`hypotheses.twins`), read from the JSON report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypotheses import html_parts as h
from hypotheses.formatting import DASH, as_number, format_count, format_odds_ratio, format_p

__all__ = ["power_parts", "twins_section"]

_TOP_TWIN_TESTS = 50


def power_parts(section: dict, what: str) -> list[str]:
    """Tarone's screen and the minimum detectable odds ratios of a family: a note and a table."""
    tarone, power = section.get("tarone"), section.get("power")
    if not isinstance(tarone, dict) or not isinstance(power, dict) or not power.get("tested"):
        return []
    quantiles = power.get("mdor_quantiles") or {}
    effect = h.plain(power.get("effect_that_matters"))
    family, k = format_count(tarone.get("family")), format_count(tarone.get("k"))
    text = (
        f"Tarone's rule: {family} of {format_count(power.get('tested'))} {what} can reach "
        f"significance (K = {k}); {format_count(tarone.get('excluded'))} cannot at any effect "
        "size and are left out. Minimum detectable odds ratio (MDOR) at 80% power and per-test "
        f"alpha {format_p(power.get('per_test_alpha'))}: median "
        f"{format_odds_ratio(quantiles.get('50%'))} (10%: {format_odds_ratio(quantiles.get('10%'))}"
        f", 90%: {format_odds_ratio(quantiles.get('90%'))}); {format_count(power.get('powered'))} "
        f"could show OR {effect}, the effect that matters. "
        + (
            "A negative answer is supported."
            if power.get("sufficient")
            else "Nothing significant here is not evidence of no effect."
        )
    )
    rows = [
        (
            _band(band.get("prevalence") or []),
            format_count(band.get("features")),
            format_odds_ratio(band.get("median_mdor")),
            format_count(band.get("powered")),
        )
        for band in power.get("bands") or []
        if isinstance(band, dict)
    ]
    parts = [h.p(text, "note")]
    if rows:
        header = ("carried by (share of models)", what, "median MDOR", f"MDOR \u2264 {effect}")
        parts.append(h.table(header, rows, numeric=(1, 2, 3)))
    return parts


def twins_section(report: dict) -> str:
    """The matched-pairs analysis of the report's twin conversions (empty when absent)."""
    twins = report.get("twins")
    if not isinstance(twins, dict):
        return ""
    parts = [
        h.key_values(
            [
                ("twin pairs", twins.get("pairs")),
                ("both exports mismatch", twins.get("concordant_mismatch")),
                ("neither mismatches", twins.get("concordant_ok")),
                ("discordant", twins.get("discordant")),
                ("n-grams differing within a discordant pair", twins.get("tested")),
                ("significant", twins.get("significant")),
            ]
        ),
        h.p(f"Method: {twins.get('method') or DASH}.", "note"),
        *power_parts(twins, "n-grams"),
    ]
    tests = [t for t in twins.get("tests") or [] if isinstance(t, dict)][:_TOP_TWIN_TESTS]
    if tests:
        rows = [
            (
                h.ngram(t.get("ngram")),
                format_count(t.get("mismatching_only")),
                format_count(t.get("ok_only")),
                format_odds_ratio(t.get("odds_ratio")),
                format_p(t.get("p_value")),
                format_p(t.get("q_value")),
                format_odds_ratio(t.get("min_detectable_or")),
            )
            for t in tests
        ]
        header = ("n-gram", "only in the mismatching export", "only in the ok export", "OR", "p",
                  "q", "MDOR")  # fmt: skip
        parts.append(h.table(header, rows, numeric=range(1, 7)))
    return h.section("Twin pairs", "twins", parts)


def _band(bounds: Sequence[Any]) -> str:
    low, high = (as_number(b) for b in [*bounds, None, None][:2])
    if low is None or high is None:
        return DASH
    return f"{low:.0%}{DASH}{high:.0%}"
