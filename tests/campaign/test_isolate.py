from __future__ import annotations

from pathlib import Path

import pytest

from opseq.difftest.isolate import Limits, TaskStatus, WorkerPool

TASKS = "tests.campaign.worker_tasks"


def test_pool_runs_every_task_and_reuses_workers():
    with WorkerPool(f"{TASKS}:echo", workers=2, limits=Limits(timeout_s=30)) as pool:
        results = list(pool.map_unordered({"value": i} for i in range(10)))
    assert sorted(r.payload["value"] for r in results) == list(range(10))
    assert all(r.status is TaskStatus.DONE and r.peak_rss_mb > 0 for r in results)
    assert len({r.payload["pid"] for r in results}) <= 2


@pytest.mark.parametrize(
    ("function", "extra", "status", "message"),
    [
        ("abort", {}, TaskStatus.CRASH, "worker died from SIGABRT"),
        ("hang", {}, TaskStatus.TIMEOUT, "worker exceeded the 3 s timeout"),
        ("allocate", {"megabytes": 2048}, TaskStatus.CRASH, "600 MiB"),
        ("fail", {}, TaskStatus.ERROR, "ValueError: a bug in the task"),
    ],
)
def test_pool_bad_task_becomes_result_and_the_pool_goes_on(function, extra, status, message):
    tasks = [
        {"function": "echo", "value": 1},
        {"function": function, **extra},
        {"function": "echo", "value": 2},
        {"function": "echo", "value": 3},
    ]
    limits = Limits(timeout_s=3, memory_mb=600)
    with WorkerPool(f"{TASKS}:dispatch", workers=1, limits=limits) as pool:
        results = list(pool.map_unordered(tasks))
    assert [r.task["function"] for r in results] == ["echo", function, "echo", "echo"]
    bad = results[1]
    assert bad.status is status and bad.payload is None
    assert message in bad.error
    assert [r.payload["value"] for r in results if r.status is TaskStatus.DONE] == [1, 2, 3]


def test_pool_parallel_workers_overlap():
    tasks = [{"function": "hang"}, {"function": "echo", "value": 7}]
    with WorkerPool(f"{TASKS}:dispatch", workers=2, limits=Limits(timeout_s=3)) as pool:
        first = next(pool.map_unordered(tasks))
    assert first.task["function"] == "echo"  # not stuck behind the hanging task


def test_worker_dies_with_killed_parent(tmp_path):
    # A parent process that starts a pool on a hanging task and is then SIGKILLed.
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "from opseq.difftest.isolate import Limits, WorkerPool\n"
        "if __name__ == '__main__':\n"
        "    limits = Limits(timeout_s=600)\n"
        "    target = 'tests.campaign.worker_tasks:hang'\n"
        "    with WorkerPool(target, workers=1, limits=limits) as pool:\n"
        "        next(pool.map_unordered([{}]))\n"
    )
    root = str(Path(__file__).resolve().parents[2])  # the worker imports tests.campaign
    env = {**os.environ, "PYTHONPATH": root}
    parent = subprocess.Popen([sys.executable, str(script)], cwd=root, env=env)
    deadline = time.monotonic() + 30
    workers = []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.2)
        out = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True)
        workers = [int(pid) for pid in out.stdout.split()]
    assert workers, "the pool never started a worker"
    time.sleep(3)  # let the worker import its target and take the task
    assert all(_alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and all(os.path.exists(f"/proc/{pid}") for pid in workers):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" not in status.read()
    except FileNotFoundError:
        return False


def test_worker_output_goes_to_log_dir(tmp_path, capfd):
    with WorkerPool(f"{TASKS}:shout", workers=1, limits=Limits(), log_dir=tmp_path) as pool:
        (result,) = pool.map_unordered([{}])
    assert result.status is TaskStatus.DONE
    assert (tmp_path / "worker-0.log").read_text() == "from python\nfrom native code\n"
    assert "from native code" not in capfd.readouterr().err


def test_pool_recycles_worker_that_keeps_over_half_the_cap():
    limits = Limits(timeout_s=30, memory_mb=800)
    with WorkerPool(f"{TASKS}:keep", workers=1, limits=limits) as pool:
        small = list(pool.map_unordered([{"megabytes": 10}, {"megabytes": 10}]))
        large = list(pool.map_unordered([{"megabytes": 450}, {"megabytes": 450}]))
    assert small[0].payload["pid"] == small[1].payload["pid"]  # kept: well under half the cap
    assert large[0].payload["pid"] != large[1].payload["pid"]  # replaced: 450 MiB kept
    assert all(r.status is TaskStatus.DONE for r in small + large)  # never over the cap


def test_worker_environment_set_before_target_import():
    env = {"OMP_NUM_THREADS": "1", "OPSEQ_TEST_MARK": "yes"}
    with WorkerPool(f"{TASKS}:environment", workers=1, limits=Limits(), environment=env) as pool:
        (result,) = pool.map_unordered([{"names": list(env)}])
    assert result.payload == env
