"""From a labelled corpus to per-model structure: node counts and n-gram presence matrices.

Only conversion tests whose outcome is ``ok`` or ``mismatch`` and whose converted model is on disk
enter the hypothesis tests; every other row is counted in `StructureTable.excluded` with the
reason. n-grams of length 1 are the operators, so one sparse matrix serves both hypotheses.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import scipy.sparse as sp

from opseq.corpus import ManifestRow, manifest_path, read_manifest
from opseq.difftest.calibration import Calibration
from opseq.difftest.compare import OutputComparison
from opseq.errors import ConfigError, OpseqError
from opseq.graph import DEFAULT_IGNORED_OPS, build_opgraph, iter_graphs
from opseq.limits import DEFAULT_LIMITS, Limits, memory_cap
from opseq.loader import load_model, model_files
from opseq.mining.dask_mining import mine_corpus
from opseq.mining.index import MiningParams
from opseq.ngrams import Ngram, mine_ngrams
from opseq.outcomes import Outcome

__all__ = [
    "ModelStructure",
    "PresenceMatrix",
    "StructureTable",
    "extract_structure",
    "load_corpus",
    "presence_matrix",
    "read_reference_ngrams",
]

_LABELLED = (Outcome.OK, Outcome.MISMATCH)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStructure:
    """What the tests need of one model: its size and the n-grams it contains (lengths 1..n)."""

    nodes: int
    ngrams: frozenset[Ngram]


@dataclass(frozen=True, eq=False, kw_only=True)
class PresenceMatrix:
    """Which models contain which n-grams: a 0/1 CSR matrix, models x n-grams.

    Attributes:
        names: The n-gram of each column.
        matrix: ``matrix[i, j] == 1`` when model i contains n-gram j.
    """

    names: tuple[Ngram, ...]
    matrix: sp.csr_array

    @functools.cached_property
    def support(self) -> np.ndarray:
        """Number of models containing each n-gram (read-only)."""
        support = np.asarray(self.matrix.sum(axis=0)).ravel()
        support.flags.writeable = False
        return support

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """Length of each n-gram (read-only)."""
        lengths = np.fromiter(
            (len(name) for name in self.names), dtype=np.int64, count=len(self.names)
        )
        lengths.flags.writeable = False
        return lengths

    @functools.cached_property
    def column_of(self) -> dict[Ngram, int]:
        """The column of each n-gram."""
        return {name: j for j, name in enumerate(self.names)}

    @functools.cached_property
    def csc(self) -> sp.csc_array:
        """The same matrix, column-major."""
        return self.matrix.tocsc()

    def columns(self, keep: np.ndarray) -> PresenceMatrix:
        """The sub-matrix of the columns where `keep` (a boolean mask or index array) selects."""
        index = np.flatnonzero(keep) if keep.dtype == bool else keep
        return PresenceMatrix(
            names=tuple(self.names[i] for i in index), matrix=self.matrix[:, index].tocsr()
        )

    def testable(self, n_range: tuple[int, int], min_support: int) -> PresenceMatrix:
        """The columns of lengths `n_range` in >= `min_support` models but not in all of them.

        Cached per arguments: the tolerance sweep asks for the same columns under every rule.
        """
        cache = self.__dict__.setdefault("_testable", {})
        key = (n_range, min_support)
        if key not in cache:
            lengths, support = self.lengths, self.support
            keep = (lengths >= n_range[0]) & (lengths <= n_range[1])
            keep &= (support >= max(min_support, 1)) & (support < self.matrix.shape[0])
            cache[key] = self.columns(keep)
        return cache[key]

    def rows(self, keep: np.ndarray) -> PresenceMatrix:
        """The sub-matrix of the models where `keep` selects (columns unchanged)."""
        return PresenceMatrix(names=self.names, matrix=self.matrix[keep].tocsr())


@dataclass(frozen=True, eq=False, kw_only=True)
class StructureTable:
    """The labelled part of a corpus, one row per model, with the structure of each.

    Attributes:
        ids: Conversion-test ids.
        converters: Converter of each test.
        sources: Model source of each test.
        groups: The source model of each test (``source/case``): one framework model converted
            by several converters gives correlated rows, which cross-validation keeps together.
        nodes: Operator nodes of each model (Constant dropped, subgraphs included).
        outputs: Per model, the recorded comparison of each output; relabelling under another
            tolerance uses these (see `hypotheses.labels`).
        recorded_mismatch: The outcome the manifest recorded (True = mismatch).
        calibrations: Per model, the float64-calibrated measurements the manifest recorded
            (``oracle``), or None for rows without them; relabelling under a `CalibratedRule`
            uses these.
        presence: n-gram presence, lengths 1..n_max; length 1 are the operators.
        outcomes: Rows of the whole manifest by recorded outcome.
        excluded: Rows left out of the tests, by reason.
        n_max: Longest n-gram mined.
    """

    ids: tuple[str, ...]
    converters: tuple[str, ...]
    sources: tuple[str, ...]
    groups: tuple[str, ...]
    nodes: np.ndarray
    outputs: tuple[tuple[OutputComparison, ...], ...]
    recorded_mismatch: np.ndarray
    presence: PresenceMatrix
    calibrations: tuple[Calibration | None, ...] = ()
    outcomes: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    n_max: int = 4

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def clusters(self) -> np.ndarray:
        """An integer id per source model (see ``groups``)."""
        return np.unique(np.asarray(self.groups, dtype=object), return_inverse=True)[1]

    def subset(self, keep: np.ndarray) -> StructureTable:
        """The models where the boolean mask `keep` is true (manifest counts unchanged)."""
        index = np.flatnonzero(keep)
        return StructureTable(
            ids=tuple(self.ids[i] for i in index),
            converters=tuple(self.converters[i] for i in index),
            sources=tuple(self.sources[i] for i in index),
            groups=tuple(self.groups[i] for i in index),
            nodes=self.nodes[index],
            outputs=tuple(self.outputs[i] for i in index),
            recorded_mismatch=self.recorded_mismatch[index],
            calibrations=tuple(self.calibrations[i] for i in index) if self.calibrations else (),
            presence=self.presence.rows(index),
            outcomes=dict(self.outcomes),
            excluded=dict(self.excluded),
            n_max=self.n_max,
        )


def extract_structure(
    source: str | os.PathLike[str] | bytes,
    *,
    n_max: int = 4,
    ignore_ops: Iterable[str] = DEFAULT_IGNORED_OPS,
    limits: Limits = DEFAULT_LIMITS,
) -> ModelStructure:
    """Load one model and return its node count and the n-grams (lengths 1..n_max) it contains.

    Raises:
        ModelLoadError: If the input is not a readable ONNX model.
        InvalidModelError: If its dataflow is invalid.
        LimitExceededError: If the model exceeds one of `limits`.
    """
    model = load_model(source, limits=limits)
    size = len(source) if isinstance(source, (bytes, bytearray)) else os.path.getsize(source)
    with memory_cap(limits.memory_budget(size), what="analysis"):
        graph = build_opgraph(model, ignore_ops=ignore_ops, infer_shapes=False, limits=limits)
        nodes = sum(g.number_of_nodes() for g in iter_graphs(graph))
        ngrams = mine_ngrams(graph, n=(1, n_max), limits=limits).present
    return ModelStructure(nodes=nodes, ngrams=ngrams)


def presence_matrix(structures: Sequence[ModelStructure]) -> PresenceMatrix:
    """Stack the n-gram sets of several models into one presence matrix (columns sorted).

    Examples:
        >>> a = ModelStructure(nodes=2, ngrams=frozenset({("Relu",), ("Add", "Relu")}))
        >>> b = ModelStructure(nodes=1, ngrams=frozenset({("Relu",)}))
        >>> m = presence_matrix([a, b])
        >>> m.names, m.support.tolist()
        ((('Add', 'Relu'), ('Relu',)), [1, 2])
    """
    vocabulary = sorted({ngram for s in structures for ngram in s.ngrams})
    column = {ngram: j for j, ngram in enumerate(vocabulary)}
    # 32-bit indices: scikit-learn's liblinear refuses 64-bit ones.
    indptr = np.zeros(len(structures) + 1, dtype=np.int32)
    np.cumsum([len(s.ngrams) for s in structures], out=indptr[1:])
    indices = np.fromiter(
        (column[ngram] for s in structures for ngram in s.ngrams),
        dtype=np.int32,
        count=int(indptr[-1]),
    )
    data = np.ones(len(indices), dtype=np.int8)
    matrix = sp.csr_array((data, indices, indptr), shape=(len(structures), len(vocabulary)))
    matrix.sort_indices()
    return PresenceMatrix(names=tuple(vocabulary), matrix=matrix)


def load_corpus(
    corpus: Path,
    *,
    n_max: int = 4,
    ignore_ops: Iterable[str] = DEFAULT_IGNORED_OPS,
    jobs: int = 1,
    converters: Sequence[str] = (),
    sources: Sequence[str] = (),
    progress: bool = False,
    limits: Limits = DEFAULT_LIMITS,
    index: Path | None = None,
    client: Any = None,
) -> StructureTable:
    """Read a corpus manifest and the structure of every labelled model in it.

    With `index`, a model whose content hash is in that Parquet index is read from it instead of
    mined, and the index is updated with the others (`opseq.mining.index`); with `client`, the
    models to mine go to a Dask cluster. Either way the table is the same as mining every model.

    Args:
        corpus: A corpus directory or its ``manifest.jsonl``.
        n_max: Longest n-gram to mine.
        ignore_ops: Ops spliced out of the OpGraphs.
        jobs: Worker processes for loading models.
        converters: Keep only these converters (all when empty).
        sources: Keep only these sources (all when empty).
        progress: Show a progress bar.
        limits: Resource limits per model; a model beyond them is excluded with the reason.
        index: The corpus index to read and update (`opseq.mining.index.default_index_path`
            is where the command line keeps it); None mines every model and writes nothing.
        client: A ``distributed.Client`` to mine on (`opseq.distributed.cluster.connect`).

    Returns:
        The table; rows with another outcome, no model file, or an unreadable model are counted
        in ``excluded``.

    Raises:
        ConfigError: If the manifest does not exist.
        CorpusError: If a manifest line is invalid.
        MissingDependencyError: If `index` is given and pyarrow is not installed.
    """
    manifest = manifest_path(corpus)
    rows = read_manifest(manifest)
    outcomes = Counter(row.outcome.value for row in rows)
    in_corpus = frozenset(r.model for r in rows if r.model is not None)
    rows = [r for r in rows if _selected(r, converters, sources)]
    excluded: Counter[str] = Counter()
    labelled = []
    for row in rows:
        if row.outcome not in _LABELLED:
            excluded[f"outcome {row.outcome.value}"] += 1
        elif row.model is None:
            excluded["no model file recorded"] += 1
        elif not _inside_corpus(row.model):
            excluded["model path outside the corpus"] += 1
        else:
            labelled.append(row)
    paths = [str(manifest.parent / row.model) for row in labelled]
    mined = mine_corpus(
        paths,
        params=MiningParams(n_max=n_max, ignore_ops=tuple(ignore_ops), limits=limits),
        names=[row.model for row in labelled],
        keep=in_corpus,
        index=index,
        jobs=jobs,
        client=client,
        progress=progress,
    )
    kept_rows, kept = [], []
    for row, result in zip(labelled, mined.results, strict=True):
        if isinstance(result, str):
            excluded[result] += 1
        else:
            kept_rows.append(row)
            kept.append(result)
    return StructureTable(
        ids=tuple(r.id for r in kept_rows),
        converters=tuple(r.converter for r in kept_rows),
        sources=tuple(r.source for r in kept_rows),
        groups=tuple(_source_model(r) for r in kept_rows),
        nodes=np.array([nodes for nodes, _ in kept], dtype=np.int64),
        outputs=tuple(_output_comparisons(r) for r in kept_rows),
        recorded_mismatch=np.array([r.outcome is Outcome.MISMATCH for r in kept_rows], dtype=bool),
        calibrations=tuple(_calibration(r) for r in kept_rows),
        presence=_presence_from_ids(mined.vocabulary, [ids for _, ids in kept]),
        outcomes=dict(outcomes),
        excluded=dict(excluded),
        n_max=n_max,
    )


def _presence_from_ids(vocabulary: Sequence[Ngram], rows: Sequence[np.ndarray]) -> PresenceMatrix:
    """`presence_matrix` of models given as sorted ids into a sorted vocabulary (same result).

    Only the n-grams some row holds become columns, in the vocabulary's (sorted) order.
    """
    values = np.concatenate(rows) if rows else np.empty(0, dtype=np.int32)
    used = np.unique(values)
    indptr = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(ids) for ids in rows], out=indptr[1:])
    # 32-bit indices: scikit-learn's liblinear refuses 64-bit ones.
    indices = np.searchsorted(used, values).astype(np.int32)
    data = np.ones(len(indices), dtype=np.int8)
    matrix = sp.csr_array((data, indices, indptr), shape=(len(rows), len(used)))
    matrix.sort_indices()
    return PresenceMatrix(names=tuple(vocabulary[j] for j in used.tolist()), matrix=matrix)


def read_reference_ngrams(
    directory: Path,
    *,
    n_max: int = 4,
    ignore_ops: Iterable[str] = DEFAULT_IGNORED_OPS,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[frozenset[Ngram], int, int]:
    """The n-grams found in any ``.onnx`` model under `directory` (recursively).

    Returns:
        (n-grams, models read, models that could not be read).

    Raises:
        ConfigError: If `directory` is not a directory or holds no ``.onnx`` file.
    """
    if not directory.is_dir():
        raise ConfigError(f"{directory}: reference corpus is not a directory")
    paths = model_files(directory)
    if not paths:
        raise ConfigError(f"{directory}: no .onnx models in the reference corpus")
    found: set[Ngram] = set()
    unreadable = 0
    for path in paths:
        result = _extract_or_reason(str(path), n_max, tuple(ignore_ops), limits)
        if isinstance(result, str):
            unreadable += 1
        else:
            found |= result.ngrams
    return frozenset(found), len(paths) - unreadable, unreadable


def _inside_corpus(model: str) -> bool:
    """A manifest names its models relative to itself; `../` or `/` would reach elsewhere."""
    path = PurePath(model)
    return not path.is_absolute() and ".." not in path.parts


def _selected(row: ManifestRow, converters: Sequence[str], sources: Sequence[str]) -> bool:
    return (not converters or row.converter in converters) and (
        not sources or row.source in sources
    )


def _source_model(row: ManifestRow) -> str:
    case = row.extra.get("case")
    return f"{row.source}/{case}" if case is not None else row.id


def _calibration(row: ManifestRow) -> Calibration | None:
    """The row's float64-calibrated measurements, or None (none recorded, or another shape)."""
    recorded = row.extra.get("oracle")
    if not isinstance(recorded, dict):
        return None
    with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
        return Calibration.from_dict(recorded)
    return None


