"""Mining on a real Dask LocalCluster (2 workers) gives exactly what mining here gives."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hypotheses.features import load_corpus
from opseq.cli import main
from opseq.distributed.cluster import connect
from opseq.graph import DEFAULT_IGNORED_OPS
from opseq.mining.dask_mining import map_ordered, mine_corpus, mine_on_cluster, mine_path
from opseq.mining.index import MiningParams
from tests.cli.errors import assert_one_error_line
from tests.mining import random_model, write_corpus
from tests.mining.test_corpus_index import assert_same

PARAMS = MiningParams(n_max=4, ignore_ops=tuple(DEFAULT_IGNORED_OPS))

pytestmark = pytest.mark.slow  # a LocalCluster takes seconds to start


@pytest.fixture(scope="module")
def client():
    with connect(local_workers=2) as client:
        yield client


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("dask") / "corpus"
    write_corpus(directory, models=40, seed=3)
    (directory / "models" / "m007.onnx").write_bytes(b"\x08\x07garbage")  # unreadable
    return directory


def test_cluster_results_equal_local_ones(client, corpus: Path, tmp_path: Path):
    paths = sorted(str(p) for p in (corpus / "models").iterdir())
    paths.append(str(tmp_path / "missing.onnx"))  # the client cannot read it
    local = [mine_path(p, PARAMS) for p in paths]
    remote = list(mine_on_cluster(client, paths, PARAMS))
    assert remote == local
    assert remote[-1] == (None, "unreadable model (ModelLoadError)")
    assert sum(isinstance(r, str) for _, r in remote) == 2


def test_load_corpus_on_the_cluster_equals_local_mining(client, corpus: Path, tmp_path: Path):
    local = load_corpus(corpus)
    index = tmp_path / "structure.parquet"
    remote = load_corpus(corpus, client=client, index=index)
    assert_same(local, remote)
    assert remote.excluded["unreadable model (ModelLoadError)"] == 1
    assert_same(local, load_corpus(corpus, index=index))  # the index the cluster filled


def test_only_missing_models_go_to_the_cluster(client, tmp_path: Path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus, models=10, seed=4)
    paths = sorted(str(p) for p in (corpus / "models").iterdir())
    index = tmp_path / "structure.parquet"
    assert mine_corpus(paths, params=PARAMS, index=index, client=client).stats.mined == 10
    Path(paths[2]).write_bytes(random_model(np.random.default_rng(1), 4).SerializeToString())
    again = mine_corpus(paths, params=PARAMS, index=index, client=client)
    assert (again.stats.mined, again.stats.from_index) == (1, 9)
    fresh = mine_corpus(paths, params=PARAMS)
    assert again.vocabulary == fresh.vocabulary
    for a, b in zip(again.results, fresh.results, strict=True):
        assert a[0] == b[0] and np.array_equal(a[1], b[1])


def test_map_ordered_keeps_the_input_order(client):
    assert list(map_ordered(client, abs, range(-50, 0), chunk=3)) == list(range(50, 0, -1))


def test_analyze_on_the_cluster_writes_the_same_report(corpus: Path, capsys):
    reports = []
    for extra in ((), ("--dask", "2")):
        code = main(["analyze", str(corpus / "models"), "--format", "json", "-q", *extra])
        out, err = capsys.readouterr()
        assert code == 1, err  # one model is unreadable, the others are analysed
        reports.append(json.loads(out))
    assert reports[0] == reports[1]
    assert len(reports[0]["models"]) == 39 and len(reports[0]["failures"]) == 1


def test_analyze_reads_relative_paths_on_workers_elsewhere(client, corpus, capsys, monkeypatch):
    import os

    monkeypatch.chdir(corpus)
    address = client.scheduler.address
    before = client.run(os.getcwd)
    client.run(os.chdir, "/")  # a worker on another machine has its own working directory
    try:
        reports = []
        for extra in ((), ("--scheduler", address)):
            code = main(["analyze", "models", "--format", "json", "-q", *extra])
            out, err = capsys.readouterr()
            assert code == 1, err
            reports.append(json.loads(out))
    finally:
        for worker, directory in before.items():
            client.run(os.chdir, directory, workers=[worker])
    assert reports[0] == reports[1]
    assert reports[1]["models"][0]["path"].startswith("models/")
    assert reports[1]["failures"][0]["path"] == "models/m007.onnx"


def test_a_scheduler_running_another_opseq_is_a_config_error():
    from opseq.errors import ConfigError

    class Future:
        def result(self):
            raise RuntimeError("Error during deserialization of the task graph. This frequently")

        def cancel(self):
            """Nothing runs, so there is nothing to stop."""

    class Client:
        def scheduler_info(self):
            return {"workers": {"w": {"nthreads": 1}}}

        def submit(self, *args, **kwargs):
            return Future()

    with pytest.raises(ConfigError, match="runs another opseq than this client"):
        list(map_ordered(Client(), abs, [1, 2]))


def test_hypotheses_on_the_cluster_writes_the_same_report(corpus: Path, tmp_path: Path, capsys):
    fast = ("--min-support", "3", "--repeats", "2", "--no-sweep", "--format", "json", "-q")
    outputs = []
    for extra in (("--no-index",), ("--dask", "2", "--index", str(tmp_path / "i.parquet"))):
        code = main(["hypotheses", str(corpus), *extra, *fast])
        out, err = capsys.readouterr()
        assert code == 0, err
        outputs.append(out)
    assert outputs[0] == outputs[1]


def test_an_unreachable_scheduler_is_one_error_line(corpus: Path, capsys):
    code = main(["analyze", str(corpus / "models"), "--scheduler", "tcp://127.0.0.1:9", "-q"])
    _, err = capsys.readouterr()
    assert code == 2
    assert_one_error_line(err, "cannot reach the Dask scheduler")
