"""A UsageEvent survives the real broker.

confluent-kafka (the SDK's client) produces, aiokafka (Faust's client) consumes.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient

from tests import factories
from tokenline.schemas import AvroCodec

pytestmark = pytest.mark.integration

PARTITIONS = 4


def _create_topic(bootstrap: str) -> str:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the result
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)]
    )
    futures[topic].result(timeout=30)
    return topic


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["single-object", "confluent"])
async def test_usage_event_round_trips_through_kafka(kafka_bootstrap: str, encoding: str) -> None:
    registry = (
        SchemaRegistryClient.new_client({"url": "mock://smoke"})
        if encoding == "confluent"
        else None
    )
    codec = AvroCodec[Any]("tokenline.UsageEvent", registry=registry)
    topic = _create_topic(kafka_bootstrap)
    events = [
        factories.usage_event(tenant_id=tenant, event_id=uuid.uuid4(), producer_seq=seq)
        for seq, tenant in enumerate(["acme", "globex", "initech", "umbrella", "acme"])
    ]

    delivered: list[tuple[bytes, int]] = []
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "zstd",
            "partitioner": "murmur2_random",
        }
    )
    for event in events:
        producer.produce(
            topic,
            key=event["tenant_id"].encode(),
            value=codec.encode(event),
            on_delivery=lambda err, msg: (
                delivered.append((msg.key(), msg.partition()))
                if err is None
                else pytest.fail(str(err))
            ),
        )
    assert producer.flush(30) == 0
    assert len(delivered) == len(events)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        received: list[Any] = []
        while len(received) < len(events):
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, "no records within 10 s"
            for records in batches.values():
                received.extend(records)
    finally:
        await consumer.stop()

    by_id = {codec.decode(r.value)["event_id"]: r for r in received}
    for event in events:
        record = by_id[event["event_id"]]
        assert codec.decode(record.value) == event
        # librdkafka's murmur2_random puts a key where aiokafka (and so Faust) would
        partitioner = DefaultPartitioner()
        assert record.partition == partitioner(record.key, list(range(PARTITIONS)), None)
