"""The gate's policy: thresholds, required checks and allowlist, from a file and the command line.

A policy lives in ``opseq.toml`` (table ``[gate]``) or ``pyproject.toml`` (table
``[tool.opseq.gate]``); keys are spelled with dashes, like the flags::

    [tool.opseq.gate]
    min-op-coverage = 1.0
    min-ngram-coverage = 0.8
    n = 3
    max-novel = 0
    require = ["valid", "runnable"]
    references = ["onnx-node-tests", "refs/"]    # paths: relative to this file
    allow = [
      { op = "com.microsoft:FusedMatMul", reason = "ORT fusion, tested in tests/test_fused.py" },
      { ngram = "Conv>Relu>MaxPool", reason = "reviewed in #123" },
    ]

Decisions, each for a team adopting the gate:

- **Finding the file.** Upward from the model's directory: in each directory ``opseq.toml`` is
  used if it has a ``[gate]`` table, else ``pyproject.toml`` if it has ``[tool.opseq.gate]``
  (a file without the table is skipped, as ruff and coverage.py skip a pyproject without their
  table, so a monorepo package's pyproject does not hide the repository's policy). The search
  stops at a directory holding ``.git`` (the repository root, searched itself) or at the
  filesystem root: a file above the repository belongs to something else, and a gate that
  depends on the machine it runs on is not reproducible. ``--policy FILE`` names the file (it
  must have the table); ``--no-policy`` uses none.
- **Dashes only.** ``min-op-coverage``, as the flag is spelled (house style: kebab-case only);
  ``min_op_coverage`` is refused with the dashed spelling suggested, rather than accepted, so one
  policy never has two spellings of a key to keep apart.
- **Defaults.** ``valid`` and ``runnable`` are required: a model that fails onnx.checker or has
  no ONNX Runtime kernel for a node cannot ship whatever its coverage, both checks are cheap,
  and their failures are facts, not judgements. ``behaves`` is not, as it needs the source
  model.
  Every threshold is off until set: the right coverage threshold depends on the model family
  and on the reference (a transformer against onnx's node tests covers a different share than a
  CNN), so a default would either fail every model on adoption (and the gate gets switched
  off) or pass everything (and means nothing). Run ``opseq coverage`` once, then set the
  thresholds at what the model has today, with ``max-novel = 0`` and ``max-risky = 0`` to stop
  regressions. ``n`` is 2: bigrams are what a reference covers densely enough to be a useful
  bar; longer n-grams of real models are mostly uncovered.
- **Paths** in a policy file (``references`` that name a directory or manifest, ``knowledge``)
  are relative to the file's directory, so the gate gives the same answer from any working
  directory. The command line wins over the file key by key, and its paths are used as given.

Every value is validated; an invalid one is a `ConfigError` naming the file, the table, the key
(and the index of an allowlist entry) and what was expected. The file is read only when it is a
regular file of at most `MAX_POLICY_BYTES`.
"""

from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from opseq.coverage.policy_values import (
    REQUIREMENTS,
    AllowEntry,
    InvalidValue,
    check_allow,
    check_count,
    check_ngram_length,
    check_path_text,
    check_ratio,
    check_requirements,
    quote,
    string_list,
    suggestion,
    type_name,
)
from opseq.errors import ConfigError
from opseq.untrusted import escape_controls

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "DEFAULT_REQUIRE",
    "MAX_POLICY_BYTES",
    "REQUIREMENTS",
    "AllowEntry",
    "GatePolicy",
    "add_policy_args",
    "count_arg",
    "find_policy_file",
    "load_policy",
    "merge",
    "ngram_length_arg",
    "policy_from_args",
    "ratio_arg",
    "require_arg",
]

logger = logging.getLogger(__name__)

MAX_POLICY_BYTES = 1 << 20  # a policy is a few lines; anything this large is not one
DEFAULT_REQUIRE = frozenset({"valid", "runnable"})

