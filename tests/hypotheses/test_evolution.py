from __future__ import annotations

import json
import warnings
from datetime import date, timedelta
from pathlib import Path

import onnx
import onnx.defs
import onnx.helper
import pytest
from scipy import stats

import hypotheses.evolution as evolution
from hypotheses.errors import HypothesisInputError
from hypotheses.evolution import (
    Correlation,
    Issue,
    OpsetRelease,
    describe_correlation,
    format_evolution_markdown,
    installed_releases,
    opset_changes,
    opset_evolution,
    read_issues,
    spearman_correlation,
)
from hypotheses.onnx_releases import OPSET_RELEASE_DATES

D0 = date(2020, 1, 1)


def day(offset: int) -> date:
    return D0 + timedelta(days=offset)


def release(opset: int, offset: int, size: int, version: str | None = None) -> OpsetRelease:
    return OpsetRelease(
        opset=opset,
        onnx_version=version or f"1.{opset}.0",
        released=day(offset),
        added=tuple(f"Op{opset}_{k}" for k in range(size)),
    )


def issues_at(*offsets: int, cause: str | None = None) -> list[Issue]:
    return [Issue(created_at=day(o), cause=cause) for o in offsets]


def summary(result: evolution.EvolutionResult) -> list[tuple[str, str, int, int]]:
    return [(g.name, g.released.isoformat(), g.size, g.issues) for g in result.groups]


# Release sizes from the installed onnx ------------------------------------------------------


def _brute_force_changes(opset: int) -> tuple[set[str], set[str]]:
    """Recount one opset with onnx.defs.get_schema instead of the schema history."""
    added, changed = set(), set()
    names = {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain == ""}
    for name in names:
        try:
            schema = onnx.defs.get_schema(name, opset, "")
        except onnx.defs.SchemaError:
            continue
        if schema.since_version != opset:
            continue
        try:
            onnx.defs.get_schema(name, opset - 1, "")
        except onnx.defs.SchemaError:
            added.add(name)
        else:
            changed.add(name)
    return added, changed


@pytest.mark.parametrize("opset", [1, 2, 6, 11, 13, onnx.defs.onnx_opset_version()])
def test_opset_changes_match_brute_force_recount(opset):
    added, changed = opset_changes()[opset]
    assert (set(added), set(changed)) == _brute_force_changes(opset)
    assert list(added) == sorted(added) and list(changed) == sorted(changed)


def test_opset_changes_relu_added_at_1_changed_at_6_13_14():
    changes = opset_changes()
    assert "Relu" in changes[1][0]
    changed_at = [v for v, (_, changed) in changes.items() if "Relu" in changed]
    added_at = [v for v, (added, _) in changes.items() if "Relu" in added]
    assert added_at == [1]
    assert changed_at == [6, 13, 14]


def test_opset_changes_cover_every_opset_and_every_operator_once():
    changes = opset_changes()
    assert list(changes) == list(range(1, onnx.defs.onnx_opset_version() + 1))
    names = {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain == ""}
    all_added = [name for added, _ in changes.values() for name in added]
    assert sorted(all_added) == sorted(names)
    assert len(changes[1][0]) > 0 and changes[1][1] == ()


def test_installed_releases_size_is_added_plus_changed():
    releases, undated = installed_releases()
    changes = opset_changes()
    for r in releases:
        assert r.size == len(changes[r.opset][0]) + len(changes[r.opset][1])
    assert releases[0].opset == 1 and releases[0].size > 0
    assert undated == ()


# The release-date table ---------------------------------------------------------------------


def test_release_table_covers_installed_opsets_or_notes_them():
    releases, undated = installed_releases()
    tabled = {row.opset for row in OPSET_RELEASE_DATES}
    for opset in range(1, onnx.defs.onnx_opset_version() + 1):
        assert (opset in tabled) != (opset in undated)
    assert {r.opset for r in releases} | set(undated) == set(opset_changes())


