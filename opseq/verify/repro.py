"""Repro bundles: a semantic inconsistency, packed so that any ONNX backend can replay it.

A bundle is a directory in the layout of ONNX's backend test data::

    model.onnx                    the ONNX model as verified (with its external data files)
    test_data_set_0/input_0.pb    the graph inputs of the first semantic input set, in graph
    test_data_set_0/input_1.pb    input order, as TensorProtos named like the inputs
    test_data_set_0/output_0.pb   the expected outputs: the source model's float32 outputs on
                                  those inputs (what a correct export computes)
    verdict.json                  the verdict and its numbers (`VerifyReport.to_dict`) and which
                                  input set was stored
    README.txt                    the same in words, and how to replay it

It is built in a temporary directory beside the target and renamed into place, so a bundle on
disk is always whole. An existing non-empty directory is never overwritten without ``force``,
and even with it only an earlier bundle (a directory whose ``verdict.json`` opseq wrote) is
replaced: opseq never deletes a directory it did not write.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from opseq.errors import OpseqError
from opseq.untrusted import escape_lines
from opseq.verify.external import copy_external_data
from opseq.verify.report import VerifyReport

__all__ = ["BundleRefused", "default_bundle_dir", "write_bundle"]

_MARKER = "opseq verify repro bundle"


class BundleRefused(OpseqError):
    """The bundle cannot be written where asked; the message says why."""


def default_bundle_dir(model_path: Path, output: Path | None) -> Path:
    """``opseq-repro-<model stem>/`` beside the ``-o`` report, or in the current directory."""
    name = f"opseq-repro-{model_path.stem}"
    return output.parent / name if output is not None else Path(name)


def write_bundle(
    target: Path,
    *,
    report: VerifyReport,
    model: onnx.ModelProto,
    external: tuple[str, ...],
    inputs: Mapping[str, np.ndarray],
    expected: Sequence[np.ndarray],
    output_names: Sequence[str],
    input_set: int,
    force: bool = False,
) -> Path:
    """Write a bundle for input set `input_set` (module docstring) and return its path.

    Raises:
        BundleRefused: If `target` exists and is not an empty directory, unless `force` is set
            and it is an earlier bundle; or if it cannot be written.
    """
    replace = _check_target(target, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        )
    except OSError as e:
        raise BundleRefused(f"cannot create {target}: {e.strerror or e}") from None
    try:
        _fill(partial, target, report, model, external, inputs, expected, output_names, input_set)
        os.chmod(partial, 0o777 & ~_umask())
        _move_into_place(partial, target, replace)
    except OSError as e:
        shutil.rmtree(partial, ignore_errors=True)
        raise BundleRefused(f"cannot write {target}: {e.strerror or e}") from None
    return target


def _check_target(target: Path, force: bool) -> bool:
    """Whether an earlier bundle is to be replaced; raise if the target may not be written."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise BundleRefused(f"{target} exists and is not a directory")
    if not target.exists() or not any(target.iterdir()):
        return False
    if not force:
        raise BundleRefused(
            f"{target} exists and is not empty (--force replaces an earlier "
            "bundle; --repro DIR writes elsewhere)"
        )
    if not _is_bundle(target):
        raise BundleRefused(f"{target} is not an opseq repro bundle; --force replaces only those")
    return True


def _is_bundle(directory: Path) -> bool:
    try:
        marker = json.loads((directory / "verdict.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("bundle", {}).get("tool") == _MARKER


def _fill(directory, target, report, model, external, inputs, expected, names, input_set) -> None:
    (directory / "model.onnx").write_bytes(model.SerializeToString())
    if external:
        copy_external_data(external, Path(report.model).parent, directory)
    data = directory / "test_data_set_0"
    data.mkdir()
    for i, (name, array) in enumerate(inputs.items()):
        _write_tensor(data / f"input_{i}.pb", np.asarray(array), name)
    for i, array in enumerate(expected):
        name = names[i] if i < len(names) else f"output_{i}"
        _write_tensor(data / f"output_{i}.pb", np.asarray(array), name)
    document = report.to_dict() | {
        "bundle": {
            "tool": _MARKER,
            "input_set": input_set,
            "inputs": list(inputs),
            "expected": "the source model's float32 outputs on test_data_set_0's inputs",
        }
    }
    document["repro"] = str(target)
    with open(directory / "verdict.json", "w", encoding="utf-8") as stream:
        json.dump(document, stream, indent=2)
        stream.write("\n")
    (directory / "README.txt").write_text(readme(report, input_set), encoding="utf-8")


def _write_tensor(path: Path, array: np.ndarray, name: str) -> None:
    path.write_bytes(numpy_helper.from_array(array, name).SerializeToString())


def _move_into_place(partial: Path, target: Path, replace: bool) -> None:
    if not replace:
        with contextlib.suppress(FileNotFoundError):
            target.rmdir()  # an empty directory: nothing is lost
        os.replace(partial, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / "bundle")
    os.replace(partial, target)
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_REPLAY = """\
import glob, numpy as np, onnx, onnxruntime as ort
from onnx import numpy_helper
def tensors(kind):
    count = len(glob.glob(f"test_data_set_0/{kind}_*.pb"))
    return [numpy_helper.to_array(onnx.load_tensor(f"test_data_set_0/{kind}_{i}.pb"))
            for i in range(count)]
session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
feeds = dict(zip([i.name for i in session.get_inputs()], tensors("input")))
for expected, actual in zip(tensors("output"), session.run(None, feeds)):
    print("max abs diff", np.max(np.abs(actual.astype(float) - expected.astype(float))))
"""


def readme(report: VerifyReport, input_set: int) -> str:
    """The bundle's README.txt: the verdict in words, the numbers, and how to replay it."""
    case, rule = report.case, report.rule
    lines = [
        "opseq verify found a semantic inconsistency between an ONNX model and its source.",
        "",
        f"model      {report.model}",
        f"source     {report.source} ({report.framework})",
        f"inputs     {report.inputs.describe()}; input set {input_set} is stored",
        f"reference  {case.reference}"
        + (f" ({report.calibration.reference_note})" if report.calibration.reference_note else ""),
        f"verdict    {case.verdict.value}: {case.semantic_sets} of {case.sets} input sets "
        f"semantic (the rule needs {min(rule.min_sets, case.sets)}), {case.unstable_sets} unstable",
        f"headroom   passing needs --headroom >= {case.required_headroom:.4g} (the rule allows "
        f"{rule.headroom:g})",
        f"blame      {report.blame.value if report.blame else report.blame_note or 'unknown'}",
        "",
        "output: verdict, max abs diff, max rel diff (ONNX Runtime vs the framework's float32)",
    ]
    lines += [
        f"  {o.name}: {o.verdict.value}, {o.max_abs_diff:.3g}, {o.max_rel_diff:.3g}"
        for o in report.outputs
    ]
    lines += [
        "",
        "test_data_set_0 holds the graph inputs of that input set and the source model's float32",
        "outputs on them, in the layout of ONNX's backend tests (TensorProtos). To replay it with",
        "ONNX Runtime, run this from the bundle's directory:",
        "",
        *("    " + line for line in _REPLAY.splitlines()),
        "",
    ]
    return escape_lines("\n".join(lines))
