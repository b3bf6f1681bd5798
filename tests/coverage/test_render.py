"""Pictures: exact colours in the DOT source, context and collapse, dot itself, hostile names."""

from __future__ import annotations

import logging
import re
import shutil
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from opseq.coverage.render import (
    PALETTE,
    RenderError,
    draw,
    picture_format,
    render_picture,
    write_picture,
)
from opseq.coverage.render_layout import select_nodes
from opseq.errors import ConfigError
from opseq.graph import build_opgraph
from tests import models

GREEN, VERMILLION = PALETTE["pattern"], PALETTE["risky"]
SVG = "{http://www.w3.org/2000/svg}"


def named(model: onnx.ModelProto) -> onnx.ModelProto:
    """Name every main-graph node ``<op>_<index>`` (lower case)."""
    for i, node in enumerate(model.graph.node):
        node.name = f"{node.op_type.lower()}_{i}"
    return model


def chain_model(labels: list[str]) -> onnx.ModelProto:
    """x -> labels[0] -> labels[1] -> ... -> y, unary ops named ``<op>_<index>``."""
    nodes = [
        helper.make_node(op, [f"t{i}" if i else "x"], [f"t{i + 1}"], name=f"{op.lower()}_{i}")
        for i, op in enumerate(labels)
    ]
    nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def chain_with_neg_at(length: int, where: int) -> onnx.ModelProto:
    return chain_model(["Neg" if i == where else "Relu" for i in range(length)])


_NODE = re.compile(r"^\t(\w+) \[(.*)\]$")
_EDGE = re.compile(r"^\t(\w+) -> (\w+)(?: \[(.*)\])?$")
_NAME = re.compile(r'<B>([^<]*)</B></FONT><BR/><FONT POINT-SIZE="9">([^<]*)</FONT>')


def dot_nodes(source: str) -> dict[str, dict[str, str]]:
    """Operator nodes of a DOT source by model node name: DOT id, fillcolor, style, color."""
    found = {}
    for line in source.splitlines():
        match = _NODE.match(line)
        name = _NAME.search(line)
        if match and name:
            attributes = dict(re.findall(r'(fillcolor|style|color)="?([^" \]]*)"?', match[2]))
            found[name[2]] = {"id": match[1], "label": name[1], **attributes}
    return found


def dot_edges(source: str) -> dict[tuple[str, str], str]:
    """Edges by (tail, head) DOT id -> their attribute text ('' when none)."""
    return {(m[1], m[2]): m[3] or "" for m in map(_EDGE.match, source.splitlines()) if m}


def group_labels(source: str) -> dict[str, str]:
    return dict(re.findall(r"^\t(g\d+) \[label=<<I>([^<]*)</I>>", source, re.MULTILINE))


# --- colours --------------------------------------------------------------------------------


def test_draw_pattern_colours_exactly_its_nodes_and_edges():
    graph = build_opgraph(named(models.diamond()))  # relu_0 -> (neg_1, exp_2) -> add_3
    drawing = draw(graph, {"pattern": [("Relu", "Neg")]})
    nodes = dot_nodes(drawing.source)
    assert {name: node.get("fillcolor") for name, node in nodes.items()} == {
        "relu_0": GREEN,
        "neg_1": GREEN,
        "exp_2": None,
        "add_3": None,
    }
    ids = {name: node["id"] for name, node in nodes.items()}
    edges = dot_edges(drawing.source)
    coloured = {edge for edge, attrs in edges.items() if f'color="{GREEN}"' in attrs}
    assert coloured == {(ids["relu_0"], ids["neg_1"])}
    assert edges[(ids["relu_0"], ids["exp_2"])] == ""
    assert edges[(ids["neg_1"], ids["add_3"])] == ""


def test_draw_node_of_two_kinds_is_striped_in_kind_order():
    graph = build_opgraph(named(models.diamond()))
    drawing = draw(graph, {"pattern": [("Relu", "Neg")], "risky": [("Relu",)]})
    nodes = dot_nodes(drawing.source)
    assert nodes["relu_0"]["fillcolor"] == f"{VERMILLION}:{GREEN}"
    assert nodes["relu_0"]["style"] == "striped"
    assert nodes["neg_1"]["fillcolor"] == GREEN
    assert nodes["neg_1"]["style"] == "rounded,filled"


