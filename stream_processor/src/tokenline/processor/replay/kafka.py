"""The replay's Kafka side: read bounds, the current price document, reading and sending.

Everything uses confluent-kafka with the replay's own group id and manual assignment; nothing
is committed (a replay is defined by its time range, not by a group's position).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from confluent_kafka import (
    OFFSET_END,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from tokenline.common.kafka_security import librdkafka_config
from tokenline.processor.replay.errors import DeliveryError, ReplayError
from tokenline.processor.replay.scope import truncated_partitions

if TYPE_CHECKING:
    from collections.abc import Iterator

    from confluent_kafka import Message

    from tokenline.processor.replay.scope import ReplayScope
    from tokenline.processor.settings import ProcessorSettings

__all__ = [
    "ReadPlan",
    "Sender",
    "latest_price_document",
    "plan_reads",
    "read_records",
]

log = logging.getLogger(__name__)

_TIMEOUT_S = 30.0


def consumer(settings: ProcessorSettings, group_id: str) -> Consumer:
    """A consumer for manual assignment: no commits, large fetches."""
    return Consumer(
        {
            **librdkafka_config(settings),
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "fetch.max.bytes": 64 * 2**20,
            "max.partition.fetch.bytes": 16 * 2**20,
            "queued.max.messages.kbytes": 256 * 2**10,
        }
    )


@dataclass(frozen=True)
class ReadPlan:
    """Per partition ``[start, end)`` offsets to read, and the partitions retention truncated."""

    topic: str
    bounds: dict[int, tuple[int, int]]
    truncated: dict[int, int | None]

    @property
    def total(self) -> int:
        """Records to read (an upper bound when offsets have gaps)."""
        return sum(max(end - start, 0) for start, end in self.bounds.values())


def _partitions(client: Consumer, topic: str) -> list[int]:
    metadata = client.list_topics(topic, timeout=_TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None or not metadata.partitions:
        detail = metadata.error if metadata is not None else "unknown topic"
        raise ReplayError(f"cannot read topic {topic}: {detail}")
    return sorted(metadata.partitions)


def _offsets_at(client: Consumer, topic: str, parts: list[int], ms: int) -> dict[int, int]:
    found = client.offsets_for_times(
        [TopicPartition(topic, p, ms) for p in parts], timeout=_TIMEOUT_S
    )
    out: dict[int, int] = {}
    for tp in found:
        if tp.error is not None:
            raise ReplayError(f"offsets_for_times on {topic}[{tp.partition}]: {tp.error}")
        out[tp.partition] = tp.offset  # -1 (OFFSET_END): no record at or after ms
    return out


def _first_timestamp(client: Consumer, topic: str, partition: int, offset: int) -> int | None:
    client.assign([TopicPartition(topic, partition, offset)])
    try:
        for _ in range(int(_TIMEOUT_S)):
            message = client.poll(1.0)
            if message is None:
                continue
            if message.error() is not None:
                raise ReplayError(f"reading {topic}[{partition}]: {message.error()}")
            kind, ms = message.timestamp()
            return None if kind == TIMESTAMP_NOT_AVAILABLE else int(ms)
    finally:
        client.unassign()
    return None


def plan_reads(settings: ProcessorSettings, scope: ReplayScope, group_id: str) -> ReadPlan:
    """Find each raw partition's offsets for the scope, and whether retention cut it short."""
    topic = settings.topic(settings.raw_topic)
    client = consumer(settings, group_id)
    try:
        parts = _partitions(client, topic)
        marks = {
            p: client.get_watermark_offsets(TopicPartition(topic, p), _TIMEOUT_S) for p in parts
        }
        starts = _offsets_at(client, topic, parts, scope.read_from_ms)
        ends = _offsets_at(client, topic, parts, scope.read_to_ms)
        low = {p: int(marks[p][0]) for p in parts}
        first = {
            p: _first_timestamp(client, topic, p, low[p]) if marks[p][1] > low[p] else None
            for p in parts
            if low[p] > 0
        }
    except KafkaException as exc:
        raise ReplayError(f"cannot plan the read of {topic}: {exc}") from exc
    finally:
        client.close()
    bounds: dict[int, tuple[int, int]] = {}
    for p in parts:
        high = int(marks[p][1])
        start = high if starts[p] == OFFSET_END else max(starts[p], low[p])
        end = high if ends[p] == OFFSET_END else min(ends[p], high)
        bounds[p] = (start, max(start, end))
    return ReadPlan(topic, bounds, truncated_partitions(low, first, scope.read_from_ms))