_OPSEQ_TOML = "opseq.toml"
_PYPROJECT = "pyproject.toml"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NAMED_REFERENCES = ("onnx-node-tests", "onnx-backend-models", "torch-opinfo", "corpus-ok")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatePolicy:
    """What the gate checks and how strictly (the defaults are justified in the module docs).

    A threshold of None means the criterion is not evaluated. ``references`` empty means the
    default reference; ``source`` says where the policy came from (a file path, or None for
    the defaults and the command line alone).
    """

    min_op_coverage: float | None = None
    min_versioned_op_coverage: float | None = None
    min_ngram_coverage: float | None = None
    n: int = 2
    max_novel: int | None = None
    max_risky: int | None = None
    require: frozenset[str] = DEFAULT_REQUIRE
    references: tuple[str, ...] = ()
    knowledge: str | None = None
    allow: tuple[AllowEntry, ...] = field(default=())
    source: str | None = None

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "min_op_coverage": self.min_op_coverage,
            "min_versioned_op_coverage": self.min_versioned_op_coverage,
            "min_ngram_coverage": self.min_ngram_coverage,
            "n": self.n,
            "max_novel": self.max_novel,
            "max_risky": self.max_risky,
            "require": sorted(self.require),
            "references": list(self.references),
            "knowledge": self.knowledge,
            "allow": [entry.to_dict() for entry in self.allow],
            "source": self.source,
        }


# --- argparse types ---------------------------------------------------------------------------


def _parse_arg(
    text: str, convert: Callable[[str], Any], check: Callable[[Any], Any], expected: str
):
    # The error quotes what was typed ('2'), not what it converted to (2.0).
    try:
        return check(convert(text))
    except (ValueError, InvalidValue):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {quote(text)}") from None


def ratio_arg(text: str) -> float:
    """An argparse type: a share in [0, 1] (``--min-op-coverage 0.9``)."""
    return _parse_arg(text, float, check_ratio, "a number in [0, 1]")


def count_arg(text: str) -> int:
    """An argparse type: a whole number >= 0 (``--max-novel 0``)."""
    return _parse_arg(text, int, check_count, "a whole number >= 0")


def ngram_length_arg(text: str) -> int:
    """An argparse type: an n-gram length, 2, 3 or 4 (``--n 3``)."""
    return _parse_arg(text, int, check_ngram_length, "2, 3 or 4")


def require_arg(text: str) -> frozenset[str]:
    """An argparse type: ``valid,runnable[,behaves]``; the empty string requires nothing.

    Examples:
        >>> sorted(require_arg("valid, behaves"))
        ['behaves', 'valid']
    """
    try:
        return check_requirements([part.strip() for part in text.split(",") if part.strip()])
    except InvalidValue as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_policy_args(parser: argparse.ArgumentParser) -> None:
    """Add the gate's thresholds, ``--require``, ``--policy`` and ``--no-policy``.

    Every option defaults to None, meaning "as the policy file says" (see `merge`).
    """
    group = parser.add_argument_group("policy (each option overrides the policy file's key)")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="the policy file: [gate] in opseq.toml, [tool.opseq.gate] in pyproject.toml "
        "(default: the first found upward from the model's directory, up to the repository root)",
    )
    where.add_argument("--no-policy", action="store_true", help="use no policy file")
    ratios = (
        ("--min-op-coverage", "share of the model's distinct ops the reference covers"),
        ("--min-versioned-op-coverage", "share of its distinct versioned ops (domain:op@version)"),
        ("--min-ngram-coverage", "share of its distinct n-grams of length --n"),
    )
    for flag, text in ratios:
        group.add_argument(flag, type=ratio_arg, metavar="X", help=f"{text}, at least X (0..1)")
    group.add_argument(
        "--n", type=ngram_length_arg, metavar="N", help="n-gram length, 2..4 (default: 2)"
    )
    group.add_argument(
        "--max-novel",
        type=count_arg,
        metavar="K",
        help="at most K novel n-grams (uncovered, every (n-1)-gram in them covered)",
    )
    group.add_argument(
        "--max-risky",
        type=count_arg,
        metavar="K",
        help="at most K n-grams the knowledge base associates with mismatch",
    )
    group.add_argument(
        "--require",
        type=require_arg,
        metavar="CHECKS",
        help="checks that must pass, from valid,runnable,behaves; '' for none "
        "(default: valid,runnable)",
    )


