"""What can come of one conversion test: outcomes, failure stages, and blame for mismatches."""

from __future__ import annotations

from enum import Enum

__all__ = ["Blame", "Outcome", "Stage"]


class Outcome(str, Enum):
    """The outcome of one conversion test (DESIGN.md: Words)."""

    OK = "ok"
    MISMATCH = "mismatch"
    CONVERT_FAIL = "convert_fail"
    LOAD_FAIL = "load_fail"
    RUN_FAIL = "run_fail"
    TIMEOUT = "timeout"
    CRASH = "crash"
    GENERATE_FAIL = "generate_fail"


class Stage(str, Enum):
    """Where a conversion test failed."""

    GENERATE = "generate"
    CONVERT = "convert"
    LOAD = "load"
    RUN = "run"
    COMPARE = "compare"


class Blame(str, Enum):
    """Who a mismatch is attributed to, from re-running the converted model other ways.

    ``runtime-optimizer``: ONNX Runtime without graph optimisations agrees with the framework.
    ``runtime``: the ONNX reference evaluator agrees with the framework, ONNX Runtime does not.
    ``converter``: every ONNX evaluator agrees with the others, none with the framework.
    ``unknown``: none of the above (or the evaluators could not run).
    """

    RUNTIME_OPTIMIZER = "runtime-optimizer"
    RUNTIME = "runtime"
    CONVERTER = "converter"
    UNKNOWN = "unknown"
