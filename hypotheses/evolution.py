"""The opset-evolution hypothesis (the study's RQ3): do larger opset releases bring more failures?

Jajal et al. (ISSTA 2024) correlated the size of each ONNX opset release with the number of
converter failures reported after it: Spearman rho = 0.34 (0.33 for incompatibility and type
problems), rejected as weak. This module re-tests that on any issue table.

* **Unit of analysis**: a release group (one ONNX release, or several merged with
  ``merge_within_days``). Its *size* is the number of ai.onnx operators added or changed in its
  opsets, counted from the installed onnx's schemas; its *issues* are the issues attributed to it.
* **Attribution**: an issue belongs to the latest release dated on or before the issue's day
  (UTC). Release dates have day resolution, and an issue filed on a release day is more likely
  about the new release than the old one. Issues before the first release are unattributed.
* **Observed span**: groups released after the last issue, and groups whose window ends on or
  before the first issue, were not observed by the table; they are left out (and noted) rather
  than counted as zero.
* **Test**: Spearman's rank correlation between size and issues (``scipy.stats.spearmanr``).
  H0: no monotone association; H1 (the hypothesis): larger releases are followed by more issues.
  Strength follows the usual convention for correlation coefficients: |rho| < 0.4 weak,
  0.4 <= |rho| < 0.7 moderate, |rho| >= 0.7 strong. The hypothesis is supported only by a
  moderate or strong positive correlation significant at ``alpha``; a weak one is "rejected as
  weak", as the study put it.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from hypotheses.errors import HypothesisInputError
from hypotheses.issues import Issue, read_issues
from hypotheses.onnx_releases import OPSET_RELEASE_DATES, OpsetReleaseDate

__all__ = [
    "SCHEMA_VERSION",
    "Correlation",
    "EvolutionOptions",
    "EvolutionResult",
    "Issue",
    "OpsetRelease",
    "ReleaseGroup",
    "describe_correlation",
    "format_evolution_markdown",
    "installed_releases",
    "opset_changes",
    "opset_evolution",
    "read_issues",
    "spearman_correlation",
]

SCHEMA_VERSION = 1
WEAK_BELOW = 0.4
STRONG_FROM = 0.7
_MIN_GROUPS = 3
_STUDY = "rho = 0.34 (0.33 for incompatibility and type problems), rejected as weak"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpsetRelease:
    """One ai.onnx opset version and the release that first shipped it.

    Attributes:
        opset: The opset version.
        onnx_version: The first ONNX release that shipped it.
        released: That release's date.
        added: Operators whose first version is this opset, sorted.
        changed: Operators given a new version (or deprecated) at this opset, sorted.
    """

    opset: int
    onnx_version: str
    released: date
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        """Operators added plus operators changed."""
        return len(self.added) + len(self.changed)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "opset": self.opset,
            "onnx_version": self.onnx_version,
            "released": self.released.isoformat(),
            "size": self.size,
            "added": list(self.added),
            "changed": list(self.changed),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseGroup:
    """Releases analysed as one unit, with the issues attributed to them.

    Attributes:
        name: E.g. ``"opset 3-4 (ONNX 1.1.0)"``.
        opsets: The opsets of the group, ascending.
        released: Date of the group's first release.
        size: Operators added plus changed over the group's opsets.
        issues: Issues attributed to the group.
        issues_by_cause: Cause -> issues with that cause (causes with none are left out).
    """

    name: str
    opsets: tuple[int, ...]
    released: date
    size: int
    issues: int
    issues_by_cause: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "name": self.name,
            "opsets": list(self.opsets),
            "released": self.released.isoformat(),
            "size": self.size,
            "issues": self.issues,
            "issues_by_cause": dict(self.issues_by_cause),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Correlation:
    """Spearman's rho between group size and issue count.

    Attributes:
        rho: The coefficient, or None when undefined.
        p_value: Two-sided p-value (``scipy.stats.spearmanr``), or None when undefined.
        n_groups: Groups correlated.
        issues: Issues counted over those groups.
        alpha: Significance level of the verdict.
        verdict: The verdict in the study's words, or None when rho is undefined.
        reason: Why rho is undefined, else None.
        q_value: Benjamini-Hochberg q over the per-cause family (per-cause correlations only);
            significance is then judged on it, since several causes are tested at once.
    """

    rho: float | None
    p_value: float | None
    n_groups: int
    issues: int
    alpha: float
    verdict: str | None = None
    reason: str | None = None
    q_value: float | None = None

    @property
    def supported(self) -> bool | None:
        """True for a moderate or strong positive correlation significant at alpha."""
        if self.rho is None or self.p_value is None:
            return None
        evidence = self.p_value if self.q_value is None else self.q_value
        return self.rho >= WEAK_BELOW and evidence <= self.alpha

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "rho": self.rho,
            "p_value": self.p_value,
            "n_groups": self.n_groups,
            "issues": self.issues,
            "alpha": self.alpha,
            "q_value": self.q_value,
            "supported": self.supported,
            "verdict": self.verdict,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EvolutionOptions:
    """How releases were grouped and which groups were kept.

    Attributes:
        merge_within_days: A release fewer than this many days after its group's first release
            joins the group (releases on the same day always do).
        drop_first: The first observed group was left out.
        drop_last: The last observed group was left out.
        alpha: Significance level.
    """

    merge_within_days: int = 0
    drop_first: bool = False
    drop_last: bool = False
    alpha: float = 0.05

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "merge_within_days": self.merge_within_days,
            "drop_first": self.drop_first,
            "drop_last": self.drop_last,
            "alpha": self.alpha,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class EvolutionResult:
    """The opset-evolution test on one issue table.

    Attributes:
        groups: The groups correlated, in release order.
        overall: Size vs. all attributed issues.
        by_cause: Cause -> size vs. the issues with that cause.
        issues: Issues in the table.
        unattributed: Issues outside every release window (before the first release, or after
            the last known release's window).
        options: The options used.
        releases: The opset releases the groups were built from.
        notes: What was left out, and why.
    """

    groups: tuple[ReleaseGroup, ...]
    overall: Correlation
    by_cause: dict[str, Correlation]
    issues: int
    unattributed: int
    options: EvolutionOptions
    releases: tuple[OpsetRelease, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dict."""
        return {
            "schema_version": SCHEMA_VERSION,
            "options": self.options.to_dict(),
            "issues": self.issues,
            "unattributed": self.unattributed,
            "overall": self.overall.to_dict(),
            "by_cause": {cause: c.to_dict() for cause, c in self.by_cause.items()},
            "groups": [g.to_dict() for g in self.groups],
            "releases": [r.to_dict() for r in self.releases],
            "notes": list(self.notes),
        }


# Release sizes --------------------------------------------------------------------------------


def opset_changes(*, domain: str = "") -> dict[int, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Operators added and changed at each opset version, from the installed onnx.

    An operator is *added* at its first ``since_version`` and *changed* at every later one
    (a deprecation is a schema version too, so it counts as a change).

    Args:
        domain: The operator domain; ``""`` is ai.onnx.

    Returns:
        Opset version (1 to the installed maximum) -> (added, changed), each sorted.
    """
    import onnx.defs

    versions: dict[str, list[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain == domain:
            versions.setdefault(schema.name, []).append(schema.since_version)
    known = [v for vs in versions.values() for v in vs]
    latest = onnx.defs.onnx_opset_version() if domain == "" else max(known, default=0)
    changes: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}
    for opset in range(1, latest + 1):
        added = sorted(n for n, vs in versions.items() if min(vs) == opset)
        changed = sorted(n for n, vs in versions.items() if opset in vs and min(vs) < opset)
        changes[opset] = (tuple(added), tuple(changed))
    return changes


def installed_releases(
    dates: Sequence[OpsetReleaseDate] = OPSET_RELEASE_DATES,
) -> tuple[tuple[OpsetRelease, ...], tuple[int, ...]]:
    """The ai.onnx opsets of the installed onnx, each with its release date and size.

    Args:
        dates: The release-date table (default: `hypotheses.onnx_releases`).

    Returns:
        The dated releases, in opset order, and the installed opsets the table has no date for.
    """
    by_opset = {row.opset: row for row in dates}
    releases, undated = [], []
    for opset, (added, changed) in opset_changes().items():
        row = by_opset.get(opset)
        if row is None:
            undated.append(opset)
            continue
        releases.append(
            OpsetRelease(
                opset=opset,
                onnx_version=row.onnx_version,
                released=row.released,
                added=added,
                changed=changed,
            )
        )
    return tuple(releases), tuple(undated)


# Grouping and attribution ---------------------------------------------------------------------


def _group_releases(
    releases: Sequence[OpsetRelease], merge_within_days: int
) -> list[tuple[OpsetRelease, ...]]:
    """Consecutive releases, by date; a group is started by a release at least `span` days on."""
    span = timedelta(days=max(merge_within_days, 1))
    groups: list[list[OpsetRelease]] = []
    for release in sorted(releases, key=lambda r: (r.released, r.opset)):
        if groups and release.released - groups[-1][0].released < span:
            groups[-1].append(release)
        else:
            groups.append([release])
    return [tuple(g) for g in groups]


def _group_name(members: tuple[OpsetRelease, ...]) -> str:
    opsets = sorted(r.opset for r in members)
    contiguous = opsets == list(range(opsets[0], opsets[-1] + 1))
    if len(opsets) == 1:
        label = str(opsets[0])
    elif contiguous:
        label = f"{opsets[0]}-{opsets[-1]}"
    else:
        label = ", ".join(map(str, opsets))
    versions = list(dict.fromkeys(r.onnx_version for r in sorted(members, key=lambda r: r.opset)))
    return f"opset {label} (ONNX {', '.join(versions)})"


def _count_group(members: tuple[OpsetRelease, ...], issues: Sequence[Issue]) -> ReleaseGroup:
    causes = Counter(i.cause for i in issues if i.cause is not None)
    return ReleaseGroup(
        name=_group_name(members),
        opsets=tuple(sorted(r.opset for r in members)),
        released=members[0].released,
        size=sum(r.size for r in members),
        issues=len(issues),
        issues_by_cause=dict(sorted(causes.items())),
    )


def _attribute(
    groups: list[tuple[OpsetRelease, ...]], issues: Sequence[Issue], until: date | None
) -> tuple[list[list[Issue]], int, int]:
    """Issues per group, and the issues before the first group and on or after `until`."""
    starts = [g[0].released for g in groups]
    attributed: list[list[Issue]] = [[] for _ in groups]
    before = after = 0
    for issue in issues:
        if until is not None and issue.created_at >= until:
            after += 1
            continue
        index = bisect.bisect_right(starts, issue.created_at) - 1
        if index < 0:
            before += 1
        else:
            attributed[index].append(issue)
    return attributed, before, after


def _observed(groups: Sequence[ReleaseGroup], first: date, last: date) -> list[bool]:
    """Whether each group's window overlaps [first, last], the span of the issue table."""
    ends: list[date | None] = [g.released for g in groups[1:]] + [None]
    return [
        g.released <= last and (end is None or end > first)
        for g, end in zip(groups, ends, strict=True)
    ]


def _keep_groups(
    groups: list[ReleaseGroup], issues: Sequence[Issue], options: EvolutionOptions
) -> tuple[list[ReleaseGroup], list[str]]:
    first = min(i.created_at for i in issues)
    last = max(i.created_at for i in issues)
    observed = _observed(groups, first, last)
    notes = []
    early = [
        g.name for g, ok in zip(groups, observed, strict=True) if not ok and g.released <= last
    ]
    late = [g.name for g, ok in zip(groups, observed, strict=True) if not ok and g.released > last]
    if early:
        notes.append(f"left out (window ends before the first issue, {first}): {', '.join(early)}")
    if late:
        notes.append(f"left out (released after the last issue, {last}): {', '.join(late)}")
    kept = [g for g, ok in zip(groups, observed, strict=True) if ok]
    for flag, index, which in ((options.drop_first, 0, "first"), (options.drop_last, -1, "last")):
        if flag and kept:
            dropped = kept.pop(index)
            notes.append(f"dropped the {which} group, {dropped.name} ({_issues(dropped.issues)})")
    return kept, notes


# Statistics -----------------------------------------------------------------------------------


def spearman_correlation(
    sizes: Sequence[int], counts: Sequence[int], *, alpha: float = 0.05
) -> Correlation:
    """Spearman's rank correlation between release size and issue count, with a verdict.

    H0: size and issue count are not monotonically associated; H1: they are (two-sided p-value,
    ``scipy.stats.spearmanr``, t approximation with ties averaged). The unit is a release group.

    Args:
        sizes: Size of each group.
        counts: Issues attributed to each group.
        alpha: Significance level.

    Returns:
        The correlation; rho is None (with a reason) for fewer than 3 groups or a constant
        column, where it is undefined.

    Examples:
        >>> spearman_correlation([1, 5, 9, 20], [2, 3, 8, 13]).verdict
        'strong positive correlation (rho=1.00, p=0, n=4): supported at alpha=0.05'
        >>> spearman_correlation([1, 5], [2, 3]).reason
        'undefined: fewer than 3 groups (n=2)'
    """
    from scipy import stats

    n, issues = len(sizes), int(sum(counts))
    reason = _undefined_reason(sizes, counts)
    if reason is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = stats.spearmanr(sizes, counts)
        rho, p_value = float(result.statistic), float(result.pvalue)
        if not (math.isfinite(rho) and math.isfinite(p_value)):
            reason = "undefined: scipy.stats.spearmanr returned NaN"
    if reason is not None:
        return Correlation(
            rho=None, p_value=None, n_groups=n, issues=issues, alpha=alpha, reason=reason
        )
    verdict = describe_correlation(rho, p_value, n_groups=n, alpha=alpha)
    return Correlation(
        rho=rho, p_value=p_value, n_groups=n, issues=issues, alpha=alpha, verdict=verdict
    )


def _undefined_reason(sizes: Sequence[int], counts: Sequence[int]) -> str | None:
    if len(sizes) < _MIN_GROUPS:
        return f"undefined: fewer than {_MIN_GROUPS} groups (n={len(sizes)})"
    if len(set(sizes)) == 1:
        return f"undefined: every group has the same size ({sizes[0]})"
    if len(set(counts)) == 1:
        return f"undefined: every group has the same number of issues ({counts[0]})"
    return None


def describe_correlation(
    rho: float, p_value: float, *, n_groups: int, alpha: float, q_value: float | None = None
) -> str:
    """The verdict on H1 ("larger releases are followed by more issues") in the study's words.

    Strength: |rho| < 0.4 weak, 0.4-0.7 moderate, >= 0.7 strong (the usual convention). Only a
    moderate or strong positive rho with p <= alpha (q <= alpha when a q-value is given: one of
    several causes) supports the hypothesis.

    Examples:
        >>> describe_correlation(0.34, 0.12, n_groups=20, alpha=0.05)
        'weak positive correlation (rho=0.34, p=0.12, n=20): rejected as weak'
        >>> describe_correlation(0.6, 0.01, n_groups=20, alpha=0.05, q_value=0.06)
        'moderate positive correlation (rho=0.60, p=0.01, q=0.06, n=20): rejected (not significant at alpha=0.05)'
    """  # noqa: E501
    size = abs(rho)
    strength = "weak" if size < WEAK_BELOW else "moderate" if size < STRONG_FROM else "strong"
    direction = "positive" if rho > 0 else "negative" if rho < 0 else "no"
    stated = f"{strength} {direction} correlation" if rho != 0 else "no correlation"
    q_text = "" if q_value is None else f", q={q_value:.2g}"
    numbers = f"(rho={rho:.2f}, p={p_value:.2g}{q_text}, n={n_groups})"
    if rho <= 0:
        outcome = "rejected (not positive)"
    elif size < WEAK_BELOW:
        outcome = "rejected as weak"
    elif (p_value if q_value is None else q_value) > alpha:
        outcome = f"rejected (not significant at alpha={alpha:g})"
    else:
        outcome = f"supported at alpha={alpha:g}"
    return f"{stated} {numbers}: {outcome}"


# The test -------------------------------------------------------------------------------------


def opset_evolution(
    issues: Sequence[Issue],
    *,
    merge_within_days: int = 0,
    drop_first: bool = False,
    drop_last: bool = False,
    alpha: float = 0.05,
    releases: Sequence[OpsetRelease] | None = None,
    until: date | None = None,
) -> EvolutionResult:
    """Correlate release size with the number of later issues, overall and per cause.

    Releases are grouped by date (same-day releases always together; see ``merge_within_days``),
    issues are attributed to the latest group released on or before their day, groups outside
    the issue table's span are left out, then the first/last group is dropped if asked.

    Args:
        issues: The issue table (`read_issues`).
        merge_within_days: A release fewer than this many days after its group's first release
            joins that group (sizes and issue counts add; the group is dated by its first release).
        drop_first: Leave out the first observed group (it may predate the issue tracker).
        drop_last: Leave out the last observed group (its window is cut by the table's end).
        alpha: Significance level of the verdicts.
        releases: The opset releases; None means the installed onnx's opsets dated by
            `hypotheses.onnx_releases` (undated opsets are left out and noted).
        until: Issues on or after this day are unattributed (the next release, unknown to
            `releases`, starts there). None: no limit, or with ``releases=None``, the date of the
            first tabled release newer than the installed onnx.

    Returns:
        The groups, the correlations and notes on everything left out.

    Raises:
        HypothesisInputError: No issues, no releases, duplicate opsets, or a bad option.
    """
    options = _check_options(merge_within_days, drop_first, drop_last, alpha)
    notes: list[str] = []
    if releases is None:
        releases, until, notes = _default_releases(until)
    releases = tuple(sorted(releases, key=lambda r: r.opset))
    _check_inputs(issues, releases)
    members = _group_releases(releases, options.merge_within_days)
    attributed, before, after = _attribute(members, issues, until)
    notes += _unattributed_notes(before, after, members[0][0].released, until)
    groups = [_count_group(m, a) for m, a in zip(members, attributed, strict=True)]
    kept, kept_notes = _keep_groups(groups, issues, options)
    overall, by_cause = _correlations(kept, alpha)
    return EvolutionResult(
        groups=tuple(kept),
        overall=overall,
        by_cause=by_cause,
        issues=len(issues),
        unattributed=before + after,
        options=options,
        releases=releases,
        notes=tuple(notes + kept_notes),
    )


def _check_options(
    merge_within_days: int, drop_first: bool, drop_last: bool, alpha: float
) -> EvolutionOptions:
    if isinstance(merge_within_days, bool) or not isinstance(merge_within_days, int):
        raise HypothesisInputError(
            f"merge_within_days must be an integer, not {merge_within_days!r}"
        )
    if merge_within_days < 0:
        raise HypothesisInputError(f"merge_within_days must be >= 0, not {merge_within_days}")
    if not 0 < alpha < 1:
        raise HypothesisInputError(f"alpha must be between 0 and 1, not {alpha}")
    return EvolutionOptions(
        merge_within_days=merge_within_days,
        drop_first=bool(drop_first),
        drop_last=bool(drop_last),
        alpha=float(alpha),
    )


def _check_inputs(issues: Sequence[Issue], releases: Sequence[OpsetRelease]) -> None:
    if not issues:
        raise HypothesisInputError("no issues to attribute")
    if not releases:
        raise HypothesisInputError("no opset releases to attribute issues to")
    opsets = [r.opset for r in releases]
    duplicates = sorted(o for o, k in Counter(opsets).items() if k > 1)
    if duplicates:
        raise HypothesisInputError(f"opsets listed more than once: {duplicates}")


def _default_releases(
    until: date | None,
) -> tuple[tuple[OpsetRelease, ...], date | None, list[str]]:
    import onnx

    releases, undated = installed_releases(OPSET_RELEASE_DATES)
    notes = []
    if undated:
        notes.append(
            f"installed onnx {onnx.__version__}: no release date known for opset"
            f" {', '.join(map(str, undated))} (hypotheses/onnx_releases.py); left out"
        )
    newest = max(r.opset for r in releases) if releases else 0
    newer = [row for row in OPSET_RELEASE_DATES if row.opset > newest]
    if until is None and newer:
        first = min(newer, key=lambda row: row.released)
        until = first.released
        notes.append(
            f"installed onnx {onnx.__version__} knows opsets up to {newest}; issues from"
            f" {until} (ONNX {first.onnx_version}, opset {first.opset}) on are not attributed"
        )
    return releases, until, notes


def _unattributed_notes(before: int, after: int, first: date, until: date | None) -> list[str]:
    notes = []
    if before:
        notes.append(f"{_issues(before)} before the first release ({first}): unattributed")
    if after:
        notes.append(f"{_issues(after)} on or after {until}: unattributed")
    return notes


def _correlations(
    groups: Sequence[ReleaseGroup], alpha: float
) -> tuple[Correlation, dict[str, Correlation]]:
    sizes = [g.size for g in groups]
    overall = spearman_correlation(sizes, [g.issues for g in groups], alpha=alpha)
    causes = sorted({cause for g in groups for cause in g.issues_by_cause})
    by_cause = {
        cause: spearman_correlation(
            sizes, [g.issues_by_cause.get(cause, 0) for g in groups], alpha=alpha
        )
        for cause in causes
    }
    return overall, _with_q_values(by_cause, alpha)


def _with_q_values(by_cause: dict[str, Correlation], alpha: float) -> dict[str, Correlation]:
    """Add Benjamini-Hochberg q-values over the causes whose rho is defined."""
    from scipy import stats

    defined = [c for c, r in by_cause.items() if r.p_value is not None and r.rho is not None]
    if not defined:
        return by_cause
    q_values = stats.false_discovery_control([by_cause[c].p_value for c in defined], method="bh")
    updated = dict(by_cause)
    for cause, q in zip(defined, q_values, strict=True):
        r = by_cause[cause]
        verdict = describe_correlation(
            r.rho, r.p_value, n_groups=r.n_groups, alpha=alpha, q_value=float(q)
        )
        updated[cause] = dataclasses.replace(r, q_value=float(q), verdict=verdict)
    return updated


# Rendering ------------------------------------------------------------------------------------


def format_evolution_markdown(result: EvolutionResult) -> str:
    """Render the result as Markdown for a pull request or report.

    Args:
        result: The result of `opset_evolution`.

    Returns:
        A heading, the verdicts, the table of groups, the method and the notes.
    """
    lines = ["### Opset evolution (RQ3): release size vs. later issues", ""]
    lines += _verdict_lines(result)
    lines += ["", *_group_table(result), ""]
    lines.append(_method_paragraph(result))
    if result.notes:
        lines += ["", "Notes:", *(f"- {_escape(note)}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def _method_paragraph(result: EvolutionResult) -> str:
    options = result.options
    merged = (
        f" Releases fewer than {options.merge_within_days} days after a group's first release"
        " join that group."
        if options.merge_within_days
        else ""
    )
    return (
        f"{result.issues} issues in the table, {result.unattributed} unattributed."
        " Size: ai.onnx operators added or changed in the group's opsets (installed onnx)."
        " Each issue counts for the latest release on or before its day."
        + merged
        + f" Strength: |rho| < {WEAK_BELOW} weak, {WEAK_BELOW}-{STRONG_FROM} moderate,"
        f" >= {STRONG_FROM} strong; significance at alpha = {options.alpha:g}."
        f" The study (Jajal et al., ISSTA 2024): {_STUDY}."
    )


def _verdict_lines(result: EvolutionResult) -> list[str]:
    lines = [_verdict_line("All issues", result.overall)]
    lines += [_verdict_line(cause, c) for cause, c in result.by_cause.items()]
    return lines


def _verdict_line(label: str, correlation: Correlation) -> str:
    text = correlation.verdict or correlation.reason or ""
    return f"- **{_escape(label)}** ({_issues(correlation.issues)}): {text}"


def _group_table(result: EvolutionResult) -> list[str]:
    causes = list(result.by_cause)
    header = ["group", "released", "size", "issues", *(_escape(c) for c in causes)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|---|---|" + "---:|" * (len(header) - 2),
    ]
    for group in result.groups:
        cells = [
            _escape(group.name),
            group.released.isoformat(),
            str(group.size),
            str(group.issues),
            *(str(group.issues_by_cause.get(c, 0)) for c in causes),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if not result.groups:
        lines.append("| (no groups) |" + " |" * (len(header) - 1))
    return lines


def _issues(count: int) -> str:
    return f"{count} issue" if count == 1 else f"{count} issues"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
