"""Numbers as reports print them: p-values, odds ratios, counts; None as a dash.

Shared by the Markdown and HTML reports so that both show the same digits.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "DASH",
    "INFINITY",
    "as_number",
    "format_count",
    "format_odds_ratio",
    "format_p",
    "three_significant",
]

DASH = "\u2013"  # en dash: a missing value
INFINITY = "\u221e"


def format_p(value: Any) -> str:
    """A p- or q-value: 3 significant digits, scientific notation below 1e-3.

    Args:
        value: The number, or None.

    Returns:
        The text; None (or NaN) gives an en dash.

    Examples:
        >>> format_p(0.000123), format_p(0.0123), format_p(0.5), format_p(None) == DASH
        ('1.23e-04', '0.0123', '0.500', True)
    """
    number = as_number(value)
    if number is None:
        return DASH
    if math.isinf(number):
        return INFINITY if number > 0 else "-" + INFINITY
    if number != 0 and abs(number) < 1e-3:
        return f"{number:.2e}"
    return three_significant(number)


def format_odds_ratio(value: Any) -> str:
    """An odds ratio: 3 significant digits; None as an en dash, infinity as ∞.

    Args:
        value: The number, or None (the JSON report writes an infinite odds ratio as null).

    Returns:
        The text.

    Examples:
        >>> format_odds_ratio(2.8587), format_odds_ratio(643.9), format_odds_ratio(float("inf"))
        ('2.86', '644', '∞')
    """
    number = as_number(value)
    if number is None:
        return DASH
    if math.isinf(number):
        return INFINITY if number > 0 else "-" + INFINITY
    if number != 0 and not 1e-3 <= abs(number) < 1e6:
        return f"{number:.2e}"
    return three_significant(number)


def format_count(value: Any) -> str:
    """A count with thousands separators; None as an en dash.

    Args:
        value: An integer, a float, or None.

    Returns:
        The text.

    Examples:
        >>> format_count(187906), format_count(None) == DASH, format_count(94.0)
        ('187,906', True, '94')
    """
    number = as_number(value)
    if number is None:
        return DASH
    if isinstance(value, int) or number.is_integer():
        return f"{int(number):,}"
    return three_significant(number)


def as_number(value: Any) -> float | None:
    """`value` as a float, or None when it is not a number (None, NaN, a bool, a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def three_significant(number: float) -> str:
    """Three significant digits, trailing zeros kept (0.500, 12.0, 644).

    Examples:
        >>> three_significant(0.5), three_significant(643.9)
        ('0.500', '644')
    """
    if number == 0:
        return "0"
    rounded = float(f"{number:.3g}")
    decimals = max(0, 2 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:.{decimals}f}"