# --- the file -------------------------------------------------------------------------------


def _anchor(path_text: str, base: Path) -> str:
    path = Path(path_text).expanduser()
    return str(path if path.is_absolute() else base / path)


def _anchor_reference(text: str, base: Path) -> str:
    """A reference spec with its path made relative to `base` (named references unchanged)."""
    if text in _NAMED_REFERENCES:
        return text
    if text.startswith("corpus-ok:"):
        return "corpus-ok:" + _anchor(text.partition(":")[2], base)
    head, sep, tail = text.rpartition(":")
    if sep and head and "=" in tail:  # DIR/manifest.jsonl:outcome=ok (opseq.coverage.references)
        return f"{_anchor(head, base)}:{tail}"
    return _anchor(text, base)


def _file_keys(base: Path) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """Key -> (GatePolicy field, validator) for a file in directory `base`."""
    return {
        "min-op-coverage": ("min_op_coverage", check_ratio),
        "min-versioned-op-coverage": ("min_versioned_op_coverage", check_ratio),
        "min-ngram-coverage": ("min_ngram_coverage", check_ratio),
        "n": ("n", check_ngram_length),
        "max-novel": ("max_novel", check_count),
        "max-risky": ("max_risky", check_count),
        "require": (
            "require",
            lambda v: check_requirements(string_list(v, '["valid", "runnable"]')),
        ),
        "references": (
            "references",
            lambda v: tuple(
                _anchor_reference(r, base) for r in string_list(v, '["onnx-node-tests"]')
            ),
        ),
        "knowledge": ("knowledge", lambda v: _anchor(check_path_text(v), base)),
        "allow": ("allow", check_allow),
    }


def _table_name(path: Path) -> tuple[str, ...]:
    return ("tool", "opseq", "gate") if path.name == _PYPROJECT else ("gate",)


