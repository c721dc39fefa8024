"""The dev stack sizes PostgreSQL's background workers for TimescaleDB (documented rule)."""

from __future__ import annotations

import pytest

from tokenline.dev.postgres import worker_settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("databases", "jobs"), [(1, 1), (16, 16), (40, 8)])
def test_workers_cover_schedulers_jobs_launcher_and_parallel_queries(
    databases: int, jobs: int
) -> None:
    found = worker_settings(databases, jobs, parallel_workers=8)
    # TimescaleDB's docs: a scheduler per database plus the jobs that run at once.
    assert found["timescaledb.max_background_workers"] == databases + jobs
    # Every background worker comes out of max_worker_processes: TimescaleDB's own, its
    # launcher, and the parallel query workers.
    assert found["max_worker_processes"] >= databases + jobs + 1 + found["max_parallel_workers"]


def test_the_dev_stack_outgrows_postgresql_default_of_8() -> None:
    found = worker_settings()
    assert found["max_worker_processes"] > 8
    assert found["timescaledb.max_background_workers"] >= 16