def test_release_table_gap_is_reported_in_notes(monkeypatch):
    newest = onnx.defs.onnx_opset_version()
    shortened = tuple(row for row in OPSET_RELEASE_DATES if row.opset != newest)
    assert installed_releases(shortened)[1] == (newest,)
    monkeypatch.setattr(evolution, "OPSET_RELEASE_DATES", shortened)
    result = opset_evolution(issues_at(0, 400, 800))
    assert any(f"no release date known for opset {newest}" in n for n in result.notes)
    assert newest not in {r.opset for r in result.releases}


def test_release_table_is_contiguous_and_ordered():
    opsets = [row.opset for row in OPSET_RELEASE_DATES]
    assert opsets == list(range(1, len(opsets) + 1))
    dates = [row.released for row in OPSET_RELEASE_DATES]
    assert dates == sorted(dates)
    by_version: dict[str, date] = {}
    for row in OPSET_RELEASE_DATES:
        assert by_version.setdefault(row.onnx_version, row.released) == row.released


def test_release_table_agrees_with_onnx_version_table_from_opset_10():
    # Opsets 1-9: onnx's table disagrees with the releases' own sources (see onnx_releases).
    first_release: dict[int, str] = {}
    for row in onnx.helper.VERSION_TABLE:
        first_release.setdefault(row[2], row[0])
    ours = {row.opset: row.onnx_version for row in OPSET_RELEASE_DATES}
    for opset, version in first_release.items():
        if opset >= 10:
            assert ours[opset] == version, opset


# Attribution ----------------------------------------------------------------------------------

RELEASES = [release(1, 0, 3), release(2, 60, 1), release(3, 152, 5), release(4, 244, 2)]


def test_attribution_on_or_before_issue_day():
    issues = issues_at(-1, 0, 59, 60, 151, 152, 152, 200, 244, 300)
    result = opset_evolution(issues, releases=RELEASES)
    assert summary(result) == [
        ("opset 1 (ONNX 1.1.0)", "2020-01-01", 3, 2),
        ("opset 2 (ONNX 1.2.0)", "2020-03-01", 1, 2),
        ("opset 3 (ONNX 1.3.0)", "2020-06-01", 5, 3),
        ("opset 4 (ONNX 1.4.0)", "2020-09-01", 2, 2),
    ]
    assert result.issues == 10
    assert result.unattributed == 1
    assert any("1 issue before the first release (2020-01-01)" in n for n in result.notes)


def test_attribution_until_leaves_later_issues_unattributed():
    issues = issues_at(0, 60, 152, 244, 249, 250, 251)
    result = opset_evolution(issues, releases=RELEASES, until=day(250))
    assert [g.issues for g in result.groups] == [1, 1, 1, 2]
    assert result.unattributed == 2
    assert "2 issues on or after 2020-09-07: unattributed" in result.notes


def test_same_day_releases_form_one_group():
    releases = [release(1, 0, 3, "1.0.0"), release(2, 0, 4, "1.0.0"), release(3, 10, 1, "1.1.0")]
    result = opset_evolution(issues_at(0, 5, 10), releases=releases)
    assert summary(result) == [
        ("opset 1-2 (ONNX 1.0.0)", "2020-01-01", 7, 2),
        ("opset 3 (ONNX 1.1.0)", "2020-01-11", 1, 1),
    ]


def test_causes_are_counted_per_group():
    issues = issues_at(0, 1, cause="type") + issues_at(70, cause="crash") + issues_at(160)
    result = opset_evolution(issues, releases=RELEASES)
    assert [g.issues_by_cause for g in result.groups] == [{"type": 2}, {"crash": 1}, {}]
    assert list(result.by_cause) == ["crash", "type"]


def test_groups_outside_the_issue_span_are_left_out_with_notes():
    # Issues from day 70 to day 160: opset 1's window ends at day 60, opset 4 starts at 244.
    result = opset_evolution(issues_at(70, 100, 160), releases=RELEASES)
    assert [g.opsets for g in result.groups] == [(2,), (3,)]
    assert any("window ends before the first issue" in n and "opset 1 " in n for n in result.notes)
    assert any("released after the last issue" in n and "opset 4 " in n for n in result.notes)


