"""Benchmark ``opseq verify --attack`` against ``opseq verify --data``, whole process.

Trains a LeNet-like torch CNN on 1,000 of scikit-learn's 8x8 digits (seeded, a few seconds),
exports it with torch.onnx (TorchScript exporter, dynamic batch) and writes its weights beside a
``--source`` factory; then times, as the median of ``--repeat`` whole processes:

- ``opseq verify MODEL --source SPEC --data digits.npz`` (the baseline: calibrated check on 10
  seeded sets plus the task-level checks on the 1,000 samples);
- the same with ``--attack fgsm --eps 0.1`` (target: at most 3x the baseline);
- the same with ``--attack pgd --eps 0.1`` (10 steps; for information).

It prints a table (work, samples, seconds, ratio to the baseline), then the in-process stage
times of one run (``durations`` of the JSON report: the task-level checks, the attack) and the
accuracies the attack found.

Run: ``python bench/attack_bench.py [--repeat 3] [--samples 1000]``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

FACTORY = """
    from pathlib import Path

    import numpy as np
    import torch
    from opseq.sources.base import InputSpec


    class LeNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(
                torch.nn.Conv2d(1, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                torch.nn.Conv2d(6, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            )
            self.head = torch.nn.Sequential(
                torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                torch.nn.Linear(32, 10),
            )

        def forward(self, x):
            return self.head(self.features(x))


    def lenet():
        model = LeNet()
        with np.load(Path(__file__).with_name("weights.npz"), allow_pickle=False) as weights:
            model.load_state_dict({k: torch.from_numpy(weights[k]) for k in weights.files})
        return model.eval(), [InputSpec(name="x", shape=(1, 1, 8, 8))]
"""


def build(directory: Path, samples: int) -> tuple[Path, str, Path, float]:
    """Train, export and write the factory and data; returns (onnx, spec, data, train seconds)."""
    import importlib.util

    import torch
    from sklearn.datasets import load_digits

    factory = directory / "lenet.py"
    factory.write_text(textwrap.dedent(FACTORY), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("bench_lenet", factory)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    digits = load_digits()
    x = (digits.data[:samples] / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    y = digits.target[:samples].astype(np.int64)
    start = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = module.LeNet()
        optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
        features, labels = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(60):
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    trained = time.perf_counter() - start
    model.eval()
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    np.savez(directory / "weights.npz", **weights)
    np.savez(directory / "digits.npz", x=x, y=y)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), buffer, dynamo=False,
                          opset_version=17, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}})  # fmt: skip
    path = directory / "lenet.onnx"
    path.write_bytes(buffer.getvalue())
    return path, f"{factory}:lenet", directory / "digits.npz", trained


def opseq(*args: str) -> list[str]:
    return [sys.executable, "-m", "opseq", "verify", *args]


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr}")
    return elapsed, done.stdout


def median_time(command: list[str], repeat: int) -> tuple[float, str]:
    runs = [timed(command) for _ in range(repeat)]
    return statistics.median(t for t, _ in runs), runs[-1][1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model, spec, data, trained = build(Path(tmp), args.samples)
        print(f"LeNet-like CNN on {args.samples} 8x8 digits: trained in {trained:.1f} s (seed 0)")
        base = ["--source", spec, "--data", str(data), "--no-repro", "--format", "json"]
        works = [
            ("verify --data", []),
            ("verify --data --attack fgsm --eps 0.1", ["--attack", "fgsm", "--eps", "0.1"]),
            ("verify --data --attack pgd --eps 0.1", ["--attack", "pgd", "--eps", "0.1"]),
        ]
        print()
        print(f"{'work':<40} {'samples':>7} {'seconds':>8} {'ratio':>6}")
        baseline = None
        documents = {}
        for name, extra in works:
            seconds, out = median_time(opseq(str(model), *base, *extra), args.repeat)
            baseline = baseline or seconds
            documents[name] = json.loads(out)
            print(f"{name:<40} {args.samples:>7} {seconds:>8.2f} {seconds / baseline:>6.2f}")
        print()
        print("in-process stages of one run (seconds):")
        for name, document in documents.items():
            durations = document["durations"]
            shown = ", ".join(
                f"{key} {durations[key]:.2f}" for key in ("task", "attack") if key in durations
            )
            print(f"  {name:<40} {shown}")
            robustness = document.get("robustness")
            if robustness:
                clean, adv = robustness["clean_accuracy"], robustness["adversarial_accuracy"]
                m = robustness["mcnemar"]
                print(
                    f"    clean {clean['source']:.3f}/{clean['onnx']:.3f}, adversarial "
                    f"{adv['source']:.3f}/{adv['onnx']:.3f} (source/onnx); b = {m['b']}, "
                    f"c = {m['c']}, p = {m['p_value']:.3g}: {robustness['verdict']['answer']}"
                )


if __name__ == "__main__":
    main()
