"""The session fixtures hand out services that answer."""

from __future__ import annotations

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

pytestmark = pytest.mark.integration


def test_kafka_bootstrap_answers(kafka_bootstrap: str) -> None:
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert len(metadata.brokers) >= 1


def test_database_url_answers(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.timescale
def test_timescale_extension_active(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    assert row == (1,)
