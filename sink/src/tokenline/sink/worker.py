"""The sink worker: Kafka batches in, one PostgreSQL transaction per batch, then the offsets.

Run it with ``tokenline sink run``. :meth:`SinkWorker.land` holds the order that makes a crash
harmless; the librdkafka configuration is built in :func:`consumer_config` and
:func:`producer_config` only.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from tokenline.common.kafka_security import librdkafka_config
from tokenline.common.ops.health import Health, HealthServer
from tokenline.common.ops.kafkastats import STATS_INTERVAL_MS, assigned_lags
from tokenline.common.ops.preflight import database_problem, kafka_problem
from tokenline.common.ops.ratelog import KafkaClientLog, RateLimitedLog
from tokenline.schemas import AvroCodec, DeadLetter, DecodeError
from tokenline.schemas.oversize import fit_dead_letter
from tokenline.sink.batch import offsets_to_commit
from tokenline.sink.errors import DeadLetterError, SinkError
from tokenline.sink.metrics import MeteredStore, SinkMetrics
from tokenline.sink.native_rows import NativeRows
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore, RetryingStore

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenline.sink.settings import SinkSettings
    from tokenline.sink.store import Row, UsageStore

__all__ = ["SinkWorker", "consumer_config", "producer_config"]

log = logging.getLogger(__name__)

_DLQ_FLUSH_TIMEOUT_S = 30.0
_PROBE_TIMEOUT_S = 3.0
#: The young generation's threshold while the worker runs (see ``SinkWorker.run``).
_YOUNG_OBJECTS = 50_000


class _Stopping(SinkError):
    """Raised inside a retry wait when the worker is asked to stop."""


@dataclass
class _Decoded:
    """One batch after step 1 of :meth:`SinkWorker.land`: rows, their messages, dead letters."""

    batch: list[Message]
    events: list[Row] = field(default_factory=list)
    origin: dict[int, Message] = field(default_factory=dict)
    dead: list[tuple[Message, str, str, str]] = field(default_factory=list)
    #: The next offset of each (topic, partition) in the batch: what landing it commits.
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)


def consumer_config(settings: SinkSettings) -> dict[str, Any]:
    """Return the librdkafka consumer configuration of the sink."""
    config: dict[str, Any] = {
        **librdkafka_config(settings),
        "group.id": settings.group_id,
        "client.id": settings.worker_name or "tokenline-sink",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
    }
    if settings.worker_name:
        # Static membership: a restarted worker takes its partitions back at once.
        config["group.instance.id"] = settings.worker_name
    return config


def readiness(settings: SinkSettings) -> Health:
    """The sink's checks: Kafka and the database answer, partitions assigned, lag bounded."""
    config = librdkafka_config(settings)
    url = settings.database_url.get_secret_value()

    def kafka() -> str | None:
        found = kafka_problem(config, timeout_s=_PROBE_TIMEOUT_S)
        return None if found is None else found[1]

    def database() -> str | None:
        found = database_problem(url, relations=("usage_events",), timeout_s=_PROBE_TIMEOUT_S)
        return None if found is None else found[1]

    health = Health()
    health.add_probe("kafka", kafka)
    health.add_probe("database", database)
    health.report("partitions", ok=False, detail="waiting for the group's assignment")
    if settings.ready_max_lag:
        health.report("lag", ok=False, detail="not measured yet")
    return health


def producer_config(settings: SinkSettings) -> dict[str, Any]:
    """Return the librdkafka configuration of the dead-letter producer."""
    return {
        **librdkafka_config(settings),
        "client.id": f"{settings.worker_name or 'tokenline-sink'}-dlq",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.max.bytes": settings.max_message_bytes,
    }


