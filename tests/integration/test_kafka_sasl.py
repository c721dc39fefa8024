"""Every part through a broker that demands SASL: SDK → processor → sink, replay, prices.

A private broker whose second listener takes SASL_PLAINTEXT with the PLAIN mechanism. The
processor, the sink and the replay are configured only through the ``TOKENLINE_*`` security
variables the deploy Secret sets; the events must land, and a wrong password must be refused.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from tokenline import sdk
from tokenline.dev import kafka
from tokenline.dev.demo.prices import write_initial_prices
from tokenline.dev.demo.services import DemoPipeline, create_database, tokenline_command

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

USER, PASSWORD = "tokenline", "s3cret-for-tests"
EVENTS = 200


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[str]:
    node = kafka.start(tmp_path / "broker", sasl_users={USER: PASSWORD, "admin": "admin-pw"})
    assert node.sasl_bootstrap is not None
    try:
        yield node.sasl_bootstrap
    finally:
        kafka.stop(node)


def _sees_topics(bootstrap: str, password: str) -> bool:
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": USER,
            "sasl.password": password,
            "log_level": 0,
        }
    )
    try:
        admin.list_topics(timeout=5)
    except KafkaException:
        return False
    return True


def test_the_pipeline_runs_through_a_sasl_listener(
    sasl_broker: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not _sees_topics(sasl_broker, "wrong password")
    assert _sees_topics(sasl_broker, PASSWORD)
    for name, value in {
        "TOKENLINE_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "TOKENLINE_SASL_MECHANISM": "PLAIN",
        "TOKENLINE_SASL_USERNAME": USER,
        "TOKENLINE_SASL_PASSWORD": PASSWORD,
    }.items():
        monkeypatch.setenv(name, value)
    run = uuid.uuid4().hex[:6]
    pipeline = DemoPipeline(
        bootstrap=sasl_broker,
        database_url=create_database(database_url, f"sasl_{run}"),
        prefix=f"sasl-{run}.",
        work_dir=tmp_path,
        prices_file=write_initial_prices(tmp_path / "prices.yaml"),
    )
    pipeline.migrate()
    pipeline.create_topics()
    pipeline.start()
    try:
        began = datetime.now(UTC)
        sdk.configure(
            tenant_id="t-sasl",
            bootstrap_servers=sasl_broker,
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
        assert _rows(pipeline.database_url, timeout_s=120) == EVENTS

        replay = subprocess.run(
            [
                tokenline_command(),
                "replay",
                "--from",
                (began - timedelta(minutes=1)).isoformat(),
                "--to",
                (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
                "--dry-run",
            ],
            env=pipeline.environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        assert replay.returncode == 0, replay.stdout + replay.stderr
        assert re.search(rf"│ read\s+│\s+{EVENTS} │", replay.stdout), replay.stdout
    finally:
        pipeline.stop()


def _rows(database_url: str, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(database_url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM usage_events").fetchone()
            count = int(row[0]) if row else 0
            if count >= EVENTS or time.monotonic() > deadline:
                return count
            time.sleep(0.5)
