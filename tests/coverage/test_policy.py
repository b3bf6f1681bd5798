"""The gate's policy: finding the file, reading it, refusing every bad value, the command line."""

from __future__ import annotations

import argparse
import logging
import os
import textwrap
from pathlib import Path

import pytest

from opseq.cli._common import OneLineErrorParser
from opseq.coverage.policy import (
    MAX_POLICY_BYTES,
    AllowEntry,
    GatePolicy,
    add_policy_args,
    find_policy_file,
    load_policy,
    merge,
    policy_from_args,
)
from opseq.errors import ConfigError
from tests.cli.errors import assert_one_error_line


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository root (it holds .git), so that no search leaves the test's directory."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    return root


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def gate_file(tmp_path: Path, body: str) -> Path:
    return write(tmp_path / "opseq.toml", f"[gate]\n{body}\n")


def refusal(tmp_path: Path, body: str) -> str:
    path = gate_file(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message


def parser() -> argparse.ArgumentParser:
    parsed = OneLineErrorParser(prog="opseq gate")
    add_policy_args(parsed)
    return parsed


# --- reading a policy -------------------------------------------------------------------------


def test_defaults_require_valid_and_runnable_and_set_no_threshold():
    policy = GatePolicy()
    assert policy.require == frozenset({"valid", "runnable"})
    assert policy.n == 2
    assert policy.min_op_coverage is None and policy.min_ngram_coverage is None
    assert policy.max_novel is None and policy.max_risky is None
    assert policy.allow == () and policy.references == () and policy.source is None


def test_load_policy_reads_every_key(tmp_path: Path):
    path = write(
        tmp_path / "pyproject.toml",
        """
[project]
name = "x"

[tool.opseq.gate]
min-op-coverage = 1
min-versioned-op-coverage = 0.5
min-ngram-coverage = 0.75
n = 3
max-novel = 0
max-risky = 2
require = ["valid", "behaves"]
references = ["onnx-node-tests", "refs", "/abs/refs", "c/manifest.jsonl:outcome=ok", "corpus-ok:c"]
knowledge = "kb/hypotheses.json"
allow = [
  { op = "com.microsoft:FusedMatMul", reason = "ORT fusion, tested in test_fused.py" },
  { op = "Conv@11", reason = "reviewed" },
  { op = "ai.onnx:Relu", reason = "default domain spelled out" },
  { ngram = "Conv>Relu>MaxPool", reason = "  reviewed in #12  " },
  { ngram = ["ai.onnx:Relu", "com.microsoft:Gelu"], reason = "list form" },
  { op = "custom:Op@?", reason = "unresolved version" },
]
""",
    )
    base = tmp_path.resolve()
    assert load_policy(path) == GatePolicy(
        min_op_coverage=1.0,
        min_versioned_op_coverage=0.5,
        min_ngram_coverage=0.75,
        n=3,
        max_novel=0,
        max_risky=2,
        require=frozenset({"valid", "behaves"}),
        references=(
            "onnx-node-tests",
            str(base / "refs"),
            "/abs/refs",
            f"{base / 'c/manifest.jsonl'}:outcome=ok",
            f"corpus-ok:{base / 'c'}",
        ),
        knowledge=str(base / "kb/hypotheses.json"),
        allow=(
            AllowEntry(
                kind="op",
                item=("com.microsoft:FusedMatMul",),
                reason="ORT fusion, tested in test_fused.py",
            ),
            AllowEntry(kind="op", item=("ai.onnx:Conv@11",), reason="reviewed"),
            AllowEntry(kind="op", item=("Relu",), reason="default domain spelled out"),
            AllowEntry(kind="ngram", item=("Conv", "Relu", "MaxPool"), reason="reviewed in #12"),
            AllowEntry(kind="ngram", item=("Relu", "com.microsoft:Gelu"), reason="list form"),
            AllowEntry(kind="op", item=("custom:Op@?",), reason="unresolved version"),
        ),
        source=str(path),
    )
    assert type(load_policy(path).min_op_coverage) is float


def test_the_documented_example_loads(tmp_path: Path):
    import opseq.coverage.policy as module

    example = module.__doc__.split("::\n\n")[1].split("\n\nDecisions")[0]
    path = write(tmp_path / "pyproject.toml", textwrap.dedent(example))
    policy = load_policy(path)
    assert (policy.min_op_coverage, policy.n, policy.max_novel) == (1.0, 3, 0)
    assert policy.references == ("onnx-node-tests", str(tmp_path.resolve() / "refs"))
    assert [entry.text for entry in policy.allow] == [
        "com.microsoft:FusedMatMul",
        "Conv>Relu>MaxPool",
    ]


def test_an_empty_gate_table_is_the_defaults(tmp_path: Path):
    path = gate_file(tmp_path, "")
    assert load_policy(path) == GatePolicy(source=str(path))


def test_policy_and_allow_entry_to_dict(tmp_path: Path):
    path = gate_file(tmp_path, 'require = []\nallow = [{ngram = "A>B", reason = "r"}]')
    assert load_policy(path).to_dict() == {
        "min_op_coverage": None,
        "min_versioned_op_coverage": None,
        "min_ngram_coverage": None,
        "n": 2,
        "max_novel": None,
        "max_risky": None,
        "require": [],
        "references": [],
        "knowledge": None,
        "allow": [{"kind": "ngram", "item": ["A", "B"], "reason": "r"}],
        "source": str(path),
    }


def test_unknown_key_is_named_with_the_closest_and_the_valid_ones(tmp_path: Path):
    message = refusal(tmp_path, "min-op-coverge = 0.5")
    assert message == (
        f"{tmp_path / 'opseq.toml'}: [gate]: unknown key 'min-op-coverge' (did you mean "
        "'min-op-coverage'?); valid keys: allow, knowledge, max-novel, max-risky, "
        "min-ngram-coverage, min-op-coverage, min-versioned-op-coverage, n, references, require"
    )


def test_unknown_key_without_a_close_one_lists_the_valid_ones(tmp_path: Path):
    message = refusal(tmp_path, "colour = 1")
    assert "unknown key 'colour'; valid keys: allow," in message
    assert "did you mean" not in message


def test_underscored_key_is_refused_with_its_dashed_spelling(tmp_path: Path):
    message = refusal(tmp_path, "min_op_coverage = 0.5")
    assert message.endswith(
        "[gate]: unknown key 'min_op_coverage': keys are spelled with dashes, 'min-op-coverage'"
    )


def test_unknown_key_in_pyproject_names_its_table(tmp_path: Path):
    path = write(tmp_path / "pyproject.toml", "[tool.opseq.gate]\nmax-novle = 1\n")
    with pytest.raises(ConfigError, match=r"\[tool\.opseq\.gate\]: unknown key 'max-novle'"):
        load_policy(path)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('min-op-coverage = "high"', "min-op-coverage: expected a number in [0, 1], got a string"),
        ("min-op-coverage = true", "min-op-coverage: expected a number in [0, 1], got a boolean"),
        ("min-ngram-coverage = [1]", "min-ngram-coverage: expected a number in [0, 1], got an"),
        ("max-novel = 1.5", "max-novel: expected a whole number >= 0, got a float 1.5"),
        ("max-risky = false", "max-risky: expected a whole number >= 0, got a boolean false"),
        ('n = "3"', "n: expected 2, 3 or 4 (the n-gram length), got '3'"),
        ('require = "valid"', "require: expected an array of strings"),
        ("require = [1]", "require: expected an array of strings"),
        ('references = "onnx-node-tests"', "references: expected an array of strings"),
        ('references = [""]', "references: entry 0 is empty"),
        ("knowledge = 3", "knowledge: expected a path (a string), got an integer"),
        ('knowledge = ""', "knowledge: the path is empty"),
        ('allow = { op = "A", reason = "r" }', "allow: expected an array of tables, got a table"),
    ],
)
def test_wrong_type_names_the_key_and_the_expected_type(tmp_path: Path, body, expected):
    assert f"[gate] {expected}" in refusal(tmp_path, body)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("min-op-coverage = 1.5", "min-op-coverage: expected a number in [0, 1], got 1.5"),
        ("min-versioned-op-coverage = -0.1", "min-versioned-op-coverage: expected a number in"),
        ("min-ngram-coverage = nan", "min-ngram-coverage: expected a number in [0, 1], got nan"),
        ("min-ngram-coverage = inf", "min-ngram-coverage: expected a number in [0, 1], got inf"),
        ("max-novel = -1", "max-novel: expected a whole number >= 0, got -1"),
        ("max-risky = -3", "max-risky: expected a whole number >= 0, got -3"),
        ("n = 1", "n: expected 2, 3 or 4 (the n-gram length), got 1"),
        ("n = 5", "n: expected 2, 3 or 4 (the n-gram length), got 5"),
        (
            'require = ["valid", "runable"]',
            "require: unknown check 'runable' (did you mean 'runnable'?); the checks are valid, "
            "runnable, behaves",
        ),
    ],
)
def test_value_out_of_range_names_the_key(tmp_path: Path, body, expected):
    assert f"[gate] {expected}" in refusal(tmp_path, body)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('{ ngram = "A", reason = "r" }', "ngram 'A': has 1 label, expected 2..4"),
        ('{ ngram = "A>B>C>D>E", reason = "r" }', "ngram 'A>B>C>D>E': has 5 labels, expected"),
        ('{ ngram = ["A"], reason = "r" }', "ngram 'A': has 1 label, expected 2..4"),
        ('{ ngram = "", reason = "r" }', "ngram '': has 1 label, expected 2..4"),
        ('{ ngram = "A>>B", reason = "r" }', "ngram 'A>>B': label 2 is empty"),
        ('{ ngram = "A>B>", reason = "r" }', "ngram 'A>B>': label 3 is empty"),
        ('{ ngram = ["A", ""], reason = "r" }', "ngram 'A>': label 2 is empty"),
        ('{ ngram = "Conv Relu>Add", reason = "r" }', "label 1 'Conv Relu' is not an op label"),
        ('{ ngram = "A> B", reason = "r" }', "ngram 'A> B': label 2 ' B' is not an op label"),
        ('{ ngram = "1x>B", reason = "r" }', "label 1 '1x' is not an op label"),
        ('{ ngram = "com microsoft:X>B", reason = "r" }', "'com microsoft:X' is not an op label"),
        ('{ ngram = ":X>B", reason = "r" }', "label 1 ':X' is not an op label"),
        ('{ ngram = 3, reason = "r" }', "ngram: expected 'A>B>C' or an array of labels, got an"),
        ('{ op = "A>B", reason = "r" }', "op 'A>B' is not an op label"),
        ('{ op = "Conv@", reason = "r" }', "op 'Conv@': the version after '@' must be a whole"),
        ('{ op = "Conv@x1", reason = "r" }', "the version after '@' must be a whole number or '?'"),
        ('{ op = "@11", reason = "r" }', "op is empty"),
        ('{ op = ["Conv"], reason = "r" }', "op: expected a string, got an array"),
        ('{ ngram = "A>B" }', "needs a reason: why the item is accepted"),
        ('{ ngram = "A>B", reason = "" }', "reason is empty; say why the item is accepted"),
        ('{ ngram = "A>B", reason = "   " }', "reason is empty"),
        ('{ ngram = "A>B", reason = 1 }', "reason: expected a string, got an integer"),
        ('{ ngram = "A>B", op = "C", reason = "r" }', "an entry names exactly one of ngram or op"),
        ('{ reason = "r" }', "an entry names exactly one of ngram or op"),
        (
            '{ ngram = "A>B", reasn = "r" }',
            "unknown key 'reasn' (did you mean 'reason'?); an entry has ngram or op, and reason",
        ),
        ('"A>B"', "expected a table {ngram = ..., reason = ...}, got a string"),
    ],
)
def test_bad_allowlist_entry_names_the_file_the_index_and_the_fault(
    tmp_path: Path, entry, expected
):
    message = refusal(tmp_path, f'allow = [{{ op = "Relu", reason = "ok" }}, {entry}]')
    assert message.startswith(f"{tmp_path / 'opseq.toml'}: [gate] allow[1]: ")
    assert expected in message


