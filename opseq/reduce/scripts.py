"""``reproduce.py``: a self-contained script that replays a finding in its source framework.

The script imports only numpy, onnx, onnxruntime and the framework (no opseq). It loads the
inputs of ``test_data_set_0/``, runs the source model in the framework, converts it again with
the finding's exporter and opset (or, for a converter opseq does not know, takes the converted
``model.onnx`` as stored), runs that in ONNX Runtime and prints the largest difference over the
outputs: NaN/Inf at other positions, other shapes or a missing output count as infinite. Exit
status 1 when the difference exceeds the recorded bound (the inconsistency reproduces), 0 when
it does not, 2 with one line on stderr when a step fails (the framework, the conversion, ONNX
Runtime), so a reproducer that can no longer run is never mistaken for a fixed bug.

The bound is half the difference measured on the stored input set when the finding was made, or
the largest float when that difference was not finite (then only a non-finite disagreement
reproduces).

The source model is one of: ``model.pt2`` (``torch.export.save``), ``model.pt`` (a TorchScript
trace, when ``torch.export`` fails), a one-line call expression written into the script (one-op
cases that carry ``metadata["call"]``), or ``model.keras`` for Keras (custom layers of the
synthetic materialiser are defined in the script, their arguments recorded per layer name).
"""

from __future__ import annotations

import ast
import math
import sys
import textwrap
from collections.abc import Sequence

__all__ = [
    "BUILTIN_EXPORTERS",
    "COMMON_SCRIPT",
    "SAFE_IMPORTS",
    "bound_for",
    "safe_call",
    "safe_imports",
    "script_header",
    "torch_script",
]

#: How the script converts again, per converter opseq knows; others use the stored model.
BUILTIN_EXPORTERS = {
    "torch.onnx-torchscript": "torchscript",
    "torch.onnx-dynamo": "dynamo",
    "tf2onnx": "tf2onnx",
}

_ALLOWED_NODES = (
    ast.Expression,
    ast.Call,
    ast.Attribute,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.keyword,
    ast.List,
    ast.Tuple,
    ast.UnaryOp,
    ast.USub,
    ast.UAdd,
    ast.Subscript,
    ast.Slice,
)


def bound_for(max_abs_diff: float | None) -> float:
    """Half the recorded difference, or the largest float when it was not finite.

    Examples:
        >>> bound_for(0.5), bound_for(float("inf")) == sys.float_info.max
        (0.25, True)
    """
    if max_abs_diff is None or not math.isfinite(max_abs_diff):
        return sys.float_info.max
    return max_abs_diff / 2


#: Imports a call expression may need (the opinfo source's ``metadata["call_imports"]``).
SAFE_IMPORTS = (
    "import torch",
    "from torch.testing._internal.common_methods_invocations import op_db",
)
_OP_DB_NODES = (ast.GeneratorExp, ast.comprehension, ast.Compare, ast.Eq, ast.Store)
_FLOAT_WORDS = ("nan", "inf", "-inf")


def safe_call(
    expression: str, input_names: Sequence[str], imports: Sequence[str] = ()
) -> str | None:
    """`expression` if it is one call reading only ``torch`` and the inputs, else None.

    The expression comes from a manifest, which may be hostile, and goes into a script that
    runs: only calls, attribute access (no ``_`` names), constants, lists, tuples, subscripts,
    ``float('nan')``-like constants and the names ``torch`` and the inputs are allowed; with
    the op_db import among `imports`, also the op_db lookup the opinfo source writes
    (``next(o.op for o in op_db if ...)``).

    Examples:
        >>> safe_call("torch.nn.functional.gelu(x0, approximate='tanh')", ["x0"]) is not None
        True
        >>> safe_call("torch.clamp(x0, min=float('-inf'))", ["x0"]) is not None
        True
        >>> safe_call("__import__('os').system('true')", ["x0"]) is None
        True
    """
    if not isinstance(expression, str) or "\n" in expression or len(expression) > 2000:
        return None
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        return None
    names, allowed = {"torch", *input_names}, _ALLOWED_NODES
    if SAFE_IMPORTS[1] in imports:
        names, allowed = names | {"op_db", "next", "o"}, allowed + _OP_DB_NODES
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            return None
        if isinstance(node, ast.Name) and node.id not in names and not _float_word(node, tree):
            return None
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            return None
    return expression if isinstance(tree.body, ast.Call) else None


