"""Campaigns on a real Dask LocalCluster of 2 workers, through the CLI, against local campaigns."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opseq.cli import main
from opseq.corpus import read_manifest

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

pytestmark = [pytest.mark.torch, pytest.mark.slow]

SYNTHETIC = ("--source", "synthetic-torch", "--converter", "torch.onnx-torchscript")
KILLER = "tests.dask.sources:KILLER"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 single-threaded workers, set up as `--dask` sets it."""
    from opseq.distributed.campaign import CLUSTER_CONFIG

    with (
        dask.config.set(CLUSTER_CONFIG),
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
    ):
        yield cluster.scheduler_address


def build(out_dir, *args):
    return main(["corpus", "build", str(out_dir), "--quiet", "--inputs", "3", *map(str, args)])


def by_id(out_dir):
    return {row.id: row for row in read_manifest(out_dir)}


def test_dask_campaign_gives_the_rows_of_a_local_campaign(tmp_path, scheduler, capsys):
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert build(local, *SYNTHETIC, "--count", "4", "--workers", "2") == 0
    assert build(remote, *SYNTHETIC, "--count", "4", "--scheduler", scheduler) == 0
    assert "4 cases run (ok 4)" in capsys.readouterr().err.splitlines()[-1]
    local_rows, dask_rows = by_id(local), by_id(remote)
    assert sorted(dask_rows) == sorted(local_rows) and len(dask_rows) == 4
    for row_id, row in dask_rows.items():
        twin = local_rows[row_id]
        assert (row.outcome, row.max_abs_diff, row.model) == (
            twin.outcome,
            twin.max_abs_diff,
            twin.model,
        )
        assert row.extra["input_specs"] == twin.extra["input_specs"]
        assert row.extra["peak_rss_mb"] > 0 and row.extra["duration_s"] > 0
        assert (remote / row.model).read_bytes() == (local / twin.model).read_bytes()
        assert row.extra["dask_worker"].startswith("tcp://127.0.0.1:")


def test_dask_flag_starts_a_local_cluster(tmp_path, capsys):
    assert build(tmp_path, *SYNTHETIC, "--count", "2", "--dask", "2") == 0
    rows = read_manifest(tmp_path)
    assert [r.outcome.value for r in rows] == ["ok", "ok"]
    assert all((tmp_path / r.model).exists() for r in rows)
    assert capsys.readouterr().err.splitlines()[-1].startswith("opseq: 2 cases run (ok 2)")


def test_unreachable_scheduler_exits_2_before_any_work(tmp_path, capsys):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "corpus"
    assert build(out, *SYNTHETIC, "--count", "2", "--scheduler", f"tcp://127.0.0.1:{port}") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(
        f"opseq: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    )
    assert not (out / "manifest.jsonl").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "tcp://no spaces:1"], "not a scheduler address"),
        (["--store", "/tmp"], "--store applies with --scheduler or --dask"),
        (["--dask", "1", "--store", "/"], "--store / is not OUT_DIR"),
    ],
)
def test_bad_dask_arguments_exit_2(tmp_path, capsys, args, message):
    assert build(tmp_path, *SYNTHETIC, "--count", "1", *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "manifest.jsonl").exists()


def test_store_on_the_workers_is_the_corpus(tmp_path, scheduler):
    assert (
        build(tmp_path, *SYNTHETIC, "--count", "2", "--scheduler", scheduler, "--store", tmp_path)
        == 0
    )
    rows = read_manifest(tmp_path)
    assert [r.outcome.value for r in rows] == ["ok", "ok"]
    for row in rows:
        assert row.model.startswith("models/synthetic-torch/torch.onnx-torchscript/")
        assert b"opseq.structure_only" in (tmp_path / row.model).read_bytes()
    logs = list((tmp_path / "logs").glob("dask-*/worker-0.log"))
    assert logs  # the isolated children's output went to the store's logs/


