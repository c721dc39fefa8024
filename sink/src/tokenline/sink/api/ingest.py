"""Produce accepted events to the raw topic and wait for Kafka's acknowledgement.

One idempotent confluent-kafka producer per API process (``enable.idempotence``, ``acks=all``,
the murmur2 partitioner, so a tenant's events land on the partition the processor expects,
keyed by ``tenant_id``). A background thread serves delivery callbacks; a request waits
until every one of its events is acknowledged, so a 202 means the events are in Kafka. A
retry after a timeout re-sends the same ``event_id``s, and the sink keeps one copy of each.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from confluent_kafka import KafkaError, Producer

from tokenline.common.kafka_security import librdkafka_config
from tokenline.schemas import AvroCodec
from tokenline.sink.errors import SinkError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenline.sink.api.settings import ApiSettings

__all__ = ["EventSender", "IngestFailed", "KafkaEventSender", "producer_config"]


class IngestFailed(SinkError):
    """Kafka did not acknowledge every event in time (the client should retry)."""


class EventSender(Protocol):
    """Where accepted events go."""

    def send(self, records: Sequence[dict[str, Any]], timeout_s: float) -> None:
        """Return once every record is acknowledged; raise :class:`IngestFailed` otherwise."""

    def close(self) -> None:
        """Flush and stop."""


def producer_config(settings: ApiSettings) -> dict[str, Any]:
    """The librdkafka configuration of the API's producer."""
    return {
        **librdkafka_config(settings),
        "client.id": "tokenline-api",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "zstd",
        "partitioner": "murmur2_random",
    }


class _Wait:
    def __init__(self, count: int) -> None:
        self.left = count
        self.errors: list[str] = []
        self.done = threading.Event()
        self.lock = threading.Lock()
        if count == 0:
            self.done.set()

    def delivered(self, err: KafkaError | None, _msg: object) -> None:
        with self.lock:
            if err is not None:
                self.errors.append(str(err))
            self.left -= 1
            if self.left == 0:
                self.done.set()


class KafkaEventSender:
    """Encodes UsageEvents with the shipped schema and produces them to the raw topic."""

    def __init__(self, settings: ApiSettings) -> None:
        self._topic = settings.raw_topic_name
        self._codec: AvroCodec[Any] = AvroCodec("tokenline.UsageEvent")
        self._producer = Producer(producer_config(settings))
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="tokenline-api-kafka", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def send(self, records: Sequence[dict[str, Any]], timeout_s: float) -> None:
        """Produce ``records`` keyed by tenant and wait for all acknowledgements."""
        wait = _Wait(len(records))
        for record in records:
            value = self._codec.encode(record)
            key = record["tenant_id"].encode()
            while True:
                try:
                    self._producer.produce(self._topic, value, key, on_delivery=wait.delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    self._producer.poll(0.05)
        if not wait.done.wait(timeout_s):
            msg = f"Kafka did not acknowledge {wait.left} of {len(records)} events in time"
            raise IngestFailed(msg)
        if wait.errors:
            msg = f"Kafka refused {len(wait.errors)} events: {wait.errors[0]}"
            raise IngestFailed(msg)

    def close(self) -> None:
        """Flush what is queued (10 s at most) and stop the poller."""
        self._stop.set()
        self._poller.join(timeout=5)
        self._producer.flush(10)