def _float_word(name: ast.Name, tree: ast.AST) -> bool:
    """Whether `name` is ``float`` called on one of ``'nan'``, ``'inf'``, ``'-inf'``."""
    return name.id == "float" and any(
        isinstance(call, ast.Call)
        and call.func is name
        and not call.keywords
        and len(call.args) == 1
        and isinstance(call.args[0], ast.Constant)
        and call.args[0].value in _FLOAT_WORDS
        for call in ast.walk(tree)
    )


def safe_imports(imports: Sequence[str]) -> tuple[str, ...]:
    """The imports of `imports` that are in `SAFE_IMPORTS` (``import torch`` always)."""
    return tuple(dict.fromkeys(["import torch", *(i for i in imports if i in SAFE_IMPORTS)]))


COMMON_SCRIPT = """\
import glob
import io
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "test_data_set_0")
OPSET = {opset!r}
EXPORTER = {exporter!r}
BOUND = {bound!r}


def fail(stage, error):
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    line = f"reproduce.py: error: {{stage}} failed: {{type(error).__name__}}: {{first}}"
    print(line[:500], file=sys.stderr)
    sys.exit(2)


def tensors(kind):
    import onnx
    from onnx import numpy_helper

    paths = sorted(glob.glob(os.path.join(DATA, f"{{kind}}_*.pb")),
                   key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    found = {{}}
    for path in paths:
        tensor = onnx.load_tensor(path)
        found[tensor.name] = numpy_helper.to_array(tensor)
    return found


def difference(expected, actual):
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return float("inf")
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    odd_e, odd_a = ~np.isfinite(e), ~np.isfinite(a)
    if not np.array_equal(odd_e, odd_a) or not np.array_equal(e[odd_e], a[odd_a], equal_nan=True):
        return float("inf")
    return float(np.max(np.abs(e[~odd_e] - a[~odd_a]), initial=0.0))


def run_onnxruntime(model_bytes, inputs):
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    values = list(inputs.values())
    feeds = {{
        i.name: inputs[i.name] if i.name in inputs else values[k]
        for k, i in enumerate(session.get_inputs())
    }}
    return session.run(None, feeds)


def report(expected, actual):
    diffs = [difference(e, a) for e, a in zip(expected, actual)]
    if len(expected) != len(actual):
        diffs.append(float("inf"))
    worst = max(diffs, default=0.0)
    verdict = "reproduces" if worst > BOUND else "does not reproduce"
    print(f"max difference {{worst:.6g}} over {{len(expected)}} outputs, "
          f"bound {{BOUND:.6g}}: {{verdict}}")
    sys.exit(1 if worst > BOUND else 0)
"""