# Merging and dropping -------------------------------------------------------------------------

MERGE_RELEASES = [
    release(1, 0, 10),
    release(2, 10, 1),
    release(3, 29, 2),
    release(4, 30, 4),
    release(5, 100, 8),
]
MERGE_ISSUES = issues_at(0, 11, 29, 30, 31, 99, 100, 101, 102)


def test_merge_within_days_merges_into_first_release_of_group():
    result = opset_evolution(MERGE_ISSUES, releases=MERGE_RELEASES, merge_within_days=30)
    assert summary(result) == [
        ("opset 1-3 (ONNX 1.1.0, 1.2.0, 1.3.0)", "2020-01-01", 13, 3),
        ("opset 4 (ONNX 1.4.0)", "2020-01-31", 4, 3),
        ("opset 5 (ONNX 1.5.0)", "2020-04-10", 8, 3),
    ]
    assert result.options.merge_within_days == 30


def test_merge_within_zero_days_keeps_every_release():
    result = opset_evolution(MERGE_ISSUES, releases=MERGE_RELEASES)
    assert [g.issues for g in result.groups] == [1, 1, 1, 3, 3]


def test_merge_within_days_covers_whole_span():
    result = opset_evolution(MERGE_ISSUES, releases=MERGE_RELEASES, merge_within_days=101)
    assert summary(result) == [
        ("opset 1-5 (ONNX 1.1.0, 1.2.0, 1.3.0, 1.4.0, 1.5.0)", "2020-01-01", 25, 9)
    ]


@pytest.mark.parametrize(
    ("drop_first", "drop_last", "expected"),
    [
        (True, False, [(4,), (5,)]),
        (False, True, [(1, 2, 3), (4,)]),
        (True, True, [(4,)]),
    ],
)
def test_drop_first_and_last_after_merging(drop_first, drop_last, expected):
    result = opset_evolution(
        MERGE_ISSUES,
        releases=MERGE_RELEASES,
        merge_within_days=30,
        drop_first=drop_first,
        drop_last=drop_last,
    )
    assert [g.opsets for g in result.groups] == expected
    dropped = [n for n in result.notes if n.startswith("dropped")]
    assert len(dropped) == drop_first + drop_last
    if drop_first:
        assert "dropped the first group, opset 1-3 (ONNX 1.1.0, 1.2.0, 1.3.0) (3 issues)" in dropped


# Statistics -----------------------------------------------------------------------------------


def test_spearman_equals_scipy_on_the_group_table():
    releases = [release(k, 30 * k, size) for k, size in enumerate([4, 9, 1, 7, 7, 3], start=1)]
    offsets = [30, 31, 60, 61, 62, 63, 90, 120, 121, 122, 150, 151, 180, 181, 182, 183, 184]
    result = opset_evolution(issues_at(*offsets), releases=releases)
    sizes = [g.size for g in result.groups]
    counts = [g.issues for g in result.groups]
    assert counts == [2, 4, 1, 3, 2, 5]
    expected = stats.spearmanr(sizes, counts)
    assert result.overall.rho == pytest.approx(expected.statistic, abs=1e-12)
    assert result.overall.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert result.overall.n_groups == 6 and result.overall.issues == 17


def test_spearman_planted_proportional_counts_give_rho_one():
    sizes = [3, 8, 1, 12, 5]
    releases = [release(k, 30 * k, size) for k, size in enumerate(sizes, start=1)]
    issues = [i for k, size in enumerate(sizes, start=1) for i in issues_at(*[30 * k] * (2 * size))]
    result = opset_evolution(issues, releases=releases)
    assert [g.issues for g in result.groups] == [2 * s for s in sizes]
    assert result.overall.rho == pytest.approx(1.0)
    assert result.overall.supported is True
    assert result.overall.verdict.startswith("strong positive correlation (rho=1.00")


