"""`opseq gate` end to end: green, red with reasons, baseline, policy, formats, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from opseq.cli import main
from tests.coverage.conftest import parse, relu_exp, relu_neg, relu_neg_exp, write

EXAMPLE = (
    Path(__file__).resolve().parents[2] / "corpus" / "examples" / "transformer_block_torch.onnx"
)
STRICT = ["--min-op-coverage", "1", "--min-ngram-coverage", "1", "--max-novel", "0"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OPSEQ_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def setup(tmp_path: Path):
    reference = write(tmp_path / "ref", {"a": relu_neg(), "b": relu_exp()})
    model = tmp_path / "model.onnx"
    onnx.save(relu_neg_exp(), model)
    return model, reference


def gate(*argv: str) -> int:
    return main(["gate", *argv, "--no-policy"])


def test_green_against_a_reference_that_contains_it(tmp_path: Path, capsys):
    reference = tmp_path / "contains"
    reference.mkdir()
    shutil.copy(EXAMPLE, reference / EXAMPLE.name)
    assert gate(str(EXAMPLE), "--reference", str(reference), *STRICT, "--max-risky", "0") == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out


@pytest.mark.slow
def test_red_against_the_default_reference_with_reasons(capsys):
    assert gate(str(EXAMPLE), *STRICT, "--format", "json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is False
    failed = {c["name"]: c for c in report["criteria"] if c["passed"] is False}
    assert {"ngram_coverage_2", "novel_2"} <= set(failed)
    novel = {o["item"] for o in failed["novel_2"]["offenders"]}
    assert "Div>Softmax" in novel  # every novel bigram names its nodes
    assert all(o["nodes"] for o in failed["novel_2"]["offenders"])
    assert [r["name"] for r in report["reference"]] == ["onnx-node-tests", "onnx-backend-models"]


def test_baseline_passes_itself_and_fails_one_new_sequence(setup, tmp_path: Path, capsys):
    model, reference = setup
    assert gate(str(model), "--reference", str(reference), *STRICT, "--baseline", str(model)) == 0
    newer = tmp_path / "newer.onnx"
    onnx.save(
        parse("""g (float[2,3] x) => (float[2,3] y) {
            a = Relu(x)
            b = Neg(a)
            c = Exp(b)
            d = LeakyRelu <alpha = 0.2> (x)
            e = Add(c, d)
            f = Relu(e)
            y = Exp(f)
        }"""),
        newer,
    )
    capsys.readouterr()
    code = gate(str(newer), "--reference", str(reference), *STRICT, "--baseline", str(model))
    assert code == 1
    out = capsys.readouterr().out
    assert "Add>Relu" in out  # the new sequence, and only what is new
    assert "LeakyRelu>Add" not in out.split("FAIL", 1)[1].split("PASS", 1)[0]


def test_policy_file_is_found_upward_and_the_command_line_wins(setup, tmp_path: Path, capsys):
    model, reference = setup
    nested = tmp_path / "project" / "models"
    nested.mkdir(parents=True)
    shutil.copy(model, nested / "model.onnx")
    (tmp_path / "project" / "pyproject.toml").write_text(
        f'[tool.opseq.gate]\nmin-op-coverage = 1.0\nreferences = ["{reference}"]\n'
        '[[tool.opseq.gate.allow]]\nop = "LeakyRelu"\nreason = "checked by hand"\n'
    )
    target = str(nested / "model.onnx")
    assert main(["gate", target]) == 1  # Add is uncovered; LeakyRelu is allowed
    out = capsys.readouterr().out
    assert "Add" in out and "checked by hand" in out
    assert main(["gate", target, "--min-op-coverage", "0.5"]) == 0


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "github", "md"])
def test_every_format(setup, fmt: str, capsys, monkeypatch, tmp_path: Path):
    model, reference = setup
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert gate(str(model), "--reference", str(reference), *STRICT, "--format", fmt) == 1
    out = capsys.readouterr().out
    if fmt == "json":
        data = json.loads(out)
        assert data["passed"] is False
        assert {"name", "passed", "threshold", "value", "offenders"} <= set(data["criteria"][0])
    elif fmt == "junit":
        assert out.startswith("<?xml") and "<testcase" in out and "<failure" in out
    elif fmt == "github":
        assert "::error" in out and summary.read_text()
    else:
        assert "novel" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--min-op-coverage", "1.5"], "min-op-coverage"),
        (["--max-novel", "-1"], "max-novel"),
        (["--n", "7"], "--n"),
        (["--require", "valid,fast"], "fast"),
    ],
)
def test_bad_thresholds(setup, extra, message, capsys):
    model, reference = setup
    assert gate(str(model), "--reference", str(reference), *extra) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_files(setup, tmp_path: Path, capsys):
    model, reference = setup
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01garbage")
    knowledge = tmp_path / "kb.json"
    knowledge.write_text(json.dumps({"schema_version": 1, "sequences": {"tests": []}}))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([str(garbage), "--reference", str(reference)], "garbage.onnx"),
        ([str(model), "--reference", str(reference), "--baseline", str(garbage)], "baseline"),
        (
            [
                str(model),
                "--reference",
                str(reference),
                "--knowledge",
                str(knowledge),
                "--max-risky",
                "0",
            ],
            "schema_version 1",
        ),
        ([str(model), "--reference", str(empty)], "holds no models"),
        ([str(model), "--reference", str(tmp_path / "missing")], "no such file"),
    ]
    for argv, message in cases:
        assert gate(*argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_bad_policy_files(setup, tmp_path: Path, capsys):
    model, reference = setup
    cases = {
        "min-op-coverag = 0.5\n": "min-op-coverag",
        'min-op-coverage = "high"\n': "min-op-coverage",
        '[[gate.allow]]\nngram = "Relu"\nreason = "x"\n': "allow",
        '[[gate.allow]]\nngram = "Relu>Neg"\n': "reason",
        '[[allow]]\nngram = "Relu>Neg"\nreason = "x"\n': "unknown top-level key 'allow'",
    }
    for body, message in cases.items():
        policy = tmp_path / "opseq.toml"
        policy.write_text("[gate]\n" + body)
        assert (
            main(["gate", str(model), "--reference", str(reference), "--policy", str(policy)]) == 2
        )
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.slow
def test_behaves_is_the_verdict_of_verify(tmp_path: Path, capsys, monkeypatch):
    pytest.importorskip("torch")
    from tests.verify.support import EXAMPLE_SPEC, export_example

    monkeypatch.chdir(tmp_path)
    good = export_example(tmp_path / "tiny_cnn.onnx")
    bad = export_example(tmp_path / "tiny_cnn_bug.onnx", bug=True)
    reference = write(tmp_path / "ref", {"a": relu_neg()})
    assert gate(str(good), "--reference", str(reference), "--verify", EXAMPLE_SPEC) == 0
    assert "PASS  behaves" in capsys.readouterr().out
    assert gate(str(bad), "--reference", str(reference), "--verify", EXAMPLE_SPEC) == 1
    out = capsys.readouterr().out
    assert "FAIL  behaves" in out and "semantic" in out
    # Required by policy but no source given: not evaluated, so the gate fails.
    assert gate(str(good), "--reference", str(reference), "--require", "valid,behaves") == 1
    assert "no source model was given" in capsys.readouterr().out
