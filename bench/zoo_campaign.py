"""The real-architecture zoo through every converter that applies, as campaigns, then Table 11.

Runs ``opseq corpus build`` for zoo-keras x tf2onnx and zoo-transformers / zoo-torch x both
torch.onnx exporters into one corpus directory (resuming: cases already recorded are skipped), then
prints ``opseq corpus show`` and the wall time of each campaign.

    python bench/zoo_campaign.py [--out DIR] [--workers 2] [--inputs 10] [--timeout 900]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from opseq.cli import main as opseq

CAMPAIGNS = (
    ("zoo-torch", "torch.onnx-torchscript"),
    ("zoo-torch", "torch.onnx-dynamo"),
    ("zoo-transformers", "torch.onnx-torchscript"),
    ("zoo-transformers", "torch.onnx-dynamo"),
    ("zoo-keras", "tf2onnx"),
)

DEFAULT_OUT = (
    Path(os.environ.get("OPSEQ_BENCH_CACHE", Path.home() / ".cache" / "opseq" / "bench"))
    / "zoo-corpus"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--workers", default=str(os.cpu_count() or 1))
    parser.add_argument("--inputs", default="10")
    parser.add_argument("--timeout", default="900")
    parser.add_argument("--memory-cap", default=None, help="MiB per worker (default: opseq's)")
    args = parser.parse_args()
    timings = []
    for source, converter in CAMPAIGNS:
        start = time.perf_counter()
        code = opseq(
            [
                "corpus",
                "build",
                str(args.out),
                "--source",
                source,
                "--converter",
                converter,
                "--workers",
                args.workers,
                "--inputs",
                args.inputs,
                "--timeout",
                args.timeout,
                *(["--memory-cap", args.memory_cap] if args.memory_cap else []),
            ]
        )
        timings.append((source, converter, time.perf_counter() - start, code))
    opseq(["corpus", "show", str(args.out)])
    print(f"\n{'source':<18} {'converter':<24} {'seconds':>8} {'exit':>4}")
    for source, converter, seconds, code in timings:
        print(f"{source:<18} {converter:<24} {seconds:>8.0f} {code:>4}")
    sys.exit(max(code for *_, code in timings))


if __name__ == "__main__":
    main()