def test_spearman_per_cause_uses_only_that_cause():
    releases = [release(k, 30 * k, size) for k, size in enumerate([1, 2, 3, 4], start=1)]
    issues = issues_at(30, 60, 60, 90, 90, 90, 120, 120, 120, 120, cause="type") + issues_at(
        30, 30, 30, 30, 60, 60, 60, 90, 90, 120, cause="crash"
    )
    result = opset_evolution(issues, releases=releases)
    assert result.by_cause["type"].rho == pytest.approx(1.0)
    assert result.by_cause["crash"].rho == pytest.approx(-1.0)
    assert result.by_cause["type"].issues == 10


@pytest.mark.parametrize(
    ("rho", "p", "expected"),
    [
        (0.34, 0.12, "weak positive correlation (rho=0.34, p=0.12, n=20): rejected as weak"),
        (0.34, 0.01, "weak positive correlation (rho=0.34, p=0.01, n=20): rejected as weak"),
        (
            0.55,
            0.2,
            "moderate positive correlation (rho=0.55, p=0.2, n=20): "
            "rejected (not significant at alpha=0.05)",
        ),
        (
            0.55,
            0.01,
            "moderate positive correlation (rho=0.55, p=0.01, n=20): supported at alpha=0.05",
        ),
        (
            0.7,
            0.001,
            "strong positive correlation (rho=0.70, p=0.001, n=20): supported at alpha=0.05",
        ),
        (
            -0.8,
            0.001,
            "strong negative correlation (rho=-0.80, p=0.001, n=20): rejected (not positive)",
        ),
        (0.0, 1.0, "no correlation (rho=0.00, p=1, n=20): rejected (not positive)"),
    ],
)
def test_describe_correlation_thresholds(rho, p, expected):
    assert describe_correlation(rho, p, n_groups=20, alpha=0.05) == expected
    correlation = Correlation(rho=rho, p_value=p, n_groups=20, issues=1, alpha=0.05)
    assert correlation.supported == expected.endswith("supported at alpha=0.05")


@pytest.mark.parametrize(
    ("sizes", "counts", "reason"),
    [
        ([1, 2], [3, 4], "undefined: fewer than 3 groups (n=2)"),
        ([], [], "undefined: fewer than 3 groups (n=0)"),
        ([1, 2, 3], [5, 5, 5], "undefined: every group has the same number of issues (5)"),
        ([4, 4, 4], [1, 2, 3], "undefined: every group has the same size (4)"),
    ],
)
def test_spearman_undefined_returns_none_with_reason(sizes, counts, reason):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        correlation = spearman_correlation(sizes, counts)
    assert correlation.rho is None and correlation.p_value is None
    assert correlation.verdict is None and correlation.supported is None
    assert correlation.reason == reason


def test_opset_evolution_with_two_groups_or_constant_counts_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        two = opset_evolution(issues_at(0, 60), releases=RELEASES[:2])
        constant = opset_evolution(issues_at(0, 60, 152, 244), releases=RELEASES)
    assert two.overall.rho is None and "fewer than 3 groups" in two.overall.reason
    assert constant.overall.rho is None and "same number of issues (1)" in constant.overall.reason


# Reading issues -------------------------------------------------------------------------------


