from __future__ import annotations

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
