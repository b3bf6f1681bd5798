"""A tiny runnable torch model for ``opseq verify``'s example, and the script that exports it.

``tiny_cnn`` is a ``--source`` factory: it returns a small CNN classifier (Conv-ReLU, 2x2 average
pooling, a Linear head scaled by a temperature, Softmax) over 1x1x8x8 images, with its input spec;
its weights come from a fixed seed, so every call returns the same model.

Run as a script, it exports that model with torch.onnx (TorchScript exporter, opset 17) to the
path given, under 4 KB with its weights; ``--bug`` plants a converter-like bug in the export
(the temperature constant off by 1e-3 relative), which ``opseq verify`` reports as semantic::

    python corpus/examples/verify_example.py tiny_cnn.onnx
    opseq verify tiny_cnn.onnx --source corpus/examples/verify_example.py:tiny_cnn
    python corpus/examples/verify_example.py tiny_cnn_bug.onnx --bug
    opseq verify tiny_cnn_bug.onnx --source corpus/examples/verify_example.py:tiny_cnn

Needs torch (``pip install 'opseq[torch]'``).
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import onnx
from onnx import numpy_helper

from opseq.sources.base import InputSpec

INPUT = InputSpec(name="image", shape=(1, 1, 8, 8))


def tiny_cnn():
    """The model and its input spec (a ``--source`` factory)."""
    import torch

    class TinyCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.pool = torch.nn.AvgPool2d(2)
            self.fc = torch.nn.Linear(4 * 4 * 4, 10)

        def forward(self, image):
            hidden = self.pool(torch.relu(self.conv(image))).flatten(1)
            return torch.softmax(self.fc(hidden) * 0.5, dim=-1)

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TinyCNN().eval()
    return model, [INPUT]


def export(path: Path, *, bug: bool = False) -> onnx.ModelProto:
    """Export `tiny_cnn` to `path`; with `bug`, scale the temperature constant by 1 + 1e-3."""
    import torch

    model, _ = tiny_cnn()
    buffer = io.BytesIO()
    example = torch.zeros(INPUT.shape)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=[INPUT.name],
            output_names=["probs"],
        )
    proto = onnx.load_from_string(buffer.getvalue())
    if bug:
        plant_bug(proto)
    onnx.save(proto, str(path))
    return proto


def plant_bug(model: onnx.ModelProto, relative: float = 1e-3) -> None:
    """Scale the constant operand of the graph's first Mul by ``1 + relative``, in place."""
    mul = next(node for node in model.graph.node if node.op_type == "Mul")
    initializers = {t.name: t for t in model.graph.initializer}
    constants = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    for name in mul.input:
        if name in initializers:
            tensor = initializers[name]
        elif name in constants:
            tensor = next(a.t for a in constants[name].attribute if a.name == "value")
        else:
            continue
        value = numpy_helper.to_array(tensor)
        tensor.CopyFrom(
            numpy_helper.from_array((value * (1 + relative)).astype(value.dtype), tensor.name)
        )
        return
    raise ValueError("the first Mul has no constant operand")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the .onnx file to write")
    parser.add_argument("--bug", action="store_true", help="plant a 1e-3 relative bug")
    args = parser.parse_args()
    export(args.output, bug=args.bug)
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
