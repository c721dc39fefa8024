"""Test helpers for the real broker: fresh topics and reading them back."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from tokenline.schemas import AvroCodec

#: Test topics keep their records whatever their timestamps: no test depends on when the
#: broker's retention check runs (its default is 7 days, judged by record timestamps).
KEEP = {"retention.ms": "-1"}


def new_topic(bootstrap: str, prefix: str = "t", partitions: int = 4) -> str:
    """Create a topic with a unique name, explicit infinite retention; wait until it exists."""
    topic = f"{prefix}-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=KEEP)]
    )
    futures[topic].result(timeout=30)
    return topic


def read_events(
    bootstrap: str, topic: str, expected: int, *, timeout_s: float = 60.0, settle_s: float = 1.0
) -> list[Any]:
    """Decode every UsageEvent on ``topic``: at least ``expected``, then ``settle_s`` more."""
    codec = AvroCodec[Any]("tokenline.UsageEvent")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    events: list[Any] = []
    deadline = time.monotonic() + timeout_s
    settle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            if settle_until is None and len(events) >= expected:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            batch = consumer.consume(num_messages=1000, timeout=0.2)
            events.extend(codec.decode(m.value() or b"") for m in batch if m.error() is None)
    finally:
        consumer.close()
    return events


class KafkaTap:
    """Reads a topic from the beginning without a consumer group, keeping every event."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        self._codec = AvroCodec[Any]("tokenline.UsageEvent")
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "unused",
                "enable.auto.commit": False,
            }
        )
        partitions = self._consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.events: list[Any] = []

    def poll(self, timeout: float = 0.2) -> None:
        """Read what has arrived."""
        batch = self._consumer.consume(num_messages=1000, timeout=timeout)
        self.events.extend(self._codec.decode(m.value() or b"") for m in batch if m.error() is None)

    def wait_for(self, predicate: Any, count: int, timeout_s: float = 20.0) -> list[Any]:
        """Events matching ``predicate``, once at least ``count`` of them have arrived."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = [e for e in self.events if predicate(e)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            self.poll()

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