def test_an_item_allowed_twice_is_refused(tmp_path: Path):
    body = 'allow = [{ ngram = "A>B", reason = "r" }, { ngram = ["A", "B"], reason = "s" }]'
    assert refusal(tmp_path, body).endswith("[gate] allow[1]: A>B is already allowed by allow[0]")


def test_invalid_toml_is_one_line_with_the_file_and_the_line(tmp_path: Path):
    message = refusal(tmp_path, 'n = 2\nmax-novel = "unterminated')
    assert message.startswith(f"{tmp_path / 'opseq.toml'}: invalid TOML: ")
    assert "line 3" in message


def test_a_key_given_twice_is_invalid_toml(tmp_path: Path):
    assert "invalid TOML" in refusal(tmp_path, "n = 2\nn = 3")


def test_deeply_nested_toml_is_refused_without_a_traceback(tmp_path: Path):
    message = refusal(tmp_path, "n = " + "[" * 100_000)
    assert message.endswith("invalid TOML: arrays or tables nested too deeply")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path):
    path = tmp_path / "opseq.toml"
    path.write_bytes(b"[gate]\nn = 2 # \xff\n")
    with pytest.raises(ConfigError, match=r"opseq\.toml: not UTF-8 text \(byte 15\)"):
        load_policy(path)


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path):
    path = tmp_path / "opseq.toml"
    path.write_bytes(b"[gate]\n" + b"#" * MAX_POLICY_BYTES)
    with pytest.raises(ConfigError, match=r"opseq\.toml: larger than 1 MiB, not a policy file"):
        load_policy(path)