def write(tmp_path: Path, content: str | bytes, name: str = "issues.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_read_issues_with_bom_extra_columns_and_datetimes(tmp_path):
    content = (
        "\ufeffid,title,created_at,cause,labels\n"
        '1,"Crash, in Resize",2021-03-04,type ,bug\n'
        "2,Wrong output,2021-03-04T23:30:00-02:00,,\n"
        "\n"
        "3,Slow,2021-03-06T10:22:00Z,crash,x,extra\n"
        "4,Naive,2021-03-07 08:00:00,Crash\n"
    )
    issues = read_issues(write(tmp_path, content))
    assert issues == (
        Issue(created_at=date(2021, 3, 4), cause="type"),
        Issue(created_at=date(2021, 3, 5), cause=None),
        Issue(created_at=date(2021, 3, 6), cause="crash"),
        Issue(created_at=date(2021, 3, 7), cause="Crash"),
    )


def test_read_issues_without_cause_column(tmp_path):
    issues = read_issues(write(tmp_path, "created_at\n2020-01-02\n2020-01-03\n"))
    assert [i.cause for i in issues] == [None, None]
    assert [i.created_at.day for i in issues] == [2, 3]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file; expected a CSV header"),
        ("\n\n", "empty file; expected a CSV header"),
        ("id,cause\n1,type\n", "no 'created_at' column in the header (found 'id', 'cause')"),
        ('{"issues": [1, 2]}\n', "no 'created_at' column"),
        ("created_at,cause\n", "no issues (the table has a header but no rows)"),
        ("created_at,cause\n2021-01-01,a\n2021-13-01,b\n", ":3: created_at is '2021-13-01'"),
        ("created_at,cause\n2021-01-01,a\nyesterday,b\n", ":3: created_at is 'yesterday'"),
        ("id,created_at\n1,2021-01-01\n2,\n", ":3: created_at is an empty value"),
        ("id,created_at\n1,2021-01-01\n2\n", ":3: created_at is an empty value"),
        ('created_at,cause\n2021-01-01,"unclosed\n', "not a valid CSV"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a UTF-8 CSV file"),
    ],
)
def test_read_issues_bad_input_names_the_file(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(HypothesisInputError) as info:
        read_issues(path)
    text = str(info.value)
    assert text.startswith(str(path))
    assert message in text
    assert "\n" not in text


def test_read_issues_missing_file_and_directory(tmp_path):
    with pytest.raises(HypothesisInputError, match="no such file") as info:
        read_issues(tmp_path / "absent.csv")
    assert str(tmp_path / "absent.csv") in str(info.value)
    with pytest.raises(HypothesisInputError, match="cannot read") as info:
        read_issues(tmp_path)
    assert str(tmp_path) in str(info.value)


# Options and inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"merge_within_days": -1}, "merge_within_days must be >= 0"),
        ({"merge_within_days": 1.5}, "merge_within_days must be an integer"),
        ({"alpha": 0.0}, "alpha must be between 0 and 1"),
        ({"alpha": 1.5}, "alpha must be between 0 and 1"),
        ({"releases": []}, "no opset releases"),
        ({"releases": [release(1, 0, 1), release(1, 5, 2)]}, "opsets listed more than once: [1]"),
    ],
)
def test_opset_evolution_bad_options_raise(kwargs, message):
    kwargs.setdefault("releases", RELEASES)
    with pytest.raises(HypothesisInputError) as info:
        opset_evolution(issues_at(0), **kwargs)
    assert message in str(info.value)


def test_opset_evolution_without_issues_raises():
    with pytest.raises(HypothesisInputError, match="no issues"):
        opset_evolution([], releases=RELEASES)


def test_opset_evolution_default_releases_use_installed_sizes():
    issues = issues_at(*range(400, 1200, 7))  # 2021-02-04 .. 2023-03-15
    result = opset_evolution(issues)
    changes = opset_changes()
    by_opset = {g.opsets[0]: g for g in result.groups}
    assert by_opset[14].name == "opset 14 (ONNX 1.9.0)"
    assert by_opset[14].released == date(2021, 4, 19)
    assert by_opset[14].size == sum(map(len, changes[14]))
    assert [g.opsets for g in result.groups] == [(o,) for o in range(13, 19)]
    assert sum(g.issues for g in result.groups) == len(issues)


# Serialisation and rendering ------------------------------------------------------------------


def test_to_dict_is_json_with_iso_dates():
    issues = issues_at(0, 1, 60, 152, 153, 154, 244, cause="type") + issues_at(61, cause="a|b")
    result = opset_evolution(issues, releases=RELEASES)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["schema_version"] == evolution.SCHEMA_VERSION
    assert data["groups"][0]["released"] == "2020-01-01"
    assert data["releases"][0]["added"] == ["Op1_0", "Op1_1", "Op1_2"]
    assert data["overall"]["n_groups"] == 4
    assert set(data["by_cause"]) == {"a|b", "type"}
    assert data["options"] == {
        "merge_within_days": 0,
        "drop_first": False,
        "drop_last": False,
        "alpha": 0.05,
    }


