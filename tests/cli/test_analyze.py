from __future__ import annotations

import json
import os

import pytest

from opseq.cli import main
from tests import models
from tests.cli.errors import assert_one_error_line


def run(capsys, *argv):
    code = main(["analyze", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_text_reports_summary_histogram_and_ngrams(capsys, save):
    code, out, err = run(capsys, save(models.diamond()), "--top", "3")
    assert code == 0 and err == ""
    assert "4 nodes, 4 edges, 4 distinct ops, 0 subgraphs" in out
    assert "2 input->output paths" in out
    assert "3 ops: Relu > Neg > Add" in out
    assert "top 3 2-grams" in out and "top 2 3-grams" in out
    assert "    1  Relu > Exp > Add" in out


def test_analyze_json_schema(capsys, save):
    code, out, _ = run(capsys, save(models.dense_ladder(58)), "--format", "json", "--n", "2..3")
    document = json.loads(out)
    assert code == 0
    assert document["schema_version"] == 1 and document["failures"] == []
    assert document["corpus"] is None
    (model,) = document["models"]
    assert model["path_count"] == "288230376151711744"
    assert set(model["ngrams"]) == {"2", "3"}
    assert model["ngrams"]["2"][0] == {"ngram": ["Relu", "Concat"], "count": 58}
    assert model["op_histogram"] == {"Concat": 58, "Relu": 58, "Neg": 1}
    assert model["longest_path"]["length"] == 117
    for key in (
        "file_size",
        "producer_name",
        "ir_version",
        "opset_imports",
        "nodes",
        "edges",
        "distinct_ops",
        "inputs",
        "outputs",
        "subgraphs",
        "notes",
    ):
        assert key in model


def test_analyze_directory_recurses_and_summarises_corpus(capsys, tmp_path, save):
    save(models.chain(), "a/chain.onnx")
    save(models.diamond(), "a/b/diamond.onnx")
    (tmp_path / "a" / "notes.txt").write_text("not a model")
    code, out, _ = run(capsys, tmp_path / "a", "--format", "json")
    document = json.loads(out)
    assert code == 0
    assert [os.path.basename(m["path"]) for m in document["models"]] == [
        "diamond.onnx",
        "chain.onnx",
    ]
    assert document["corpus"]["models"] == 2
    assert document["corpus"]["ops_in_every_model"] == ["Exp", "Neg", "Relu"]


def test_analyze_jsonl_one_line_per_model(capsys, save, tmp_path):
    paths = [save(models.chain(), "c.onnx"), save(models.diamond(), "d.onnx")]
    output = tmp_path / "out.jsonl"
    code, out, _ = run(capsys, *paths, "--format", "jsonl", "-o", output)
    assert code == 0 and out == ""
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["nodes"] for r in rows] == [3, 4]


def test_analyze_parallel_jobs_same_result_as_serial(capsys, tmp_path, save):
    for i in range(6):
        save(models.dense_ladder(i + 1), f"m{i}.onnx")
    serial = run(capsys, tmp_path, "--format", "json", "--jobs", "1")
    parallel = run(capsys, tmp_path, "--format", "json", "--jobs", "2")
    assert serial == parallel and serial[0] == 0


def test_analyze_ignore_option_keeps_identity(capsys, save):
    code, out, _ = run(
        capsys,
        save(models.with_constants_and_identities()),
        "--ignore",
        "Constant",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out)["models"][0]["op_histogram"] == {"Identity": 3, "Add": 1, "Relu": 1}


def test_analyze_notes_unknown_domain_and_future_opset(capsys, save):
    code, out, _ = run(
        capsys,
        save(models.custom_domain(), "c.onnx"),
        save(models.future_opset(), "f.onnx"),
        "--format",
        "json",
    )
    assert code == 0
    custom, future = json.loads(out)["models"]
    assert any("unknown domain 'com.example' (1 nodes)" in note for note in custom["notes"])
    assert any("opset 99" in note for note in future["notes"])
    assert future["nodes"] == 3


def test_analyze_external_data_outside_folder_analysed(capsys, save):
    path = save(models.with_external_data("../../../etc/never.bin"))
    code, out, err = run(capsys, path, "--format", "json")
    assert code == 0, err
    (model,) = json.loads(out)["models"]
    assert any("external tensor data" in note for note in model["notes"])


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"name,value\n1,2\n", "not an ONNX model"),
        (bytes(range(256)) * 8, "not an ONNX model"),
        (models.diamond().SerializeToString()[:-9], "not an ONNX model"),
        (models.undefined_tensor().SerializeToString(), "reads undefined tensor 'ghost'"),
        (models.cycle().SerializeToString(), "cycle"),
        (models.empty_graph().SerializeToString(), "empty"),
    ],
    ids=["text", "random-bytes", "truncated", "undefined-tensor", "cycle", "empty-graph"],
)
def test_analyze_bad_model_exits_2_with_one_line(capsys, tmp_path, content, fragment):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    code, out, err = run(capsys, path)
    assert code == 2 and out == ""
    assert_one_error_line(err, str(path), fragment)


