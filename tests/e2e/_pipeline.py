"""The e2e tier's pipeline: fresh topics and database, the processor and the sink running."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING

import psycopg

from tokenline.dev.demo.services import DemoPipeline, create_database

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["running_pipeline", "wait_rows"]


@contextmanager
def running_pipeline(
    kafka_bootstrap: str, database_url: str, work: Path, prices: str, label: str
) -> Iterator[DemoPipeline]:
    """A pipeline with topics and a database of its own, named after ``label``.

    The processor prices with the overrides YAML ``prices``; both parts stop on exit.
    """
    prices_file = work / "prices.yaml"
    prices_file.write_text(prices, encoding="utf-8")
    run = uuid.uuid4().hex[:6]
    handle = DemoPipeline(
        bootstrap=kafka_bootstrap,
        database_url=create_database(database_url, f"{label}_{run}"),
        prefix=f"{label}-{run}.",
        work_dir=work,
        prices_file=prices_file,
    )
    handle.migrate()
    handle.create_topics()
    handle.start()
    try:
        yield handle
    finally:
        handle.stop()


def wait_rows(pipeline: DemoPipeline, expected: int, timeout_s: float = 300) -> None:
    """Wait until ``usage_events`` holds ``expected`` rows, and check it holds no more."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        while True:
            pipeline.check_running()
            row = conn.execute("SELECT count(*) FROM usage_events").fetchone()
            assert row is not None
            if row[0] >= expected:
                assert row[0] == expected
                return
            assert time.monotonic() < deadline, f"{row[0]} of {expected} rows landed"
            time.sleep(1)
