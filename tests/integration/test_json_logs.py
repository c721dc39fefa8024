"""TOKENLINE_LOG_FORMAT=json: every line a running processor and sink write is one JSON object.

Both run as their real commands, land events, and are stopped; then each line of their
output must parse as JSON with the documented keys (nothing printed around the logging:
no banner, no librdkafka line, no plain-text traceback).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest

from tests._db import drop_database
from tokenline import sdk
from tokenline.dev.demo.prices import write_initial_prices
from tokenline.dev.demo.services import DemoPipeline, create_database

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EVENTS = 50


def test_processor_and_sink_log_json_lines(
    kafka_bootstrap: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENLINE_LOG_FORMAT", "json")
    run = uuid.uuid4().hex[:6]
    name = f"jsonlog_{run}"
    pipeline = DemoPipeline(
        bootstrap=kafka_bootstrap,
        database_url=create_database(database_url, name),
        prefix=f"jsonlog-{run}.",
        work_dir=tmp_path,
        prices_file=write_initial_prices(tmp_path / "prices.yaml"),
    )
    pipeline.migrate()
    pipeline.create_topics()
    pipeline.start()
    try:
        sdk.configure(
            tenant_id="t-json",
            bootstrap_servers=kafka_bootstrap,
            topic=pipeline.topic("raw"),
            spool_dir=tmp_path / "spool",
            detect_host=False,
            strict=True,
        )
        try:
            for _ in range(EVENTS):
                sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=10, output_tokens=2)
            assert sdk.flush(60) == 0
        finally:
            sdk.close(10)
        _wait_rows(pipeline.database_url, EVENTS)
    finally:
        pipeline.stop()
        drop_database(database_url, name)

    for part in ("processor", "sink"):
        lines = [
            line
            for line in (tmp_path / f"{part}.log").read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        assert lines, part
        for line in lines:
            doc = json.loads(line)  # fails on any line that is not JSON
            assert {"ts", "level", "logger", "message", "part"} <= set(doc), line
            assert doc["part"] == part
            assert doc["ts"].endswith("+00:00")
        messages = " ".join(json.loads(line)["message"] for line in lines)
        assert "assigned" in messages, part  # the consumer's own lines are among them


def _wait_rows(url: str, expected: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM usage_events").fetchone()
            if row and row[0] >= expected:
                return
            assert time.monotonic() < deadline, f"{row} rows after {timeout_s} s"
            time.sleep(0.5)