def test_draw_legend_lists_kinds_counts_and_ngrams():
    graph = build_opgraph(named(models.diamond()))
    drawing = draw(graph, {"pattern": [("Relu", "Neg"), ("Exp", "Relu")]}, title="m.onnx")
    [summary] = drawing.highlights
    assert (summary.kind, summary.found, summary.nodes, summary.in_bodies) == ("pattern", 1, 2, 0)
    legend = next(line for line in drawing.source.splitlines() if line.startswith("\tlegend"))
    assert f'BGCOLOR="{GREEN}"' in legend
    assert "<B>m.onnx</B>" in legend
    assert "1 of 2 n-grams found, 2 nodes<BR/>Relu&gt;Neg<BR/>Exp&gt;Relu" in legend


def test_draw_nothing_highlighted_says_so_and_draws_the_whole_small_graph():
    graph = build_opgraph(named(models.diamond()))
    drawing = draw(graph, {})
    assert "nothing highlighted" in drawing.source
    assert set(dot_nodes(drawing.source)) == {"relu_0", "neg_1", "exp_2", "add_3"}
    assert (drawing.drawn, drawing.groups, drawing.context) == (4, 0, None)


def test_draw_graph_inputs_and_outputs_are_plain_text_nodes():
    graph = build_opgraph(named(models.two_inputs_two_outputs()))  # s = Add(x, w); r = Relu(s)
    source = draw(graph, {}).source
    for name in ("x", "w", "s", "r"):
        assert re.search(rf"\t[io]\d+ \[label=<{name}> .*shape=plaintext", source), name
    ids = {name: node["id"] for name, node in dot_nodes(source).items()}
    assert ("i0", ids["add_0"]) in dot_edges(source)
    assert (ids["relu_1"], "o1") in dot_edges(source)


def test_draw_highlight_inside_if_branch_outlines_the_if_node():
    graph = build_opgraph(named(models.if_subgraph()))  # relu_0 -> if_1 {then: Neg>Exp}
    drawing = draw(graph, {"pattern": [("Neg", "Exp")]})
    nodes = dot_nodes(drawing.source)
    assert nodes["if_1"].get("fillcolor") is None
    assert nodes["if_1"]["color"] == GREEN
    assert nodes["if_1"]["style"] == "rounded,filled,dashed"
    assert "+3 nodes in bodies (highlights inside)" in drawing.source
    assert drawing.highlights[0].in_bodies == 2
    assert "If/Loop/Scan bodies not drawn: 3 nodes" in drawing.notes


# --- context and collapse -----------------------------------------------------------------


def test_draw_chain_of_50_context_2_keeps_5_nodes_and_collapses_the_two_sides():
    graph = build_opgraph(chain_with_neg_at(50, 25))
    drawing = draw(graph, {"pattern": [("Neg",)]}, context=2)
    nodes = dot_nodes(drawing.source)
    assert set(nodes) == {"relu_23", "relu_24", "neg_25", "relu_26", "relu_27"}
    assert {name for name, node in nodes.items() if node.get("fillcolor")} == {"neg_25"}
    assert group_labels(drawing.source) == {"g0": "23 nodes", "g1": "22 nodes"}
    assert (drawing.drawn, drawing.groups, drawing.collapsed, drawing.context) == (7, 2, 45, 2)
    edges = dot_edges(drawing.source)
    assert edges[("g0", nodes["relu_23"]["id"])] == "style=dashed"
    assert edges[(nodes["relu_27"]["id"], "g1")] == "style=dashed"
    assert ("i0", "g0") in edges and ("g1", "o0") in edges  # x and y touch collapsed groups
    assert "context 2: 45 of 50 nodes collapsed into 2 groups" in drawing.notes


def test_select_nodes_chain_of_50_exact_kept_ids_and_group_sizes():
    graph = build_opgraph(chain_with_neg_at(50, 25))
    selection = select_nodes(graph, {"main/25"}, context=2)
    assert selection.kept == tuple(f"main/{i}" for i in range(23, 28))
    assert [len(group) for group in selection.groups] == [23, 22]
    assert set(selection.groups[0]) == {f"main/{i}" for i in range(23)}
    assert selection.group_of["main/0"] == 0 and selection.group_of["main/49"] == 1


def test_draw_chain_of_50_default_context_draws_the_whole_graph():
    graph = build_opgraph(chain_with_neg_at(50, 25))
    drawing = draw(graph, {"pattern": [("Neg",)]})
    assert (drawing.drawn, drawing.groups, drawing.context) == (50, 0, None)


