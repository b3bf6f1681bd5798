r"""The gate's report, and its five formats: text, json, junit, github and md.

- ``text``: one line per criterion, ``PASS``/``FAIL``/``SKIP`` with its value against its
  threshold; under a failed one its offenders and their nodes; under any one the items the
  allowlist accepted, with their reasons.
- ``json``: `GateReport.to_dict` (``schema_version`` 1).
- ``junit``: one ``testsuite`` named ``opseq gate`` with one ``testcase`` per criterion (class
  ``opseq.gate.<model stem>``): a ``failure`` listing the offenders, or ``skipped`` when the
  criterion was not evaluated; notes and allowed items in ``system-out``.
- ``github``: GitHub Actions workflow commands, an ``::error`` per failed criterion and a
  ``::warning`` per criterion with allowed items or not evaluated, then a plain summary line;
  with ``$GITHUB_STEP_SUMMARY`` set, the Markdown report is appended to that file too.
- ``md``: Markdown for a pull-request comment: a heading with the verdict, a table of criteria,
  offenders and allowed items in ``<details>`` blocks, the picture linked.

Offender names come from untrusted models. Text, JUnit and workflow commands escape control
characters (`opseq.untrusted.escape_controls`: a name cannot add a line, hence neither a forged
workflow command); JUnit also drops what XML 1.0 cannot hold (lone surrogates, U+FFFE, U+FFFF);
workflow commands escape ``%``, CR and LF in messages and also ``:`` and ``,`` in properties, as
the Actions toolkit does; Markdown puts every untrusted string in a code span (no HTML, no
links, no @mentions), with ``|`` escaped in table cells. Each list stops after
`MAX_LISTED` items with "... and N more".
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opseq.coverage.criteria import Criterion, Offender
from opseq.errors import ConfigError
from opseq.untrusted import escape_controls

__all__ = [
    "FORMATS",
    "MAX_LISTED",
    "SCHEMA_VERSION",
    "GateReport",
    "append_step_summary",
    "format_gate_report",
    "render_github",
    "render_json",
    "render_junit",
    "render_markdown",
    "render_text",
]

SCHEMA_VERSION = 1
FORMATS = ("text", "json", "junit", "github", "md")
MAX_LISTED = 20  # offenders (or allowed items) listed per criterion
_NODES_SHOWN = 5
_FINGERPRINT_SHOWN = 12
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_STATUS = {True: "PASS", False: "FAIL", None: "SKIP"}
_MD_STATUS = {True: "✅ pass", False: "❌ **fail**", None: "⚪ skip"}


@dataclass(frozen=True, slots=True, kw_only=True)
class GateReport:
    """What one gate run decided, and on what.

    ``references`` holds each reference's description (name, fingerprint, models, as
    `opseq.coverage.index.ReferenceIndex.to_dict` gives it); ``policy_source`` the policy file
    (None without one); ``picture`` the rendered picture's path, if any.
    """

    model: str
    passed: bool
    criteria: tuple[Criterion, ...]
    references: tuple[dict, ...] = ()
    baseline: str | None = None
    policy_source: str | None = None
    picture: str | None = None

    def to_dict(self) -> dict:
        """Return the JSON document (``schema_version`` 1)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "passed": self.passed,
            "criteria": [c.to_dict() for c in self.criteria],
            "reference": [dict(r) for r in self.references],
            "baseline": self.baseline,
            "policy": self.policy_source,
            "picture": self.picture,
        }


def format_gate_report(
    report: GateReport, fmt: str, *, environ: Mapping[str, str] | None = None
) -> str:
    """The report in `fmt`, ending with a newline.

    For ``github`` this also appends the Markdown report to ``$GITHUB_STEP_SUMMARY`` when set
    (in `environ`, default the process environment), so that the job summary shows it.

    Raises:
        ConfigError: If `fmt` is not one of `FORMATS`, or the step summary cannot be written.
    """
    renderers = {
        "text": render_text,
        "json": render_json,
        "junit": render_junit,
        "github": render_github,
        "md": render_markdown,
    }
    if fmt not in renderers:
        raise ConfigError(f"unknown gate report format {fmt!r}; the formats are {FORMATS}")
    if fmt == "github":
        append_step_summary(report, os.environ if environ is None else environ)
    return renderers[fmt](report)


# --- shared wording ---------------------------------------------------------------------------


def _tally(report: GateReport) -> str:
    counts = {status: 0 for status in (False, True, None)}
    for criterion in report.criteria:
        counts[criterion.passed] += 1
    return f"{counts[False]} failed, {counts[True]} passed, {counts[None]} not evaluated"


def _is_ratio(criterion: Criterion) -> bool:
    # Coverage criteria are shares with a lower bound; the others count, with an upper bound.
    return "coverage" in criterion.name