def test_analyze_missing_path_exits_2(capsys, tmp_path):
    code, _, err = run(capsys, tmp_path / "absent.onnx")
    assert code == 2
    assert_one_error_line(err, "no such file or directory")


def test_analyze_directory_without_models_exits_2(capsys, tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    code, _, err = run(capsys, tmp_path)
    assert code == 2
    assert_one_error_line(err, "no .onnx files")


def test_analyze_good_and_bad_models_reports_good_exits_1(capsys, tmp_path, save):
    good = save(models.chain(), "good.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    code, out, err = run(capsys, good, bad, "--format", "json")
    assert code == 1
    document = json.loads(out)
    assert [m["path"] for m in document["models"]] == [str(good)]
    assert document["failures"][0]["path"] == str(bad)
    assert_one_error_line(err, str(bad))


def test_analyze_unwritable_output_exits_2(capsys, save, tmp_path):
    code, _, err = run(
        capsys, save(models.chain()), "-o", tmp_path / "no" / "such" / "dir" / "out.txt"
    )
    assert code == 2
    assert_one_error_line(err, "cannot write")


@pytest.mark.parametrize("argv", [["--n", "4..2"], ["--top", "-1"], ["--format", "xml"], []])
def test_analyze_usage_errors_exit_2_with_one_line(capsys, save, argv):
    path = [] if not argv else [save(models.chain())]
    code, _, err = run(capsys, *path, *argv)
    assert code == 2
    assert_one_error_line(err, "analyze: ", "(see 'opseq analyze --help')")


def test_help_has_example(capsys):
    assert main(["analyze", "--help"]) == 0
    assert "Example:\n  opseq analyze" in capsys.readouterr().out


def test_internal_error_exits_3_with_report_request(capsys, save, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("opseq.cli.analyze.analyze_model", broken)
    code, _, err = run(capsys, save(models.chain()))
    assert code == 3
    assert "internal error, please report: ZeroDivisionError: boom" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--debug", "analyze", "X"], ["analyze", "X", "--debug"]])
def test_debug_flag_before_or_after_subcommand_shows_traceback(capsys, save, monkeypatch, argv):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("opseq.cli.analyze.analyze_model", broken)
    path = str(save(models.chain()))
    code = main([path if a == "X" else a for a in argv])
    err = capsys.readouterr().err
    assert code == 3
    assert "Traceback (most recent call last)" in err and "ZeroDivisionError: boom" in err
    assert err.strip().splitlines()[-1].startswith("opseq: error: ")


def test_analyze_into_a_closed_pipe_exits_quietly(tmp_path, save):
    """`opseq analyze ... | head`: the reader leaves early; no traceback, no "internal error"."""
    import subprocess
    import sys

    for i in range(150):  # over 64 KiB of JSON: more than a pipe holds, so the write must fail
        save(models.diamond(), f"m{i}.onnx")
    reader = subprocess.Popen(
        ["head", "-c", "20"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    done = subprocess.run(
        [sys.executable, "-m", "opseq", "analyze", str(tmp_path), "--format", "json", "-q"],
        stdout=reader.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    reader.stdin.close()
    reader.wait()
    assert done.returncode == 1 and done.stderr == ""
