"""The README's corpus-coverage table: the shipped corpus beside onnx's own tests, COMET-style.

Side by side (Markdown): the shipped corpus's synthetic models (manifest rows whose ``source``
starts with ``synthetic``), its zoo models (``zoo``...), ``onnx-node-tests`` and
``onnx-backend-models``: op coverage of the op space at each one's highest opset, bigram
coverage of the type-feasible pairs, distinct n-grams and their growth. Then Table 12 row 3 for
the whole shipped corpus against the default reference (``onnx-node-tests`` +
``onnx-backend-models``). Indexes are cached (``--cache-dir``, default opseq's user cache), so
a second run takes seconds; wall times go to stderr.

    python bench/corpus_coverage_table.py [--cache-dir DIR] [--top 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from opseq.corpus import read_manifest
from opseq.coverage.corpus_coverage import CorpusCoverage, corpus_coverage
from opseq.coverage.corpus_report import format_corpus_coverage
from opseq.coverage.index import IndexedModel, ReferenceIndex, default_cache_dir, load_reference
from opseq.coverage.references import DEFAULT_REFERENCES, parse_reference

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "corpus" / "manifest.jsonl"


def source_specs(prefix: str) -> list[str]:
    """One manifest spec per source starting with `prefix` (specs filter by exact match)."""
    sources = sorted(
        {row.source for row in read_manifest(MANIFEST) if row.source.startswith(prefix)}
    )
    return [f"{MANIFEST}:source={source}" for source in sources]


def load(specs: list[str], cache_dir: Path) -> tuple[list[ReferenceIndex], list[IndexedModel]]:
    indexes = [load_reference(parse_reference(spec), cache_dir=cache_dir) for spec in specs]
    return indexes, [model for index in indexes for model in index.load_models()]


def measure(name: str, specs: list[str], cache_dir: Path, seed: int) -> CorpusCoverage:
    start = time.perf_counter()
    _, models = load(specs, cache_dir)
    result = corpus_coverage(models, name=name, seed=seed)
    print(f"{name}: {len(models):,} models, {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reference",
        action="append",
        metavar="SPEC",
        help="reference of Table 12 row 3 and an extra coverage row (repeatable; default: "
        + " + ".join(DEFAULT_REFERENCES)
        + "; e.g. torch-opinfo)",
    )
    args = parser.parse_args(argv)
    row3 = args.reference or list(DEFAULT_REFERENCES)
    cache_dir = args.cache_dir or default_cache_dir()
    corpora = [
        measure("synthetic", source_specs("synthetic"), cache_dir, args.seed),
        measure("zoo", source_specs("zoo"), cache_dir, args.seed),
        *(
            measure(spec, [spec], cache_dir, args.seed)
            for spec in dict.fromkeys([*DEFAULT_REFERENCES, *row3])
        ),
    ]
    print(format_corpus_coverage(corpora, "markdown", top=args.top))

    start = time.perf_counter()
    references, _ = load(row3, cache_dir)
    _, models = load([str(MANIFEST)], cache_dir)
    shipped = corpus_coverage(
        models,
        name="shipped corpus",
        rows=read_manifest(MANIFEST),
        references=references,
        seed=args.seed,
    )
    print(f"Table 12 row 3: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(format_corpus_coverage(shipped, "markdown", top=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