def read_records(
    settings: ProcessorSettings, plan: ReadPlan, partitions: list[int], group_id: str
) -> Iterator[list[Message]]:
    """Batches of the planned records of ``partitions``, each partition in offset order."""
    remaining = {p: plan.bounds[p] for p in partitions if plan.bounds[p][1] > plan.bounds[p][0]}
    if not remaining:
        return
    client = consumer(settings, group_id)
    try:
        client.assign([TopicPartition(plan.topic, p, start) for p, (start, _) in remaining.items()])
        idle = 0
        while remaining:
            batch = client.consume(num_messages=10_000, timeout=1.0)
            keep: list[Message] = []
            for message in batch:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    raise ReplayError(f"reading {plan.topic}: {error}")
                bound = remaining.get(message.partition() or 0)
                if bound is not None and (message.offset() or 0) < bound[1]:
                    keep.append(message)
            if keep:
                yield keep
            idle = 0 if batch else idle + 1
            _drop_finished(client, plan.topic, remaining, keep, check_positions=idle > 0)
            if idle > _TIMEOUT_S:
                raise ReplayError(f"{plan.topic}: no records for {_TIMEOUT_S:.0f} s: {remaining}")
    finally:
        client.close()


def _drop_finished(
    client: Consumer,
    topic: str,
    remaining: dict[int, tuple[int, int]],
    batch: list[Message],
    *,
    check_positions: bool,
) -> None:
    last: dict[int, int] = {}
    for message in batch:
        last[message.partition()] = message.offset()  # type: ignore[index,assignment]
    done = [p for p, offset in last.items() if offset + 1 >= remaining[p][1]]
    if check_positions:
        positions = client.position([TopicPartition(topic, p) for p in remaining])
        done += [tp.partition for tp in positions if tp.offset >= remaining[tp.partition][1]]
    for p in set(done):
        del remaining[p]
    if done:
        client.incremental_unassign([TopicPartition(topic, p) for p in set(done)])


def latest_price_document(settings: ProcessorSettings, group_id: str) -> bytes | None:
    """The newest non-empty document on the compacted prices topic, or ``None``."""
    topic = settings.topic(settings.prices_topic)
    client = consumer(settings, group_id)
    try:
        metadata = client.list_topics(topic, timeout=_TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return None
        latest: bytes | None = None
        for partition in sorted(metadata.partitions):
            low, high = client.get_watermark_offsets(TopicPartition(topic, partition), _TIMEOUT_S)
            if high <= low:
                continue
            plan = ReadPlan(topic, {partition: (low, high)}, {})
            for batch in read_records(settings, plan, [partition], group_id):
                for message in batch:
                    latest = message.value() or latest
        return latest
    except KafkaException as exc:
        raise ReplayError(f"cannot read the prices topic {topic}: {exc}") from exc
    finally:
        client.close()


class Sender:
    """An idempotent producer (acks all) keyed like the processor (murmur2 on the key).

    Delivery failures are collected; :meth:`close` flushes and raises :class:`DeliveryError`
    if any record failed or was not acknowledged in time.
    """

    def __init__(self, settings: ProcessorSettings, **extra: Any) -> None:
        self.failures: list[str] = []
        self.sent = 0

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                self.failures.append(str(err))

        self._producer = Producer(
            {
                **librdkafka_config(settings),
                "enable.idempotence": True,
                "acks": "all",
                "partitioner": "murmur2_random",
                "compression.type": "lz4",
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "queue.buffering.max.messages": 500_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "on_delivery": delivered,
                **extra,
            }
        )

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Queue one record, waiting for room when the local queue is full."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                self._producer.poll(0.05)
        self.sent += 1
        if self.sent % 1000 == 0:
            self._producer.poll(0)
        if self.failures:
            raise DeliveryError(self.failures)

    def close(self, timeout_s: float = 120.0) -> None:
        """Flush; raise :class:`DeliveryError` unless every record was acknowledged."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self.failures:
            raise DeliveryError(self.failures, remaining)
