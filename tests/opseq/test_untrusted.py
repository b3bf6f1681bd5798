"""Strings from hostile models: decoded, kept distinct, printed escaped; notes on odd models."""

from __future__ import annotations

import json

import pytest

from opseq.analysis import analyze_model
from opseq.report import format_model_analysis
from opseq.untrusted import decode_text, decode_texts, escape_controls, escape_lines
from tests import hostile


@pytest.mark.parametrize("code", [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x202E, 0x2067])
def test_escape_controls_leaves_no_unsafe_character(code):
    escaped = escape_controls(f"a{chr(code)}b")
    assert chr(code) not in escaped and escaped.startswith("a\\") and escaped.endswith("b")


def test_escape_controls_keeps_printable_text_including_non_ascii():
    assert escape_controls("Conv > Relu, Größe, 卷积") == "Conv > Relu, Größe, 卷积"


def test_escape_lines_keeps_line_breaks_only():
    assert escape_lines("one\x1b[2J\ntwo\r") == "one\\x1b[2J\ntwo\\x0d"


def test_decode_texts_keeps_distinct_invalid_names_distinct():
    assert decode_texts([b"a\xff", b"a\xfe", "a"]) == ("a\\xff", "a\\xfe", "a")
    assert decode_text(b"ok") == "ok"


@pytest.mark.parametrize("field", hostile.INVALID_UTF8_FIELDS)
def test_invalid_utf8_in_any_field_analyses_and_serialises(field):
    analysis = analyze_model(hostile.invalid_utf8(field))
    document = json.loads(json.dumps(analysis.to_dict()))  # no bytes anywhere
    text = format_model_analysis(analysis)
    assert "b'" not in text and 'b"' not in text
    assert document["nodes"] == 2 and document["path_count"] == "2"
    if field == "op_type":
        assert document["op_histogram"] == {"Add": 1, "R\\xf2\\xffu": 1}
    if field == "producer_name":
        assert document["producer_name"] == "h\\xf2\\xfftile-producer"


def test_control_characters_in_names_are_escaped_in_text_and_json():
    analysis = analyze_model(hostile.control_characters())
    text = format_model_analysis(analysis)
    for raw in ("\x1b", "\r", "\u202e"):
        assert raw not in text
    assert "opseq: error: forged" not in text.splitlines()[0]
    assert all(not line.startswith("opseq: error") for line in text.splitlines())
    document = json.dumps(analysis.to_dict())
    assert "\x1b" not in document and "\\u001b" in document


@pytest.mark.parametrize(
    ("build", "note"),
    [
        (hostile.external_data_in_constant_attribute, "references external tensor data"),
        (hostile.external_data_in_subgraph_initializer, "references external tensor data"),
        (hostile.external_data_in_function, "references external tensor data"),
        (hostile.negative_opset, "opset -3 of domain 'ai.onnx' is not a valid version"),
        (hostile.no_default_domain_import, "no opset is imported for the default domain"),
        (hostile.no_outputs, "the graph declares no outputs"),
    ],
)
def test_odd_but_analysable_models_get_a_note(build, note):
    model = build()
    analysis = analyze_model(model.SerializeToString())
    assert any(note in n for n in analysis.notes), analysis.notes
