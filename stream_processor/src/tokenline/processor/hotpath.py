"""The raw topic's consumer: batches in, one Kafka transaction per batch out.

Runs on a thread of its own inside the Faust worker (see ``agents``). Each turn:

1. take up to ``batch_max_events`` raw records (waiting at most ``batch_max_ms``);
2. price them and sum their windows (:meth:`ProcessorRuntime.handle_batch`, no Kafka there);
3. in one transaction: produce the priced events, the dead letters and the window deltas, add
   the batch's consumer offsets to it, commit. Either all of it is visible to
   ``read_committed`` consumers (the sink, anyone reading the rollup feed) and the offsets
   move on, or none of it is and the records are read again.

The offsets and the commit (two broker round trips) run on a committer thread while this
thread reads and prices the next batch; that batch's transaction begins only once the previous
commit has ended. When a commit fails and is aborted, the batch priced meanwhile is dropped
too, and both are read again from their first offsets. A partition is revoked only after the
commit in flight has ended (the revoke callback waits for it), so whatever its next owner reads
from the committed offsets was not produced here.

The consumer is a static member of the group (``group.instance.id`` = the worker's name), so
a worker restarted within ``session_timeout_ms`` takes its partitions back without a
rebalance; partitions move incrementally (cooperative-sticky). The transactional id is
derived from the same name: a restarted worker aborts whatever its previous run left open, and
a worker that lost its partitions can no longer commit for them (the group generation fences
it). Errors the Kafka clients report over and over during an outage are logged a few times,
not thousands (``RateLimitedLog``).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from tokenline.common.kafka_security import librdkafka_config
from tokenline.common.ops.kafkastats import STATS_INTERVAL_MS, assigned_lags
from tokenline.common.ops.ratelog import KafkaClientLog, RateLimitedLog

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Sequence

    from confluent_kafka import Message

    from tokenline.processor.runtime import Batch, ProcessorRuntime, RawRecord
    from tokenline.processor.settings import ProcessorSettings

__all__ = ["HotPath", "consumer_config", "producer_config"]

log = logging.getLogger(__name__)

_TXN_TIMEOUT_S = 10.0  # per call; a retriable failure is retried until the worker stops


def consumer_config(settings: ProcessorSettings) -> dict[str, Any]:
    """The raw topic's consumer: static member, cooperative, offsets only in transactions."""
    return {
        **librdkafka_config(settings),
        "group.id": settings.app_id,
        "group.instance.id": settings.worker_id,
        "client.id": f"{settings.worker_id}-raw",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": settings.session_timeout_ms,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }


def producer_config(settings: ProcessorSettings) -> dict[str, Any]:
    """The transactional producer of priced events, dead letters and window deltas."""
    return {
        **librdkafka_config(settings),
        "client.id": f"{settings.worker_id}-out",
        "transactional.id": f"{settings.app_id}.{settings.worker_id}",
        "transaction.timeout.ms": settings.transaction_timeout_ms,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.producer_linger_ms,
        "compression.type": settings.producer_compression,
        "queue.buffering.max.messages": 1_000_000,
        # ProcessorRuntime hands over nothing larger (it dead-letters or cuts it): the two agree.
        "message.max.bytes": settings.max_message_bytes,
    }


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A batch whose offsets and commit run on the committer thread."""

    done: Future[None]
    first: dict[int, int]
    """The batch's first offset in each partition: where it is read again if aborted."""


class HotPath:
    """Consumes the raw topic in batches and commits each batch's outputs transactionally."""

    def __init__(self, settings: ProcessorSettings, runtime: ProcessorRuntime) -> None:
        self._settings = settings
        self._runtime = runtime
        self._raw = settings.topic(settings.raw_topic)
        self._priced = settings.topic(settings.priced_topic)
        self._dlq = settings.topic(settings.dlq_topic)
        self._rollups = settings.topic(settings.rollup_topic)
        self._say = RateLimitedLog(log)
        self._owned: set[int] = set()
        self._stopping: threading.Event | None = None
        self._clients_now: tuple[Consumer, Producer] | None = None
        self._committer: ThreadPoolExecutor | None = None
        self._in_flight: _InFlight | None = None
        self._rewind: dict[int, int] | None = None
        """After an abort: the first offset to read again in each partition."""
        self.batches = 0
        self.alive_at = time.monotonic()
        """When the loop last made progress (a consume returned, a transactional call ended)."""

    def _clients(self) -> tuple[Consumer, Producer]:
        # Both clients' errors and log lines, rate-limited by kind: an outage costs a few lines.
        kafka_log = KafkaClientLog(self._say, "processor")
        errors = self._runtime.metrics.errors

        def on_error(err: KafkaError) -> None:
            errors.labels("kafka").inc()
            kafka_log.error(err)

        clients = {"error_cb": on_error, "logger": kafka_log}
        consumer = Consumer(
            {
                **consumer_config(self._settings),
                **clients,
                "statistics.interval.ms": STATS_INTERVAL_MS,
                "stats_cb": self._on_stats,
            }
        )
        producer = Producer({**producer_config(self._settings), **clients})
        return consumer, producer

    def run(self, stop: threading.Event) -> None:
        """Process batches until ``stop`` is set; a fatal Kafka error is raised."""
        self._stopping = stop
        consumer, producer = self._clients_now = self._clients()
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="raw-topic-commit")
        try:
            producer.init_transactions(_TXN_TIMEOUT_S)
            consumer.subscribe(
                [self._raw], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
            )
            log.info("consuming %s as %s", self._raw, self._settings.worker_id)
            health = self._runtime.health
            while not stop.is_set():
                health.beat()
                if self._in_flight is None:
                    # While a commit is in flight, progress is its own: a commit call that
                    # hangs (seen after a broker restart) must show, however busy this loop.
                    self.alive_at = time.monotonic()
                messages = consumer.consume(
                    self._settings.batch_max_events, self._settings.batch_max_ms / 1000
                )
                records = self._records(messages)
                if self._rewound(consumer, records):
                    continue
                if records:
                    self._process(consumer, producer, records)
                elif self._in_flight is not None and self._in_flight.done.done():
                    self._settle()
            self._settle()
        finally:
            self._committer.shutdown(wait=False)  # settled above, unless failing
            consumer.close()
            producer.flush(5)

    def _records(self, messages: Sequence[Message]) -> list[RawRecord]:
        """The records of ``messages``: errors are logged, records of unowned partitions left.

        A partition revoked (or lost) during the ``consume`` that fetched its records is no
        longer this worker's: those records are its next owner's to read.
        """
        records: list[RawRecord] = []
        owned = self._owned
        for m in messages:
            err = m.error()
            if err is not None:
                self._say(logging.WARNING, f"consume:{err.code()}", f"consuming: {err.str()}")
                continue
            partition = m.partition()
            if partition not in owned:
                continue
            _kind, timestamp = m.timestamp()
            record = (m.key(), m.value(), m.topic(), partition, m.offset(), timestamp or None)
            records.append(cast("RawRecord", record))  # a fetched message has all three
        return records

    def _process(self, consumer: Consumer, producer: Producer, records: list[RawRecord]) -> None:
        batch = self._runtime.handle_batch(records, datetime.now(UTC))
        if not self._settle():
            # The previous batch was aborted: this one is dropped and read again after it.
            self._rewound(consumer, records)
            return
        last = {partition: offset for _k, _v, _t, partition, offset, _ts in records}
        offsets = [TopicPartition(self._raw, p, o + 1) for p, o in last.items()]
        try:
            self._produce_batch(producer, batch)
        except KafkaException as exc:
            self._abort(exc, _firsts(records))
            self._rewound(consumer, [])
            return
        assert self._committer is not None
        metadata = consumer.consumer_group_metadata()
        done = self._committer.submit(self._commit, producer, offsets, metadata)
        self._in_flight = _InFlight(done, _firsts(records))

    def _produce_batch(self, producer: Producer, batch: Batch) -> None:
        self._step(producer.begin_transaction)
        for topic, records in (
            (self._priced, batch.priced),
            (self._dlq, batch.dead),
            (self._rollups, batch.rollups),
        ):
            produce = producer.produce
            for key, value in records:
                try:
                    produce(topic, value, key)
                except BufferError:  # the local queue is full: let librdkafka send some
                    self._produce(producer, topic, key, value)

    def _commit(self, producer: Producer, offsets: list[TopicPartition], metadata: Any) -> None:
        """On the committer thread: the batch's offsets into its transaction, and the commit."""
        self._step(producer.send_offsets_to_transaction, offsets, metadata, _TXN_TIMEOUT_S)
        self._step(producer.commit_transaction, _TXN_TIMEOUT_S)

    def _settle(self) -> bool:
        """Wait for the commit in flight; ``False`` when it failed and was aborted."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return True
        try:
            in_flight.done.result()
        except KafkaException as exc:
            self._abort(exc, in_flight.first)
            return False
        self.batches += 1
        return True

    def _abort(self, exc: KafkaException, first: dict[int, int]) -> None:
        """Abort the open transaction; the records from ``first`` on are to be read again.

        No seek here: this may run in a rebalance callback, inside a ``consume`` whose
        records are not returned yet. :meth:`_rewound` seeks after it.
        """
        err: KafkaError = exc.args[0]
        self._runtime.metrics.errors.labels("transaction").inc()
        if not err.txn_requires_abort():
            raise exc
        assert self._clients_now is not None
        self._say(logging.WARNING, "abort", f"transaction aborted, batch read again: {err}")
        self._step(self._clients_now[1].abort_transaction, _TXN_TIMEOUT_S)
        self._runtime.forget_recent()  # the batches' ids count when read again
        self._rewind = _earliest(self._rewind or {}, first)

    def _rewound(self, consumer: Consumer, records: Sequence[RawRecord]) -> bool:
        """After an abort: drop ``records`` and seek back to what is to be read again."""
        if self._rewind is None:
            return False
        rewind, self._rewind = _earliest(self._rewind, _firsts(records)), None
        for partition, offset in rewind.items():
            if partition in self._owned:  # else its next owner reads from the committed offset
                consumer.seek(TopicPartition(self._raw, partition, offset))
        return True

    def _step(self, call: Callable[..., None], *args: Any) -> None:
        """One transactional call, repeated while it fails with a retriable error."""
        while True:
            started = self.alive_at = time.monotonic()
            try:
                call(*args)
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if not err.retriable() or (self._stopping is not None and self._stopping.is_set()):
                    raise  # stopping: the open transaction is aborted at the next start
                self._runtime.metrics.errors.labels("transaction").inc()
                waited = time.monotonic() - started
                self._say(
                    logging.WARNING,
                    f"retry:{call.__name__}",
                    f"{call.__name__} retried after {waited:.1f} s: {err}",
                )

    @staticmethod
    def _produce(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, value=value, key=key)
                return
            except BufferError:  # the local queue is full: let librdkafka send some
                producer.poll(0.05)

    def _on_stats(self, stats: str) -> None:
        """Librdkafka's statistics (every few seconds): the lag of each assigned partition."""
        lags = assigned_lags(stats, self._raw)
        self._runtime.assigned_lag({p: lag for p, lag in lags.items() if p in self._owned})

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Cooperative rebalancing: ``partitions`` are the ones added (possibly none).
        self._owned.update(p.partition for p in partitions)
        log.info("assigned %s, now %s", sorted(p.partition for p in partitions), self._owned)
        self._runtime.partitions_changed(set(self._owned))

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Called from consume(), between batches: once the commit in flight has ended, every
        # processed record is committed (or aborted, and read again by the next owner).
        self._settle()
        gone = {p.partition for p in partitions}
        self._owned -= gone
        log.info("revoked %s", sorted(gone))
        self._runtime.partitions_changed(set(self._owned), gone)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._settle()  # fenced: the commit in flight fails and is aborted
        gone = {p.partition for p in partitions}
        self._owned -= gone
        log.warning("lost %s (another worker took them over)", sorted(gone))
        self._runtime.partitions_changed(set(self._owned), gone)


def _firsts(records: Sequence[RawRecord]) -> dict[int, int]:
    """The first offset of each partition among ``records`` (in partition order)."""
    first: dict[int, int] = {}
    for _key, _value, _topic, partition, offset, _ts in records:
        first.setdefault(partition, offset)
    return first


def _earliest(a: dict[int, int], b: dict[int, int]) -> dict[int, int]:
    """Per partition, the smaller offset of the two."""
    return {p: min(o for o in (a.get(p), b.get(p)) if o is not None) for p in a.keys() | b.keys()}
