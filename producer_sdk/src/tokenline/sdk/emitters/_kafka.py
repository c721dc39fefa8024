"""The Kafka emitter: confluent-kafka, idempotent, acks=all, batched, compressed, capped.

It encodes and produces on the thread that calls ``emit`` (the SDK's background sender, never
the caller's thread). The librdkafka producer is created lazily in the process that uses it
and rebuilt in a forked child, where the parent's producer threads do not exist.

``close`` waits for acknowledgements within its time, then purges what librdkafka still holds
(queued or in flight): each purged record's delivery callback hands it to ``on_undelivered``
(the spool), so nothing Kafka did not acknowledge is left only in memory.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException, Producer

from tokenline.schemas import AvroCodec
from tokenline.sdk._settings import producer_config
from tokenline.sdk.emitters._counters import Counters

if TYPE_CHECKING:
    from collections.abc import Callable

    from confluent_kafka import Message

    from tokenline.schemas import UsageEvent
    from tokenline.sdk._settings import Settings

__all__ = ["KafkaEmitter"]

log = logging.getLogger(__name__)

_INHERITED: list[Producer] = []
_SLICE_S = 0.1


def _make_codec(settings: Settings) -> AvroCodec[Any]:
    registry = None
    if settings.schema_registry_url:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        registry = SchemaRegistryClient.new_client({"url": settings.schema_registry_url})
    return AvroCodec("tokenline.UsageEvent", registry=registry)


class KafkaEmitter:
    """Produces Avro usage events keyed by tenant; undeliverable ones go to ``on_undelivered``."""

    def __init__(self, settings: Settings, counters: Counters | None = None) -> None:
        self._conf = producer_config(settings)
        self._conf["error_cb"] = self._on_error
        self._conf["logger"] = logging.getLogger("tokenline.sdk.librdkafka")  # not stderr
        self.topic = settings.topic
        self._codec = _make_codec(settings)
        self._producer: Producer | None = None
        self._pid = 0
        self.on_undelivered: Callable[[bytes | None, bytes], None] | None = None
        self.delivered = 0
        self.failed = 0
        self.last_success = 0.0
        self.last_failure = 0.0
        self.brokers_down = False
        """librdkafka said no broker is reachable, and nothing was delivered since."""
        self._counters = counters if counters is not None else Counters()

    def _producer_here(self) -> Producer:
        if self._producer is None or self._pid != os.getpid():
            if self._producer is not None:
                # A forked child: the parent's producer has no threads here, and destroying it
                # would hang. Keep it referenced, never used, and build this process's own.
                _INHERITED.append(self._producer)
            self._producer = Producer(self._conf)
            self._pid = os.getpid()
        return self._producer

    def emit(self, event: UsageEvent) -> None:
        """Encode and produce one event (key = tenant_id, timestamp = occurred_at)."""
        value = self._codec.encode(event)
        timestamp_ms = int(event["occurred_at"].timestamp() * 1000)
        self.produce(event["tenant_id"].encode(), value, timestamp_ms)

    def produce(
        self,
        key: bytes | None,
        value: bytes,
        timestamp_ms: int = 0,
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        """Enqueue one encoded record; a full queue or a failed delivery goes to the fallback."""

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            ok = err is None
            if ok:
                self.delivered += 1
                self.last_success = time.monotonic()
                self.brokers_down = False
                self._counters.add("sent")
            else:
                self._undelivered(key, value, str(err))
            if on_result is not None:
                on_result(ok)

        try:
            self._producer_here().produce(
                self.topic, value=value, key=key, timestamp=timestamp_ms, on_delivery=delivered
            )
        except (BufferError, KafkaException) as exc:
            self._undelivered(key, value, str(exc))
            if on_result is not None:
                on_result(False)

    def _undelivered(self, key: bytes | None, value: bytes, why: str) -> None:
        self.failed += 1
        self.last_failure = time.monotonic()
        self._counters.add("send_errors")
        if self.on_undelivered is not None:
            self.on_undelivered(key, value)
        else:
            self._counters.add("no_spool")
            log.error("tokenline usage event not delivered and no spool configured: %s", why)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("tokenline producer fatal error, recreating the producer: %s", err)
            self._producer = None
        else:
            if err.code() == KafkaError._ALL_BROKERS_DOWN:
                self.brokers_down = True
            log.debug("tokenline producer: %s", err)

    @property
    def healthy(self) -> bool:
        """Whether the broker answered since the last failure."""
        return self.last_success >= self.last_failure

    def probe(self, timeout: float) -> bool:
        """Ask the broker for the topic's metadata; True when it answers."""
        try:
            self._producer_here().list_topics(self.topic, timeout=timeout)
        except KafkaException:
            return False
        self.last_success = time.monotonic()
        self.brokers_down = False
        return True

    def pending(self) -> int:
        """Records in librdkafka's queue, not yet delivered or failed."""
        return len(self._producer) if self._producer is not None and self._pid == os.getpid() else 0

    def poll(self) -> None:
        """Serve delivery callbacks."""
        if self._producer is not None and self._pid == os.getpid():
            self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for in-flight records; return how many remain."""
        if self._producer is None or self._pid != os.getpid():
            return 0
        return int(self._producer.flush(timeout))

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` for acknowledgements, then purge the rest to ``on_undelivered``.

        The wait ends early when librdkafka reports every broker down: nothing more will be
        acknowledged in time. Purged records (queued, or in flight with no answer yet) come
        back through their delivery callbacks as failures, so they go to the spool; one in
        flight may also have reached the topic, and is then sent twice (the sink's event_id
        upsert keeps one).
        """
        producer = self._producer
        if producer is None or self._pid != os.getpid():
            return
        deadline = time.monotonic() + timeout
        while len(producer) and not self.brokers_down:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            producer.flush(min(_SLICE_S, left))
        if not len(producer):
            return
        producer.purge(in_queue=True, in_flight=True, blocking=True)
        serve_until = time.monotonic() + 1.0  # purged records' callbacks are served at once
        while len(producer) and time.monotonic() < serve_until:
            producer.poll(0.01)

    def after_fork(self) -> None:
        """In a forked child: start from a clean state (the producer is rebuilt on first use)."""
        self.delivered = self.failed = 0
        self.last_success = self.last_failure = 0.0
        self.brokers_down = False
