"""Measure how much of a model's architecture a reference corpus exercises.

For each MODEL: the share of its ops, versioned ops (domain:op@since_version), n-grams (n = 2..4,
distinct and by node paths) and finer labels (op + input dtypes, ranks, attribute values) that
occur in at least one reference model, listing what is uncovered and singling out novel
combinations (uncovered n-grams whose pieces are all covered). Reference indexes are built once
and cached by the reference's content fingerprint.

With --corpus DIR (repeatable; a directory of models, a manifest, or a reference name such as
onnx-node-tests): each corpus's share of the default-domain op space at its highest opset,
COMET-style sequence coverage (distinct bigrams present of the type-feasible ones), the growth of
distinct n-grams with the number of models, several corpora side by side, and for a corpus with a
manifest the study's Table 12 row 3 question: which n-grams of its mismatching models the
reference (--reference, default onnx-node-tests + onnx-backend-models) never exercises.

A corpus or reference that changed since its cached index profiles only its new and changed
models (by content digest); --scheduler ADDRESS or --dask N profiles those on a Dask cluster
(the client sends each model's bytes; the report is the same as profiling here).

Exit codes: 0 measured, 2 unusable input (a model, a reference, an option).

Example:
  opseq coverage corpus/examples/transformer_block_torch.onnx
  opseq coverage model.onnx --reference onnx-node-tests --reference corpus-ok --format json
  opseq coverage --corpus corpus --corpus onnx-node-tests --format html -o coverage.html
  opseq coverage --corpus corpus --dask 2 --format json -o coverage.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from opseq.cli._cluster import add_cluster_args, cluster_from_args
from opseq.cli._common import (
    ExitCode,
    add_limit_args,
    add_output_args,
    add_verbosity_args,
    limits_from_args,
    open_output,
    refuse_overwriting_inputs,
    whole_number,
)
from opseq.cli._references import add_reference_args, references_from_args

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``coverage`` subcommand."""
    parser = subparsers.add_parser(
        "coverage",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="*", type=Path, metavar="MODEL", help="ONNX models")
    parser.add_argument(
        "--corpus",
        action="append",
        metavar="DIR",
        help="measure a corpus instead (a directory, a manifest or a reference name); repeat "
        "to compare corpora side by side",
    )
    add_reference_args(parser)
    parser.add_argument(
        "--top",
        type=whole_number(1),
        default=10,
        metavar="K",
        help="uncovered items listed per kind in text and Markdown (default: 10; JSON lists all)",
    )
    parser.add_argument(
        "--picture",
        type=Path,
        metavar="FILE",
        help="also render the first model with its uncovered bigrams (.svg/.png/.pdf/.dot) and "
        "link it in md output",
    )
    add_cluster_args(parser)
    add_limit_args(parser)
    add_output_args(parser, formats=("text", "json", "md", "html"))
    add_verbosity_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    """Measure the coverage of each model; see the module docstring."""
    from opseq.coverage.model_coverage import model_coverage
    from opseq.coverage.model_report import (
        coverage_json,
        format_coverage_markdown,
        format_coverage_text,
    )
    from opseq.coverage.models import load_model_under_test
    from opseq.errors import ConfigError

    if bool(args.models) == bool(args.corpus):
        raise ConfigError("give either MODEL... or --corpus DIR, not both and not neither")
    refuse_overwriting_inputs(args.output, args.models)
    if args.corpus:
        with cluster_from_args(args) as client:
            args.client = client
            text = _corpus_report(args)
        with open_output(args.output) as out:
            out.write(text)
        return ExitCode.OK
    if args.format == "html":
        raise ConfigError("--format html is for --corpus; use md for models")
    limits = limits_from_args(args)
    loaded = [load_model_under_test(path, limits=limits) for path in args.models]
    reference = references_from_args(args)
    coverages = [model_coverage(model.profile, reference) for model in loaded]
    references = reference.to_dicts()
    picture = _picture(args, loaded[0], coverages[0])
    if args.format == "json":
        import json

        text = json.dumps(coverage_json(coverages, references), indent=2) + "\n"
    elif args.format == "md":
        text = format_coverage_markdown(coverages, references, top=args.top, picture=picture)
    else:
        text = format_coverage_text(coverages, references, top=args.top)
    with open_output(args.output) as out:
        out.write(text)
    return ExitCode.OK


def _picture(args: argparse.Namespace, loaded, coverage) -> str | None:
    """Render the model's uncovered bigrams when --picture asks; the path written, for links."""
    if args.picture is None:
        return None
    from opseq.coverage.render import write_picture

    return write_picture(loaded.graph, {"uncovered": coverage.ngrams[2].uncovered}, args.picture)


def _corpus_report(args: argparse.Namespace) -> str:
    """Coverage of each corpus, side by side; Table 12 row 3 where a manifest labels models."""
    from opseq.corpus import read_manifest
    from opseq.coverage.corpus_coverage import corpus_coverage
    from opseq.coverage.corpus_report import format_corpus_coverage

    references = references_from_args(args).indexes
    results = []
    for text in args.corpus:
        (corpus,) = references_from_args(args, [text]).indexes
        rows = read_manifest(corpus.spec.path) if corpus.spec.kind == "manifest" else None
        results.append(
            corpus_coverage(
                corpus.load_models(), name=text, rows=rows, references=references if rows else ()
            )
        )
    fmt = {"md": "markdown"}.get(args.format, args.format)
    return format_corpus_coverage(results, fmt, top=args.top)
