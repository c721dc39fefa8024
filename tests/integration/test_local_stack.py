"""The local stack starts real services, reuses them, and leaves nothing behind."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tokenline.dev import stack
from tokenline.dev._proc import pid_alive

pytestmark = pytest.mark.integration


def _round_trip(bootstrap: str) -> bytes | None:
    topic = f"local-stack-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            return message.value()
        return None
    finally:
        consumer.close()


def test_up_reuse_status_down(tmp_path: Path) -> None:
    state_dir = tmp_path / "stack"
    info = stack.up(state_dir)
    try:
        assert set(info.started) == {"kafka", "postgres"}
        assert info.kafka_bootstrap is not None
        assert info.kafka_bootstrap.startswith("127.0.0.1:")
        assert info.database_url is not None
        assert info.database_url.startswith("postgresql://postgres@127.0.0.1:")
        assert info.database_url.endswith("/tokenline")
        assert _round_trip(info.kafka_bootstrap) == b"hello"
        with psycopg.connect(info.database_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

        again = stack.up(state_dir)
        assert again.started == ()
        assert set(again.reused) == {"kafka", "postgres"}
        assert (again.kafka_pid, again.postgres_pid) == (info.kafka_pid, info.postgres_pid)
        assert again.database_url == info.database_url

        report = stack.status(state_dir)
        assert report.running
        assert report.info.kafka_pid == info.kafka_pid
    finally:
        stack.down(state_dir)

    assert info.kafka is not None
    assert info.postgres is not None
    # A zombie (exited, not yet reaped by init) counts as gone.
    assert not pid_alive(info.kafka.pid)
    assert not pid_alive(info.postgres.pid)
    assert not state_dir.exists()
    assert not Path(info.postgres.cluster_dir).exists()
    assert not Path(info.postgres.data_dir).exists()
    assert not stack.status(state_dir).running
