"""opseq render: formats, patterns, the .dot fallback without graphviz, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from opseq.cli import main
from opseq.coverage.render import PALETTE
from tests import models
from tests.cli.errors import assert_one_error_line
from tests.coverage.test_render import SVG, dot_edges, dot_nodes, hostile_model, named

GREEN = PALETTE["pattern"]
REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = main(["render", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def diamond(save):
    return save(named(models.diamond()))  # relu_0 -> (neg_1, exp_2) -> add_3


def test_help_ends_with_an_example_that_runs_from_a_clone(capsys):
    assert main(["render", "--help"]) == 0
    out = capsys.readouterr().out
    assert (
        "Example:\n  opseq render corpus/examples/transformer_block_torch.onnx -o block.svg" in out
    )


def test_render_svg_with_pattern_exits_0_and_shows_names_and_legend(capsys, diamond, tmp_path):
    code, out, err = run(capsys, diamond, "-o", tmp_path / "d.svg", "--highlight", "Relu>Neg")
    assert (code, out, err) == (0, "", "")
    texts = {t.text for t in ET.parse(tmp_path / "d.svg").getroot().iter(f"{SVG}text")}
    assert {"relu_0", "neg_1", "legend", "pattern", "Relu>Neg", "model.onnx"} <= texts


def test_render_dot_output_colours_exactly_the_pattern(capsys, diamond, tmp_path):
    argv = [diamond, "-o", tmp_path / "d.dot", "--highlight", "Neg > Add", "--highlight", "Exp"]
    assert run(capsys, *argv)[0] == 0
    source = (tmp_path / "d.dot").read_text("utf-8")
    nodes = dot_nodes(source)
    assert {name: node.get("fillcolor") for name, node in nodes.items()} == {
        "relu_0": None,
        "neg_1": GREEN,
        "exp_2": GREEN,
        "add_3": GREEN,
    }
    coloured = {e for e, attrs in dot_edges(source).items() if GREEN in attrs}
    assert coloured == {(nodes["neg_1"]["id"], nodes["add_3"]["id"])}


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_render_binary_formats(capsys, diamond, tmp_path, suffix, magic):
    assert run(capsys, diamond, "-o", tmp_path / f"d{suffix}", "--highlight", "Relu")[0] == 0
    assert (tmp_path / f"d{suffix}").read_bytes().startswith(magic)
    assert not list(tmp_path.glob(".*partial"))


def test_render_context_collapses_a_long_chain(capsys, save, tmp_path):
    model = save(named(models.dense_ladder(30)))  # 61 nodes
    argv = [model, "-o", tmp_path / "l.dot", "--highlight", "Neg", "--context", "1"]
    assert run(capsys, *argv)[0] == 0
    source = (tmp_path / "l.dot").read_text("utf-8")
    assert set(dot_nodes(source)) == {"concat_59", "neg_60"}
    assert "<I>59 nodes</I>" in source


def test_render_pattern_absent_warns_and_still_draws(capsys, diamond, tmp_path):
    code, _, err = run(capsys, diamond, "-o", tmp_path / "d.svg", "--highlight", "Softmax")
    assert code == 0
    assert err.strip() == f"opseq: WARNING: {diamond}: no pattern n-gram occurs in the model"
    assert (tmp_path / "d.svg").exists()


@pytest.mark.slow  # ~8 s
def test_render_without_dot_on_path_writes_dot_and_says_how_to_install(diamond, tmp_path):
    empty = tmp_path / "no-graphviz"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "PYTHONPATH": str(REPO)}
    target = tmp_path / "d.svg"
    argv = ["render", str(diamond), "-o", str(target), "--highlight", "Relu>Neg"]
    done = subprocess.run(
        [sys.executable, "-m", "opseq", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert not target.exists()
    assert dot_nodes((tmp_path / "d.dot").read_text("utf-8"))["neg_1"]["fillcolor"] == GREEN
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("opseq: WARNING: wrote ")
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz"):
        assert hint in lines[0]
    assert lines[0].endswith(f"dot -Tsvg {tmp_path / 'd.dot'} -o {target}")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("Relu>>Neg", "'' in 'Relu>>Neg' is not a label"),
        ("Relu>", "'' in 'Relu>' is not a label"),
        ("1Relu", "'1Relu' in '1Relu' is not a label"),
        ("Re lu", "'Re lu' in 'Re lu' is not a label"),
        ("A>B>C>D>E>F>G>H>I", "a pattern has 1 to 8 labels, got 9"),
        (":Relu", "':Relu' in ':Relu' is not a label"),
        ("com.example:", "'com.example:' in 'com.example:' is not a label"),
    ],
)
def test_render_bad_pattern_is_one_line_exit_2(capsys, diamond, tmp_path, spec, fragment):
    code, out, err = run(capsys, diamond, "-o", tmp_path / "d.svg", "--highlight", spec)
    assert (code, out) == (2, "")
    assert_one_error_line(err, "render: argument --highlight", fragment)
    assert not (tmp_path / "d.svg").exists()


def test_render_accepts_domain_labels(capsys, save, tmp_path):
    model = save(named(models.custom_domain()))  # Relu -> com.example:Frobnicate -> Neg
    argv = [model, "-o", tmp_path / "c.dot", "--highlight", "com.example:Frobnicate>Neg"]
    assert run(capsys, *argv)[0] == 0
    nodes = dot_nodes((tmp_path / "c.dot").read_text("utf-8"))
    assert nodes["frobnicate_1"]["label"] == "com.example:Frobnicate"
    assert nodes["frobnicate_1"]["fillcolor"] == nodes["neg_2"]["fillcolor"] == GREEN


def test_render_unknown_suffix_is_refused_before_reading_the_model(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "missing.onnx", "-o", tmp_path / "d.jpg")
    assert code == 2
    assert_one_error_line(err, "d.jpg: unknown picture format (.jpg); use .svg, .png, .pdf or .dot")


def test_render_unparsable_model_exit_2_names_it(capsys, save, tmp_path):
    model = save(b"\x08\x07 this is not an onnx model", name="junk.onnx")
    code, _, err = run(capsys, model, "-o", tmp_path / "d.svg")
    assert code == 2
    assert_one_error_line(err, f"{model}: not an ONNX model")
    assert not (tmp_path / "d.svg").exists()


def test_render_missing_model_and_missing_output_dir_exit_2(capsys, diamond, tmp_path):
    code, _, err = run(capsys, tmp_path / "nope.onnx", "-o", tmp_path / "d.svg")
    assert code == 2
    assert_one_error_line(err, "nope.onnx")
    code, _, err = run(capsys, diamond, "-o", tmp_path / "no" / "d.svg")
    assert code == 2
    assert_one_error_line(err, "cannot write")


def test_render_output_is_the_model_is_refused(capsys, save):
    model = save(models.chain(), name="m.dot")
    code, _, err = run(capsys, model, "-o", model)
    assert code == 2
    assert_one_error_line(err, "is one of the inputs")


@pytest.mark.parametrize("argv", [["--context", "-1"], ["--context", "two"], []])
def test_render_usage_errors_exit_2(capsys, diamond, tmp_path, argv):
    output = [] if not argv else ["-o", str(tmp_path / "d.svg")]
    code, _, err = run(capsys, diamond, *output, *argv)
    assert code == 2
    assert_one_error_line(err, "render: ")


def test_render_hostile_names_stay_literal(capsys, save, tmp_path):
    model = save(hostile_model())
    assert run(capsys, model, "-o", tmp_path / "h.svg", "--highlight", "Relu>Neg")[0] == 0
    text = (tmp_path / "h.svg").read_text("utf-8")
    assert "<script" not in text and "\x1b" not in text
    ET.fromstring(text)


def test_render_ignore_ops_keeps_identity_nodes(capsys, save, tmp_path):
    model = save(named(models.with_constants_and_identities()))
    argv = [model, "-o", tmp_path / "i.dot", "--ignore-ops", "Constant", "--highlight", "Identity"]
    assert run(capsys, *argv)[0] == 0
    nodes = dot_nodes((tmp_path / "i.dot").read_text("utf-8"))
    assert {name for name, node in nodes.items() if node.get("fillcolor")} == {
        "identity_2",
        "identity_3",
        "identity_5",
    }


def test_render_uncovered_and_novel_against_a_directory_reference(capsys, save, tmp_path):
    from tests.coverage.conftest import relu_exp, relu_neg, relu_neg_exp, write

    reference = write(tmp_path / "reference", {"relu_neg": relu_neg(), "relu_exp": relu_exp()})
    model = save(named(relu_neg_exp()))  # relu_0 > neg_1 > exp_2 > add_4 < leakyrelu_3
    argv = [model, "-o", tmp_path / "u.dot", "--reference", reference, "--no-cache"]
    code, _, err = run(capsys, *argv, "--highlight", "uncovered", "--highlight", "novel")
    assert (code, err) == (0, "")
    nodes = dot_nodes((tmp_path / "u.dot").read_text("utf-8"))
    orange, blue = PALETTE["uncovered"], PALETTE["novel"]
    # uncovered 2-grams: Neg>Exp (novel: both ops covered), Exp>Add, LeakyRelu>Add
    assert {name: node.get("fillcolor") for name, node in nodes.items()} == {
        "relu_0": None,
        "neg_1": f"{orange}:{blue}",
        "exp_2": f"{orange}:{blue}",
        "leakyrelu_3": orange,
        "add_4": orange,
    }
