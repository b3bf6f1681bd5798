"""The gate report in every format: exact outputs, escaping of untrusted names, the job summary."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from opseq.coverage.criteria import Criterion, Offender
from opseq.coverage.gate_formats import (
    GateReport,
    append_step_summary,
    format_gate_report,
    render_github,
    render_junit,
    render_markdown,
    render_text,
)
from opseq.errors import ConfigError

PASSING = Criterion(
    name="op_coverage",
    passed=True,
    threshold=0.9,
    value=1.0,
    allowed=(
        Offender(item="com.microsoft:FusedMatMul", nodes=("fused_0",), detail="ORT fusion, tested"),
    ),
)
FAILING = Criterion(
    name="ngram_coverage_2",
    passed=False,
    threshold=0.8,
    value=0.5,
    offenders=(
        Offender(item="Relu>Neg", nodes=("relu_1", "neg_2")),
        Offender(item="Neg>Exp", nodes=("neg_2", "main/3")),
    ),
)
UNEVALUATED = Criterion(name="risky", passed=None, threshold=0, note="no knowledge base was given")
REFERENCE = {"name": "onnx-node-tests", "fingerprint": "0123456789abcdef0123", "models": 1234}


def report(*criteria: Criterion, **changes) -> GateReport:
    made = GateReport(
        model="models/net.onnx",
        passed=False,
        criteria=criteria or (PASSING, FAILING, UNEVALUATED),
        references=(REFERENCE,),
        policy_source="repo/opseq.toml",
    )
    return dataclasses.replace(made, **changes)


# --- exact outputs ------------------------------------------------------------------------

TEXT = """\
opseq gate FAILED: models/net.onnx (1 failed, 1 passed, 1 not evaluated)
  policy     repo/opseq.toml
  reference  onnx-node-tests (1,234 models, fingerprint 0123456789ab)

PASS  op_coverage       100% covered, needs >= 90%
      1 allowed by the policy:
        com.microsoft:FusedMatMul  at fused_0  (ORT fusion, tested)
FAIL  ngram_coverage_2  50% covered, needs >= 80%
      2 offenders:
        Relu>Neg  at relu_1, neg_2
        Neg>Exp  at neg_2, main/3
SKIP  risky             not evaluated: no knowledge base was given (threshold <= 0)
"""

JUNIT = """\
<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="opseq gate" tests="3" failures="1" errors="0">
  <testsuite name="opseq gate" tests="3" failures="1" errors="0" skipped="1">
    <properties>
      <property name="model" value="models/net.onnx" />
      <property name="passed" value="false" />
      <property name="policy" value="repo/opseq.toml" />
      <property name="baseline" value="" />
      <property name="picture" value="" />
      <property name="reference" value="onnx-node-tests (1,234 models, fingerprint 0123456789ab)" />
    </properties>
    <testcase classname="opseq.gate.net" name="op_coverage">
      <system-out>1 allowed by the policy:
  com.microsoft:FusedMatMul  at fused_0  (ORT fusion, tested)</system-out>
    </testcase>
    <testcase classname="opseq.gate.net" name="ngram_coverage_2">
      <failure message="ngram_coverage_2 failed: 50% covered, needs &gt;= 80%" \
type="opseq.gate.CriterionFailed">2 offenders:
  Relu&gt;Neg  at relu_1, neg_2
  Neg&gt;Exp  at neg_2, main/3</failure>
    </testcase>
    <testcase classname="opseq.gate.net" name="risky">
      <skipped message="not evaluated: no knowledge base was given (threshold &lt;= 0)" />
    </testcase>
  </testsuite>
</testsuites>
"""

GITHUB = """\
::warning file=models/net.onnx,title=opseq gate%3A op_coverage (allowed)::1 allowed by the \
policy:%0A  com.microsoft:FusedMatMul  at fused_0  (ORT fusion, tested)
::error file=models/net.onnx,title=opseq gate%3A ngram_coverage_2::ngram_coverage_2 failed: \
50%25 covered, needs >= 80%25%0A2 offenders:%0A  Relu>Neg  at relu_1, neg_2%0A  Neg>Exp  at \
neg_2, main/3
::warning file=models/net.onnx,title=opseq gate%3A risky::risky not evaluated: no knowledge \
base was given (threshold <= 0)
opseq gate FAILED: models/net.onnx (1 failed, 1 passed, 1 not evaluated)
"""

MARKDOWN = """\
### ❌ opseq gate FAILED: `models/net.onnx`

1 failed, 1 passed, 1 not evaluated.

