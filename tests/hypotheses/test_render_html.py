from __future__ import annotations

import base64
import copy
import re
import sys
from html.parser import HTMLParser

import pytest

from hypotheses.figures import roc_png, sweep_png, volcano_png
from hypotheses.formatting import format_count, format_odds_ratio, format_p
from hypotheses.render_html import render_html

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DASH = "\u2013"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
IMAGE = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def _test(label, *, q_adj, odds_adj=2.0, **overrides):
    record = {
        "mismatch_with": 12,
        "ok_with": 3,
        "odds_ratio": 4.5,
        "ci_low": 1.25,
        "ci_high": 16.2,
        "p_value": 0.0001,
        "q_value": 0.002,
        "odds_ratio_adjusted": odds_adj,
        "ci_low_adjusted": 1.1,
        "ci_high_adjusted": 3.9,
        "p_value_adjusted": 0.00001,
        "q_value_adjusted": q_adj,
    }
    record.update(label)
    record.update(overrides)
    return record


def _ngram_tests():
    return [
        _test({"ngram": ["Floor", "Floor"]}, q_adj=0.000123),
        _test({"ngram": ["<script>alert(1)</script>", "Relu"]}, q_adj=0.01),
        _test({"ngram": ["Tan", "Squeeze", "Sin"]}, q_adj=0.04, odds_adj=None, ci_low=None),
        _test({"ngram": ["Add", "Mul"]}, q_adj=0.8, odds_adj=0.7),
    ]


def _full_report():
    roc = {"fpr": [0.0, 0.2, 1.0], "tpr": [0.0, 0.7, 1.0]}
    auc = {
        name: {
            "features": features,
            "auc": value,
            "ci_low": value - 0.05,
            "ci_high": value + 0.05,
            "fold_aucs": [value] * 4,
            "roc": roc,
        }
        for name, features, value in (
            ("size", 3, 0.64),
            ("operators", 92, 0.7),
            ("ngrams", 900, 0.89),
        )
    }
    return {
        "schema_version": 1,
        "config": {
            "tolerance": "abs >= 1e-05",
            "atol": 1e-05,
            "rtol": None,
            "n": [2, 4],
            "min_support": 5,
            "alpha": 0.05,
            "folds": 5,
            "repeats": 3,
            "seed": 0,
        },
        "corpus": {
            "rows": 120,
            "outcomes": {"load_fail": 10, "mismatch": 60, "ok": 50},
            "labelled": 110,
            "mismatch": 40,
            "ok": 70,
            "recorded_mismatch": 60,
            "excluded": {"outcome load_fail": 10},
            "converters": {"tf2onnx": 50, "torch.onnx-dynamo": 60},
            "median_nodes": {"mismatch": 94.0, "ok": 67.5},
            "distinct_operators": 30,
            "distinct_ngrams": 4321,
            "reference": None,
        },
        "operators": {
            "sets": {
                "mismatch": 28,
                "ok": 30,
                "shared": 28,
                "mismatch_only": [],
                "ok_only": ["GRU", "LSTM"],
            },
            "untestable": [],
            "significant": 2,
            "significant_adjusted": 1,
            "tests": [
                _test({"op": "Tan"}, q_adj=0.003),
                _test({"op": "Pow"}, q_adj=0.3, odds_ratio=float("inf")),
            ],
        },
        "sequences": {
            "n": [2, 4],
            "min_support": 5,
            "candidates": 4321,
            "tested": 4,
            "adjustment": "score test in a logistic regression of mismatch on log nodes",
            "significant": 3,
            "significant_adjusted": 3,
            "minimal": _ngram_tests()[:3],
            "explained_by": [{"ngram": ["Floor", "Floor", "Add"], "by": ["Floor", "Floor"]}],
            "tests": _ngram_tests(),
        },
        "prediction": {
            "folds": 5,
            "repeats": 3,
            "model": "logistic regression",
            "interval": "Nadeau-Bengio corrected resampled t, 95%",
            "skipped": None,
            "auc": auc,
            "gains": [
                {
                    "larger": "operators",
                    "smaller": "size",
                    "gain": 0.06,
                    "ci_low": 0.03,
                    "ci_high": 0.09,
                    "t": 5.4,
                    "p_value": 7.3e-06,
                }
            ],
        },
        "table12": [
            {
                "group": "all",
                "mismatching_models": 40,
                "rows": {
                    "mismatch ∩ mismatch": {"unique": 500, "reduced": 300},
                    "mismatch only, in > 3 models": {"unique": 7, "reduced": None},
                },
                "models_with_mismatch_only": 33,
                "examples": [{"ngram": ["Relu", "Pow", "Div"], "models": 13}],
            }
        ],
        "tolerance_sweep": [
            _sweep_row("abs >= 1e-07", 1e-07, None, mismatch=110, ok=0, note="one class only"),
            _sweep_row("abs >= 1e-05", 1e-05, None, mismatch=40, ok=70),
            _sweep_row("abs >= 1e-05 and rel >= 0.001", 1e-05, 0.001, mismatch=30, ok=80),
        ],
        "verdicts": [
            {
                "key": "operators",
                "question": "Are particular operators associated with mismatch?",
                "answer": "yes",
                "evidence": "1 of 2 operators significant",
            },
            {
                "key": "sequences",
                "question": "Are particular operator sequences associated with mismatch?",
                "answer": "no",
                "evidence": "0 n-grams",
            },
            {
                "key": "tolerance",
                "question": "Does the sequences verdict hold at every tolerance?",
                "answer": "undetermined",
                "evidence": "one class only",
            },
        ],
    }


