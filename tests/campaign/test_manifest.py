from __future__ import annotations

import json

import pytest

from opseq.cli import main
from opseq.corpus import CorpusError, ManifestRow, ManifestWriter, read_manifest, tabulate_outcomes
from opseq.errors import ConfigError
from opseq.outcomes import Outcome
from opseq.report import format_outcome_table


def row(i: int, outcome: Outcome = Outcome.OK, **extra) -> ManifestRow:
    return ManifestRow(
        id=f"case-{i}",
        outcome=outcome,
        converter="tf2onnx",
        source="zoo-keras",
        model=f"models/{i}.onnx",
        max_abs_diff=1e-6 * i,
        max_rel_diff=None,
        extra=extra,
    )


def test_manifest_round_trip_keeps_foreign_keys(tmp_path):
    with ManifestWriter(tmp_path) as writer:
        writer.extend([row(1, team_label="reviewed"), row(2, Outcome.MISMATCH)])
    rows = read_manifest(tmp_path)
    assert rows == [row(1, team_label="reviewed"), row(2, Outcome.MISMATCH)]
    first_line = json.loads((tmp_path / "manifest.jsonl").read_text().splitlines()[0])
    assert list(first_line)[:8] == [
        "id",
        "model",
        "outcome",
        "converter",
        "source",
        "max_abs_diff",
        "max_rel_diff",
        "error",
    ]
    assert first_line["team_label"] == "reviewed"


def test_manifest_truncated_last_line_skipped_then_cut_before_append(tmp_path):
    with ManifestWriter(tmp_path) as writer:
        writer.extend([row(1), row(2)])
    path = tmp_path / "manifest.jsonl"
    path.write_text(path.read_text() + '{"id": "case-3", "outc')  # killed mid-write
    assert [r.id for r in read_manifest(tmp_path)] == ["case-1", "case-2"]
    with ManifestWriter(tmp_path) as writer:
        writer.append(row(3))
    assert [r.id for r in read_manifest(tmp_path)] == ["case-1", "case-2", "case-3"]
    assert path.read_text().count("\n") == 3


def test_manifest_infinite_diff_written_as_null(tmp_path):
    # DESIGN.md: max_abs_diff is "float or null"; JSON has no inf.
    infinite = ManifestRow(
        id="x",
        outcome=Outcome.MISMATCH,
        converter="c",
        source="s",
        max_abs_diff=float("inf"),
        max_rel_diff=float("nan"),
    )
    with ManifestWriter(tmp_path) as writer:
        writer.append(infinite)
    (loaded,) = read_manifest(tmp_path)
    assert (loaded.max_abs_diff, loaded.max_rel_diff) == (None, None)
    assert loaded.outcome is Outcome.MISMATCH
    assert json.loads((tmp_path / "manifest.jsonl").read_text())["max_abs_diff"] is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "outcome": "exploded", "converter": "c", "source": "s"}', "unknown outcome"),
        ('{"id": "a", "converter": "c", "source": "s"}', "missing outcome"),
        ('{"id": "a", "outcome": ["ok"], "converter": "c", "source": "s"}', "unknown outcome"),
        (
            '{"id": "a", "outcome": "ok", "converter": "c", "source": "s", "model": 3}',
            "model must be a path or null",
        ),
        (
            '{"id": "a", "outcome": "ok", "converter": "c", "source": "s", "max_abs_diff": "x"}',
            "max_abs_diff must be a number or null",
        ),
        (
            '{"id": "a", "outcome": "ok", "converter": "c", "source": "s", "max_rel_diff": []}',
            "max_rel_diff must be a number or null",
        ),
        ("[1, 2]", "not a JSON object"),
        ("{not json", "not JSON"),
    ],
)
def test_manifest_bad_complete_line_names_line(tmp_path, line, message):
    (tmp_path / "manifest.jsonl").write_text(line + "\n" + json.dumps(row(1).to_dict()) + "\n")
    with pytest.raises(CorpusError, match=f"manifest.jsonl:1: {message}"):
        read_manifest(tmp_path)


def test_manifest_missing_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such manifest"):
        read_manifest(tmp_path)


def test_manifest_writer_unwritable_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write"), ManifestWriter(blocker / "corpus"):
        pass


def test_tabulate_outcomes_counts_per_group():
    rows = [row(1), row(2), row(3, Outcome.MISMATCH), row(4, Outcome.CONVERT_FAIL)]
    table = tabulate_outcomes(rows)
    assert table.groups == (("tf2onnx", "zoo-keras"),)
    group = table.to_dict()["groups"][0]
    assert group["total"] == 4
    assert group["outcomes"]["ok"] == 2 and group["outcomes"]["mismatch"] == 1
    assert group["max_abs_diff"] == {"n": 4, "min": 1e-6, "median": 3e-6, "max": 4e-6}


def test_tabulate_outcomes_counts_verdicts_and_the_studys_rule():
    rows = [
        row(1, verdict="ok"),
        row(2, verdict="numerical"),
        row(3, Outcome.MISMATCH, verdict="semantic"),
        row(4, verdict="unstable"),
        row(5, Outcome.LOAD_FAIL),
    ]
    rows[0] = ManifestRow.from_dict({**rows[0].to_dict(), "max_abs_diff": 0.0})
    group = tabulate_outcomes(rows).to_dict()["groups"][0]
    assert group["verdicts"] == {"ok": 1, "numerical": 1, "semantic": 1, "unstable": 1}
    assert group["study_mismatch"] == 3  # every model that ran, but the exact one
    text = format_outcome_table(tabulate_outcomes(rows))
    assert "mismatch at abs >= 1e-7 (the study's rule)" in text and "verdict semantic" in text


def test_cli_corpus_show_formats(tmp_path, capsys):
    with ManifestWriter(tmp_path) as writer:
        writer.extend([row(1), row(2, Outcome.MISMATCH), row(3, Outcome.LOAD_FAIL)])
    assert main(["corpus", "show", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "tf2onnx zoo-keras" in text and "1 (33%)" in text and "total models" in text
    assert main(["corpus", "show", str(tmp_path), "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("| outcome | tf2onnx zoo-keras |")
    assert main(["corpus", "show", str(tmp_path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"][0]["outcomes"]["load_fail"] == 1


def test_cli_corpus_show_missing_manifest_exits_2(tmp_path, capsys):
    assert main(["corpus", "show", str(tmp_path)]) == 2
    assert "no such manifest" in capsys.readouterr().err
