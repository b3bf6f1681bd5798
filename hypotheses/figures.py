"""Figures of the hypothesis report, drawn with matplotlib and returned as PNG bytes.

Every function reads the JSON-safe report dict (not the result classes), tolerates missing or
null values, and draws a small "no data" figure instead of raising when there is nothing to plot.
matplotlib (the ``report`` extra) is imported on first use, with the non-interactive Agg backend
unless another backend was already chosen, so importing this module stays cheap; without it the
functions raise `opseq.errors.MissingDependencyError`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from opseq._optional import import_optional

__all__ = ["roc_png", "sweep_png", "volcano_png"]

_DPI = 110
_MIN_LABELS = 5
_MAX_LABELS = 8
_Q_FLOOR = 1e-300
_LN_OR_LIMIT = math.log(1e3)
_SIGNIFICANT_COLOUR = "#c0392b"
_OTHER_COLOUR = "#9aa0a6"
_DASH = "\u2013"
_MINUS = "\u2212"
_ALPHA = "\u03b1"
_LE = "\u2264"
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def volcano_png(tests: list[dict], alpha: float) -> bytes:
    """Volcano plot of n-gram tests: size-adjusted odds ratio against size-adjusted q-value.

    Args:
        tests: n-gram test records of the report (``sequences.tests``); records whose
            ``odds_ratio_adjusted`` or ``q_value_adjusted`` is null or not positive are skipped.
        alpha: False discovery rate; points with q <= alpha are highlighted and a dashed line
            marks -log10(alpha).

    Returns:
        The figure as PNG bytes.

    Raises:
        MissingDependencyError: If matplotlib is not installed.
    """
    points = _volcano_points(tests)
    if not len(points.x):
        return _no_data_png("n-gram tests: no data")
    plt = _pyplot()
    fig = plt.figure(figsize=(10.0, 5.6))
    try:
        ax = fig.add_axes((0.07, 0.1, 0.6, 0.8))
        _draw_volcano(ax, points, alpha)
        _label_points(ax, points, _most_significant(points, alpha), tests)
        return _to_png(fig)
    finally:
        plt.close(fig)


def roc_png(auc: dict) -> bytes:
    """ROC curves of the prediction feature sets, with the AUC and its interval in the legend.

    Args:
        auc: ``prediction.auc`` of the report: feature set -> ``{features, auc, ci_low,
            ci_high, roc: {fpr, tpr}}``; sets without a curve are left out.

    Returns:
        The figure as PNG bytes.

    Raises:
        MissingDependencyError: If matplotlib is not installed.
    """
    curves = [(name, entry) for name, entry in (auc or {}).items() if _roc_xy(entry)[0]]
    if not curves:
        return _no_data_png("ROC: no data")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    try:
        ax.plot((0, 1), (0, 1), ls="--", lw=0.8, color="0.6", label="chance")
        for (name, entry), colour in zip(curves, _cycle(len(curves)), strict=True):
            fpr, tpr = _roc_xy(entry)
            ax.plot(fpr, tpr, lw=1.6, color=colour, label=_roc_label(name, entry))
        ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("ROC of mismatch prediction (pooled over folds)", fontsize=10)
        ax.legend(loc="lower right", fontsize=8, frameon=True)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        return _to_png(fig)
    finally:
        plt.close(fig)


def sweep_png(rows: list[dict]) -> bytes:
    """Counts and significant tests across the tolerance sweep.

    Absolute rules are placed at their ``atol`` on a log axis and joined by lines; rules with a
    relative part (``rtol`` set) are drawn at their ``atol`` as open markers and labelled. Top
    panel: mismatch and ok models; bottom panel: significant n-grams (unadjusted and adjusted)
    and significant operators (adjusted). Rows with null test counts are left out of the bottom
    panel.

    Args:
        rows: ``tolerance_sweep`` rows of the report.

    Returns:
        The figure as PNG bytes.

    Raises:
        MissingDependencyError: If matplotlib is not installed.
    """
    placed = _sweep_positions(rows or [])
    if not placed:
        return _no_data_png("tolerance sweep: no data")
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 6.4), sharex=True)
    try:
        _draw_sweep_panel(top, placed, _COUNT_SERIES, "models")
        _draw_sweep_panel(bottom, placed, _TEST_SERIES, f"significant at q {_LE} {_ALPHA}")
        _label_relative_rules(top, placed)
        top.set_title("Tolerance sweep", fontsize=10)
        bottom.set_xscale("log")
        bottom.set_xlabel("absolute tolerance (atol); open markers: rule with a relative part")
        fig.tight_layout()
        return _to_png(fig)
    finally:
        plt.close(fig)


# --- shared helpers -------------------------------------------------------------------------


def _pyplot() -> Any:
    matplotlib = import_optional("matplotlib", extra="report")
    matplotlib.use("Agg", force=False)
    return import_optional("matplotlib.pyplot", extra="report")


def _to_png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _no_data_png(message: str) -> bytes:
    plt = _pyplot()
    fig = plt.figure(figsize=(3.2, 1.2))
    try:
        fig.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, color="0.35")
        return _to_png(fig)
    finally:
        plt.close(fig)


def _cycle(count: int) -> list[str]:
    return [_COLOURS[i % len(_COLOURS)] for i in range(count)]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _ngram_text(record: dict) -> str:
    ngram = record.get("ngram")
    if isinstance(ngram, list | tuple):
        return _literal(" > ".join(str(label) for label in ngram))
    return _literal(str(record.get("op", ngram if ngram is not None else "?")))


def _literal(text: str) -> str:
    """Text that matplotlib draws as is (a ``$`` would otherwise start mathtext)."""
    return text.replace("$", r"\$")


# --- volcano --------------------------------------------------------------------------------


class _Points(NamedTuple):
    """Plottable tests: ln OR (clipped), -log10 q, q, p and the index of each test."""

    x: np.ndarray
    y: np.ndarray
    q: np.ndarray
    p: np.ndarray
    index: np.ndarray


def _volcano_points(tests: Sequence[dict]) -> _Points:
    """The tests with a positive finite adjusted odds ratio and a finite adjusted q-value."""
    odds = _column(tests, "odds_ratio_adjusted")
    q = _column(tests, "q_value_adjusted")
    p = _column(tests, "p_value_adjusted")
    with np.errstate(invalid="ignore"):
        keep = np.flatnonzero(np.isfinite(odds) & (odds > 0) & np.isfinite(q))
    x = np.clip(np.log(odds[keep]), -_LN_OR_LIMIT, _LN_OR_LIMIT)
    q = np.maximum(q[keep], _Q_FLOOR)
    p = np.where(np.isfinite(p[keep]), p[keep], 1.0)
    return _Points(x=x, y=-np.log10(q), q=q, p=p, index=keep)


def _column(records: Sequence[dict], key: str) -> np.ndarray:
    """One field of every record as floats; null and non-numbers become NaN."""
    values = [record.get(key) if isinstance(record, dict) else None for record in records or ()]
    try:
        return np.array(values, dtype=float)
    except (TypeError, ValueError):
        return np.array([_nan_if_missing(v) for v in values], dtype=float)


def _nan_if_missing(value: Any) -> float:
    number = _finite(value)
    return math.nan if number is None else number


def _draw_volcano(ax: Any, points: _Points, alpha: float) -> None:
    significant = points.q <= alpha
    style = {"ls": "none", "marker": "o", "rasterized": True, "markeredgewidth": 0}
    if (~significant).any():
        x, y = points.x[~significant], points.y[~significant]
        ax.plot(x, y, ms=2.2, color=_OTHER_COLOUR, alpha=0.5, label="not significant", **style)
    if significant.any():
        label = f"q {_LE} {alpha:g} ({int(significant.sum()):,})"
        x, y = points.x[significant], points.y[significant]
        ax.plot(x, y, ms=3.5, color=_SIGNIFICANT_COLOUR, label=label, **style)
    if alpha > 0:
        ax.axhline(-math.log10(alpha), ls="--", lw=0.9, color="0.25", label=f"q = {alpha:g}")
    ax.axvline(0, lw=0.6, color="0.75")
    _note_clipped(ax, int((np.abs(points.x) >= _LN_OR_LIMIT).sum()))
    top = max(float(points.y.max()), -math.log10(alpha) if alpha > 0 else 0.0)
    ax.set_ylim(0, top * 1.08 + 0.1)
    ax.set_xlabel("ln odds ratio (adjusted for size)")
    ax.set_ylabel(f"{_MINUS}log10 q (adjusted for size)")
    title = f"n-grams: {len(points.x):,} tests, {int(significant.sum()):,} significant"
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8, markerscale=2)
    ax.grid(alpha=0.25)


def _note_clipped(ax: Any, clipped: int) -> None:
    if clipped:
        ax.text(
            0.01,
            0.02,
            f"{clipped:,} odds ratios beyond 1000 or 1/1000 drawn at the edge",
            transform=ax.transAxes,
            fontsize=7,
            color="0.35",
        )


def _most_significant(points: _Points, alpha: float) -> np.ndarray:
    """Positions (into `points`) to label: the most significant, topped up to a few."""
    order = np.lexsort((-np.abs(points.x), points.p, points.q))
    significant = int((points.q <= alpha).sum())
    return order[: max(_MIN_LABELS, min(significant, _MAX_LABELS))]


def _label_points(ax: Any, points: _Points, chosen: np.ndarray, tests: Sequence[dict]) -> None:
    """Name each chosen point in a column right of the axes, joined to it by a thin line."""
    chosen = sorted(chosen, key=lambda i: -points.y[i])
    bottom, top = ax.get_ylim()
    wanted = [(points.y[i] - bottom) / (top - bottom) for i in chosen]
    for i, slot in zip(chosen, _label_slots(wanted), strict=True):
        ax.annotate(
            _shorten(_ngram_text(tests[points.index[i]]), 48),
            xy=(points.x[i], points.y[i]),
            xytext=(1.03, slot),
            textcoords="axes fraction",
            fontsize=8,
            va="center",
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.45", "shrinkB": 2},
        )


def _label_slots(wanted: list[float], gap: float = 0.055) -> list[float]:
    """Label heights (axes fraction) near `wanted` (descending), at least `gap` apart, in [0, 1]."""
    slots: list[float] = []
    for height in wanted:
        slots.append(min(height, 0.98, slots[-1] - gap) if slots else min(height, 0.98))
    shift = max(0.0, 0.02 - slots[-1]) if slots else 0.0
    return [slot + shift for slot in slots]


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


# --- ROC ------------------------------------------------------------------------------------


def _roc_xy(entry: Any) -> tuple[list[float], list[float]]:
    roc = entry.get("roc") if isinstance(entry, dict) else None
    if not isinstance(roc, dict):
        return [], []
    pairs = [
        (x, y)
        for x, y in zip(roc.get("fpr") or [], roc.get("tpr") or [], strict=False)
        if _finite(x) is not None and _finite(y) is not None
    ]
    return [x for x, _ in pairs], [y for _, y in pairs]


def _roc_label(name: str, entry: dict) -> str:
    def three(value: Any) -> str:
        number = _finite(value)
        return _DASH if number is None else f"{number:.3f}"

    features = entry.get("features")
    count = f" ({features:,} features)" if isinstance(features, int) else ""
    interval = f" [{three(entry.get('ci_low'))}, {three(entry.get('ci_high'))}]"
    return f"{_literal(str(name))}{count}: AUC {three(entry.get('auc'))}{interval}"


# --- tolerance sweep ------------------------------------------------------------------------

_COUNT_SERIES = (("mismatch", "mismatch", "#c0392b"), ("ok", "ok", "#2e86c1"))
_TEST_SERIES = (
    ("ngrams_significant", "n-grams, unadjusted", "#7f8c8d"),
    ("ngrams_significant_adjusted", "n-grams, adjusted", "#8e44ad"),
    ("operators_significant_adjusted", "operators, adjusted", "#d68910"),
)


def _sweep_positions(rows: Sequence[dict]) -> list[tuple[float, bool, dict]]:
    """(x, is_relative, row) of each row; rules without a positive atol go right of the rest."""
    absolute = [_finite(r.get("atol")) for r in rows]
    known = [a for a in absolute if a is not None and a > 0]
    beyond = max(known) * 10 if known else 1.0
    placed = []
    for row, atol in zip(rows, absolute, strict=True):
        relative = row.get("rtol") is not None or atol is None or atol <= 0
        x = atol if atol is not None and atol > 0 else beyond
        placed.append((x, relative, row))
    return placed


def _draw_sweep_panel(ax: Any, placed: list, series: tuple, ylabel: str) -> None:
    for key, label, colour in series:
        line = _series(placed, key, relative=False)
        if line:
            ax.plot(*zip(*line, strict=True), marker="o", ms=5, color=colour, label=label)
        extra = _series(placed, key, relative=True)
        if extra:
            xs, ys = zip(*extra, strict=True)
            ax.plot(xs, ys, ls="none", marker="D", ms=7, mfc="white", mec=colour, mew=1.5)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")


def _series(placed: list, key: str, *, relative: bool) -> list[tuple[float, float]]:
    """(x, value) of the rows of one kind whose `key` is a number, by x."""
    values = ((x, _finite(row.get(key))) for x, rel, row in placed if rel == relative)
    return sorted((x, v) for x, v in values if v is not None)


def _label_relative_rules(ax: Any, placed: list) -> None:
    for x, relative, row in placed:
        if relative:
            ax.annotate(
                _literal(_shorten(str(row.get("rule", "relative rule")), 40)),
                xy=(x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, -4),
                textcoords="offset points",
                ha="center",
                va="top",
                fontsize=7,
                color="0.3",
            )