def _sweep_row(rule, atol, rtol, *, mismatch, ok, note=None):
    tested = note is None
    return {
        "rule": rule,
        "atol": atol,
        "rtol": rtol,
        "mismatch": mismatch,
        "ok": ok,
        "operators_significant": 5 if tested else None,
        "operators_significant_adjusted": 2 if tested else None,
        "ngrams_tested": 40 if tested else None,
        "ngrams_significant": 9 if tested else None,
        "ngrams_significant_adjusted": 3 if tested else None,
        "ngrams_minimal": 3 if tested else None,
        "top_ngram": ["Floor", "Floor"] if tested else None,
        "sequences_associated": True if tested else None,
        "note": note,
    }


def _sparse_report():
    report = copy.deepcopy(_full_report())
    report["prediction"] = None
    report["tolerance_sweep"] = []
    report["operators"]["tests"] = []
    report["sequences"].update(tests=[], minimal=[], explained_by=[])
    report["table12"] = []
    report["corpus"]["reference"] = {"name": "zoo", "models": 12}
    return report


class _TagCollector(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.errors = []
        self.starts = []
        self.attributes = []
        self.text = []

    def handle_starttag(self, tag, attrs):
        self.starts.append(tag)
        self.attributes.extend(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.starts.append(tag)
        self.attributes.extend(attrs)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(page):
    parser = _TagCollector()
    parser.feed(page)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def full_page():
    return render_html(_full_report())


@pytest.fixture(scope="module")
def sparse_page():
    return render_html(_sparse_report())


@pytest.mark.parametrize("which", ["full", "sparse"])
def test_render_html_tags_balance(which, full_page, sparse_page):
    parser = _parse(full_page if which == "full" else sparse_page)
    assert parser.errors == []
    assert parser.stack == []
    assert parser.starts[0] == "html"
    assert "script" not in parser.starts


def test_render_html_sections_in_order(full_page):
    ids = re.findall(r'<section id="([a-z0-9]+)">', full_page)
    assert ids == [
        "verdicts",
        "corpus",
        "operators",
        "sequences",
        "prediction",
        "table12",
        "sweep",
    ]
    assert full_page.index("<h1>") < full_page.index('id="verdicts"')
    assert "schema version 1" in full_page[full_page.index("<footer>") :]


def test_render_html_verdicts_show_question_and_answer(full_page):
    text = " ".join(_parse(full_page).text)
    for verdict in _full_report()["verdicts"]:
        assert verdict["question"] in text
        assert verdict["evidence"] in text
    for answer in ("yes", "no", "undetermined"):
        assert f'<span class="badge {answer}">{answer}</span>' in full_page


def test_render_html_full_report_embeds_three_png_images(full_page):
    images = IMAGE.findall(full_page)
    assert len(images) == 3
    for data in images:
        assert base64.b64decode(data).startswith(PNG_SIGNATURE)
    alts = [value for name, value in _parse(full_page).attributes if name == "alt"]
    assert len(alts) == 3 and all(alts)


def test_render_html_sparse_report_has_no_images_and_says_why(sparse_page):
    assert IMAGE.findall(sparse_page) == []
    assert "Prediction was not run." in sparse_page
    assert "No tolerance sweep was run." in sparse_page
    assert "No operator was tested." in sparse_page
    assert "Table 12 was not computed." in sparse_page
    assert "name: zoo, models: 12" in sparse_page


def test_render_html_skipped_prediction_shows_reason():
    report = _full_report()
    report["prediction"].update(skipped="too few models <10>", auc={}, gains=[])
    page = render_html(report)
    assert "Skipped: too few models &lt;10&gt;" in page
    assert len(IMAGE.findall(page)) == 2


@pytest.mark.parametrize("which", ["full", "sparse"])
def test_render_html_has_no_external_resources(which, full_page, sparse_page):
    parser = _parse(full_page if which == "full" else sparse_page)
    for name, value in parser.attributes:
        if name in {"src", "href"}:
            assert value.startswith("data:"), value
    page = full_page if which == "full" else sparse_page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page


def test_render_html_escapes_report_strings(full_page):
    assert "<script>" not in full_page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &gt; Relu" in full_page
    assert "Floor &gt; Floor" in full_page


def test_render_html_formats_numbers(full_page):
    assert '<td class="num">1.23e-04</td>' in full_page  # q of 0.000123
    assert '<td class="num">0.0100</td>' in full_page  # q of 0.01: 3 significant digits
    assert "4.50 [1.25, 16.2]" in full_page  # odds ratio and CI, 3 significant digits
    assert f"4.50 [{DASH}, 16.2]" in full_page  # null CI bound
    assert f"{DASH} [1.10, 3.90]" in full_page  # null adjusted odds ratio
    assert "\u221e [1.25, 16.2]" in full_page  # infinite odds ratio
    assert "0.700 [0.650, 0.750]" in full_page  # AUC and CI
    assert "+0.060 [+0.030, +0.090]" in full_page  # AUC gain
    assert "4,321" in full_page


def test_render_html_table12_and_sweep_cells(full_page):
    assert "500 / 300" in full_page
    assert f"7 / {DASH}" in full_page
    assert "mismatching models with a mismatch-only sequence" in full_page
    assert "one class only" in full_page
    assert "abs &gt;= 1e-05 and rel &gt;= 0.001" in full_page


def test_render_html_explained_note(full_page, sparse_page):
    assert "1 significant n-gram(s) were explained" in full_page
    assert "Floor &gt; Floor &gt; Add by Floor &gt; Floor" in full_page
    assert "No significant n-gram was explained" in sparse_page


def test_render_html_tolerates_missing_optional_keys():
    page = render_html({"schema_version": 2})
    parser = _parse(page)
    assert parser.errors == [] and parser.stack == []
    assert "schema version 2" in page


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.000123, "1.23e-04"),
        (1.5e-300, "1.50e-300"),
        (0.0123, "0.0123"),
        (0.001, "0.00100"),
        (0.5, "0.500"),
        (1.0, "1.00"),
        (0.0, "0"),
        (None, DASH),
        (float("nan"), DASH),
    ],
)
def test_format_p(value, expected):
    assert format_p(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.8587, "2.86"),
        (38.075, "38.1"),
        (643.9, "644"),
        (9.996, "10.0"),
        (0.0709, "0.0709"),
        (5.4e-10, "5.40e-10"),
        (float("inf"), "\u221e"),
        (None, DASH),
    ],
)
def test_format_odds_ratio(value, expected):
    assert format_odds_ratio(value) == expected