def _read_bounded(path: Path) -> bytes:
    """Read a regular file of at most `MAX_POLICY_BYTES` (the kind checked again once open)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{path}: not a regular file")
        fd = os.open(path, _OPEN_FLAGS)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{path}: not a regular file")
            data = os.read(fd, MAX_POLICY_BYTES + 1)
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(data) > MAX_POLICY_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_POLICY_BYTES >> 20} MiB, not a policy file")
    return data


def _parse_toml(path: Path) -> dict:
    try:
        text = _read_bounded(path).decode("utf-8")
        return tomllib.loads(text)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except tomllib.TOMLDecodeError as e:
        # The message carries "(at line L, column C)".
        raise ConfigError(f"{path}: invalid TOML: {escape_controls(str(e))}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None


def _gate_table(path: Path, document: dict) -> dict | None:
    """The gate table of a parsed file, or None when it has none."""
    names = _table_name(path)
    table: object = document
    for depth, name in enumerate(names):
        if not isinstance(table, dict) or name not in table:
            return None
        table = table[name]
        if not isinstance(table, dict):
            shown = ".".join(names[: depth + 1])
            raise ConfigError(f"{path}: {shown} must be a table, got {type_name(table)}")
    return table  # type: ignore[return-value]


def find_policy_file(start: Path) -> Path | None:
    """Find the policy that applies to models in `start`, searching upward.

    In each directory, ``opseq.toml`` with a ``[gate]`` table wins over ``pyproject.toml`` with
    ``[tool.opseq.gate]``; files without the table are skipped. The search ends at a directory
    holding ``.git`` (after searching it) or at the filesystem root.

    Args:
        start: The model's directory (a file stands for its directory).

    Returns:
        The policy file, or None when there is none.

    Raises:
        ConfigError: If a candidate file cannot be read or is not valid TOML.
    """
    start = start.resolve()
    if not start.is_dir():
        start = start.parent
    for directory in (start, *start.parents):
        found = [
            path
            for path in (directory / _OPSEQ_TOML, directory / _PYPROJECT)
            if path.exists() and _gate_table(path, _parse_toml(path)) is not None
        ]
        if len(found) == 2:
            logger.warning("%s: its gate policy is ignored: %s wins", found[1], found[0].name)
        if found:
            return found[0]
        if (directory / ".git").exists():
            return None
    return None


def load_policy(path: Path) -> GatePolicy:
    """Read the gate policy of a file (``[tool.opseq.gate]`` in a pyproject.toml, else ``[gate]``).

    Args:
        path: The file.

    Returns:
        The policy, its unset keys at their defaults, ``source`` the file.

    Raises:
        ConfigError: If the file is unreadable, larger than `MAX_POLICY_BYTES`, not TOML, has no
            gate table, or a key is unknown or has an invalid value (the message names it).
    """
    table = _gate_table(path, _parse_toml(path))
    where = "[" + ".".join(_table_name(path)) + "]"
    if table is None:
        raise ConfigError(f"{path}: has no {where} table")
    if path.name != _PYPROJECT:  # opseq.toml is opseq's alone: a stray table is a mistake
        stray = sorted(key for key in _parse_toml(path) if key != "gate")
        if stray:
            raise ConfigError(
                f"{path}: unknown top-level key {escape_controls(stray[0])!r} (the policy "
                "lives in [gate]; an allowlist entry is [[gate.allow]])"
            )
    keys = _file_keys(path.resolve().parent)
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in keys:
            raise ConfigError(f"{path}: {where}: {_unknown_key(key, sorted(keys))}")
        name, check = keys[key]
        try:
            values[name] = check(value)
        except InvalidValue as e:
            raise ConfigError(f"{path}: {where} {key}{e.at}: {e}") from None
    return GatePolicy(**values, source=str(path))


def _unknown_key(key: str, valid: list[str]) -> str:
    dashed = key.replace("_", "-")
    if dashed != key and dashed in valid:
        return f"unknown key {quote(key)}: keys are spelled with dashes, {dashed!r}"
    return f"unknown key {quote(key)}{suggestion(key, valid)}; valid keys: {', '.join(valid)}"


# --- the command line -------------------------------------------------------------------------

_ARG_FIELDS = (
    "min_op_coverage",
    "min_versioned_op_coverage",
    "min_ngram_coverage",
    "n",
    "max_novel",
    "max_risky",
    "require",
)


def merge(policy: GatePolicy, args: argparse.Namespace | Mapping[str, Any]) -> GatePolicy:
    """The policy with every option given on the command line in place of the file's value.

    An option is given when it is not None (`add_policy_args` defaults every one to None);
    ``reference`` (a list) and ``knowledge`` (a path) replace ``references`` and ``knowledge``.

    Args:
        policy: The policy from the file (or the defaults).
        args: The parsed options, or a mapping of the same names.

    Returns:
        The merged policy; ``source`` stays the file's.
    """
    given = args if isinstance(args, Mapping) else vars(args)
    changes: dict[str, Any] = {
        name: given[name] for name in _ARG_FIELDS if given.get(name) is not None
    }
    if given.get("reference"):
        changes["references"] = tuple(given["reference"])
    if given.get("knowledge") is not None:
        changes["knowledge"] = str(given["knowledge"])
    return replace(policy, **changes)


def policy_from_args(args: argparse.Namespace, *, model: Path) -> GatePolicy:
    """The policy the options ask for: ``--no-policy``, ``--policy FILE`` or the one found.

    Args:
        args: Options added by `add_policy_args` (and the gate's ``--reference``,
            ``--knowledge``).
        model: The model gated; the search for a policy file starts in its directory.

    Returns:
        The file's policy (or the defaults) merged with the command line.

    Raises:
        ConfigError: If the policy file is invalid.
    """
    if getattr(args, "no_policy", False):
        path = None
    elif getattr(args, "policy", None) is not None:
        path = args.policy
    else:
        path = find_policy_file(model.parent)
    if path is not None:
        logger.info("gate policy from %s", path)
    policy = GatePolicy() if path is None else load_policy(path)
    return merge(policy, args)
