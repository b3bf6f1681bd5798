from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

from opseq.verify.render import render
from opseq.verify.task import TaskReport
from tests.verify.support import synthetic_report

EVIL = 'p<&>"\x1b[2J\nopseq: error: forged\u202e'


def test_per_output_verdicts_and_minimum_tolerances():
    report = synthetic_report(("a", "b"), onnx_error=900.0)
    assert report.verdict.value == "semantic" and not report.passed
    (a, b) = report.outputs
    assert b.name == "b" and b.verdict is a.verdict
    assert a.verdict.value == "semantic" and a.semantic_sets == 10
    assert a.required_headroom == 900.0 / 4.0
    assert abs(a.max_abs_diff - 1e-3) < 1e-9 and a.max_rel_diff > 1e300  # expected zeros
    assert a.framework_error == 3.0 and a.onnx_error == 900.0


def test_json_is_the_report_with_the_oracle():
    document = json.loads(render(synthetic_report(onnx_error=100.0), "json"))
    assert document["schema_version"] == 1
    assert document["verdict"] == "numerical" and document["passed"] is True
    assert document["reference"] == "float64" and document["reference_note"] is None
    assert document["required_headroom"] == 25.0
    assert document["outputs"][0]["max_abs_diff"] > 0
    assert document["oracle"]["verdict"] == "numerical"
    assert document["inputs"]["origin"] == "factory-specs"


def test_junit_is_valid_xml_with_one_case_per_output_and_the_overall():
    report = synthetic_report(("probs", EVIL), onnx_error=900.0)
    root = ET.fromstring(render(report, "junit"))
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases][-1] == "overall"
    assert len(cases) == 3 and suite.get("failures") == "3" and suite.get("tests") == "3"
    message = cases[0].find("failure").get("message")
    assert "semantic in 10 of 10" in message and "required headroom 225" in message
    evil = cases[1].get("name")
    assert "\x1b" not in evil and "\n" not in evil and "\u202e" not in evil
    assert evil.startswith('output p<&>"\\x1b[2J\\x0aopseq')


def test_junit_passing_and_task_cases_do_not_fail():
    report = synthetic_report(onnx_error=2.0)
    task = TaskReport(data="d.npz", samples=10, batch_size=4, output="probs", classes=3, k=2,
                      top1_agreeing=9, topk_agreeing=10,
                      accuracy={"source_top1": 0.5, "onnx_top1": 0.4, "source_topk": 1.0,
                                "onnx_topk": 1.0})  # fmt: skip
    root = ET.fromstring(render(dataclasses.replace(report, task=task), "junit"))
    suite = root.find("testsuite")
    assert suite.get("failures") == "0" and suite.get("tests") == str(2 + 6)
    names = [c.get("name") for c in suite.findall("testcase")]
    assert "task top-1 agreement" in names and "task accuracy onnx top1" in names


def test_text_escapes_names_and_stays_aligned():
    report = synthetic_report((EVIL,), onnx_error=900.0)
    text = render(report, "text")
    assert "\x1b" not in text and "\u202e" not in text
    assert "verdict    semantic: 10 of 10 input sets semantic" in text
    assert "blame      unknown" in text
    assert not any(line.startswith("opseq: error") for line in text.splitlines())


def test_unstable_is_skipped_in_junit():
    from opseq.difftest.calibration import Calibration
    from opseq.difftest.measure import OutputErrors

    report = synthetic_report()
    unstable = OutputErrors(kind="float", framework_error=1e9, onnx_error=1e9)
    errors = ((unstable,),) * 10
    rule = report.rule
    calibration = Calibration(rule=rule, verdict=rule.judge(errors), errors=errors,
                              names=("probs",))  # fmt: skip
    report = dataclasses.replace(report, calibration=calibration)
    assert report.verdict.value == "unstable" and report.passed
    overall = ET.fromstring(render(report, "junit")).find("testsuite").findall("testcase")[-1]
    assert overall.find("skipped") is not None
