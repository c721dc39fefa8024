"""Every TimescaleDB policy runs once on its background worker, and none fails.

All the sink's jobs (refresh, compression, retention) are made due at the same moment, the
situation in which an undersized ``max_worker_processes`` failed them with "failed to start a
background worker". Not run without TimescaleDB (CI has none: reported as not run).
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from tests.integration.sink._data import EventFactory, insert_rows, utc

pytestmark = [pytest.mark.integration, pytest.mark.timescale]

JOBS = (
    "SELECT job_id FROM timescaledb_information.jobs "
    "WHERE hypertable_name IS NOT NULL ORDER BY job_id"
)
STATS = (
    "SELECT job_id, total_runs, total_failures, last_run_status "
    "FROM timescaledb_information.job_stats WHERE job_id = ANY(%s)"
)


def _rows(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def test_the_server_has_workers_for_timescaledb(timescale_url: str) -> None:
    (row,) = _rows(
        timescale_url,
        "SELECT current_setting('max_worker_processes')::int, "
        "current_setting('timescaledb.max_background_workers')::int, "
        "current_setting('max_parallel_workers')::int",
    )
    processes, timescale, parallel = row
    assert processes >= timescale + 1 + parallel


def test_every_policy_runs_once_without_failing(timescale_url: str) -> None:
    factory = EventFactory(seed=4)
    insert_rows(timescale_url, factory.spread("t-jobs", utc(2026, 11, 1), utc(2026, 11, 3), 300))
    jobs = [job for (job,) in _rows(timescale_url, JOBS)]
    assert len(jobs) >= 6  # 4 refresh policies, 2 compression policies
    before = {r[0]: r[1] for r in _rows(timescale_url, STATS, (jobs,))}
    with psycopg.connect(timescale_url, autocommit=True) as conn:
        for job in jobs:
            conn.execute("SELECT alter_job(%s, next_start => now())", (job,))
    # The scheduler starts them; wait (generously) until each has run once more.
    deadline = time.monotonic() + 300
    while True:
        stats = {r[0]: r for r in _rows(timescale_url, STATS, (jobs,))}
        ran = all(
            job in stats and stats[job][1] > before.get(job, 0) and stats[job][3] is not None
            for job in jobs
        )
        if ran or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert ran, stats
    failed = {job: s for job, s in stats.items() if s[2] or s[3] != "Success"}
    assert failed == {}