def _percent(share: float) -> str:
    return f"{share * 100:g}%"


def _percent_floor(share: float) -> str:
    # Rounded down to 0.1%, so a value below its threshold never reads as equal to it.
    return f"{math.floor(round(share * 1000, 6)) / 10:g}%"


def _value_text(criterion: Criterion) -> str:
    value = criterion.value
    if value is None:
        return ""
    return _percent_floor(value) if _is_ratio(criterion) else f"{value:g}"


def _threshold_text(criterion: Criterion) -> str:
    threshold = criterion.threshold
    if threshold is None:
        return ""
    return f">= {_percent(threshold)}" if _is_ratio(criterion) else f"<= {threshold:g}"


def _measure(criterion: Criterion) -> str:
    """``50% covered, needs >= 80%``; ``3 found, allows <= 0``; ``2 problems`` for a check."""
    value, threshold = _value_text(criterion), _threshold_text(criterion)
    if not threshold:  # a yes/no check; its value, if any, counts what it found wrong
        if isinstance(criterion.value, int) and not isinstance(criterion.value, bool):
            return f"{criterion.value} problem{'s' if criterion.value != 1 else ''}"
        return f"value {value}" if value else ""
    found = ("covered" if _is_ratio(criterion) else "found") if value else ""
    needs = "needs" if _is_ratio(criterion) else "allows"
    return ", ".join(part for part in (f"{value} {found}".strip(), f"{needs} {threshold}") if part)


def _summary(criterion: Criterion) -> str:
    """The one-line result of a criterion: its measure, or its note when not evaluated."""
    if criterion.passed is None:
        note = escape_controls(criterion.note or "no reason given")
        threshold = _threshold_text(criterion)
        return f"not evaluated: {note}" + (f" (threshold {threshold})" if threshold else "")
    return _measure(criterion)


def _listed_total(criterion: Criterion) -> int:
    # Counted criteria keep at most a few hundred offenders; their value is the exact count.
    value = criterion.value
    exact = not _is_ratio(criterion) and isinstance(value, int) and not isinstance(value, bool)
    return max(len(criterion.offenders), value if exact else 0)


def _offender_text(offender: Offender) -> str:
    parts = [escape_controls(offender.item)]
    if offender.nodes:
        shown = [escape_controls(n) for n in offender.nodes[:_NODES_SHOWN]]
        more = len(offender.nodes) - _NODES_SHOWN
        parts.append("at " + ", ".join(shown) + (f" (+{more})" if more > 0 else ""))
    if offender.detail:
        parts.append(f"({escape_controls(offender.detail)})")
    return "  ".join(parts)


def _listing(offenders: tuple[Offender, ...], total: int, indent: str) -> list[str]:
    lines = [indent + _offender_text(o) for o in offenders[:MAX_LISTED]]
    if total > MAX_LISTED:
        lines.append(f"{indent}... and {total - MAX_LISTED} more")
    return lines


def _offender_lines(criterion: Criterion, indent: str) -> list[str]:
    """The offenders of a failed criterion, under a heading; nothing for the others."""
    if criterion.passed is not False or not criterion.offenders:
        return []
    total = _listed_total(criterion)
    heading = f"{indent}{total} offender{'s' if total != 1 else ''}:"
    return [heading, *_listing(criterion.offenders, total, indent + "  ")]


def _allowed_lines(criterion: Criterion, indent: str) -> list[str]:
    if not criterion.allowed:
        return []
    heading = f"{indent}{len(criterion.allowed)} allowed by the policy:"
    return [heading, *_listing(criterion.allowed, len(criterion.allowed), indent + "  ")]


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else escape_controls(str(value))


def _reference_text(reference: Mapping) -> str:
    name = escape_controls(str(reference.get("name", "?")))
    facts = []
    if reference.get("models") is not None:
        facts.append(f"{_count(reference['models'])} models")
    if reference.get("fingerprint"):
        facts.append(f"fingerprint {str(reference['fingerprint'])[:_FINGERPRINT_SHOWN]}")
    return name + (f" ({', '.join(facts)})" if facts else "")


def _verdict(report: GateReport) -> str:
    return "passed" if report.passed else "FAILED"


# --- text and json ------------------------------------------------------------------------