class SinkWorker:
    """Consumes priced events and lands them and their rollups through a :class:`UsageStore`."""

    def __init__(
        self,
        settings: SinkSettings,
        *,
        store: UsageStore | None = None,
        metrics: SinkMetrics | None = None,
        health: Health | None = None,
    ) -> None:
        self._settings = settings
        self.metrics = metrics or SinkMetrics()
        self.health = health or readiness(settings)
        self._say = RateLimitedLog(log)
        self._kafka_log = KafkaClientLog(self._say, "sink")
        self._assigned: set[tuple[str, int]] = set()
        self._priced_topic = settings.topic(settings.priced_topic)
        self._dlq_topic = settings.topic(settings.dlq_topic)
        self._codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
        self._dlq_codec = AvroCodec[Any]("tokenline.DeadLetter")
        #: Reads priced events straight into COPY rows (None: the Python path reads them all).
        self._native_rows = NativeRows.load()
        #: True while a batch lands and the next one is not fetched yet: the store's
        #: ``meanwhile`` then fetches it into ``_upcoming`` and starts decoding it (see run).
        self._fetch_due = False
        self._upcoming: Future[_Decoded] | None = None
        self._decoder: ThreadPoolExecutor | None = None
        #: The next offset of each partition landed, committed asynchronously (see :meth:`_commit`).
        self._last_offsets: dict[tuple[str, int], int] = {}
        #: What a landed batch leaves to do (its offset commit, its freshness count), done while
        #: PostgreSQL takes the next batch in, or before the worker waits (see _run_chores).
        self._chores: list[Callable[[], None]] = []
        #: What ``meanwhile`` raised, raised again when the write returns.
        self._meanwhile_error: Exception | None = None
        inner = store or PostgresUsageStore(
            settings.database_url.get_secret_value(),
            connect_timeout_s=settings.db_connect_timeout_s,
            meanwhile=self._events_sent,
        )
        self._store: UsageStore = MeteredStore(
            RetryingStore(
                inner,
                initial_ms=settings.retry_initial_ms,
                max_ms=settings.retry_max_ms,
                wait=self._wait_paused,
                on_retry=lambda _attempt, _exc: self._retried(),
            ),
            self.metrics,
            later=self._chores.append,
        )
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._carry: list[Message] = []
        self._paused = False
        self._stop = threading.Event()

    def _retried(self) -> None:
        self.metrics.retries.inc()
        self.metrics.errors.labels("database").inc()

    def _kafka_error(self, err: KafkaError) -> None:
        self.metrics.errors.labels("kafka").inc()
        self._kafka_log.error(err)

    # ------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Ask :meth:`run` to return after the batch in hand (safe from any thread)."""
        self._stop.set()

    def run(self) -> None:
        """Consume and land batches until :meth:`stop`; then close everything."""
        port = self._settings.metrics_port
        http = HealthServer(self.health, self.metrics.registry, port).start() if port else None
        # Errors and log lines of both clients, rate-limited: an outage costs a few lines.
        clients = {"error_cb": self._kafka_error, "logger": self._kafka_log}
        self._consumer = Consumer(
            {
                **consumer_config(self._settings),
                **clients,
                "on_commit": self._committed,
                "statistics.interval.ms": STATS_INTERVAL_MS,
                "stats_cb": self._on_stats,
            }
        )
        self._producer = Producer({**producer_config(self._settings), **clients})
        # The processor's rollup topic is a live feed for other consumers: usage_rollup_1m is
        # built here from the events themselves (see tokenline.sink.rollups).
        self._consumer.subscribe(
            [self._priced_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info("sink consuming %s", self._priced_topic)
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="tokenline-sink-decode")
        # The cycle collector's youngest generation at 50,000 objects, not 700: a batch makes
        # tens of thousands of short-lived containers (messages, rows, keys) and no cycles, and
        # collecting every 700 cost about 3 CPU µs a row (bench/sink.py). Restored on return.
        collector = gc.get_threshold()
        gc.set_threshold(_YOUNG_OBJECTS, *collector[1:])
        try:
            # Fetch and decode ahead: while PostgreSQL takes batch N's events in (the store's
            # ``meanwhile``: the COPY is sent, the server inserts), this thread takes batch N+1
            # from what the consumer already holds and hands it to the decoding thread; then it
            # waits for the server without the GIL. Started sooner, decoding would hold up this
            # thread's own work on batch N. Batches still land one at a time, in order, each by
            # land()'s steps 2-4; only this thread uses the consumer. A quiet topic adds no
            # wait: a batch is waited for only when none is in hand.
            ahead: Future[_Decoded] | None = None
            while not self._stop.is_set():
                self.health.beat()
                if ahead is None:
                    self._run_chores()  # nothing to overlap them with: now
                    ahead = self._decode_ahead(self._next_batch())
                    continue
                self._fetch_due = True
                try:
                    self._land_decoded(ahead.result())
                finally:
                    self._fetch_due = False
                ahead = self._take_upcoming()
            if ahead is not None:  # the batch in hand when asked to stop
                self._land_decoded(ahead.result())
        except _Stopping:
            log.info("stopped while PostgreSQL was unavailable; the batch will be replayed")
        finally:
            gc.set_threshold(*collector)
            self._decoder.shutdown(wait=True, cancel_futures=True)
            self._run_chores()
            self._commit_last()
            self._consumer.close()
            self._producer.flush(5)
            self._store.close()
            if http is not None:
                http.close()

    def _next_batch(self, *, wait: bool = True) -> list[Message]:
        """Up to batch_max_rows records within batch_max_ms; without ``wait``, those at hand."""
        assert self._consumer is not None
        batch, self._carry = self._carry, []
        limit = self._settings.batch_max_rows
        if not wait:
            if len(batch) < limit:
                got = self._consumer.consume(limit - len(batch), timeout=0)
                batch.extend(m for m in got if self._usable(m))
            return batch
        deadline = time.monotonic() + self._settings.batch_max_ms / 1000
        while len(batch) < limit and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for message in self._consumer.consume(limit - len(batch), timeout=remaining):
                if self._usable(message):
                    batch.append(message)
        return batch

    def _usable(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return True
        if error.fatal():
            raise KafkaException(error)
        if error.code() != KafkaError._PARTITION_EOF:
            self._say(logging.WARNING, f"consume:{error.code()}", f"consumer error: {error}")
        return False

    # ------------------------------------------------------------------ readiness
    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        log.info("assigned %s", sorted(tp.partition for tp in partitions))
        self._report_assignment()

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("revoked %s", sorted(tp.partition for tp in partitions))
        for tp in partitions:
            self._assigned.discard((tp.topic, tp.partition))
            # Its new owner commits it from now on: a late commit here could only rewind it.
            self._last_offsets.pop((tp.topic, tp.partition), None)
            with contextlib.suppress(KeyError):  # no lag measured for it yet
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self._report_assignment()

    def _report_assignment(self) -> None:
        shown = ", ".join(str(p) for _t, p in sorted(self._assigned))
        shown = shown or "none: more workers than partitions"
        count = len(self._assigned)
        self.health.report("partitions", ok=True, detail=f"{count} assigned ({shown})")

    def _on_stats(self, stats: str) -> None:
        """Librdkafka's statistics (every few seconds): each assigned partition's lag."""
        lags = assigned_lags(stats, self._priced_topic)
        total = 0
        for partition, lag in lags.items():
            if (self._priced_topic, partition) in self._assigned:
                total += lag
                self.metrics.consumer_lag.labels(self._priced_topic, str(partition)).set(lag)
        limit = self._settings.ready_max_lag
        if limit:
            self.health.report("lag", ok=total <= limit, detail=f"{total} behind (at most {limit})")

    # ------------------------------------------------------------------ one batch
    def land(self, batch: list[Message]) -> None:
        """Land one batch, in this order, so that a crash anywhere loses and doubles nothing.

        1. Decode every record; undecodable ones are set aside for the dead-letter topic.
        2. Write all rows, and what they add to ``usage_rollup_1m``, in ONE database
           transaction (retried while PostgreSQL is down, with the partitions paused); rows
           PostgreSQL refuses are found by bisection and set aside.
        3. Send the set-aside records to the dead-letter topic and wait for the broker's ack.
        4. THEN commit the Kafka offsets, without waiting for the broker's answer. In
           :meth:`run` this step is a chore (:meth:`_run_chores`) done while PostgreSQL takes
           the next batch in; the last offsets are committed synchronously on stop.

        A crash between the database commit (2) and the offset commit (4), or a commit the
        broker never got, replays the batch: the upserts make that harmless (same rows, same
        costs, and an event already stored adds nothing to the rollups; the dead-letter topic
        may get a record twice). Offsets are never committed before the rows are durable.
        """
        self._land_decoded(self._decode(batch))
        self._raise_meanwhile_error()
        self._run_chores()

    def _events_sent(self) -> None:
        """The store's ``meanwhile``: the landing batch's events are with PostgreSQL.

        The last batch's chores are done, then the next batch is fetched and its decoding
        started, while the server inserts.
        """
        try:
            self._run_chores()
            if self._fetch_due:
                self._fetch_due = False
                self._upcoming = self._decode_ahead(self._next_batch(wait=False))
        except Exception as exc:  # noqa: BLE001 - raised again, below
            # Raised again once the write returns (see _take_upcoming): a Kafka failure here is
            # not the store's to retry, and a batch half fetched must not be landed past.
            self._meanwhile_error = exc

    def _run_chores(self) -> None:
        """Do what landed batches left to do, in the order they left it.

        Step 4 of :meth:`land` (the offset commit) is one: it follows the batch's database
        commit and dead letters always, and a batch left uncommitted by a crash is replayed,
        which the store makes a no-op.
        """
        while self._chores:
            self._chores.pop(0)()  # one that raises leaves the later ones to do

    def _raise_meanwhile_error(self) -> None:
        """Raise what ``meanwhile`` raised during the last write, if anything."""
        error, self._meanwhile_error = self._meanwhile_error, None
        if error is not None:
            raise error

    def _take_upcoming(self) -> Future[_Decoded] | None:
        """The batch fetched while the last one landed; fetched now if the store sent no events.

        (The store calls ``meanwhile`` only when it sends events.)
        """
        self._raise_meanwhile_error()
        upcoming, self._upcoming = self._upcoming, None
        return upcoming or self._decode_ahead(self._next_batch(wait=False))

    def _decode_ahead(self, batch: list[Message]) -> Future[_Decoded] | None:
        """Start decoding ``batch`` in the decoding thread (None: no batch)."""
        assert self._decoder is not None
        return self._decoder.submit(self._decode, batch) if batch else None

    def _decode(self, batch: list[Message]) -> _Decoded:
        """Step 1 of :meth:`land`: decode and flatten; set undecodable records aside."""
        decoded = _Decoded(batch)
        decoded.offsets = offsets_to_commit(
            (m.topic() or "", m.partition() or 0, m.offset() or 0) for m in batch
        )
        values = [message.value() or b"" for message in batch]
        native = self._native_rows.rows(values) if self._native_rows else [None] * len(values)
        # What the native reader refuses is read by the Python path (rows or dead letters).
        refused = [value for value, row in zip(values, native, strict=True) if row is None]
        records = iter(self._codec.decode_many(refused) if refused else ())
        for message, made in zip(batch, native, strict=True):
            row = made
            if row is None:
                record = next(records)
                if isinstance(record, DecodeError):
                    decoded.dead.append((message, record.reason_code, str(record), "decode"))
                    continue
                row = event_row(record)
            decoded.events.append(row)
            decoded.origin[id(row)] = message
        return decoded

    def _land_decoded(self, decoded: _Decoded) -> None:
        """Steps 2 to 4 of :meth:`land`: write, dead-letter, THEN commit the offsets."""
        refused = self._store.write(decoded.events)
        dead = decoded.dead
        dead.extend((decoded.origin[id(r.row)], r.reason_code, r.reason, "sink") for r in refused)
        self._resume()
        if dead:
            self._dead_letter(dead)
        self._chores.append(partial(self._commit, decoded.offsets))
        # The batch's messages are let go by a chore too: freed as the batch was dropped, they
        # took the worker's time between the commit and the next batch, the server idle.
        self._chores.append(decoded.batch.clear)

    def _dead_letter(self, dead: list[tuple[Message, str, str, str]]) -> None:
        assert self._producer is not None
        failures: list[str] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        now = datetime.now(UTC)
        for message, reason_code, reason, stage in dead:
            _kind, timestamp_ms = message.timestamp()
            record: DeadLetter = {
                "reason_code": reason_code,
                "reason": reason,
                "stage": stage,
                "source_topic": message.topic() or "",
                "source_partition": message.partition() or 0,
                "source_offset": message.offset() or 0,
                "source_timestamp_ms": timestamp_ms if timestamp_ms > 0 else None,
                "key": message.key(),
                "value": message.value(),
                "failed_at": now,
                "worker": self._settings.worker_name,
            }
            # A priced record may be near the size limit itself: the dead letter is cut to fit.
            value = fit_dead_letter(
                record,
                kafka_key=message.key(),
                max_bytes=self._settings.max_message_bytes,
                encode=self._dlq_codec.encode,
            )
            self._producer.produce(
                self._dlq_topic, key=message.key(), value=value, on_delivery=delivered
            )
            self.metrics.dead_letters.labels(reason_code).inc()
            self.metrics.errors.labels("dead_letter").inc()
            log.warning(
                "dead-lettered %s[%s]@%s: %s: %s",
                message.topic(),
                message.partition(),
                message.offset(),
                reason_code,
                reason,
            )
        left = self._producer.flush(_DLQ_FLUSH_TIMEOUT_S)
        if left or failures:
            msg = f"{left} dead letter(s) undelivered; errors: {failures}"
            raise DeadLetterError(msg)

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit the batch's offsets, asynchronously: step 4 of :meth:`land`.

        The batch is durable in PostgreSQL already. A commit that never lands (a crash, the
        partitions moved) replays batches the store lands as no-ops, so nothing waits for the
        broker's answer: failures are counted and logged by :meth:`_committed`. The worker's
        last offsets are committed synchronously when it stops (:meth:`_commit_last`).
        """
        assert self._consumer is not None
        # A batch landed before a rebalance may hold partitions another worker owns now: their
        # offsets are its to commit (an old one here could rewind it), and it replays the rest.
        mine = {tp: offset for tp, offset in offsets.items() if tp in self._assigned}
        if not mine:
            return
        partitions = [TopicPartition(t, p, o) for (t, p), o in mine.items()]
        self._last_offsets.update(mine)
        try:
            self._consumer.commit(offsets=partitions, asynchronous=True)
        except KafkaException as exc:
            self._committed(exc.args[0], partitions)
            return
        for tp in partitions:
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
            if high >= 0:
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                    max(high - tp.offset, 0)
                )

    def _committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The broker's answer to a commit (librdkafka's ``on_commit``, served by consume)."""
        failed = [tp for tp in partitions if tp.error is not None]
        if error is None and not failed:
            return
        # E.g. the partitions moved to another worker meanwhile: it replays them, harmlessly.
        self.metrics.errors.labels("commit").inc()
        shown = error or "; ".join(f"{tp.partition}: {tp.error}" for tp in failed)
        self._say(logging.WARNING, "commit", f"offset commit failed (replayed later): {shown}")

    def _commit_last(self) -> None:
        """Commit the last offsets landed, synchronously, before the consumer closes."""
        if self._consumer is None or not self._last_offsets:
            return
        partitions = [TopicPartition(t, p, o) for (t, p), o in self._last_offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            self._committed(exc.args[0], partitions)

    # ------------------------------------------------------------------ database outage
    def _wait_paused(self, seconds: float) -> None:
        """Wait for a retry with every partition paused, still polling to stay in the group."""
        assert self._consumer is not None
        self._run_chores()  # the batches landed before this one: their offsets, their counts
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.pause(assignment)
        self._paused = True
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            self.health.beat()  # waiting for PostgreSQL is alive, not stalled
            if self._stop.is_set():
                raise _Stopping
            # Paused partitions deliver nothing; a partition assigned meanwhile might, and its
            # messages are kept for the next batch, never dropped.
            got = self._consumer.consume(100, timeout=min(remaining, 0.2))
            self._carry.extend(m for m in got if self._usable(m))
            fresh = [tp for tp in self._consumer.assignment() if tp not in assignment]
            if fresh:
                self._consumer.pause(fresh)
                assignment = [*assignment, *fresh]

    def _resume(self) -> None:
        if self._paused and self._consumer is not None:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False