def test_format_count():
    assert format_count(187906) == "187,906"
    assert format_count(None) == DASH
    assert format_count(67.5) == "67.5"


@pytest.mark.parametrize(
    "draw",
    [
        lambda: volcano_png([], 0.05),
        lambda: volcano_png([{"ngram": ["A"], "odds_ratio_adjusted": None}], 0.05),
        lambda: roc_png({}),
        lambda: roc_png({"size": {"auc": 0.6, "roc": None}}),
        lambda: sweep_png([]),
    ],
)
def test_figures_empty_input_gives_png(draw):
    assert draw().startswith(PNG_SIGNATURE)


def test_figures_with_data_give_png():
    report = _full_report()
    assert volcano_png(report["sequences"]["tests"], 0.05).startswith(PNG_SIGNATURE)
    assert roc_png(report["prediction"]["auc"]).startswith(PNG_SIGNATURE)
    assert sweep_png(report["tolerance_sweep"]).startswith(PNG_SIGNATURE)


def test_figures_draw_dollar_signs_literally():
    tests = [{"ngram": ["a$b$", "$c"], "odds_ratio_adjusted": 2.0, "q_value_adjusted": 0.01}]
    assert volcano_png(tests, 0.05).startswith(PNG_SIGNATURE)
    auc = {"$x$": {"auc": 0.6, "roc": {"fpr": [0, 1], "tpr": [0, 1]}}}
    assert roc_png(auc).startswith(PNG_SIGNATURE)


def test_volcano_png_draws_fifty_thousand_points():
    tests = [
        {
            "ngram": ["Op", str(i)],
            "odds_ratio_adjusted": 0.5 + (i % 97) / 10,
            "q_value_adjusted": ((i % 1009) + 1) / 1010,
            "p_value_adjusted": ((i % 1009) + 1) / 2020,
        }
        for i in range(50_000)
    ]
    png = volcano_png(tests, 0.05)  # its speed is measured by bench/, not asserted here
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000


def test_figures_without_matplotlib_raise_missing_dependency(monkeypatch):
    from opseq.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(MissingDependencyError, match=r"opseq\[report\]"):
        sweep_png(_full_report()["tolerance_sweep"])