_TORCH = '''\


INPUT_NAMES = {input_names!r}
MODEL_FILE = {model_file!r}


def load_model(torch):
{load_body}


class Plain:
    """A module that ignores train(): the TorchScript exporter sets eval mode, which a
    torch.export module refuses."""

    @staticmethod
    def wrap(torch, inner):
        class Wrapped(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, *args):
                return self.inner(*args)

            def train(self, mode=True):
                return self

        return Wrapped()


def flatten(value, torch):
    if isinstance(value, (tuple, list)):
        return [x for v in value for x in flatten(v, torch)]
    if isinstance(value, torch.Tensor):
        return [value.detach().cpu().numpy()]
    return [np.asarray(value)]


def convert(torch, model, program, args):
    if EXPORTER == "stored":
        with open(os.path.join(HERE, "model.onnx"), "rb") as stream:
            return stream.read()
    if EXPORTER == "dynamo":
        target = program if program is not None else model
        exported = torch.onnx.export(
            target, args, dynamo=True, opset_version=OPSET, input_names=INPUT_NAMES
        )
        return exported.model_proto.SerializeToString()
    buffer = io.BytesIO()
    torch.onnx.export(
        Plain.wrap(torch, model), args, buffer, dynamo=False, opset_version=OPSET,
        input_names=INPUT_NAMES,
    )
    return buffer.getvalue()


def main():
    try:
        import torch
    except ImportError as e:
        fail("import", e)
    inputs = tensors("input")
    try:
        model, program = load_model(torch)
        args = tuple(torch.from_numpy(np.array(inputs[name])) for name in INPUT_NAMES)
        with torch.no_grad():
            expected = flatten(model(*args), torch)
    except Exception as e:
        fail("framework (torch)", e)
    try:
        with torch.no_grad():
            model_bytes = convert(torch, model, program, args)
    except Exception as e:
        fail(f"conversion ({{EXPORTER}})", e)
    try:
        actual = run_onnxruntime(model_bytes, inputs)
    except Exception as e:
        fail("onnxruntime", e)
    report(expected, actual)


if __name__ == "__main__":
    main()
'''

_LOAD_PT2 = """\
    program = torch.export.load(os.path.join(HERE, MODEL_FILE))
    return program.module(), program"""

_LOAD_PT = """\
    return torch.jit.load(os.path.join(HERE, MODEL_FILE)).eval(), None"""

_LOAD_CALL = """\
{imports}

    class Call(torch.nn.Module):
        def forward(self, {params}):
            return {call}

    return Call().eval(), None"""


def script_header(title: str, lines: Sequence[str]) -> str:
    """The script's first lines: the shebang and a docstring of `title` and `lines`, wrapped."""
    body = textwrap.fill(" ".join(lines), width=96)
    return f'#!/usr/bin/env python3\n"""{_docstring_safe(title)}\n\n{_docstring_safe(body)}\n"""\n'


def _docstring_safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', "'''")


def torch_script(
    *,
    title: str,
    converter: str,
    opset: int,
    bound: float,
    input_names: Sequence[str],
    model_file: str | None,
    call: str | None = None,
    call_imports: Sequence[str] = (),
) -> str:
    """The ``reproduce.py`` of a torch finding.

    Args:
        title: The docstring's first line.
        converter: The converter name; not one of `BUILTIN_EXPORTERS` means the stored model.
        opset: The opset to export at.
        bound: Exit 1 above this difference.
        input_names: The inputs, in call order (the stored tensors' names).
        model_file: ``model.pt2`` or ``model.pt``; None when `call` is given.
        call: A one-line call expression (already checked by `safe_call`).
        call_imports: Imports it needs; only those of `SAFE_IMPORTS` are written.

    Returns:
        The script's text.
    """
    exporter = BUILTIN_EXPORTERS.get(converter, "stored")
    if call is not None:
        extra = [line for line in safe_imports(call_imports) if line != "import torch"]
        imports = "\n".join(f"    {line}" for line in extra)
        params = ", ".join(input_names) or "*args"
        load = _LOAD_CALL.format(imports=imports, params=params, call=call)
    else:
        load = _LOAD_PT2 if model_file == "model.pt2" else _LOAD_PT
    how = (
        f"converts it again with {converter} at opset {opset}"
        if exporter != "stored"
        else f"takes model.onnx as {converter} converted it (opseq cannot run that converter)"
    )
    header = script_header(
        title,
        [
            f"Runs the source model in torch on test_data_set_0's inputs, {how}, runs the ONNX",
            "model in ONNX Runtime and prints the largest difference. Exit 1: it exceeds",
            f"{bound!r} (half the difference when the finding was made): the inconsistency",
            "reproduces; 0: it does not; 2: a step failed (one line on stderr says which).",
        ],
    )
    common = COMMON_SCRIPT.format(opset=opset, exporter=exporter, bound=bound)
    body = _TORCH.format(input_names=list(input_names), model_file=model_file, load_body=load)
    return header + common + body