def test_killed_dask_worker_is_retried_once_then_a_crash(tmp_path, scheduler):
    assert (
        build(
            tmp_path,
            "--source",
            KILLER,
            "--converter",
            "torch.onnx-torchscript",
            "--scheduler",
            scheduler,
        )
        == 0
    )
    rows = {row.extra["case"]: row for row in read_manifest(tmp_path)}
    assert sorted(rows) == ["conv", "kill", "mlp"]
    assert rows["mlp"].outcome.value == "ok" and rows["conv"].outcome.value == "ok"
    killed = rows["kill"]
    assert killed.outcome.value == "crash" and killed.model is None
    assert killed.error.startswith("Dask worker tcp://127.0.0.1:")
    assert killed.error.endswith("was lost while running this case (tried on 2 workers)")
    assert killed.extra["case"] == "kill" and killed.extra["seed"] == 0


def test_killed_client_rerun_records_each_case_once(tmp_path, scheduler, capsys):
    command = [
        sys.executable, "-m", "opseq", "corpus", "build", str(tmp_path), "--quiet",
        "--inputs", "3", *SYNTHETIC, "--count", "4", "--scheduler", scheduler,
    ]  # fmt: skip
    client = subprocess.Popen(command, cwd=REPO, stderr=subprocess.DEVNULL)
    manifest = tmp_path / "manifest.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and client.poll() is None:
        if manifest.exists() and manifest.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.05)
    client.send_signal(signal.SIGKILL)
    client.wait()
    first = manifest.read_text()
    recorded = first.count("\n")
    assert 1 <= recorded <= 4
    assert build(tmp_path, *SYNTHETIC, "--count", "4", "--scheduler", scheduler) == 0
    if recorded < 4:
        assert f"{recorded} cases already recorded" in capsys.readouterr().err
    rows = read_manifest(tmp_path)
    assert len(rows) == len({r.id for r in rows}) == 4
    assert manifest.read_text().startswith(first)


@pytest.mark.parametrize(
    ("hidden", "converter", "outcome", "error"),
    [
        (
            "torch",
            "torch.onnx-torchscript",
            "generate_fail",
            "MissingDependencyError: torch is not installed; "
            "install it with: pip install 'opseq[torch]'",
        ),
        (
            "onnxscript",
            "torch.onnx-dynamo",
            "convert_fail",
            "MissingDependencyError: converter 'torch.onnx-dynamo' needs onnxscript, which is "
            "not installed; install it with: pip install 'opseq[torch]'",
        ),
    ],
)
def test_worker_without_a_package_records_it_and_goes_on(
    tmp_path, capsys, hidden, converter, outcome, error
):
    from opseq.distributed.campaign import CLUSTER_CONFIG

    # A worker whose Python cannot import the package: a sitecustomize on its PYTHONPATH blocks
    # it in every process the worker starts (None in sys.modules: find_spec finds nothing and
    # import raises ImportError), as on a machine where it is not installed.
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import sys\nsys.modules[{hidden!r}] = None\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
    }
    out = tmp_path / "corpus"
    with (
        dask.config.set(CLUSTER_CONFIG),
        distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None) as cluster,
    ):
        dask_cli = str(Path(sys.executable).with_name("dask"))
        worker = subprocess.Popen(
            [dask_cli, "worker", cluster.scheduler_address, "--nthreads", "1", "--nworkers", "1"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with distributed.Client(cluster) as client:
                client.wait_for_workers(1, timeout=120)
            args = ["--source", "synthetic-torch", "--converter", converter, "--count", "2"]
            args += ["--inputs", "3", "--scheduler", cluster.scheduler_address]
            code = main(["corpus", "build", str(out), *args])  # not --quiet: warnings shown
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    assert code == 0
    rows = read_manifest(out)
    assert [r.outcome.value for r in rows] == [outcome, outcome]
    assert {r.error for r in rows} == {error}
    warning, summary = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith("opseq: WARNING: Dask worker tcp://127.0.0.1:")  # before any case
    assert warning.endswith(f"needs {hidden}, which is not installed; install it with: pip "
                            "install 'opseq[torch]'; its cases will say so")  # fmt: skip
    assert summary.startswith(f"opseq: 2 cases run ({outcome} 2)")