def test_a_file_of_exactly_the_limit_is_read(tmp_path: Path):
    path = tmp_path / "opseq.toml"
    path.write_bytes(b"[gate]\nn = 3\n#".ljust(MAX_POLICY_BYTES, b"#"))
    assert load_policy(path).n == 3


def test_a_missing_file_a_directory_and_a_fifo_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"missing\.toml: no such file"):
        load_policy(tmp_path / "missing.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match=r"dir\.toml: not a regular file"):
        load_policy(tmp_path / "dir.toml")
    os.mkfifo(tmp_path / "fifo.toml")
    with pytest.raises(ConfigError, match=r"fifo\.toml: not a regular file"):
        load_policy(tmp_path / "fifo.toml")


def test_a_named_file_without_the_gate_table_is_refused(tmp_path: Path):
    path = write(tmp_path / "pyproject.toml", "[tool.opseq]\nother = 1\n")
    with pytest.raises(ConfigError, match=r"has no \[tool\.opseq\.gate\] table"):
        load_policy(path)
    path = write(tmp_path / "mine.toml", "[gates]\nn = 2\n")
    with pytest.raises(ConfigError, match=r"mine\.toml: has no \[gate\] table"):
        load_policy(path)


def test_a_gate_that_is_not_a_table_is_refused(tmp_path: Path):
    path = write(tmp_path / "opseq.toml", "gate = 3\n")
    with pytest.raises(ConfigError, match=r"opseq\.toml: gate must be a table, got an integer"):
        load_policy(path)
    path = write(tmp_path / "pyproject.toml", '[tool]\nopseq = "x"\n')
    with pytest.raises(ConfigError, match=r"tool\.opseq must be a table, got a string"):
        load_policy(path)


def test_control_characters_in_an_error_are_escaped(tmp_path: Path):
    message = refusal(tmp_path, 'allow = [{ ngram = "A>B\\u001b[2J\\nx", reason = "r" }]')
    assert "\x1b" not in message and "\\x1b[2J" in message


def test_a_long_value_is_cut_in_the_error(tmp_path: Path):
    message = refusal(tmp_path, f'n = "{"x" * 5000}"')
    assert message.endswith(
        f"[gate] n: expected 2, 3 or 4 (the n-gram length), got '{'x' * 57}...'"
    )


# --- finding the policy -----------------------------------------------------------------------


def test_opseq_toml_in_a_parent_is_found(repo: Path):
    path = gate_file(repo / "models", "n = 3")
    (repo / "models/vision/resnet").mkdir(parents=True)
    assert find_policy_file(repo / "models/vision/resnet") == path


def test_a_file_stands_for_its_directory(repo: Path):
    path = gate_file(repo, "n = 3")
    model = write(repo / "m/model.onnx", "")
    assert find_policy_file(model) == path


def test_pyproject_without_the_table_is_skipped_and_the_search_goes_on(repo: Path):
    outer = write(repo / "pyproject.toml", "[tool.opseq.gate]\nn = 4\n")
    write(repo / "pkg/pyproject.toml", "[project]\nname = 'pkg'\n[tool.opseq]\nx = 1\n")
    assert find_policy_file(repo / "pkg") == outer


def test_pyproject_with_the_table_is_found(repo: Path):
    path = write(repo / "pkg/pyproject.toml", "[tool.opseq.gate]\nn = 4\n")
    assert find_policy_file(repo / "pkg") == path


def test_opseq_toml_wins_over_pyproject_in_one_directory(repo: Path, caplog):
    path = gate_file(repo, "n = 3")
    write(repo / "pyproject.toml", "[tool.opseq.gate]\nn = 4\n")
    with caplog.at_level(logging.WARNING, logger="opseq.coverage.policy"):
        assert find_policy_file(repo) == path
    assert "pyproject.toml: its gate policy is ignored: opseq.toml wins" in caplog.text


def test_opseq_toml_without_a_gate_table_is_skipped(repo: Path):
    write(repo / "opseq.toml", "[other]\nx = 1\n")
    path = write(repo / "pyproject.toml", "[tool.opseq.gate]\nn = 4\n")
    assert find_policy_file(repo) == path


def test_the_search_stops_at_the_repository_root(tmp_path: Path, repo: Path):
    gate_file(tmp_path, "n = 3")  # above the repository: not this repository's policy
    (repo / "m").mkdir()
    assert find_policy_file(repo / "m") is None


def test_a_git_file_marks_a_root_too(tmp_path: Path):
    gate_file(tmp_path, "n = 3")
    worktree = tmp_path / "worktree"
    write(worktree / ".git", "gitdir: /elsewhere\n")
    assert find_policy_file(worktree) is None


def test_an_invalid_pyproject_on_the_way_is_an_error(repo: Path):
    write(repo / "pyproject.toml", "[tool.opseq.gate\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml: invalid TOML"):
        find_policy_file(repo)


# --- the command line ---------------------------------------------------------------------


def test_no_option_given_changes_nothing():
    policy = GatePolicy(min_op_coverage=0.5, n=3, max_novel=1, source="opseq.toml")
    args = parser().parse_args([])
    assert merge(policy, args) == policy


def test_the_command_line_wins_key_by_key():
    policy = GatePolicy(
        min_op_coverage=0.5,
        min_ngram_coverage=0.7,
        n=3,
        max_novel=2,
        max_risky=1,
        references=("refs",),
        source="opseq.toml",
    )
    args = parser().parse_args(
        ["--min-op-coverage", "0.9", "--max-risky", "0", "--require", "valid"]
    )
    assert merge(policy, args) == GatePolicy(
        min_op_coverage=0.9,
        min_ngram_coverage=0.7,
        n=3,
        max_novel=2,
        max_risky=0,
        require=frozenset({"valid"}),
        references=("refs",),
        source="opseq.toml",
    )


def test_every_flag_reaches_the_policy():
    args = parser().parse_args(
        [
            "--min-op-coverage=1",
            "--min-versioned-op-coverage=0.25",
            "--min-ngram-coverage=0",
            "--n=4",
            "--max-novel=3",
            "--max-risky=0",
            "--require=",
        ]
    )
    merged = merge(GatePolicy(), args)
    assert merged == GatePolicy(
        min_op_coverage=1.0,
        min_versioned_op_coverage=0.25,
        min_ngram_coverage=0.0,
        n=4,
        max_novel=3,
        max_risky=0,
        require=frozenset(),
    )


def test_references_and_knowledge_from_the_command_line_win():
    policy = GatePolicy(references=("refs",), knowledge="/p/kb.json")
    merged = merge(policy, {"reference": ["corpus-ok"], "knowledge": Path("kb2.json")})
    assert merged.references == ("corpus-ok",) and merged.knowledge == "kb2.json"
    assert merge(policy, {"reference": None, "knowledge": None}) == policy


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["--min-op-coverage", "2"],
            "argument --min-op-coverage: expected a number in [0, 1], got '2'",
        ),
        (["--min-ngram-coverage", "high"], "expected a number in [0, 1], got 'high'"),
        (["--min-versioned-op-coverage", "nan"], "expected a number in [0, 1], got 'nan'"),
        (["--max-novel", "-1"], "argument --max-novel: expected a whole number >= 0, got '-1'"),
        (["--max-risky", "1.5"], "expected a whole number >= 0, got '1.5'"),
        (["--n", "5"], "argument --n: expected 2, 3 or 4, got '5'"),
        (["--require", "valid,runable"], "unknown check 'runable' (did you mean 'runnable'?)"),
        (["--policy", "p.toml", "--no-policy"], "not allowed with argument --policy"),
    ],
)
def test_bad_command_line_values_are_one_line_and_exit_2(capsys, argv, fragment):
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(argv)
    assert caught.value.code == 2
    assert_one_error_line(capsys.readouterr().err, fragment)


def _args(argv: list[str]) -> argparse.Namespace:
    return parser().parse_args(argv)


def test_policy_from_args_finds_the_file_beside_the_model(repo: Path):
    path = gate_file(repo, "n = 3\nmax-novel = 1")
    merged = policy_from_args(_args(["--max-novel", "0"]), model=repo / "m" / "model.onnx")
    assert merged == GatePolicy(n=3, max_novel=0, source=str(path))


def test_policy_from_args_reads_the_named_file(repo: Path, tmp_path: Path):
    gate_file(repo, "n = 3")
    named = write(tmp_path / "ci" / "strict.toml", "[gate]\nn = 4\n")
    merged = policy_from_args(_args(["--policy", str(named)]), model=repo / "model.onnx")
    assert merged == GatePolicy(n=4, source=str(named))


def test_no_policy_ignores_the_file(repo: Path):
    gate_file(repo, "n = 3")
    assert policy_from_args(_args(["--no-policy"]), model=repo / "model.onnx") == GatePolicy()


def test_without_a_file_the_policy_is_the_defaults_and_the_flags(repo: Path):
    merged = policy_from_args(_args(["--n", "4"]), model=repo / "model.onnx")
    assert merged == GatePolicy(n=4)
