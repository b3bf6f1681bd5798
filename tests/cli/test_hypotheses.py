from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opseq.cli import main
from tests.cli.errors import assert_one_error_line
from tests.hypotheses.tiny_corpus import write_tiny_corpus

REPORT_KEYS = {
    "schema_version",
    "corpus",
    "operators",
    "sequences",
    "twins",
    "prediction",
    "table12",
    "tolerance_sweep",
    "verdicts",
}
TEST_KEYS = {
    "mismatch_with",
    "ok_with",
    "odds_ratio",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
}


def run(capsys, *argv):
    code = main(["hypotheses", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny")
    write_tiny_corpus(directory)
    return directory


FAST = ("--min-support", "3", "--repeats", "2", "-q")


def test_json_report_follows_the_contract(capsys, tiny):
    code, out, err = run(capsys, tiny, "--format", "json", *FAST)
    assert code == 0, err
    report = json.loads(out)
    assert set(report) >= REPORT_KEYS
    assert report["schema_version"] == 2
    assert report["corpus"]["labelled"] == 80 and report["corpus"]["outcomes"]["load_fail"] == 3
    for test in report["operators"]["tests"]:
        assert TEST_KEYS | {"op"} <= set(test) and isinstance(test["op"], str)
    assert report["sequences"]["tests"]
    for test in report["sequences"]["tests"]:
        assert TEST_KEYS | {"ngram", "p_value_adjusted", "q_value_adjusted"} <= set(test)
        assert {"method_adjusted", "p_min_adjusted", "tarone_testable", "min_detectable_or"} <= set(
            test
        )
        assert isinstance(test["ngram"], list)
    assert report["sequences"]["power"]["tested"] == report["sequences"]["tested"]
    assert report["corpus"]["effective_units"]["clusters"] == 80
    minimal = [tuple(t["ngram"]) for t in report["sequences"]["minimal"]]
    assert ("Sin", "Cos") in minimal  # the planted sequence
    assert {v["key"] for v in report["verdicts"]} == {
        "operators",
        "sequences",
        "twins",
        "operators_predict",
        "sequences_predict",
        "tolerance",
    }
    assert len(report["tolerance_sweep"]) == 7
    assert [c["group"] for c in report["table12"]] == ["conv", "other-conv"]


def test_markdown_report_reads_as_a_document(capsys, tiny):
    code, out, _ = run(capsys, tiny, "--format", "md", *FAST)
    assert code == 0
    for heading in ("# Hypothesis report", "## Verdicts", "## Operators", "## Sequences",
                    "## Prediction", "## Table 12", "## Tolerance sweep"):  # fmt: skip
        assert heading in out
    assert "`Sin > Cos`" in out


def test_html_report_written_to_a_file(capsys, tiny, tmp_path):
    target = tmp_path / "report.html"
    code, out, err = run(capsys, tiny, "--format", "html", "-o", target, *FAST)
    assert code == 0 and out == "" and err == ""
    page = target.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html")
    assert page.count("data:image/png;base64,") == 3
    assert not list(tmp_path.glob(".*.partial"))


def test_text_is_the_default_format(capsys, tiny):
    code, out, _ = run(capsys, tiny, "--no-prediction", "--no-sweep", *FAST)
    assert code == 0 and "## Verdicts" in out and "## Prediction" not in out


def test_reference_corpus_adds_the_table12_row(capsys, tiny, tmp_path):
    reference = tmp_path / "reference"
    reference.mkdir()
    for path in sorted((tiny / "models").glob("*.onnx"))[:5]:
        (reference / path.name).write_bytes(path.read_bytes())
    code, out, _ = run(capsys, tiny, "--reference", reference, "--format", "json",
                       "--no-prediction", "--no-sweep", *FAST)  # fmt: skip
    report = json.loads(out)
    assert code == 0
    assert report["corpus"]["reference"]["models"] == 5
    assert sum(c["rows"]["mismatch ∩ reference"]["unique"] for c in report["table12"]) > 0


def test_only_one_class_under_the_rule_is_a_report_of_undetermined_verdicts(capsys, tiny):
    code, out, err = run(capsys, tiny, "--atol", "10", "--format", "json", *FAST)
    assert code == 0, err
    report = json.loads(out)
    reason = "all 80 labelled models are ok under abs >= 10"
    for verdict in report["verdicts"]:
        if verdict["key"] != "tolerance":
            assert verdict["answer"] == "undetermined" and reason in verdict["evidence"]
    code, out, _ = run(capsys, tiny, "--atol", "10", "--format", "md", *FAST)
    assert code == 0 and "Not tested: all 80 labelled models are ok" in out


def test_missing_corpus_is_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "nowhere")
    assert code == 2
    assert_one_error_line(err, "no such manifest")


def test_corpus_without_labelled_models_is_exit_2(capsys, tmp_path):
    write_tiny_corpus(tmp_path, models=0, failures=4)
    code, _, err = run(capsys, tmp_path)
    assert code == 2
    assert_one_error_line(err, "no labelled models", "outcome load_fail: 4")


def test_invalid_manifest_line_is_exit_2(capsys, tmp_path):
    (tmp_path / "manifest.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n', encoding="utf-8")
    code, _, err = run(capsys, tmp_path)
    assert code == 2
    assert_one_error_line(err, "manifest.jsonl")


@pytest.mark.parametrize(
    ("option", "value"),
    [("--atol", "-1"), ("--alpha", "1.5"), ("--n", "4..2"), ("--min-support", "0"),
     ("--folds", "1"), ("--format", "pdf")],
)  # fmt: skip
def test_bad_options_are_usage_errors(capsys, tiny, option, value):
    code, _, err = run(capsys, tiny, option, value)
    assert code == 2
    assert_one_error_line(err, f"argument {option}", "(see 'opseq hypotheses --help')")


def test_unwritable_output_is_exit_2_and_leaves_nothing(capsys, tiny, tmp_path):
    target = tmp_path / "missing-dir" / "report.md"
    code, _, err = run(capsys, tiny, "-o", target, "--no-prediction", "--no-sweep", *FAST)
    assert code == 2
    assert_one_error_line(err, "cannot write")
    assert not target.exists()


def test_help_has_an_example():
    done = subprocess.run(
        [sys.executable, "-m", "opseq", "hypotheses", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "Example:" in done.stdout and "--reference" in done.stdout


def _write_issues(path: Path, rows: list[str]) -> Path:
    path.write_text("created_at,cause\n" + "".join(f"{r}\n" for r in rows), encoding="utf-8")
    return path


def test_evolution_subcommand_json(capsys, tmp_path):
    issues = _write_issues(
        tmp_path / "issues.csv",
        [f"20{year}-0{month}-15,{cause}" for year in range(19, 24) for month in range(1, 10)
         for cause in ("type", "incompatibility")],
    )  # fmt: skip
    code = main(["hypotheses", "evolution", str(issues), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["overall"]["n_groups"] >= 3
    assert set(result["by_cause"]) == {"type", "incompatibility"}


def test_evolution_markdown_and_bad_csv(capsys, tmp_path):
    issues = _write_issues(tmp_path / "issues.csv", ["2021-03-04", "2022-05-06", "2023-01-01"])
    assert main(["hypotheses", "evolution", str(issues), "--merge-days", "30"]) == 0
    out, _ = capsys.readouterr()
    assert "rho" in out.lower()
    bad = _write_issues(tmp_path / "bad.csv", ["not a date"])
    assert main(["hypotheses", "evolution", str(bad)]) == 2
    _, err = capsys.readouterr()
    assert_one_error_line(err, "bad.csv")
    assert main(["hypotheses", "evolution", str(tmp_path / "none.csv")]) == 2
    _, err = capsys.readouterr()
    assert_one_error_line(err, "none.csv")


@pytest.mark.corpus
def test_shipped_corpus_report(capsys):
    corpus = Path(__file__).parents[2] / "corpus"
    code, out, err = run(
        capsys, corpus, "--atol", "1e-3", "--format", "json", "--repeats", "1", "-q"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["corpus"]["labelled"] > 2000
    assert report["sequences"]["tested"] > 1000
    assert [c["group"] for c in report["table12"]] == [
        "tf2onnx", "torch.onnx-dynamo", "torch.onnx-torchscript",
    ]  # fmt: skip


def test_bad_reference_fails_before_the_corpus_is_read(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "no-corpus", "--reference", tmp_path / "no-ref")
    assert code == 2
    assert_one_error_line(err, "no-ref", "not a directory")


def test_html_without_matplotlib_names_the_extra_before_any_work(capsys, tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    code, out, err = run(capsys, tiny, "--format", "html")
    assert code == 2 and out == ""
    assert_one_error_line(err, "matplotlib", "report")


@pytest.mark.parametrize("module", ["scipy", "statsmodels", "sklearn"])
@pytest.mark.parametrize("command", [["TINY"], ["evolution", "ISSUES"]])
def test_without_the_stats_extra_names_it(capsys, tiny, tmp_path, monkeypatch, module, command):
    issues = tmp_path / "issues.csv"
    issues.write_text("created_at\n2020-01-01\n")
    monkeypatch.setitem(sys.modules, module, None)  # import of it now fails
    argv = [{"TINY": tiny, "ISSUES": issues}.get(word, word) for word in command]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert_one_error_line(err, module, "pip install 'opseq[stats]'")


def _calibrated_copy(tiny: Path, tmp_path: Path, *, semantic: bool) -> tuple[Path, dict[str, int]]:
    """The tiny corpus with float64-calibrated measurements: its mismatches become semantic (when
    `semantic`), every 10th ok row unstable, the rest numerical."""
    import shutil

    corpus = tmp_path / "calibrated"
    shutil.copytree(tiny, corpus)
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines()]
    counts = {"semantic": 0, "unstable": 0, "numerical": 0}
    for i, row in enumerate(rows):
        if row["outcome"] not in ("ok", "mismatch"):
            continue
        framework, onnx = [2.0] * 10, [8.0] * 10
        if row["outcome"] == "mismatch" and semantic:
            kind, onnx = "semantic", [1e5] * 10
        elif i % 10 == 0:
            kind, framework = "unstable", [1e5] * 10
        else:
            kind = "numerical"
        counts[kind] += 1
        row["oracle"] = {
            "outputs": [
                {"name": "y", "kind": "float", "sets": 10, "framework_error": framework,
                 "onnx_error": onnx}
            ]
        }  # fmt: skip
    (corpus / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return corpus, counts


def test_calibrated_measurements_label_semantic_and_leave_out_unstable(capsys, tiny, tmp_path):
    corpus, counts = _calibrated_copy(tiny, tmp_path, semantic=True)
    code, out, err = run(capsys, corpus, "--format", "json", "--no-prediction", *FAST)
    assert code == 0, err
    report = json.loads(out)
    assert report["config"]["rule"]["kind"] == "calibrated"
    assert report["corpus"]["mismatch"] == counts["semantic"] > 0
    assert report["corpus"]["ok"] == counts["numerical"]
    left_out = report["corpus"]["excluded"]["unstable (float32 and float64 of the source disagree)"]
    assert left_out == counts["unstable"] > 0
    kinds = {row["kind"] for row in report["tolerance_sweep"]}
    assert kinds == {"calibrated", "fixed"}  # the tiny corpus stores no element-wise excesses


def test_a_corpus_without_semantic_cases_is_undetermined_not_no(capsys, tiny, tmp_path):
    corpus, _ = _calibrated_copy(tiny, tmp_path, semantic=False)
    code, out, err = run(capsys, corpus, "--format", "json", "--no-prediction", *FAST)
    assert code == 0, err
    report = json.loads(out)
    assert report["corpus"]["mismatch"] == 0
    answers = {v["key"]: v["answer"] for v in report["verdicts"]}
    assert answers["sequences"] == "undetermined" and answers["operators"] == "undetermined"


def test_label_calibrated_without_measurements_is_one_line(capsys, tiny):
    code, _, err = run(capsys, tiny, "--label", "calibrated", *FAST)
    assert code == 2
    assert_one_error_line(err, "no row has float64-calibrated measurements", "--label fixed")
