"""Pictures of a model with its highlighted n-grams: DOT built with graphviz, laid out by ``dot``.

A highlight is a kind (``risky``, ``uncovered``, ``novel``, ``pattern``) with the n-grams of that
kind. The nodes of their occurrences (`opseq.coverage.occurrences`), and the edges between
consecutive nodes of an occurrence, are coloured by kind from the Okabe-Ito palette (told apart
under the common colour-vision deficiencies); a node of several kinds is striped. A legend node
lists each kind, its colour, how many of its n-grams occur and how many nodes they cover.

What is drawn: the main graph. If/Loop/Scan bodies are not drawn: their parent node says how many
nodes they hold, and gets a dashed outline in a kind's colour when a highlighted occurrence lies
inside. A graph of at most 300 nodes is drawn whole; a larger one keeps the nodes within
``context`` hops (default 2, either direction) of a highlighted node, and each connected group of
the other nodes becomes one node labelled with its size ("412 nodes"), wired to the kept nodes it
touched. With nothing to highlight, a larger graph shows its first 300 nodes in topological order
and collapses the rest. ``dot`` takes minutes beyond a couple of thousand nodes, so the context
shrinks (down to 0) until at most 1,000 nodes are drawn, and ``dot`` runs with a timeout; when even
context 0 is too many, or ``dot`` is not installed, the DOT source is written next to the requested
file instead, with a message saying so.

Every name comes from an untrusted model: it is escaped (`opseq.untrusted.escape_controls`, then
HTML-escaped inside graphviz HTML-like labels) and cut to 40 characters; DOT node ids are opseq's
own (``n12``), never a model's names.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from opseq._optional import import_optional
from opseq.coverage.render_layout import (
    KINDS,
    MAX_DRAWN_NODES,
    OCCURRENCE_LIMIT,
    HighlightSummary,
    Marks,
    Selection,
    mark_highlights,
    select_nodes,
)
from opseq.errors import ConfigError, OpseqError
from opseq.ngrams import Ngram
from opseq.untrusted import escape_controls

__all__ = [
    "FORMATS",
    "KINDS",
    "MAX_DRAWN_NODES",
    "PALETTE",
    "Drawing",
    "HighlightSummary",
    "PictureResult",
    "RenderError",
    "draw",
    "picture_format",
    "render_picture",
    "write_picture",
]

logger = logging.getLogger(__name__)

# Okabe & Ito, "Color Universal Design" (2008); black text stays readable on each.
PALETTE = {"risky": "#D55E00", "uncovered": "#E69F00", "novel": "#56B4E9", "pattern": "#009E73"}
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
DOT_TIMEOUT_SECONDS = 120.0
_NAME_CHARS = 40
_MAX_IO_NODES = 64
_LEGEND_NGRAMS = 3
_INSTALL_HINT = (
    "install graphviz (apt-get install graphviz, brew install graphviz or conda install graphviz)"
)


class RenderError(OpseqError):
    """``dot`` failed or ran out of time on a picture."""


class _DotMissing(Exception):
    """``dot`` could not be started: the picture falls back to ``.dot``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Drawing:
    """The DOT source of one picture and what it shows.

    ``drawn`` counts the operator nodes and collapsed groups in the picture; ``context`` is the
    number of hops kept around highlighted nodes, None when the graph is drawn whole (or, with
    nothing highlighted, its first nodes); ``over_limit`` says it has more than
    `MAX_DRAWN_NODES` even at context 0, too many for ``dot``.
    """

    source: str
    nodes: int
    drawn: int
    groups: int
    collapsed: int
    context: int | None
    over_limit: bool
    highlights: tuple[HighlightSummary, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        """Return a JSON-safe dict (without the DOT source)."""
        return {
            "nodes": self.nodes,
            "drawn": self.drawn,
            "groups": self.groups,
            "collapsed": self.collapsed,
            "context": self.context,
            "over_limit": self.over_limit,
            "highlights": [h.to_dict() for h in self.highlights],
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class PictureResult:
    """A written picture: where, in which format, and why a ``.dot`` was written instead."""

    path: str
    format: str
    drawing: Drawing
    fallback: str | None = None

    def to_dict(self) -> dict:
        """Return a JSON-safe dict."""
        return {
            "path": self.path,
            "format": self.format,
            "fallback": self.fallback,
            **self.drawing.to_dict(),
        }


def picture_format(path: Path) -> str:
    """Return the format a picture path asks for: ``svg``, ``png``, ``pdf`` or ``dot``.

    Raises:
        ConfigError: If the suffix is none of .svg, .png, .pdf, .dot, .gv.

    Examples:
        >>> picture_format(Path("model.SVG")), picture_format(Path("m.gv"))
        ('svg', 'dot')
    """
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        shown = escape_controls(path.suffix) or "no suffix"
        raise ConfigError(
            f"{escape_controls(str(path))}: unknown picture format ({shown}); "
            "use .svg, .png, .pdf or .dot"
        )
    return fmt


def draw(
    graph: nx.DiGraph,
    highlights: Mapping[str, Iterable[Ngram]],
    *,
    context: int | str | None = None,
    title: str | None = None,
    max_nodes: int = MAX_DRAWN_NODES,
) -> Drawing:
    """Build the DOT source of `graph` with `highlights` coloured (see the module docstring).

    Args:
        graph: An OpGraph.
        highlights: Kind (one of `KINDS`) -> the n-grams of that kind.
        context: Hops kept around highlighted nodes; ``"all"`` for the whole graph; None for the
            default (whole up to 300 nodes, else 2).
        title: A first line for the legend (the model's file name); escaped here.
        max_nodes: The most nodes drawn; the context shrinks to stay within it.

    Returns:
        The drawing.

    Raises:
        ConfigError: If a kind is unknown or `context` is neither a whole number nor ``"all"``.
        MissingDependencyError: If the graphviz package is not installed.
    """
    graphviz = import_optional("graphviz", "render")
    marks = mark_highlights(graph, highlights)
    selection = select_nodes(graph, marks.marked, context=context, max_nodes=max_nodes)
    dot = graphviz.Digraph(
        "opseq",
        graph_attr={"rankdir": "TB", "fontname": "Helvetica", "nodesep": "0.25"},
        node_attr={"shape": "box", "style": "rounded,filled", "fillcolor": "white"},
        edge_attr={"color": "#8c8c8c", "arrowsize": "0.6"},
    )
    dot.node_attr.update(fontname="Helvetica", fontsize="10")
    ids = {node: f"n{i}" for i, node in enumerate(selection.kept)}
    for node in selection.kept:
        dot.node(ids[node], **_node_attributes(graph, node, marks))
    for j, group in enumerate(selection.groups):
        dot.node(f"g{j}", **_group_attributes(len(group)))
    _add_edges(dot, graph, selection, ids, marks)
    notes = [*selection.notes, *_add_graph_io(dot, graph, selection, ids), *marks.notes]
    dot.node("legend", label=_legend(marks.summaries, notes, title), shape="plain")
    return Drawing(
        source=dot.source,
        nodes=graph.number_of_nodes(),
        drawn=selection.drawn,
        groups=len(selection.groups),
        collapsed=sum(len(group) for group in selection.groups),
        context=selection.context,
        over_limit=selection.drawn > max_nodes,
        highlights=marks.summaries,
        notes=tuple(notes),
    )


def render_picture(
    graph: nx.DiGraph,
    highlights: Mapping[str, Iterable[Ngram]],
    path: Path,
    *,
    context: int | str | None = None,
    title: str | None = None,
    timeout: float = DOT_TIMEOUT_SECONDS,
    max_nodes: int = MAX_DRAWN_NODES,
) -> PictureResult:
    """Draw `graph` and write the picture to `path`, its format chosen by the suffix.

    The file appears whole or not at all (written beside `path`, then renamed). When ``dot`` is
    not on PATH, or the picture is too large for it, the DOT source is written to `path` with the
    suffix ``.dot`` instead and ``fallback`` says why and how to go on.

    Args:
        graph: An OpGraph.
        highlights: Kind -> n-grams (see `draw`).
        path: The picture to write: .svg, .png, .pdf, or .dot/.gv for the DOT source.
        context: See `draw`.
        title: See `draw`.
        timeout: Seconds ``dot`` may run.
        max_nodes: The most nodes drawn (see `draw`); a picture that has more even at context 0
            is written as ``.dot`` only.

    Returns:
        What was written.

    Raises:
        ConfigError: If the suffix is unknown, a kind or context invalid, or the file cannot be
            written.
        RenderError: If ``dot`` fails or runs out of time.
    """
    fmt = picture_format(path)
    drawing = draw(graph, highlights, context=context, title=title, max_nodes=max_nodes)
    if fmt == "dot":
        _write_atomically(path, lambda partial: Path(partial).write_text(drawing.source, "utf-8"))
        return PictureResult(path=str(path), format=fmt, drawing=drawing)
    if drawing.over_limit:
        reason = (
            f"{drawing.drawn:,} nodes to draw even with context 0, more than dot lays out in "
            f"bounded time ({max_nodes:,}); highlight fewer n-grams, or lay it out with"
        )
        return _write_fallback(path, fmt, drawing, reason, layout="sfdp")
    executable = shutil.which("dot")
    if executable is not None:
        try:
            _write_atomically(
                path, lambda partial: _run_dot(executable, drawing, fmt, partial, timeout)
            )
            return PictureResult(path=str(path), format=fmt, drawing=drawing)
        except _DotMissing:
            pass
    reason = f"the graphviz program 'dot' is not on PATH; {_INSTALL_HINT}, then run"
    return _write_fallback(path, fmt, drawing, reason, layout="dot")


def write_picture(
    graph: nx.DiGraph,
    highlights: Mapping[str, Iterable[Ngram]],
    path: Path,
    *,
    context: int | str | None = None,
) -> str:
    """Write the picture (see `render_picture`) and return the path of the file written.

    A ``.dot`` fallback is logged as a warning; its path is returned.
    """
    result = render_picture(graph, highlights, Path(path), context=context)
    if result.fallback:
        logger.warning("%s", result.fallback)
    return result.path


def _write_fallback(
    path: Path, fmt: str, drawing: Drawing, reason: str, *, layout: str
) -> PictureResult:
    """Write the DOT source beside `path`; the message says why and the command that goes on."""
    target = path.with_suffix(".dot")
    _write_atomically(target, lambda partial: Path(partial).write_text(drawing.source, "utf-8"))
    command = f"{layout} -T{fmt} {shlex.quote(str(target))} -o {shlex.quote(str(path))}"
    message = f"wrote {target} instead of {path}: {reason}: {command}"
    return PictureResult(
        path=str(target), format="dot", drawing=drawing, fallback=escape_controls(message)
    )


def _text(value: object, limit: int = _NAME_CHARS) -> str:
    """Untrusted text for an HTML-like label: controls escaped, cut to `limit`, HTML-escaped."""
    text = escape_controls(str(value))
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return html.escape(text, quote=True)


def _colours(kinds: Iterable[str]) -> str:
    return ":".join(PALETTE[kind] for kind in kinds)


def _node_attributes(graph: nx.DiGraph, node: str, marks: Marks) -> dict[str, str]:
    data = graph.nodes[node]
    lines = [f'<FONT POINT-SIZE="11"><B>{_text(data.get("label", "?"))}</B></FONT>']
    lines.append(f'<FONT POINT-SIZE="9">{_text(data.get("name") or node)}</FONT>')
    hidden = marks.body_counts.get(node)
    if hidden:
        inside = " (highlights inside)" if node in marks.bodies else ""
        lines.append(f'<FONT POINT-SIZE="8">+{hidden:,} nodes in bodies{inside}</FONT>')
    attributes = {"label": "<" + "<BR/>".join(lines) + ">"}
    kinds = marks.nodes.get(node, ())
    styles = ["rounded", "filled"]
    if len(kinds) > 1:
        styles = ["striped"]  # graphviz stripes only square boxes
    if kinds:
        attributes.update(fillcolor=_colours(kinds), penwidth="1.5")
    if node in marks.bodies:
        styles.append("dashed")
        attributes.update(color=PALETTE[marks.bodies[node][0]], penwidth="3")
    attributes["style"] = ",".join(styles)
    return attributes


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def _group_attributes(size: int) -> dict[str, str]:
    return {
        "label": f"<<I>{_plural(size, 'node')}</I>>",
        "style": "rounded,dashed",
        "color": "#8c8c8c",
        "fontcolor": "#595959",
    }


def _add_edges(dot, graph: nx.DiGraph, selection: Selection, ids, marks: Marks) -> None:
    """Draw the edges between kept nodes, and one edge per (kept node, group) that touch."""
    group_of = selection.group_of
    wired: dict[tuple[str, str], None] = {}
    for u, v in graph.edges():
        if u in ids and v in ids:
            kinds = marks.edges.get((u, v))
            style = {"color": _colours(kinds), "penwidth": "2.5"} if kinds else {}
            dot.edge(ids[u], ids[v], **style)
        elif u in ids and v in group_of:
            wired[(ids[u], f"g{group_of[v]}")] = None
        elif v in ids and u in group_of:
            wired[(f"g{group_of[u]}", ids[v])] = None
    for tail, head in wired:
        dot.edge(tail, head, style="dashed")


def _add_graph_io(dot, graph: nx.DiGraph, selection: Selection, ids) -> list[str]:
    """Draw graph inputs and outputs as small plain-text nodes; return notes on those left out."""
    notes = []
    ends = (("input", "input_consumers", "i"), ("output", "output_producers", "o"))
    for what, key, prefix in ends:
        items = list(graph.graph.get(key, {}).items())
        for k, (name, nodes) in enumerate(items[:_MAX_IO_NODES]):
            dot.node(
                f"{prefix}{k}",
                label=f"<{_text(name)}>",
                shape="plaintext",
                style="",
                fontsize="9",
                fontcolor="#404040",
            )
            for node in dict.fromkeys(_drawn_id(n, selection, ids) for n in nodes):
                ends_at = (f"{prefix}{k}", node) if what == "input" else (node, f"{prefix}{k}")
                dot.edge(*ends_at, color="#bdbdbd")
        if len(items) > _MAX_IO_NODES:
            notes.append(f"{len(items) - _MAX_IO_NODES:,} more graph {what}s not drawn")
    return notes


def _drawn_id(node: str, selection: Selection, ids) -> str:
    return ids[node] if node in ids else f"g{selection.group_of[node]}"


def _legend(summaries: tuple[HighlightSummary, ...], notes: list[str], title: str | None) -> str:
    rows = []
    if title is not None:
        rows.append(f'<TR><TD COLSPAN="3"><B>{_text(title, 60)}</B></TD></TR>')
    for summary in summaries:
        shown = [_text(">".join(ngram), 60) for ngram in summary.ngrams[:_LEGEND_NGRAMS]]
        if len(summary.ngrams) > _LEGEND_NGRAMS:
            shown.append(f"+{len(summary.ngrams) - _LEGEND_NGRAMS:,} more")
        counts = (
            f"{summary.found:,} of {_plural(len(summary.ngrams), 'n-gram')} found, "
            f"{_plural(summary.nodes, 'node')}"
        )
        if summary.in_bodies:
            counts += f" ({summary.in_bodies:,} inside bodies)"
        if summary.truncated:
            counts += f"; first {OCCURRENCE_LIMIT:,} occurrences per n-gram"
        rows.append(
            f'<TR><TD BGCOLOR="{PALETTE[summary.kind]}" WIDTH="24"> </TD>'
            f'<TD ALIGN="LEFT"><B>{summary.kind}</B></TD>'
            f'<TD ALIGN="LEFT" BALIGN="LEFT">{counts}<BR/>{"<BR/>".join(shown)}</TD></TR>'
        )
    if not summaries:
        rows.append('<TR><TD COLSPAN="3">nothing highlighted</TD></TR>')
    for note in notes:
        rows.append(f'<TR><TD COLSPAN="3" ALIGN="LEFT">{_text(note, 120)}</TD></TR>')
    table = "".join(rows)
    return (
        '<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">'
        f'<TR><TD COLSPAN="3"><B>legend</B></TD></TR>{table}</TABLE>>'
    )


def _write_atomically(path: Path, write) -> None:
    """Call ``write(partial)`` on a temporary file beside `path`, then rename it into place."""
    try:
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
    os.close(fd)
    try:
        write(partial)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(partial, 0o666 & ~mask)
        os.replace(partial, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        if isinstance(e, OSError):
            raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
        raise


def _run_dot(executable: str, drawing: Drawing, fmt: str, target: str, timeout: float) -> None:
    """Lay out with ``dot`` into `target`; graphviz's own pipe() has no timeout, hence run here."""
    # PNG at 96 dpi blurs the node names; 144 keeps them readable when zoomed.
    resolution = ["-Gdpi=144"] if fmt == "png" else []
    command = [executable, f"-T{fmt}", *resolution, "-o", target]
    try:
        done = subprocess.run(
            command,
            input=drawing.source.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as e:  # removed since `shutil.which` found it
        raise _DotMissing from e
    except subprocess.TimeoutExpired as e:
        raise RenderError(
            f"dot did not finish within {timeout:g} s on {drawing.drawn:,} nodes; "
            "use a smaller --context, or write .dot"
        ) from e
    if done.returncode != 0:
        first = (done.stderr.decode("utf-8", "backslashreplace").strip().splitlines() or [""])[0]
        raise RenderError(f"dot failed (exit {done.returncode}): {first}")