| result | criterion | value | threshold | note |
|---|---|---|---|---|
| ✅ pass | `op_coverage` | 100% | >= 90% |  |
| ❌ **fail** | `ngram_coverage_2` | 50% | >= 80% |  |
| ⚪ skip | `risky` |  | <= 0 | `no knowledge base was given` |

<details><summary>op_coverage: 1 allowed by the policy</summary>

| item | nodes | reason |
|---|---|---|
| `com.microsoft:FusedMatMul` | `fused_0` | `ORT fusion, tested` |

</details>

<details><summary>ngram_coverage_2: 2 offenders</summary>

| item | nodes | detail |
|---|---|---|
| `Relu>Neg` | `relu_1`, `neg_2` |  |
| `Neg>Exp` | `neg_2`, `main/3` |  |

</details>

- policy: `repo/opseq.toml`
- reference: `onnx-node-tests` (1,234 models, fingerprint `0123456789ab`)
"""


@pytest.mark.parametrize(
    ("fmt", "expected"), [("text", TEXT), ("junit", JUNIT), ("github", GITHUB), ("md", MARKDOWN)]
)
def test_every_format_gives_the_exact_report(fmt, expected):
    assert format_gate_report(report(), fmt, environ={}) == expected


def test_json_is_to_dict():
    data = json.loads(format_gate_report(report(), "json"))
    assert data == report().to_dict()
    assert data == {
        "schema_version": 1,
        "model": "models/net.onnx",
        "passed": False,
        "criteria": [PASSING.to_dict(), FAILING.to_dict(), UNEVALUATED.to_dict()],
        "reference": [REFERENCE],
        "baseline": None,
        "policy": "repo/opseq.toml",
        "picture": None,
    }
    assert data["criteria"][1]["offenders"][0] == {
        "item": "Relu>Neg",
        "nodes": ["relu_1", "neg_2"],
        "detail": None,
    }


def test_unknown_format_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown gate report format 'html'"):
        format_gate_report(report(), "html")


def test_a_passing_report_with_baseline_and_picture(tmp_path: Path):
    passed = report(PASSING, passed=True, baseline="old.onnx", picture="out/net pic.svg")
    assert render_text(passed).splitlines()[:5] == [
        "opseq gate passed: models/net.onnx (0 failed, 1 passed, 0 not evaluated)",
        "  policy     repo/opseq.toml",
        "  reference  onnx-node-tests (1,234 models, fingerprint 0123456789ab)",
        "  baseline   old.onnx",
        "  picture    out/net pic.svg",
    ]
    md = render_markdown(passed)
    assert md.startswith("### ✅ opseq gate passed: `models/net.onnx`\n")
    assert md.endswith("- baseline: `old.onnx`\n- picture: [`net pic.svg`](out/net%20pic.svg)\n")
    assert render_github(passed).splitlines()[-1] == (
        "opseq gate passed: models/net.onnx (0 failed, 1 passed, 0 not evaluated)"
    )


def test_without_a_policy_file_the_report_says_defaults():
    plain = report(policy_source=None)
    assert "  policy     none (defaults)" in render_text(plain)
    assert "- policy: none (defaults)" in render_markdown(plain)


def test_counted_criteria_read_as_found_against_allowed():
    novel = Criterion(
        name="novel_2",
        passed=False,
        threshold=0,
        value=1,
        offenders=(Offender(item="A>B", nodes=("a",), detail="new"),),
        note="counting only novel 2-grams the baseline did not have",
    )
    assert render_text(report(novel)).splitlines()[4:] == [
        "FAIL  novel_2  1 found, allows <= 0",
        "      1 offender:",
        "        A>B  at a  (new)",
        "      note: counting only novel 2-grams the baseline did not have",
    ]


def test_a_check_counts_its_problems():
    valid = Criterion(name="valid", passed=True, value=0, note="strict shape inference")
    assert render_text(report(valid)).splitlines()[4:] == [
        "PASS  valid  0 problems",
        "      note: strict shape inference",
    ]


def test_a_yes_no_check_shows_no_numbers():
    valid = Criterion(
        name="valid",
        passed=False,
        offenders=(Offender(item="checker", detail="Field 'type' of 'value_info' is required"),),
    )
    assert render_text(report(valid)).splitlines()[4:] == [
        "FAIL  valid",
        "      1 offender:",
        "        checker  (Field 'type' of 'value_info' is required)",
    ]
    assert '<failure message="valid failed" type="opseq.gate.CriterionFailed">' in render_junit(
        report(valid)
    )


@pytest.mark.parametrize(
    ("value", "shown"), [(0.57, "57%"), (2 / 3, "66.6%"), (0.8999, "89.9%"), (0.0, "0%")]
)
def test_ratios_are_rounded_down_so_a_failing_value_never_reads_as_the_threshold(value, shown):
    criterion = dataclasses.replace(FAILING, value=value, threshold=0.9, offenders=())
    assert f"  {shown} covered, needs >= 90%" in render_text(report(criterion))


def test_an_undefined_ratio_is_not_evaluated():
    undefined = Criterion(
        name="versioned_op_coverage",
        passed=None,
        threshold=1.0,
        note="the model has no such items: the ratio is undefined",
    )
    assert (
        "SKIP  versioned_op_coverage  not evaluated: the model has no such items: the ratio is "
        "undefined (threshold >= 100%)"
    ) in render_text(report(undefined))


# --- long lists -----------------------------------------------------------------------------


def _many(count: int) -> tuple[Offender, ...]:
    return tuple(Offender(item=f"Op{i}>Relu", nodes=(f"n{i}",)) for i in range(count))


def test_at_most_20_offenders_are_listed_then_how_many_more():
    many = dataclasses.replace(FAILING, offenders=_many(25))
    lines = render_text(report(many)).splitlines()
    assert lines[5] == "      25 offenders:"
    assert lines[6] == "        Op0>Relu  at n0"
    assert lines[25] == "        Op19>Relu  at n19"
    assert lines[26] == "        ... and 5 more"
    md = render_markdown(report(many))
    assert "| `Op19>Relu` | `n19` |  |\n| ... and 5 more |  |  |\n" in md
    assert "Op20>Relu" not in md
    assert "%0A  ... and 5 more" in render_github(report(many))


def test_a_counted_criterion_says_how_many_beyond_those_kept():
    # The gate keeps a few hundred offenders; the value is the exact count.
    risky = Criterion(name="risky", passed=False, threshold=0, value=250, offenders=_many(200))
    text = render_text(report(risky))
    assert "      250 offenders:\n" in text and "        ... and 230 more\n" in text


def test_node_lists_are_cut_too():
    crowded = dataclasses.replace(
        FAILING, offenders=(Offender(item="A>B", nodes=tuple(f"n{i}" for i in range(8))),)
    )
    assert "        A>B  at n0, n1, n2, n3, n4 (+3)\n" in render_text(report(crowded))


# --- junit ----------------------------------------------------------------------------------


def test_junit_parses_back_with_the_counts():
    root = ET.fromstring(render_junit(report()))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "opseq gate"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    assert suite.get("errors") == "0"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["op_coverage", "ngram_coverage_2", "risky"]
    assert {c.get("classname") for c in cases} == {"opseq.gate.net"}
    assert [c.find("failure") is not None for c in cases] == [False, True, False]
    assert [c.find("skipped") is not None for c in cases] == [False, False, True]
    assert "Relu>Neg  at relu_1, neg_2" in cases[1].find("failure").text


# Attributes and children the Jenkins schema allows (xunit-plugin junit-10.xsd); GitLab reads
# a subset of it.
_SCHEMA = {
    "testsuites": ({"name", "time", "tests", "failures", "errors"}, set(), {"testsuite"}),
    "testsuite": (
        {"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp"}
        | {"hostname", "id", "package", "file", "log", "url"},
        {"name", "tests", "failures", "errors"},
        {"testsuite", "properties", "testcase", "system-out", "system-err"},
    ),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, {"name", "value"}, set()),
    "testcase": (
        {"name", "time", "classname", "group"},
        {"name"},
        {"skipped", "error", "failure", "system-out", "system-err"},
    ),
    "failure": ({"type", "message"}, set(), set()),
    "skipped": ({"type", "message"}, set(), set()),
    "system-out": (set(), set(), set()),
}


def _check_schema(element: ET.Element) -> None:
    allowed, required, children = _SCHEMA[element.tag]
    assert set(element.attrib) <= allowed, element.tag
    assert required <= set(element.attrib), element.tag
    for child in element:
        assert child.tag in children, (element.tag, child.tag)
        _check_schema(child)


@pytest.mark.parametrize(
    "criteria", [(PASSING, FAILING, UNEVALUATED), (), (dataclasses.replace(FAILING, offenders=()),)]
)
def test_junit_keeps_to_the_jenkins_schema(criteria):
    root = ET.fromstring(render_junit(report(*criteria) if criteria else report(criteria=())))
    assert root.tag == "testsuites"
    _check_schema(root)


def test_junit_holds_hostile_names_as_valid_xml():
    hostile = Offender(
        item="A\x00B\x1b[2J\ufffe<&>\"'", nodes=("n\x07", "\ud800lone", "tab\there"), detail="\x0c"
    )
    criterion = dataclasses.replace(FAILING, offenders=(hostile,))
    xml = render_junit(report(criterion, model="dir/we.ird\x01.onnx"))
    root = ET.fromstring(xml.encode("utf-8"))  # bytes: the document as a CI server reads it
    case = root.find("testsuite/testcase")
    assert case.get("classname") == "opseq.gate.we_ird\\x01"
    text = case.find("failure").text
    assert "A\\x00B\\x1b[2J<&>\"'  at n\\x07, lone, tab\\x09here  (\\x0c)" in text
    assert "\ufffe" not in xml and "\ud800" not in xml


def test_junit_without_criteria_is_an_empty_suite():
    root = ET.fromstring(render_junit(report(passed=True, criteria=())))
    assert root.find("testsuite").get("tests") == "0"


# --- github ---------------------------------------------------------------------------------


def test_github_escapes_messages_and_properties():
    odd = Offender(item="100%\r\nA", nodes=("x,y:z",), detail="q 1%")
    criterion = dataclasses.replace(FAILING, offenders=(odd,))
    out = render_github(report(criterion, model="dir,a:b%/m.onnx"))
    lines = out.splitlines()
    assert lines[0] == (
        "::error file=dir%2Ca%3Ab%25/m.onnx,title=opseq gate%3A ngram_coverage_2::"
        "ngram_coverage_2 failed: 50%25 covered, needs >= 80%25%0A1 offender:%0A"
        "  100%25\\x0d\\x0aA  at x,y:z  (q 1%25)"
    )
    assert all(line.startswith(("::error ", "::warning ", "opseq gate ")) for line in lines)
    assert "\r" not in out


def test_a_forged_workflow_command_in_a_name_stays_inside_its_message():
    forged = Offender(item="A\n::set-output name=x::1\n::error::forged")
    criterion = dataclasses.replace(FAILING, offenders=(forged,))
    lines = render_github(report(criterion)).splitlines()
    assert len(lines) == 2 and lines[0].count("::error") == 2  # ours, and the quoted one
    assert "A\\x0a::set-output name=x::1\\x0a::error::forged" in lines[0]


def test_the_summary_is_appended_when_github_step_summary_is_set(tmp_path: Path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    environ = {"GITHUB_STEP_SUMMARY": str(summary)}
    assert format_gate_report(report(), "github", environ=environ) == GITHUB
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + MARKDOWN + "\n"
    assert append_step_summary(report(), environ) == summary
    assert summary.read_text(encoding="utf-8").count("### ❌ opseq gate FAILED") == 2


@pytest.mark.parametrize("environ", [{}, {"GITHUB_STEP_SUMMARY": ""}])
def test_no_summary_without_the_variable(environ, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert append_step_summary(report(), environ) is None
    assert format_gate_report(report(), "github", environ=environ) == GITHUB
    assert list(tmp_path.iterdir()) == []


def test_other_formats_write_no_summary(tmp_path: Path):
    summary = tmp_path / "summary.md"
    for fmt in ("text", "json", "junit", "md"):
        format_gate_report(report(), fmt, environ={"GITHUB_STEP_SUMMARY": str(summary)})
    assert not summary.exists()


def test_the_process_environment_is_the_default(tmp_path: Path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    format_gate_report(report(), "github")
    assert summary.read_text(encoding="utf-8") == MARKDOWN + "\n"


def test_an_unwritable_summary_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"GITHUB_STEP_SUMMARY .*: cannot write"):
        append_step_summary(report(), {"GITHUB_STEP_SUMMARY": str(tmp_path)})


# --- md -------------------------------------------------------------------------------------


def test_markdown_puts_untrusted_names_in_code_spans_with_pipes_escaped():
    odd = Offender(
        item="a|b`c", nodes=("<img src=x onerror=alert(1)>", "@everyone"), detail="[x](http://e)"
    )
    criterion = dataclasses.replace(FAILING, offenders=(odd,))
    md = render_markdown(report(criterion, model="m|`x`.onnx"))
    assert md.startswith("### ❌ opseq gate FAILED: ``m|`x`.onnx``\n")  # no table: | as is
    assert ": `` `quoted` ``\n" in render_markdown(report(model="`quoted`"))
    assert "| ``a\\|b`c`` | `<img src=x onerror=alert(1)>`, `@everyone` | `[x](http://e)` |\n" in md


def test_markdown_escapes_control_characters():
    odd = Offender(item="A\nB\x1b", nodes=("n\u202e",))
    md = render_markdown(report(dataclasses.replace(FAILING, offenders=(odd,))))
    assert "| `A\\x0aB\\x1b` | `n\\u202e` |  |\n" in md
