"""Hostile models: what each costs `opseq analyze`, in time and memory, and how it ends.

Writes every hostile case of the test suite (`tests/hostile.py`: invalid UTF-8, a 4,335-digit path
count, self-reading ignored nodes, doubling local functions, dense layers of distinct ops, deep
nesting, parse amplification, a link to /dev/zero, a FIFO, a 3 GiB sparse file, ...) into a
temporary directory and runs the real command line on each, one fresh process per case, then on
all of them in one batch beside two good models. Prints a table: the case, its file size, the exit
code, wall time, peak resident memory of the process, the ratio of both to the floor (the same
command on a 3-node model), and the first stderr line. The bar: no case above 30 s or 2 GB.

    python bench/hostile_bench.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import hostile, models  # the test suite's builders


@dataclass(frozen=True)
class Run:
    """How one command line ended."""

    code: int
    seconds: float
    peak_mb: float
    first_line: str


def run_cli(*argv: str) -> Run:
    """Run ``opseq ARGV`` in a fresh process; wall time and the child's peak RSS."""
    command = [sys.executable, "-m", "opseq", *argv, "-q"]
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    line = stderr.strip().splitlines()[0] if stderr.strip() else ""
    return Run(process.returncode, seconds, usage.ru_maxrss / 1024, line)


def write_cases(directory: Path) -> dict[str, Path]:
    def save(name: str, data) -> Path:
        path = directory / f"{name}.onnx"
        path.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())
        return path

    cases = {f"utf8 {field}": save(f"utf8_{field}", hostile.invalid_utf8(field))
             for field in hostile.INVALID_UTF8_FIELDS}  # fmt: skip
    cases["control characters"] = save("controls", hostile.control_characters())
    cases["path count 4**7200"] = save("fanout", hostile.wide_fanout_path_count(7200))
    cases["Identity reads itself"] = save("identity", hostile.identity_reads_own_output())
    cases["Constant in If reads itself"] = save(
        "const_if", hostile.constant_in_if_reads_own_output()
    )
    cases["functions 2**40 nodes"] = save("doubling", hostile.doubling_functions(40))
    cases["recursive function"] = save("recursive", hostile.recursive_function())
    cases["dense 6x60 distinct ops"] = save("dense", hostile.dense_layers())
    cases["If nested 20"] = save("nested20", hostile.nested_if(20))
    cases["If nested 40"] = save("nested40", hostile.nested_if(40))
    cases["If nested 10,000"] = save("nested10000", hostile.nested_if(10_000))
    cases["20M empty nodes (40 MB)"] = save("empty_nodes", _empty_nodes(20_000_000))
    cases["external data in Constant"] = save(
        "ext_const", hostile.external_data_in_constant_attribute()
    )
    cases["negative opset"] = save("neg_opset", hostile.negative_opset())
    cases["no outputs"] = save("no_outputs", hostile.no_outputs())
    zero = directory / "zero.onnx"
    zero.symlink_to("/dev/zero")
    cases["link to /dev/zero"] = zero
    fifo = directory / "fifo.onnx"
    os.mkfifo(fifo)
    cases["FIFO"] = fifo
    huge = directory / "huge.onnx"
    with huge.open("wb") as f:
        f.truncate(3 << 30)
    cases["3 GiB file"] = huge
    return cases


def _empty_nodes(count: int) -> bytes:
    """A model of `count` empty nodes: 2 bytes each on the wire, ~150 once parsed."""
    body = 2 * count
    length = bytearray()
    while True:
        byte, body = body & 0x7F, body >> 7
        length.append(byte | (0x80 if body else 0))
        if not body:
            break
    return b"\x08\x08\x3a" + bytes(length) + b"\x0a\x00" * count + b"\x42\x02\x10\x11"


def _size(path: Path) -> str:
    if not path.is_file():
        return "-"
    size = path.stat().st_size
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the cases here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        cases = write_cases(directory)
        floor_model = directory / "floor" / "chain.onnx"
        floor_model.parent.mkdir()
        floor_model.write_bytes(models.chain().SerializeToString())
        floor = run_cli("analyze", str(floor_model))
        rows = [("floor: 3-node chain", _size(floor_model), floor)]
        rows += [(name, _size(path), run_cli("analyze", str(path))) for name, path in cases.items()]
        batch = directory / "batch"
        batch.mkdir()
        for path in cases.values():
            (batch / path.name).symlink_to(path)
        (batch / "good_chain.onnx").write_bytes(models.chain().SerializeToString())
        (batch / "good_diamond.onnx").write_bytes(models.diamond().SerializeToString())
        rows.append(("batch: all + 2 good", "-", run_cli("analyze", str(batch), "--jobs", "1")))
    print(f"{'case':<28} {'size':>9} {'exit':>4} {'time_s':>7} {'x floor':>7} "
          f"{'peak_mb':>8} {'x floor':>7}  first stderr line")  # fmt: skip
    for name, size, run in rows:
        print(
            f"{name:<28} {size:>9} {run.code:>4} {run.seconds:>7.2f} "
            f"{run.seconds / floor.seconds:>7.1f} {run.peak_mb:>8.0f} "
            f"{run.peak_mb / floor.peak_mb:>7.1f}  {run.first_line[:110]}"
        )


if __name__ == "__main__":
    main()
