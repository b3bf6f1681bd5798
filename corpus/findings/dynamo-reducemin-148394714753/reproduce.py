#!/usr/bin/env python3
"""torch.onnx-dynamo disagrees with torch on ReduceMin (float32)

Runs the source model in torch on test_data_set_0's inputs, converts it again with torch.onnx-
dynamo at opset 17, runs the ONNX model in ONNX Runtime and prints the largest difference. Exit
1: it exceeds 1.7976931348623157e+308 (half the difference when the finding was made): the
inconsistency reproduces; 0: it does not; 2: a step failed (one line on stderr says which).
"""
import glob
import io
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "test_data_set_0")
OPSET = 17
EXPORTER = 'dynamo'
BOUND = 1.7976931348623157e+308


def fail(stage, error):
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    line = f"reproduce.py: error: {stage} failed: {type(error).__name__}: {first}"
    print(line[:500], file=sys.stderr)
    sys.exit(2)


def tensors(kind):
    import onnx
    from onnx import numpy_helper

    paths = sorted(glob.glob(os.path.join(DATA, f"{kind}_*.pb")),
                   key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    found = {}
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
    feeds = {
        i.name: inputs[i.name] if i.name in inputs else values[k]
        for k, i in enumerate(session.get_inputs())
    }
    return session.run(None, feeds)


def report(expected, actual):
    diffs = [difference(e, a) for e, a in zip(expected, actual)]
    if len(expected) != len(actual):
        diffs.append(float("inf"))
    worst = max(diffs, default=0.0)
    verdict = "reproduces" if worst > BOUND else "does not reproduce"
    print(f"max difference {worst:.6g} over {len(expected)} outputs, "
          f"bound {BOUND:.6g}: {verdict}")
    sys.exit(1 if worst > BOUND else 0)


INPUT_NAMES = ['n0']
MODEL_FILE = 'model.pt2'


def load_model(torch):
    program = torch.export.load(os.path.join(HERE, MODEL_FILE))
    return program.module(), program


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
        fail(f"conversion ({EXPORTER})", e)
    try:
        actual = run_onnxruntime(model_bytes, inputs)
    except Exception as e:
        fail("onnxruntime", e)
    report(expected, actual)


if __name__ == "__main__":
    main()