def _output_comparisons(row: ManifestRow) -> tuple[OutputComparison, ...]:
    """The row's per-output comparisons, or one summary built from its maxima.

    A manifest from another tool may lack ``comparisons``; its row-level maxima then stand for one
    output, and a recorded mismatch without finite maxima (NaN or shape disagreement) stays one.
    """
    recorded = row.extra.get("comparisons")
    if recorded:
        # Comparisons another tool wrote in another shape: use the row-level maxima below.
        with contextlib.suppress(KeyError, TypeError, ValueError):
            return tuple(OutputComparison.from_dict(c) for c in recorded)
    finite = row.max_abs_diff is not None
    broken = row.outcome is Outcome.MISMATCH and not finite
    return (
        OutputComparison(
            name="*",
            max_abs_diff=row.max_abs_diff if finite else 0.0,
            max_rel_diff=row.max_rel_diff if row.max_rel_diff is not None else 0.0,
            mean_abs_diff=0.0,
            nan_mismatch=broken,
            inf_mismatch=False,
            shape_match=True,
            dtype_match=True,
            expected_shape=(),
            actual_shape=(),
            expected_dtype="",
            actual_dtype="",
        ),
    )


def _extract_or_reason(
    path: str, n_max: int, ignore_ops: tuple[str, ...], limits: Limits
) -> ModelStructure | str:
    """The model's structure, or why it was left out: one model never costs the others."""
    try:
        return extract_structure(path, n_max=n_max, ignore_ops=ignore_ops, limits=limits)
    except OpseqError as e:
        return f"unreadable model ({type(e).__name__})"
    except MemoryError:
        return "unreadable model (MemoryError)"
    except Exception:  # a bug in opseq: say so, and go on with the other models
        logger.exception("%s: internal error, please report", path)
        return "model failed: internal error"