def render_text(report: GateReport) -> str:
    """The report for people (module docstring)."""
    lines = [f"opseq gate {_verdict(report)}: {escape_controls(report.model)} ({_tally(report)})"]
    policy = report.policy_source
    lines.append(f"  policy     {escape_controls(policy) if policy else 'none (defaults)'}")
    lines += [f"  reference  {_reference_text(r)}" for r in report.references]
    for label, value in (("baseline", report.baseline), ("picture", report.picture)):
        if value is not None:
            lines.append(f"  {label:<9}  {escape_controls(value)}")
    lines.append("")
    width = max((len(c.name) for c in report.criteria), default=0)
    for criterion in report.criteria:
        head = f"{_STATUS[criterion.passed]}  {escape_controls(criterion.name):<{width}}"
        lines.append(f"{head}  {_summary(criterion)}".rstrip())
        lines += _offender_lines(criterion, "      ")
        lines += _allowed_lines(criterion, "      ")
        if criterion.note and criterion.passed is not None:
            lines.append(f"      note: {escape_controls(criterion.note)}")
    if not report.criteria:
        lines.append("no criteria were evaluated")
    return "\n".join(lines) + "\n"


def render_json(report: GateReport) -> str:
    """The JSON document (`GateReport.to_dict`)."""
    return json.dumps(report.to_dict(), indent=2) + "\n"


# --- junit --------------------------------------------------------------------------------


def _xml(text: str) -> str:
    """One line of text XML 1.0 can hold: controls escaped visibly, the rest dropped."""
    return _NOT_XML.sub("", escape_controls(text))


def _xml_lines(lines: list[str]) -> str:
    return "\n".join(_xml(line) for line in lines)


def _classname(model: str) -> str:
    # Dots in a class name mean packages to Jenkins: opseq.gate.model_v2, not .model.v2.
    stem = Path(model).stem.replace(".", "_") or "model"
    return f"opseq.gate.{_xml(stem)}"


def _testcase(criterion: Criterion, classname: str) -> ET.Element:
    case = ET.Element("testcase", {"classname": classname, "name": _xml(criterion.name)})
    summary = _summary(criterion)
    if criterion.passed is None:
        ET.SubElement(case, "skipped", {"message": _xml(summary)})
    elif criterion.passed is False:
        message = f"{criterion.name} failed" + (f": {summary}" if summary else "")
        failure = ET.SubElement(
            case, "failure", {"message": _xml(message), "type": "opseq.gate.CriterionFailed"}
        )
        failure.text = _xml_lines(_offender_lines(criterion, "")) or None
    out = _allowed_lines(criterion, "")
    if criterion.note and criterion.passed is not None:
        out.insert(0, f"note: {criterion.note}")
    if out:
        ET.SubElement(case, "system-out").text = _xml_lines(out)
    return case


def render_junit(report: GateReport) -> str:
    """JUnit XML for CI dashboards (module docstring); all text escaped."""
    classname = _classname(report.model)
    cases = [_testcase(c, classname) for c in report.criteria]
    counts = {
        "tests": str(len(cases)),
        "failures": str(sum(c.passed is False for c in report.criteria)),
        "errors": "0",
        "skipped": str(sum(c.passed is None for c in report.criteria)),
    }
    # The Jenkins schema (xunit-plugin junit-10.xsd) has no skipped count on testsuites.
    totals = {key: value for key, value in counts.items() if key != "skipped"}
    root = ET.Element("testsuites", {"name": "opseq gate", **totals})
    suite = ET.SubElement(root, "testsuite", {"name": "opseq gate", **counts})
    properties = ET.SubElement(suite, "properties")
    facts = [("model", report.model), ("passed", str(report.passed).lower())]
    facts += [("policy", report.policy_source or ""), ("baseline", report.baseline or "")]
    facts += [("picture", report.picture or "")]
    facts += [("reference", _reference_text(r)) for r in report.references]
    for name, value in facts:
        ET.SubElement(properties, "property", {"name": name, "value": _xml(value)})
    suite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- github -------------------------------------------------------------------------------


