"""Corpora with a planted truth, for testing the hypothesis tests.

Model size drives both the chance of containing the common n-grams (bigger models contain more
of everything) and the chance of a mismatch (each node is one more chance of a numerical
disagreement: P = 1 - (1 - h)^nodes). A few planted n-grams multiply the odds of a mismatch on top
of that. Every other n-gram is a true null: any association it shows is confounding by size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from hypotheses.features import PresenceMatrix, StructureTable
from opseq.difftest.compare import OutputComparison


@dataclass(frozen=True)
class PlantedCorpus:
    table: StructureTable
    planted: frozenset[tuple[str, ...]]
    nulls: frozenset[tuple[str, ...]]


def comparison(max_abs_diff: float) -> OutputComparison:
    return OutputComparison(
        name="y",
        max_abs_diff=max_abs_diff,
        max_rel_diff=max_abs_diff,
        mean_abs_diff=max_abs_diff,
        nan_mismatch=False,
        inf_mismatch=False,
        shape_match=True,
        dtype_match=True,
        expected_shape=(1,),
        actual_shape=(1,),
        expected_dtype="float32",
        actual_dtype="float32",
    )


def planted_corpus(
    seed: int,
    *,
    models: int = 1500,
    nulls: int = 400,
    planted: int = 20,
    planted_odds: float = 4.0,
    hazard: float = 0.01,
    converters: tuple[str, ...] = ("conv",),
    twins: bool = False,
) -> PlantedCorpus:
    """A corpus of `models` rows with `planted` causal n-grams and `nulls` confounded ones.

    With `twins`, every source model is converted twice (two converters): both rows contain the
    same n-grams, and the second row repeats the first one's outcome 90% of the time.
    """
    rng = np.random.default_rng(seed)
    if twins:
        sources = planted_corpus(
            seed, models=models // 2, nulls=nulls, planted=planted, planted_odds=planted_odds,
            hazard=hazard,
        )  # fmt: skip
        return _twin(sources, rng)
    nodes = np.exp(rng.uniform(np.log(10), np.log(300), models)).round().astype(int)
    null_rate = rng.uniform(0.001, 0.02, nulls)
    null_presence = rng.random((models, nulls)) < 1 - np.exp(-np.outer(nodes, null_rate))
    planted_presence = rng.random((models, planted)) < rng.uniform(0.03, 0.15, planted)
    base_odds = _odds(1 - (1 - hazard) ** nodes)
    odds = base_odds * planted_odds ** planted_presence.sum(axis=1)
    mismatch = rng.random(models) < odds / (1 + odds)
    names = [("Null", f"op{j}", "Relu") for j in range(nulls)]
    names += [("Planted", f"op{j}") for j in range(planted)]
    names += [("Relu",), ("Conv",)]  # operators in every model
    columns = np.hstack([null_presence, planted_presence, np.ones((models, 2), dtype=bool)])
    order = sorted(range(len(names)), key=names.__getitem__)
    presence = PresenceMatrix(
        names=tuple(names[j] for j in order),
        matrix=sp.csr_array(columns[:, order].astype(np.int8)),
    )
    table = StructureTable(
        ids=tuple(f"m{i}" for i in range(models)),
        converters=tuple(converters[i % len(converters)] for i in range(models)),
        sources=("planted",) * models,
        groups=tuple(f"m{i}" for i in range(models)),
        nodes=nodes,
        outputs=tuple((comparison(1e-3 if m else 1e-9),) for m in mismatch),
        recorded_mismatch=mismatch,
        presence=presence,
        outcomes={"mismatch": int(mismatch.sum()), "ok": int((~mismatch).sum())},
        n_max=3,
    )
    return PlantedCorpus(
        table=table, planted=frozenset(names[nulls : nulls + planted]),
        nulls=frozenset(names[:nulls]),
    )  # fmt: skip


def _twin(sources: PlantedCorpus, rng: np.random.Generator) -> PlantedCorpus:
    table = sources.table
    rows = np.repeat(np.arange(len(table)), 2)
    first = table.recorded_mismatch
    rate = first.mean()
    second = np.where(rng.random(len(first)) < 0.9, first, rng.random(len(first)) < rate)
    mismatch = np.column_stack([first, second]).ravel()
    twinned = StructureTable(
        ids=tuple(f"{table.ids[i]}/{k}" for i, k in zip(rows, [0, 1] * len(table), strict=True)),
        converters=("a", "b") * len(table),
        sources=("planted",) * len(rows),
        groups=tuple(table.groups[i] for i in rows),
        nodes=table.nodes[rows],
        outputs=tuple((comparison(1e-3 if m else 1e-9),) for m in mismatch),
        recorded_mismatch=mismatch,
        presence=table.presence.rows(rows),
        outcomes={"mismatch": int(mismatch.sum()), "ok": int((~mismatch).sum())},
        n_max=3,
    )
    return PlantedCorpus(table=twinned, planted=sources.planted, nulls=sources.nulls)


def _odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return p / (1 - p)


def random_dag_table(directory, **params) -> StructureTable:
    """A corpus of random ONNX DAGs from ``bench/_planted_corpus.py``, written and read back.

    `params` are `CorpusParams` fields (e.g. ``models=600, planted_odds=20.0``); which rows
    carry which planted chain is in the manifest (`planted_rows`).
    """
    import importlib.util
    import sys
    from pathlib import Path

    from hypotheses.features import load_corpus

    path = Path(__file__).parents[2] / "bench" / "_planted_corpus.py"
    module = sys.modules.get("_planted_corpus")
    if module is None:
        spec = importlib.util.spec_from_file_location("_planted_corpus", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["_planted_corpus"] = module
        spec.loader.exec_module(module)
    module.write_corpus(Path(directory), module.CorpusParams(**params), jobs=2)
    return load_corpus(Path(directory), n_max=4, jobs=2)


def planted_rows(directory) -> dict[str, list[int]]:
    """The planted chains of each row of a random-DAG corpus (its manifest's ``planted`` key)."""
    import json
    from pathlib import Path

    lines = (Path(directory) / "manifest.jsonl").read_text().splitlines()
    return {row["id"]: row.get("planted", []) for row in map(json.loads, lines)}