def test_draw_chain_of_400_default_context_is_2():
    graph = build_opgraph(chain_with_neg_at(400, 200))
    drawing = draw(graph, {"pattern": [("Neg",)]})
    assert drawing.context == 2
    assert set(dot_nodes(drawing.source)) == {
        "relu_198",
        "relu_199",
        "neg_200",
        "relu_201",
        "relu_202",
    }
    assert group_labels(drawing.source) == {"g0": "198 nodes", "g1": "197 nodes"}


def test_draw_chain_of_400_nothing_highlighted_keeps_the_first_300_nodes():
    graph = build_opgraph(chain_with_neg_at(400, 200))
    drawing = draw(graph, {"pattern": [("Sigmoid",)]})
    assert drawing.highlights[0].found == 0
    assert set(dot_nodes(drawing.source)) == {
        f"{'neg' if i == 200 else 'relu'}_{i}" for i in range(300)
    }
    assert group_labels(drawing.source) == {"g0": "100 nodes"}
    assert drawing.notes[0] == (
        "nothing highlighted: the first 300 of 400 nodes in topological order; the rest collapsed"
    )


def test_draw_context_shrinks_until_the_picture_fits_max_nodes():
    graph = build_opgraph(chain_with_neg_at(50, 25))
    drawing = draw(graph, {"pattern": [("Neg",)]}, context=10, max_nodes=5)
    assert drawing.context == 1
    assert (drawing.drawn, drawing.over_limit) == (5, False)
    assert drawing.notes[0] == "context 10 reduced to context 1 to draw at most 5 nodes"


def test_draw_too_many_highlighted_nodes_even_at_context_0_is_over_limit():
    graph = build_opgraph(chain_with_neg_at(50, 25))
    drawing = draw(graph, {"pattern": [("Relu",)]}, max_nodes=10)
    assert drawing.context == 0 and drawing.over_limit


def test_draw_invalid_kind_or_context_raises_config_error():
    graph = build_opgraph(models.chain())
    with pytest.raises(ConfigError, match="unknown highlight kind 'bogus'"):
        draw(graph, {"bogus": [("Relu",)]})
    with pytest.raises(ConfigError, match="context must be a whole number"):
        draw(graph, {"pattern": [("Relu",)]}, context=-1)


# --- writing --------------------------------------------------------------------------------


def test_picture_format_by_suffix_and_unknown_suffix_refused():
    assert [picture_format(Path(f"a{s}")) for s in (".svg", ".PNG", ".pdf", ".dot")] == [
        "svg",
        "png",
        "pdf",
        "dot",
    ]
    with pytest.raises(ConfigError, match=r"unknown picture format \(\.jpg\)"):
        picture_format(Path("a.jpg"))


def test_render_picture_svg_shows_highlighted_names_colours_and_legend(tmp_path):
    graph = build_opgraph(named(models.diamond()))
    result = render_picture(graph, {"pattern": [("Relu", "Neg")]}, tmp_path / "d.svg")
    assert (result.path, result.format, result.fallback) == (str(tmp_path / "d.svg"), "svg", None)
    root = ET.parse(tmp_path / "d.svg").getroot()
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert {"relu_0", "neg_1", "exp_2", "add_3", "legend", "pattern"} <= set(texts)
    fills = {p.get("fill") for p in root.iter(f"{SVG}path")} | {
        p.get("fill") for p in root.iter(f"{SVG}polygon")
    }
    assert GREEN.lower() in {f.lower() for f in fills if f}
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_render_picture_binary_formats_are_written_whole(tmp_path, suffix, magic):
    graph = build_opgraph(named(models.chain()))
    result = render_picture(graph, {"pattern": [("Neg",)]}, tmp_path / f"c{suffix}")
    assert (tmp_path / f"c{suffix}").read_bytes().startswith(magic)
    assert result.fallback is None


def test_render_picture_dot_writes_the_source(tmp_path):
    graph = build_opgraph(named(models.chain()))
    result = render_picture(graph, {"pattern": [("Neg",)]}, tmp_path / "c.dot")
    assert (tmp_path / "c.dot").read_text("utf-8") == result.drawing.source
    assert result.format == "dot"


def test_render_picture_without_dot_writes_dot_beside_with_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr("opseq.coverage.render.shutil.which", lambda name: None)
    graph = build_opgraph(named(models.chain()))
    result = render_picture(graph, {"pattern": [("Neg",)]}, tmp_path / "c.svg")
    assert result.path == str(tmp_path / "c.dot") and result.format == "dot"
    assert (tmp_path / "c.dot").read_text("utf-8") == result.drawing.source
    assert not (tmp_path / "c.svg").exists()
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz"):
        assert hint in result.fallback
    assert result.fallback.endswith(f"dot -Tsvg {tmp_path / 'c.dot'} -o {tmp_path / 'c.svg'}")