def _command_data(text: str) -> str:
    """A workflow command's message, escaped as the Actions toolkit's ``escapeData``."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    """A workflow command's property value, escaped as the toolkit's ``escapeProperty``."""
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(kind: str, model: str, title: str, lines: list[str]) -> str:
    properties = f"file={_command_property(model)},title={_command_property(title)}"
    return f"::{kind} {properties}::{_command_data(chr(10).join(lines))}"


def render_github(report: GateReport) -> str:
    """GitHub Actions workflow commands, then one summary line (module docstring)."""
    model = escape_controls(report.model)
    commands = []
    for criterion in report.criteria:
        name = escape_controls(criterion.name)
        summary = _summary(criterion)
        if criterion.passed is False:
            lines = [f"{name} failed" + (f": {summary}" if summary else "")]
            lines += _offender_lines(criterion, "")
            commands.append(_command("error", model, f"opseq gate: {name}", lines))
        elif criterion.passed is None:
            commands.append(
                _command("warning", model, f"opseq gate: {name}", [f"{name} {summary}"])
            )
        if criterion.allowed:
            lines = _allowed_lines(criterion, "")
            commands.append(_command("warning", model, f"opseq gate: {name} (allowed)", lines))
    commands.append(f"opseq gate {_verdict(report)}: {model} ({_tally(report)})")
    return "\n".join(commands) + "\n"


def append_step_summary(report: GateReport, environ: Mapping[str, str]) -> Path | None:
    """Append the Markdown report to the file ``GITHUB_STEP_SUMMARY`` names, if it is set.

    Args:
        report: The report.
        environ: The environment (`os.environ` in a run; a dict in tests).

    Returns:
        The file written, or None when the variable is unset or empty.

    Raises:
        ConfigError: If the file cannot be written.
    """
    where = environ.get("GITHUB_STEP_SUMMARY")
    if not where:
        return None
    path = Path(where)
    try:
        with path.open("a", encoding="utf-8") as stream:
            stream.write(render_markdown(report) + "\n")
    except OSError as e:
        raise ConfigError(f"GITHUB_STEP_SUMMARY {where}: cannot write ({e.strerror or e})") from e
    return path


# --- md -----------------------------------------------------------------------------------


def _code(text: str, *, cell: bool = True) -> str:
    """`text` as a Markdown code span: nothing in it is markup, HTML, a link or a mention."""
    text = escape_controls(text)
    if not text:
        return ""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    # GitHub splits table cells at | even inside code spans, unless escaped.
    return span.replace("|", "\\|") if cell else span


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_offender_table(offenders: tuple[Offender, ...], total: int, last: str) -> list[str]:
    lines = [_md_row(["item", "nodes", last]), "|---|---|---|"]
    for offender in offenders[:MAX_LISTED]:
        nodes = ", ".join(_code(n) for n in offender.nodes[:_NODES_SHOWN])
        if len(offender.nodes) > _NODES_SHOWN:
            nodes += f" (+{len(offender.nodes) - _NODES_SHOWN})"
        lines.append(_md_row([_code(offender.item), nodes, _code(offender.detail or "")]))
    if total > MAX_LISTED:
        lines.append(_md_row([f"... and {total - MAX_LISTED} more", "", ""]))
    return lines


def _md_details(summary: str, table: list[str]) -> list[str]:
    return ["", f"<details><summary>{html.escape(summary)}</summary>", "", *table, "", "</details>"]


def _md_criterion_details(criterion: Criterion) -> list[str]:
    name = escape_controls(criterion.name)
    lines = []
    if criterion.passed is False and criterion.offenders:
        total = _listed_total(criterion)
        table = _md_offender_table(criterion.offenders, total, "detail")
        lines += _md_details(f"{name}: {total} offender{'s' if total != 1 else ''}", table)
    if criterion.allowed:
        count = len(criterion.allowed)
        table = _md_offender_table(criterion.allowed, count, "reason")
        lines += _md_details(f"{name}: {count} allowed by the policy", table)
    return lines


def render_markdown(report: GateReport) -> str:
    """Markdown for a pull-request comment (module docstring)."""
    icon = "✅" if report.passed else "❌"
    lines = [
        f"### {icon} opseq gate {_verdict(report)}: {_code(report.model, cell=False)}",
        "",
        f"{_tally(report)}.",
        "",
        _md_row(["result", "criterion", "value", "threshold", "note"]),
        "|---|---|---|---|---|",
    ]
    for c in report.criteria:
        cells = [_MD_STATUS[c.passed], _code(c.name), _value_text(c), _threshold_text(c)]
        lines.append(_md_row([*cells, _code(c.note or "")]))
    for criterion in report.criteria:
        lines += _md_criterion_details(criterion)
    lines += ["", *_md_provenance(report)]
    return "\n".join(lines) + "\n"


def _md_provenance(report: GateReport) -> list[str]:
    policy = _code(report.policy_source, cell=False) if report.policy_source else "none (defaults)"
    lines = [f"- policy: {policy}"]
    for reference in report.references:
        fingerprint = str(reference.get("fingerprint") or "")[:_FINGERPRINT_SHOWN]
        models = reference.get("models")
        facts = [f"{_count(models)} models"] if models is not None else []
        facts += [f"fingerprint {_code(fingerprint, cell=False)}"] if fingerprint else []
        shown = _code(str(reference.get("name", "?")), cell=False)
        lines.append(f"- reference: {shown}" + (f" ({', '.join(facts)})" if facts else ""))
    if report.baseline is not None:
        lines.append(f"- baseline: {_code(report.baseline, cell=False)}")
    if report.picture is not None:
        target = urllib.parse.quote(report.picture)
        lines.append(f"- picture: [{_code(Path(report.picture).name, cell=False)}]({target})")
    return lines