def test_format_evolution_markdown_reads_as_a_report():
    issues = issues_at(-3, 0, 1, 60, 152, 153, 154, 244, cause="type") + issues_at(61, cause="a|b")
    result = opset_evolution(issues, releases=RELEASES, drop_last=True)
    text = format_evolution_markdown(result)
    lines = text.splitlines()
    assert lines[0] == "### Opset evolution (RQ3): release size vs. later issues"
    assert f"- **All issues** (7 issues): {result.overall.verdict}" in lines
    assert f"- **a\\|b** (1 issue): {result.by_cause['a|b'].verdict}" in lines
    assert "| group | released | size | issues | a\\|b | type |" in lines
    assert "| opset 2 (ONNX 1.2.0) | 2020-03-01 | 1 | 2 | 1 | 1 |" in lines
    assert "opset 4 (ONNX 1.4.0) |" not in text
    assert "- dropped the last group, opset 4 (ONNX 1.4.0) (1 issue)" in lines
    assert "- 1 issue before the first release (2020-01-01): unattributed" in lines
    assert "rho = 0.34" in text


def test_format_evolution_markdown_without_groups():
    result = opset_evolution(issues_at(0), releases=RELEASES[:1], drop_first=True)
    text = format_evolution_markdown(result)
    assert "| (no groups) |" in text
    assert "undefined: fewer than 3 groups (n=0)" in text


def test_per_cause_q_values_are_benjamini_hochberg_over_the_causes():
    from statsmodels.stats.multitest import multipletests

    releases = [release(opset, 60 * opset, size=opset) for opset in range(1, 9)]
    issues = []
    for i in range(8):  # "big" tracks size; "noise" and "rare" do not
        start = 60 * (i + 1)
        issues += issues_at(*[start + 1] * (i + 1), cause="big")
        issues += issues_at(*[start + 2] * (1 + (i * 5) % 3), cause="noise")
        issues += issues_at(*[start + 3] * (i % 2), cause="rare")
    result = opset_evolution(issues, releases=releases)
    causes = list(result.by_cause)
    expected = multipletests([result.by_cause[c].p_value for c in causes], method="fdr_bh")[1]
    for cause, q in zip(causes, expected, strict=True):
        assert result.by_cause[cause].q_value == pytest.approx(q)
    assert result.overall.q_value is None
    assert "q=" in result.by_cause["big"].verdict and result.by_cause["big"].supported


ISSUES_DIR = Path(__file__).resolve().parents[2] / "corpus" / "issues"


def _collect_issues_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "collect_issues", ISSUES_DIR / "collect_issues.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.corpus
def test_shipped_raw_issues_hold_facts_and_reproduce_their_cause():
    collect = _collect_issues_module()
    lines = (ISSUES_DIR / "raw_issues.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    assert len(records) == 315
    for rec in records:
        assert "excerpt" not in rec and "query" not in rec, rec["url"]
        assert tuple(rec) == collect.FIELDS, rec["url"]
        assert collect.classify(rec["title"], rec["description_keywords"]) == rec["cause"]
        assert collect.decide(rec["title"], rec["description_keywords"]) == (
            rec["cause"],
            rec["cause_matched"],
        )
    # load_raw re-checks every record and fails loudly on a mismatch
    assert len(collect.load_raw(ISSUES_DIR / "raw_issues.jsonl")) == 315


@pytest.mark.corpus
def test_collect_issues_fails_when_a_stored_cause_disagrees_with_the_rule(tmp_path):
    collect = _collect_issues_module()
    rec = json.loads((ISSUES_DIR / "raw_issues.jsonl").read_text(encoding="utf-8").splitlines()[0])
    rec["cause"] = "other" if rec["cause"] != "other" else "crash"
    raw = tmp_path / "raw.jsonl"
    raw.write_text(json.dumps(rec) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="the rule gives cause"):
        collect.load_raw(raw)