def test_render_picture_over_limit_writes_dot_and_names_sfdp(tmp_path):
    graph = build_opgraph(chain_with_neg_at(50, 25))
    result = render_picture(graph, {"pattern": [("Relu",)]}, tmp_path / "c.svg", max_nodes=10)
    assert result.format == "dot" and not (tmp_path / "c.svg").exists()
    assert "50 nodes to draw even with context 0" in result.fallback
    assert "sfdp -Tsvg" in result.fallback


def fake_dot(tmp_path: Path, script: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    dot = bin_dir / "dot"
    dot.write_text(f"#!/bin/sh\n{script}\n")
    dot.chmod(dot.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_render_picture_dot_failing_raises_and_keeps_the_old_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path, "echo 'Error: boom' >&2; exit 1")))
    target = tmp_path / "c.svg"
    target.write_text("old")
    graph = build_opgraph(models.chain())
    with pytest.raises(RenderError, match=r"^dot failed \(exit 1\): Error: boom$"):
        render_picture(graph, {"pattern": [("Neg",)]}, target)
    assert target.read_text() == "old"
    assert not list(tmp_path.glob(".*partial"))


def test_render_picture_dot_running_too_long_raises_render_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_dot(tmp_path, f"exec {shutil.which('sleep')} 30")))
    graph = build_opgraph(models.chain())
    with pytest.raises(RenderError, match=r"dot did not finish within 0.5 s on 3 nodes"):
        render_picture(graph, {"pattern": [("Neg",)]}, tmp_path / "c.svg", timeout=0.5)
    assert not list(tmp_path.glob(".*partial"))


def test_render_picture_missing_directory_is_a_config_error(tmp_path):
    graph = build_opgraph(models.chain())
    with pytest.raises(ConfigError, match="cannot write"):
        render_picture(graph, {}, tmp_path / "missing" / "c.svg")


def test_write_picture_returns_the_path_written_and_logs_a_fallback(tmp_path, monkeypatch, caplog):
    graph = build_opgraph(models.chain())
    assert write_picture(graph, {"uncovered": [("Relu", "Neg")]}, tmp_path / "u.svg") == str(
        tmp_path / "u.svg"
    )
    monkeypatch.setattr("opseq.coverage.render.shutil.which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="opseq.coverage.render"):
        written = write_picture(graph, {"uncovered": [("Relu", "Neg")]}, tmp_path / "v.png")
    assert written == str(tmp_path / "v.dot")
    assert "apt-get install graphviz" in caplog.text


# --- untrusted names ------------------------------------------------------------------------

HOSTILE = 'evil\x1b[2J"q" <script>alert(1)</script> & \\N\n' + "x" * 50


def hostile_model() -> onnx.ModelProto:
    """Relu -> Neg whose first node, graph input and output carry hostile names."""
    tensor_in, tensor_out = '<b>in</b>"\x07', "out>\u202e"
    nodes = [
        helper.make_node("Relu", [tensor_in], ["t"], name=HOSTILE),
        helper.make_node("Neg", ["t"], [tensor_out], name="plain"),
    ]
    graph = helper.make_graph(
        nodes,
        "hostile",
        [helper.make_tensor_value_info(tensor_in, TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info(tensor_out, TensorProto.FLOAT, [4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_draw_hostile_names_are_escaped_and_truncated_in_the_dot_source():
    source = draw(build_opgraph(hostile_model()), {"pattern": [("Relu",)]}).source
    assert "\x1b" not in source and "\x07" not in source and "\u202e" not in source
    assert "<script>" not in source and "<b>in" not in source
    shown = "evil\\x1b[2J&quot;q&quot; &lt;script&gt;alert(1)&lt;/script\u2026"  # 39 + 1
    assert f'<FONT POINT-SIZE="9">{shown}</FONT>' in source
    assert "&lt;b&gt;in&lt;/b&gt;&quot;\\x07" in source
    assert "out&gt;\\u202e" in source


def test_render_picture_hostile_names_give_valid_svg_with_literal_text(tmp_path):
    render_picture(build_opgraph(hostile_model()), {"pattern": [("Relu",)]}, tmp_path / "h.svg")
    text = (tmp_path / "h.svg").read_text("utf-8")
    assert "<script" not in text
    root = ET.fromstring(text)  # well-formed XML
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert 'evil\\x1b[2J"q" <script>alert(1)</script\u2026' in texts
    assert '<b>in</b>"\\x07' in texts
