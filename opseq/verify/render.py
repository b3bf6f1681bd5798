r"""Render a `VerifyReport`: text for people, JSON for programs, JUnit XML for CI dashboards.

Every string that may come from the model (output names, the paths given) is escaped with
`opseq.untrusted.escape_controls` in text and XML (XML 1.0 cannot hold most control characters
even escaped, so they become visible ``\x..`` sequences); JSON is escaped by the json module.

JUnit: one ``testsuite`` with one ``testcase`` per output and one for the overall verdict (plus
one per task-level number with ``--data`` and per robustness number with ``--attack``, which
never fail: they inform, as the exit code does not depend on them). A semantic verdict is a
``failure`` whose message and text carry the numbers; ``unstable`` is ``skipped`` (the inputs
could not judge the conversion); ``ok`` and ``numerical`` pass, with the numbers in
``system-out``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from opseq.tolerance import Verdict
from opseq.untrusted import escape_controls
from opseq.verify.report import OutputReport, VerifyReport

__all__ = ["render", "render_json", "render_junit", "render_text", "verdict_line"]


def render(report: VerifyReport, fmt: str) -> str:
    """The report in `fmt` (``text``, ``json`` or ``junit``), ending with a newline."""
    return {"text": render_text, "json": render_json, "junit": render_junit}[fmt](report)


def render_json(report: VerifyReport) -> str:
    """The JSON document (`VerifyReport.to_dict`)."""
    return json.dumps(report.to_dict(), indent=2) + "\n"


def verdict_line(report: VerifyReport) -> str:
    """One line: the verdict and the sets it rests on."""
    case = report.case
    needed = min(report.rule.min_sets, case.sets)
    outcome = "passes" if report.passed else "fails"
    return (
        f"{case.verdict.value}: {case.semantic_sets} of {case.sets} input sets semantic "
        f"(a semantic verdict needs {needed}), {case.unstable_sets} unstable; {outcome}"
    )


def render_text(report: VerifyReport) -> str:
    """The human-readable report."""
    case, rule, calibration = report.case, report.rule, report.calibration
    reference = case.reference
    if calibration.reference_note:
        reference += f" ({calibration.reference_note})"
    lines = [
        f"{_s(report.model)} vs {_s(report.source)} ({report.framework})",
        f"  verdict    {verdict_line(report)}",
        f"  reference  {_s(reference)}",
        f"  inputs     {_s(report.inputs.describe())}",
        f"  rule       semantic beyond {rule.headroom:g}x the framework's float32 error in >= "
        f"{rule.min_sets} sets; unstable beyond {rule.unstable_units:g} steps",
        f"  headroom   {_headroom(case.required_headroom, rule.headroom)}",
    ]
    if report.verdict is Verdict.SEMANTIC:
        lines.append(f"  blame      {_blame(report)}")
    lines += ["", *_output_table(report.outputs)]
    if report.task is not None:
        lines += ["", *_task_lines(report)]
    if report.robustness is not None:
        lines += ["", *_robustness_lines(report)]
    if report.repro is not None or report.repro_note is not None:
        where = report.repro or f"not written: {report.repro_note}"
        shown = f" (input set {report.first_semantic_set})" if report.repro else ""
        lines += ["", f"  repro      {_s(where)}{shown}"]
    lines += [f"  note       {_s(note)}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _output_table(outputs: tuple[OutputReport, ...]) -> list[str]:
    header = (
        "output",
        "verdict",
        "semantic",
        "unstable",
        "headroom",
        "max abs",
        "max rel",
        "onnx err",
        "fw err",
    )
    rows = [header]
    for o in outputs:
        rows.append(
            (
                _s(o.name),
                o.verdict.value + (f" ({o.structure})" if o.structure else ""),
                str(o.semantic_sets),
                str(o.unstable_sets),
                _num(o.required_headroom),
                _num(o.max_abs_diff),
                _num(o.max_rel_diff),
                _num(o.onnx_error),
                "-" if o.framework_error is None else _num(o.framework_error),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(row[2:], widths[2:], strict=True)]
        lines.append("  " + "  ".join(cells).rstrip())
    lines.append(
        "  (semantic, unstable: input sets; max abs, max rel: ONNX Runtime vs the "
        "framework's float32;"
    )
    lines.append("   onnx err, fw err: the largest error against the reference, in float32 steps)")
    return lines


def _task_lines(report: VerifyReport) -> list[str]:
    task = report.task
    assert task is not None
    lines = [
        f"  task       {_s(task.data)}: {task.samples} samples in batches of {task.batch_size}, "
        f"output {_s(task.output)!r}, {task.classes} classes",
        f"    top-1 agreement  {task.top1_agreement:.2%} ({task.top1_agreeing}/{task.samples})",
        f"    top-{task.k} agreement  {task.topk_agreement:.2%} ({task.topk_agreeing}/"
        f"{task.samples}; the same {task.k} classes)",
    ]
    if task.accuracy is not None:
        a = task.accuracy
        lines.append(
            f"    accuracy         top-1: source {a['source_top1']:.2%}, onnx "
            f"{a['onnx_top1']:.2%}; top-{task.k}: source {a['source_topk']:.2%}, "
            f"onnx {a['onnx_topk']:.2%}"
        )
    lines += [f"    note             {_s(note)}" for note in task.notes]
    return lines


def _robustness_lines(report: VerifyReport) -> list[str]:
    r = report.robustness
    assert r is not None
    clean, adversarial, m = r.clean_accuracy, r.adversarial_accuracy, r.mcnemar
    lines = [
        f"  robustness {r.attack.describe()}, crafted on the source ({r.scores}), "
        f"{r.samples} samples",
        f"    accuracy         clean: source {clean['source']:.2%}, onnx {clean['onnx']:.2%}; "
        f"adversarial: source {adversarial['source']:.2%}, onnx {adversarial['onnx']:.2%}",
        f"    agreement        {r.adversarial_agreement:.2%} ({r.adversarial_agreeing}/"
        f"{r.samples} adversarial samples in the same top-1 class)",
        f"    transfer gap     {100 * r.transfer_gap:+.2f} percentage points (source "
        "adversarial accuracy minus onnx)",
        f"    mcnemar          b = {m.b}, c = {m.c}, exact p = {m.p_value:.4g} "
        f"(alpha {r.alpha:g}; {r.direction})",
        f"    less robust      {r.answer}: {_s(r.reason)}",
    ]
    lines += [f"    note             {_s(note)}" for note in r.notes]
    return lines


_EVALUATORS = {
    "unoptimised": "unoptimised ONNX Runtime",
    "reference_evaluator": "ONNX reference evaluator",
}


def _blame(report: VerifyReport) -> str:
    if report.blame_note:
        return report.blame_note
    blame = report.blame.value if report.blame is not None else "unknown"
    verdicts = report.calibration.blame_verdicts
    shown = [f"{label}: {verdicts[key]}" for key, label in _EVALUATORS.items() if key in verdicts]
    skipped = verdicts.get("skipped", {})
    shown += [f"{_EVALUATORS.get(key, key)} skipped: {why}" for key, why in skipped.items()]
    return blame + (f" ({'; '.join(_s(s) for s in shown)})" if shown else "")


def render_junit(report: VerifyReport) -> str:
    """JUnit XML (module docstring)."""
    suite_name = f"opseq verify {Path(report.model).name}"
    classname = f"opseq.verify.{Path(report.model).stem}"
    cases = [_output_case(o, report, classname) for o in report.outputs]
    cases.append(_overall_case(report, classname))
    if report.task is not None:
        cases += _task_cases(report, classname)
    if report.robustness is not None:
        cases += _robustness_cases(report, classname)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    counts = {
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
    }
    root = ET.Element("testsuites", {"name": "opseq verify", **counts})
    time = f"{sum(report.durations.values()):.3f}"
    suite = ET.SubElement(root, "testsuite", {"name": _s(suite_name), **counts, "time": time})
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("model", report.model),
        ("source", report.source),
        ("framework", report.framework),
        ("verdict", report.verdict.value),
        ("reference", report.case.reference),
        ("reference_note", report.calibration.reference_note or ""),
        ("required_headroom", _num(report.case.required_headroom)),
        ("headroom", f"{report.rule.headroom:g}"),
        ("repro", report.repro or ""),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _s(value)})
    suite.extend(cases)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _output_case(output: OutputReport, report: VerifyReport, classname: str) -> ET.Element:
    sets = report.case.sets
    numbers = (
        f"verdict {output.verdict.value}; semantic in {output.semantic_sets} of {sets} input "
        f"sets, unstable in {output.unstable_sets}; required headroom "
        f"{_num(output.required_headroom)} (allowed {report.rule.headroom:g}); max abs diff "
        f"{_num(output.max_abs_diff)}, max rel diff {_num(output.max_rel_diff)}; ONNX error "
        f"{_num(output.onnx_error)} float32 steps, framework error "
        f"{'-' if output.framework_error is None else _num(output.framework_error)}"
        + (f"; {output.structure} disagrees" if output.structure else "")
    )
    return _case(classname, f"output {output.name}", output.verdict, numbers)


def _overall_case(report: VerifyReport, classname: str) -> ET.Element:
    numbers = (
        f"{verdict_line(report)}; reference {report.case.reference}; required headroom "
        f"{_num(report.case.required_headroom)} (allowed {report.rule.headroom:g})"
    )
    if report.verdict is Verdict.SEMANTIC:
        numbers += f"; blame {_blame(report)}"
    if report.repro:
        numbers += f"; repro bundle {report.repro}"
    return _case(classname, "overall", report.verdict, numbers)


def _task_cases(report: VerifyReport, classname: str) -> list[ET.Element]:
    task = report.task
    assert task is not None
    values = [
        ("top-1 agreement", f"{task.top1_agreement:.4%} ({task.top1_agreeing}/{task.samples})"),
        (
            f"top-{task.k} agreement",
            f"{task.topk_agreement:.4%} ({task.topk_agreeing}/{task.samples})",
        ),
    ]
    if task.accuracy is not None:
        values += [
            (f"accuracy {key.replace('_', ' ')}", f"{value:.4%}")
            for key, value in task.accuracy.items()
        ]
    return [_case(classname, f"task {name}", Verdict.OK, value) for name, value in values]


def _robustness_cases(report: VerifyReport, classname: str) -> list[ET.Element]:
    r = report.robustness
    assert r is not None
    values = [
        (f"accuracy {phase} {side}", f"{accuracy[side]:.4%}")
        for phase, accuracy in (
            ("clean", r.clean_accuracy),
            ("adversarial", r.adversarial_accuracy),
        )
        for side in ("source", "onnx")
    ]
    values += [
        (
            "adversarial agreement",
            f"{r.adversarial_agreement:.4%} ({r.adversarial_agreeing}/{r.samples})",
        ),
        ("transfer gap", f"{100 * r.transfer_gap:+.4f} percentage points"),
        ("less robust", f"{r.answer} ({r.direction}): {r.evidence}; {r.attack.describe()}"),
    ]
    return [_case(classname, f"robustness {name}", Verdict.OK, value) for name, value in values]


def _case(classname: str, name: str, verdict: Verdict, numbers: str) -> ET.Element:
    case = ET.Element("testcase", {"classname": _s(classname), "name": _s(name), "time": "0"})
    text = _s(numbers)
    if verdict is Verdict.SEMANTIC:
        failure = ET.SubElement(case, "failure", {"message": text, "type": "semantic"})
        failure.text = text
    elif verdict is Verdict.UNSTABLE:
        ET.SubElement(case, "skipped", {"message": text})
    else:
        ET.SubElement(case, "system-out").text = text
    return case


def _headroom(required: float, allowed: float) -> str:
    if required == float("inf"):
        return "no headroom passes: outputs disagree in structure, NaN/Inf pattern or exact values"
    return (
        f"needs {_num(required)} of the {allowed:g} allowed (1 = as accurate as the "
        "framework's float32)"
    )


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:.3g}"


def _s(text: str) -> str:
    return escape_controls(str(text))
