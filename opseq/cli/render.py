"""Draw a model with chosen operator sequences highlighted (graphviz: .svg, .png, .pdf or .dot).

--highlight takes a pattern of labels separated by '>' (1 to 8 labels, each an op type or
domain:op_type, as opseq writes them: "MatMul>Add", "com.microsoft:FusedMatMul>Relu"), or one of
uncovered, novel, risky (n-grams of the model judged against a reference or knowledge base);
repeat it for several. The nodes of every occurrence and the edges between them are coloured by
kind, with a legend. A graph of at most 300 nodes is drawn whole; a larger one keeps the nodes
within --context hops (default 2) of a highlighted node and collapses each connected group of the
others into one node that says how many it holds. If/Loop/Scan bodies are not drawn; their parent
node says how many nodes they hold and is outlined when a highlight lies inside.

The suffix of -o picks the format. .svg, .png and .pdf need the graphviz program 'dot'; without
it (or when even context 0 leaves more than 1,000 nodes, which dot would take minutes over) the
.dot source is written beside the requested file with a warning saying how to go on, and the
command still exits 0: the user has a usable file. dot runs with a 120 s timeout.

Exit codes: 0 written (also the .dot fallback), 2 unusable input (a model, an option, an output
path) or dot failed or timed out.

Example:
  opseq render corpus/examples/transformer_block_torch.onnx -o block.svg --highlight "MatMul>Add"
  opseq render corpus/examples/resnet_torch.onnx -o resnet.dot --highlight "Conv>Relu" --context 1
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from opseq.cli._common import (
    ExitCode,
    add_limit_args,
    add_verbosity_args,
    comma_list,
    limits_from_args,
    refuse_overwriting_inputs,
)
from opseq.graph import DEFAULT_IGNORED_OPS

__all__ = ["HighlightSpec", "context_arg", "parse_highlight", "register", "run"]

logger = logging.getLogger(__name__)

COMPUTED_KINDS = ("uncovered", "novel", "risky")
MAX_PATTERN_LABELS = 8
# A label as opseq writes it: op_type, or domain:op_type with a dotted domain (com.microsoft).
_LABEL = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9_.\-]*:)?[A-Za-z_][A-Za-z0-9_]*")
_HIGHLIGHTS_MODULE = "opseq.coverage.highlights"


@dataclass(frozen=True, slots=True, kw_only=True)
class HighlightSpec:
    """A parsed ``--highlight``: its kind, and the labels of a pattern (None for the others)."""

    kind: str
    ngram: tuple[str, ...] | None = None


def parse_highlight(text: str) -> HighlightSpec:
    """An argparse type for ``--highlight``: a kind, or a pattern ``A>B>C``.

    Raises:
        argparse.ArgumentTypeError: If the pattern has no label, more than 8, or a label that is
            neither an op type nor ``domain:op_type``.

    Examples:
        >>> parse_highlight("MatMul > Add")
        HighlightSpec(kind='pattern', ngram=('MatMul', 'Add'))
        >>> parse_highlight("risky")
        HighlightSpec(kind='risky', ngram=None)
    """
    if text in COMPUTED_KINDS:
        return HighlightSpec(kind=text)
    labels = tuple(part.strip() for part in text.split(">"))
    if not 1 <= len(labels) <= MAX_PATTERN_LABELS:
        raise argparse.ArgumentTypeError(
            f"a pattern has 1 to {MAX_PATTERN_LABELS} labels, got {len(labels)} in {text!r}"
        )
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise argparse.ArgumentTypeError(
                f"{label!r} in {text!r} is not a label (an op type like MatMul, or "
                "domain:op_type); a pattern looks like MatMul>Add, or use one of "
                f"{', '.join(COMPUTED_KINDS)}"
            )
    return HighlightSpec(kind="pattern", ngram=labels)


def context_arg(text: str) -> int | str:
    """An argparse type for ``--context``: a whole number >= 0, or ``all``."""
    if text == "all":
        return text
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or 'all', got {text!r}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``render`` subcommand."""
    parser = subparsers.add_parser(
        "render",
        help=__doc__.splitlines()[0],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="the ONNX model to draw")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        metavar="FILE",
        help="the picture: .svg, .png, .pdf, or .dot for the graphviz source",
    )
    parser.add_argument(
        "--highlight",
        action="append",
        type=parse_highlight,
        default=[],
        metavar="SPEC",
        help="a pattern like 'MatMul>Add', or uncovered, novel or risky; repeatable",
    )
    parser.add_argument(
        "--context",
        type=context_arg,
        metavar="K|all",
        help="hops kept around highlighted nodes, or all (default: the whole graph up to 300 "
        "nodes, else 2)",
    )
    parser.add_argument(
        "--ignore-ops",
        type=comma_list,
        default=DEFAULT_IGNORED_OPS,
        metavar="OPS",
        help="comma-separated op labels spliced out of the graph "
        "(default: Constant,Identity; '' keeps every op)",
    )
    _add_computed_highlight_args(parser)
    add_limit_args(parser, ngrams=True)
    add_verbosity_args(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> ExitCode:
    """Draw the model; see the module docstring."""
    from opseq.coverage.render import picture_format, render_picture

    picture_format(args.output)  # an unknown suffix is refused before the model is read
    refuse_overwriting_inputs(args.output, [args.model])
    model, graph = _load(args)
    highlights = _highlights(args, model, graph)
    result = render_picture(
        graph, highlights, args.output, context=args.context, title=args.model.name
    )
    drawing = result.drawing
    logger.info(
        "%s: drew %d of %d nodes (%d collapsed into %d group(s))",
        result.path,
        drawing.drawn - drawing.groups,
        drawing.nodes,
        drawing.collapsed,
        drawing.groups,
    )
    for summary in drawing.highlights:
        if not summary.found:
            logger.warning("%s: no %s n-gram occurs in the model", args.model, summary.kind)
    if result.fallback:
        logger.warning("%s", result.fallback)
    return ExitCode.OK


def _load(args: argparse.Namespace):
    """The model and its OpGraph; every refusal names the model."""
    from opseq.errors import OpseqError
    from opseq.graph import build_opgraph
    from opseq.limits import memory_cap
    from opseq.loader import load_model

    limits = limits_from_args(args)
    try:
        model = load_model(args.model, limits=limits)
        with memory_cap(limits.memory_budget(model.ByteSize()), what=str(args.model)):
            graph = build_opgraph(
                model, ignore_ops=args.ignore_ops, infer_shapes=False, limits=limits
            )
    except OpseqError as e:
        message = str(e)
        where = str(args.model)
        raise type(e)(message if message.startswith(where) else f"{where}: {message}") from e
    return model, graph


def _highlights(args: argparse.Namespace, model, graph) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Kind -> n-grams: the patterns as given, the computed kinds from their module."""
    highlights: dict[str, list[tuple[str, ...]]] = {}
    for spec in args.highlight:
        if spec.kind == "pattern":
            highlights.setdefault("pattern", []).append(spec.ngram)
        elif spec.kind not in highlights:
            highlights[spec.kind] = list(_computed(spec.kind, args, model, graph))
    return {kind: tuple(dict.fromkeys(ngrams)) for kind, ngrams in highlights.items()}


def _computed(kind: str, args: argparse.Namespace, model, graph) -> tuple[tuple[str, ...], ...]:
    from opseq.errors import ConfigError

    module = _highlights_module()
    if module is None:
        raise ConfigError(f"--highlight {kind} is not available in this version of opseq")
    return tuple(module.highlight_ngrams(kind, args.model, model, graph, args))


def _highlights_module():
    """`opseq.coverage.highlights`, or None while it does not exist."""
    import importlib

    try:
        return importlib.import_module(_HIGHLIGHTS_MODULE)
    except ModuleNotFoundError as e:
        if e.name != _HIGHLIGHTS_MODULE:
            raise
        return None


def _add_computed_highlight_args(parser: argparse.ArgumentParser) -> None:
    """The options of uncovered/novel/risky (--reference, --knowledge, --n, ...), when available."""
    module = _highlights_module()
    if module is not None:
        module.add_highlight_args(parser)
