"""The shipped findings ledger: every finding replays under today's versions.

Each finding in ``corpus/findings/`` is rebuilt from its recipe (the minimal synthetic graph or
the source case), converted again and judged by the same calibrated oracle. A finding that no
longer reproduces fails this test with the versions then and now, so that it is reported (and its
``finding.json`` updated by hand), never silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opseq.cli import main
from opseq.reduce.ledger import read_ledger, replay

pytestmark = [pytest.mark.slow, pytest.mark.torch]

LEDGER = Path(__file__).resolve().parent.parent / "corpus" / "findings"


def test_the_ledger_is_readable_and_every_finding_is_judged():
    entries = read_ledger(LEDGER)
    assert entries, "the ledger is empty"
    assert [e.error for e in entries if e.error] == []
    for entry in entries:
        finding = entry.finding
        assert finding.count >= 1 and finding.blame in (
            "converter",
            "runtime",
            "runtime-optimizer",
            "unknown",
        )
        assert (entry.directory / "model.onnx").is_file()
        assert (entry.directory / "reproduce.py").is_file()
        assert list((entry.directory / "test_data_set_0").glob("input_*.pb"))
        data = json.loads((entry.directory / "finding.json").read_text())
        assert data["numbers"]["verdict"] == "semantic"
        assert data["documented"] in (True, False), f"{entry.directory.name}: not annotated"


def test_every_finding_still_reproduces():
    verdicts = replay(LEDGER, workers=2)
    gone = [
        f"{v.slug}: {v.status} ({v.reason}; changed: {v.changed_versions() or 'nothing'})"
        for v in verdicts
        if v.status != "reproduces"
    ]
    assert not gone, "findings that no longer reproduce:\n" + "\n".join(gone)


def test_corpus_show_lists_the_ledger(capsys):
    assert main(["corpus", "show", str(LEDGER.parent)]) == 0
    out = capsys.readouterr().out
    assert f"findings in {LEDGER}: {len(read_ledger(LEDGER))}," in out
