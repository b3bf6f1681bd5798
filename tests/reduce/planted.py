"""A planted inconsistency the reducer's tests control, reachable from worker processes.

``SIGMOID_TO_TANH`` (named ``tests.reduce.planted:SIGMOID_TO_TANH``) converts with the
TorchScript exporter, then turns the first ONNX ``Sigmoid`` into ``Tanh``, as the oracle
benchmark's planted bugs do. ``SOURCE`` (``tests.reduce.planted:SOURCE``) is a synthetic source
whose graphs are written by hand: ``twelve`` and ``other`` (12 nodes each, one Sigmoid among
them), ``clean`` (no Sigmoid). ``TF_SIGMOID_TO_TANH`` and ``TF_SOURCE`` are the same for
tf2onnx and Keras. ``ONE_OP`` is a non-synthetic source of one-op cases that carry a ``call``
expression, like the opinfo source's.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from opseq.corpus import ManifestRow, ManifestWriter
from opseq.difftest.campaign import run_case
from opseq.difftest.convert import CONVERTERS, Tf2OnnxConverter, TorchScriptConverter
from opseq.sources.base import Framework, InputSpec, ModelCase
from opseq.sources.synthetic.source import SyntheticSource
from tests.reduce.graphs import GRAPHS, TF_GRAPHS

PLANTED = "tests.reduce.planted:SIGMOID_TO_TANH"
TF_PLANTED = "tests.reduce.planted:TF_SIGMOID_TO_TANH"
SOURCE_NAME = "tests.reduce.planted:SOURCE"
TF_SOURCE_NAME = "tests.reduce.planted:TF_SOURCE"
ONE_OP_NAME = "tests.reduce.planted:ONE_OP"
HONEST = "torch.onnx-torchscript"


class SigmoidToTanh:
    """The TorchScript exporter with a bug: its first Sigmoid becomes Tanh."""

    name = "planted-sigmoid-tanh"
    framework = Framework.TORCH
    requires = ("torch",)

    def convert(self, case, *, opset):
        model = TorchScriptConverter().convert(case, opset=opset)
        for node in model.graph.node:
            if node.op_type == "Sigmoid":
                node.op_type = "Tanh"
                break
        return model

    def versions(self):
        return TorchScriptConverter().versions()


SIGMOID_TO_TANH = SigmoidToTanh()


class TfSigmoidToTanh:
    """tf2onnx with the same bug."""

    name = "planted-tf-sigmoid-tanh"
    framework = Framework.TENSORFLOW
    requires = ("tensorflow", "tf2onnx")

    def convert(self, case, *, opset):
        model = Tf2OnnxConverter().convert(case, opset=opset)
        for node in model.graph.node:
            if node.op_type == "Sigmoid":
                node.op_type = "Tanh"
                break
        return model

    def versions(self):
        return Tf2OnnxConverter().versions()


TF_SIGMOID_TO_TANH = TfSigmoidToTanh()


class Aborts(SigmoidToTanh):
    """A converter that kills its process, as native converters sometimes do."""

    name = "planted-abort"

    def convert(self, case, *, opset):
        os.abort()


ABORTS = Aborts()


class HandWrittenSource(SyntheticSource):
    """A synthetic source whose case ids name hand-written graphs."""

    def __init__(self, *, name, framework, graphs):
        super().__init__(name=name, framework=framework)
        self.graphs = graphs

    def case_ids(self, *, count=None, seed=0):
        ids = list(self.graphs)
        return ids if count is None else ids[:count]

    def graph(self, case_id):
        return self.graphs[case_id]()


SOURCE = HandWrittenSource(name=SOURCE_NAME, framework=Framework.TORCH, graphs=GRAPHS)
TF_SOURCE = HandWrittenSource(name=TF_SOURCE_NAME, framework=Framework.TENSORFLOW, graphs=TF_GRAPHS)


class OneOpSource:
    """One-op torch cases with a ``call`` expression in their metadata."""

    name = ONE_OP_NAME
    framework = Framework.TORCH

    def case_ids(self, *, count=None, seed=0):
        return ["sigmoid@float32#0", "sigmoid@float32#1"][:count]

    def build(self, case_id, *, seed):
        import torch

        class Sigmoid(torch.nn.Module):
            def forward(self, x0):
                return torch.sigmoid(x0)

        shape = (2, 5) if case_id.endswith("#0") else (3, 4)
        return ModelCase(
            case_id=case_id,
            framework=Framework.TORCH,
            model=Sigmoid().eval(),
            inputs=(InputSpec(name="x0", shape=shape),),
            metadata={"op": "sigmoid", "call": "torch.sigmoid(x0)"},
        )


ONE_OP = OneOpSource()


@contextlib.contextmanager
def planted_registered() -> Iterator[None]:
    """Let `run_case` (which looks converters up by name) find the planted converters."""
    CONVERTERS[PLANTED], CONVERTERS[TF_PLANTED] = SIGMOID_TO_TANH, TF_SIGMOID_TO_TANH
    try:
        yield
    finally:
        del CONVERTERS[PLANTED], CONVERTERS[TF_PLANTED]


def write_corpus(
    directory: Path,
    cases: Sequence[tuple[str, str]],
    *,
    converter: str = PLANTED,
    n_inputs: int = 4,
) -> list[ManifestRow]:
    """Run each (source, case) as a campaign worker would, in process; write the manifest."""
    rows = []
    with planted_registered():
        for source, case in cases:
            task = {
                "id": f"{source}/{case}/{converter}",
                "case": case,
                "source": source,
                "converter": converter,
                "out_dir": str(directory),
                "seed": 0,
                "opset": 17,
                "n_inputs": n_inputs,
                "keep_weights": False,
                "atol": 1e-7,
                "rtol": None,
                "attribute_blame": True,
                "rule": {"headroom": 64.0, "min_sets": 3},
            }
            rows.append(ManifestRow.from_dict(json.loads(json.dumps(run_case(task)))))
    with ManifestWriter(directory) as writer:
        for row in rows:
            writer.append(row)
    return rows


def mark_semantic(directory: Path, row_id: str, **changes) -> None:
    """Rewrite one row as a semantic mismatch (as if an earlier version had found one)."""
    path = directory / "manifest.jsonl"
    lines = []
    for line in path.read_text().splitlines():
        data = json.loads(line)
        if data["id"] == row_id:
            data.update(outcome="mismatch", verdict="semantic", **changes)
        lines.append(json.dumps(data))
    path.write_text("\n".join(lines) + "\n")
