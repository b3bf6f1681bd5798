"""Building blocks of the HTML report: the stylesheet, escaping, paragraphs, tables, figures.

Shared by `hypotheses.render_html` and `hypotheses.html_power`; every string taken from a report
reaches the page through `e` (`html.escape`).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hypotheses.formatting import DASH, as_number, format_count, format_odds_ratio

__all__ = [
    "ANSWER_CLASSES",
    "NUM",
    "STYLE",
    "auc",
    "e",
    "figure",
    "interval",
    "key_values",
    "listing",
    "ngram",
    "p",
    "plain",
    "section",
    "signed",
    "table",
]

NUM = ' class="num"'
ANSWER_CLASSES = {"yes": "yes", "no": "no", "undetermined": "undetermined"}

STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; font-size: 15px; line-height: 1.45; color: #1f2328; max-width: 72rem;
  margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem;
  margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: 0.3rem; }
p.summary { color: #57606a; margin-top: 0; }
p.note, figcaption, caption { color: #57606a; font-size: 0.9rem; }
caption { caption-side: bottom; text-align: left; padding-top: 0.3rem; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #d8dee4; vertical-align: top; }
thead th { background: #eaeef2; text-align: left; border-bottom: 2px solid #afb8c1; }
tbody tr:nth-child(even) { background: #f6f8fa; }
tbody th { text-align: left; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.sig td:first-child { font-weight: 600; }
code, .seq { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.85rem; }
.verdict { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.5rem 0.8rem;
  margin: 0.5rem 0; }
.verdict .question { font-weight: 600; }
.verdict .evidence { color: #424a53; margin: 0.25rem 0 0; }
.badge { display: inline-block; min-width: 6.5rem; text-align: center; border-radius: 1rem;
  padding: 0.05rem 0.6rem; font-weight: 700; font-size: 0.85rem; color: #fff;
  background: #6e7781; margin-right: 0.5rem; text-transform: uppercase; }
.badge.yes { background: #1a7f37; }
.badge.no { background: #b42318; }
.badge.undetermined { background: #9a6700; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
ul.inline { padding-left: 1.2rem; }
footer { margin-top: 3rem; color: #57606a; font-size: 0.85rem; border-top: 1px solid #d0d7de;
  padding-top: 0.5rem; }
@media print {
  body { max-width: none; padding: 0; font-size: 11pt; }
  h2 { break-after: avoid; }
  tr, figure, .verdict { break-inside: avoid; }
  .badge, thead th, tbody tr:nth-child(even) { -webkit-print-color-adjust: exact;
    print-color-adjust: exact; }
}
"""


def interval(value: Any, low: Any, high: Any, fmt: Callable[[Any], str]) -> str:
    """A value with its interval, ``v [low, high]``, each formatted by `fmt`."""
    return f"{fmt(value)} [{fmt(low)}, {fmt(high)}]"


def auc(value: Any) -> str:
    """An AUC with three decimals (a dash when missing)."""
    number = as_number(value)
    return DASH if number is None else f"{number:.3f}"


def signed(value: Any) -> str:
    """A difference with its sign and three decimals."""
    number = as_number(value)
    return DASH if number is None else f"{number:+.3f}"


def plain(value: Any) -> str:
    """Any report value as text: numbers formatted, lists as n-grams, None as a dash."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return format_count(value)
    if isinstance(value, float):
        return f"{value:g}" if math.isfinite(value) else format_odds_ratio(value)
    if isinstance(value, list | tuple):
        return ngram(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {plain(v)}" for k, v in value.items()) or DASH
    return str(value)


def ngram(labels: Any) -> str:
    """An n-gram as ``A > B > C``."""
    if isinstance(labels, list | tuple):
        return " > ".join(str(label) for label in labels)
    return DASH if labels is None else str(labels)


# --- HTML building blocks -------------------------------------------------------------------


def e(value: Any) -> str:
    """Escape any value for HTML text and attributes."""
    return html.escape(str(value), quote=True)


def section(title: str, anchor: str, parts: Iterable[str]) -> str:
    """A ``<section>`` with its heading and parts."""
    return f'<section id="{anchor}">\n<h2>{e(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def p(text: str, css: str = "") -> str:
    """An escaped paragraph, with an optional class."""
    attribute = f' class="{css}"' if css else ""
    return f"<p{attribute}>{e(text)}</p>"


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    numeric: Iterable[int] = (),
    row_header: bool = False,
    row_classes: Iterable[str] | None = None,
    caption: str = "",
) -> str:
    """An HTML table of plain-text cells (all escaped); `numeric` columns are right-aligned."""
    right = set(numeric)
    head = "".join(
        f'<th scope="col"{NUM if i in right else ""}>{e(h)}</th>' for i, h in enumerate(headers)
    )
    classes = iter(row_classes or ())
    body = [table_row(row, right, row_header, next(classes, "")) for row in rows]
    caption_html = f"<caption>{e(caption)}</caption>" if caption else ""
    return (
        f"<table>{caption_html}<thead><tr>{head}</tr></thead>\n<tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>"
    )


def table_row(row: Sequence[Any], right: set[int], row_header: bool, css: str) -> str:
    """One ``<tr>`` of `table`."""
    cells = []
    for i, cell in enumerate(row):
        tag = "th" if row_header and i == 0 else "td"
        scope = ' scope="row"' if tag == "th" else ""
        align = NUM if i in right else ""
        cells.append(f"<{tag}{scope}{align}>{e(cell)}</{tag}>")
    attribute = f' class="{css}"' if css else ""
    return f"<tr{attribute}>" + "".join(cells) + "</tr>"


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    """A two-column table without a head: name, value (right-aligned when a number)."""
    rows = "\n".join(
        f'<tr><th scope="row">{e(key)}</th>'
        f"<td{NUM if as_number(value) is not None else ''}>{e(plain(value))}</td></tr>"
        for key, value in pairs
    )
    return f'<table class="kv">\n<tbody>\n{rows}\n</tbody></table>'


def figure(png: bytes, alt: str, caption: str) -> str:
    """A PNG as an inline ``data:`` image with its caption."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{e(alt)}">'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


def listing(items: Sequence[Any]) -> str:
    """Items joined by commas, or ``none``."""
    return ", ".join(str(item) for item in items) if items else "none"


# --- sections -------------------------------------------------------------------------------
