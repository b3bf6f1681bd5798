"""Bounded, seeded fuzzing of `opseq analyze` with mutants of the shipped examples.

Mutants (`tests.mutants.mutants`): truncations, byte flips, insertions, deletions, duplicated
spans, and protobuf edits (names with invalid UTF-8 and control characters, rewired inputs,
deleted nodes, odd versions, self-reads, duplicated outputs). Whatever the bytes, opseq must exit
0, 1 or 2, print no traceback, and print exactly one stderr line per model that failed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opseq.cli import main
from tests.mutants import mutants

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "corpus" / "examples").glob("*.onnx"))
SEEDS = (0, 1)
MUTANTS_PER_SEED = 300


@pytest.fixture(scope="module", params=SEEDS)
def mutant_dir(request, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp(f"mutants-{request.param}")
    originals = [path.read_bytes() for path in EXAMPLES]
    names = [path.stem for path in EXAMPLES]
    for name, data in mutants(request.param, MUTANTS_PER_SEED, originals, names):
        (directory / f"{name}.onnx").write_bytes(data)
    return directory


@pytest.mark.parametrize("fmt", ["json", "jsonl", "text"])
def test_fuzzed_batch_finishes_with_one_line_per_failed_model(capsys, mutant_dir, tmp_path, fmt):
    report = tmp_path / f"report.{fmt}"
    code = main(["analyze", str(mutant_dir), "--format", fmt, "-o", str(report), "-q"])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code in (0, 1) and out == ""
    assert "Traceback" not in err and "internal error" not in err
    assert all(line.startswith("opseq: error: ") for line in lines)
    if fmt == "json":
        document = json.loads(report.read_text())
        assert len(document["models"]) + len(document["failures"]) == MUTANTS_PER_SEED
        assert len(lines) == len(document["failures"])
        assert document["models"] and document["failures"]  # the mutants do both
    elif fmt == "jsonl":
        analysed = [json.loads(line) for line in report.read_text().splitlines()]
        assert len(analysed) + len(lines) == MUTANTS_PER_SEED


def test_fuzzed_models_alone_exit_0_or_2_with_one_line(capsys, mutant_dir):
    for path in sorted(mutant_dir.glob("*.onnx"))[:60]:
        code = main(["analyze", str(path), "--format", "json", "-q"])
        out, err = capsys.readouterr()
        document = json.loads(out)
        if code == 0:
            assert err == "" and len(document["models"]) == 1
        else:
            assert code == 2, path.name
            assert len(err.splitlines()) == 1 and err.startswith("opseq: error: "), err
            assert "Traceback" not in err
