"""``tokenline budgets run``: spend per budget from the priced topic, in Kafka transactions.

Each turn:

1. apply what changed on the budgets topic (a budget raised or lowered is judged again);
2. take up to ``batch_max_events`` priced events, tell the clock their times (what "now" is:
   the wall clock, or with ``TOKENLINE_BUDGETS_CLOCK=events`` the stream's latest event time,
   :mod:`~tokenline.processor.budgets.clock`) and count each in its partition's state
   (:class:`~tokenline.processor.budgets.state.PartitionState`, no Kafka there);
3. in one transaction: the state records (to the state topic's partition of the same number),
   the alerts, the budgets' new statuses and the consumer offsets after the batch; commit.

The state of a priced partition is restored from the compacted state topic when the partition
is assigned, so after a SIGKILL, a restart or a rebalance the worker that owns a partition
holds exactly the state its committed offsets correspond to: each alert is sent once. The
consumer is a static member with a transactional id derived from its name, as the processor's
hot path (stream_processor/README.md): a restarted worker aborts what its last run left open,
and a worker that lost a partition cannot commit for it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from tokenline.common.kafka_security import librdkafka_config
from tokenline.common.ops.health import Health
from tokenline.common.ops.ratelog import RateLimitedLog
from tokenline.processor.budgets.clock import clock_named
from tokenline.processor.budgets.codec import (
    HEARTBEAT_PREFIX,
    alert_codec,
    budget_codec,
    heartbeat,
    status_codec,
)
from tokenline.processor.budgets.follow import read_to_end, reader
from tokenline.processor.budgets.model import Budget, BudgetBook
from tokenline.processor.budgets.settings import rate_rule
from tokenline.processor.budgets.state import Changes, PartitionState
from tokenline.schemas import AvroCodec, DecodeError, PricedUsageEvent

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from confluent_kafka import Message

    from tokenline.processor.budgets.settings import BudgetSettings

    Priced = PricedUsageEvent | DecodeError

__all__ = ["Evaluator"]

log = logging.getLogger(__name__)

_TXN_TIMEOUT_S = 10.0
_PRUNE_EVERY_S = 3600.0


class EvaluatorMetrics:
    """Prometheus metrics of ``tokenline budgets run``."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge

        from tokenline.common.ops.metrics import new_registry

        self.registry = r = new_registry("budgets", "tokenline-processor")
        p = "tokenline_budgets"
        self.events = Counter(f"{p}_events", "Priced records read and committed.", registry=r)
        self.alerts = Counter(f"{p}_alerts", "Alerts committed.", registry=r)
        self.aborts = Counter(f"{p}_transactions_aborted", "Batches read again.", registry=r)
        self.budgets = Gauge(f"{p}_known", "Budgets on the budgets topic.", registry=r)


class Evaluator:
    """Consumes priced events and budgets; commits spend, alerts and statuses together."""

    def __init__(self, settings: BudgetSettings) -> None:
        self._settings = settings
        self._clock = clock_named(settings.budgets_clock)
        self.health = Health()
        self.health.expect("budgets", "partitions")
        self.metrics = EvaluatorMetrics()
        self._priced = settings.topic(settings.priced_topic)
        self._budgets_topic = settings.topic(settings.budgets_topic)
        self._state_topic = settings.topic(settings.budget_state_topic)
        self._status_topic = settings.topic(settings.budget_status_topic)
        self._alerts_topic = settings.topic(settings.alerts_topic)
        self._codec = AvroCodec[PricedUsageEvent]("tokenline.PricedUsageEvent")
        self._say = RateLimitedLog(log)
        self.book = BudgetBook()
        self.states: dict[int, PartitionState] = {}
        self._alerting_txns = 0
        self._beat_at = 0.0
        self._pruned_at = 0.0
        self._kafka = librdkafka_config(settings)
        self._restorer: Consumer | None = None

    # -- clients -----------------------------------------------------------------------

    def _consumer(self) -> Consumer:
        s = self._settings
        return Consumer(
            {
                **self._kafka,
                "group.id": s.budgets_group,
                "group.instance.id": s.worker_id,
                "client.id": f"{s.worker_id}-budgets",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": s.session_timeout_ms,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )

    def _producer(self) -> Producer:
        s = self._settings
        return Producer(
            {
                **self._kafka,
                "client.id": f"{s.worker_id}-budgets-out",
                "transactional.id": f"{s.budgets_group}.{s.worker_id}",
                "transaction.timeout.ms": s.transaction_timeout_ms,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )

    # -- the loop ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Evaluate until ``stop`` is set; a fatal Kafka error is raised."""
        producer = self._producer()
        producer.init_transactions(_TXN_TIMEOUT_S)
        self._restorer = reader(self._kafka, f"{self._settings.worker_id}-budgets-restore")
        budgets = reader(self._kafka, f"{self._settings.worker_id}-budgets-follow")
        read_to_end(budgets, self._budgets_topic, [0], self._on_budget)
        self.health.report("budgets", ok=True, detail=f"{len(self.book)} loaded")
        budgets.assign([TopicPartition(self._budgets_topic, 0, OFFSET_BEGINNING)])
        # The first read found every budget; following from the start again is idempotent
        # (a version already known is ignored).
        consumer = self._consumer()
        consumer.subscribe(
            [self._priced], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )
        log.info("evaluating %d budgets from %s", len(self.book), self._priced)
        try:
            while not stop.is_set():
                self.health.beat()
                self.metrics.budgets.set(len(self.book))
                changed = [b for m in budgets.consume(100, 0) if (b := self._budget_message(m))]
                messages = consumer.consume(
                    self._settings.batch_max_events, self._settings.batch_max_ms / 1000
                )
                self._turn(consumer, producer, changed, messages)
        finally:
            consumer.close()
            budgets.close()
            self._restorer.close()
            producer.flush(5)

    def _turn(
        self,
        consumer: Consumer,
        producer: Producer,
        changed: list[Budget | str],
        messages: list[Message],
    ) -> None:
        batch = self._decode(messages)
        times = (p["event"]["occurred_at"] for _m, p in batch if not isinstance(p, DecodeError))
        self._clock.saw(times)
        now = self._clock.now()
        per_partition: dict[int, Changes] = {}
        self._rebudget(changed, now, per_partition)
        self._prune(now, per_partition)
        offsets = self._count(batch, now, per_partition)
        deleted = [b for b in changed if isinstance(b, str)]
        beat = time.monotonic() - self._beat_at >= self._settings.heartbeat_s
        if not (offsets or deleted or beat or any(per_partition.values())):
            return
        try:
            self._transact(
                consumer, producer, per_partition, offsets=offsets, deleted=deleted, beat=beat
            )
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if not err.txn_requires_abort():
                raise
            self._say(logging.WARNING, "abort", f"transaction aborted, batch read again: {err}")
            self.metrics.aborts.inc()
            self._step(producer.abort_transaction, _TXN_TIMEOUT_S)
            self._rewind(consumer)
            return
        self.metrics.events.inc(len(messages))

    def _prune(self, now: datetime, per_partition: dict[int, Changes]) -> None:
        """Hourly, and after a restore: forget the periods past the retention."""
        if time.monotonic() - self._pruned_at < _PRUNE_EVERY_S:
            return
        self._pruned_at = time.monotonic()
        horizon = now - timedelta(days=self._settings.budget_retention_days)
        for partition, state in self.states.items():
            state.prune(horizon, per_partition.setdefault(partition, Changes()))

    def _rebudget(
        self, changed: list[Budget | str], now: datetime, per_partition: dict[int, Changes]
    ) -> None:
        """Judge the spend held for each changed budget again (a deleted one: no status)."""
        for budget in changed:
            for partition, state in self.states.items():
                changes = per_partition.setdefault(partition, Changes())
                if isinstance(budget, str):
                    changes.statuses.pop(budget, None)
                else:
                    state.rebudget(budget, now, changes)

    def _decode(self, messages: list[Message]) -> list[tuple[Message, Priced]]:
        """The batch's records, each with its priced event (or why it was not decoded)."""
        good = [m for m in messages if m.error() is None]
        for m in messages:
            if m.error() is not None:
                self._say(logging.WARNING, "consume", f"consuming: {m.error()}")
        decoded = self._codec.decode_many([m.value() or b"" for m in good])
        return list(zip(good, decoded, strict=True))

    def _count(
        self, batch: list[tuple[Message, Priced]], now: datetime, per_partition: dict[int, Changes]
    ) -> dict[int, int]:
        """Count the batch's priced events; return the offsets to commit per partition."""
        offsets: dict[int, int] = {}
        for m, priced in batch:
            partition = m.partition() or 0
            owner = self.states.get(partition)
            if owner is None:  # revoked during this consume: its new owner reads it
                continue
            offsets[partition] = (m.offset() or 0) + 1
            if isinstance(priced, DecodeError):
                self._say(logging.WARNING, "decode", f"priced record not decoded: {priced}")
            else:
                owner.apply(self.book, priced, now, per_partition.setdefault(partition, Changes()))
        return offsets

    def _transact(
        self,
        consumer: Consumer,
        producer: Producer,
        per_partition: dict[int, Changes],
        *,
        offsets: dict[int, int],
        deleted: list[str],
        beat: bool,
    ) -> None:
        self._step(producer.begin_transaction)
        alerts = 0
        for partition, changes in per_partition.items():
            for key, value in changes.state.items():
                producer.produce(self._state_topic, value=value, key=key, partition=partition)
            for alert in changes.alerts:
                alerts += 1
                producer.produce(
                    self._alerts_topic,
                    value=alert_codec().encode(alert),
                    key=alert["budget_id"].encode(),
                )
            for budget_id, status in changes.statuses.items():
                producer.produce(
                    self._status_topic, value=status_codec().encode(status), key=budget_id
                )
        for budget_id in deleted:
            producer.produce(self._status_topic, value=None, key=budget_id)
        if beat:
            self._beat_at = time.monotonic()
            producer.produce(
                self._status_topic,
                value=status_codec().encode(heartbeat(datetime.now(UTC))),
                key=HEARTBEAT_PREFIX + self._settings.worker_id,
            )
        if offsets:
            self._step(
                producer.send_offsets_to_transaction,
                [TopicPartition(self._priced, p, o) for p, o in offsets.items()],
                consumer.consumer_group_metadata(),
                _TXN_TIMEOUT_S,
            )
        if alerts:
            self._alerting_txns += 1
            self._maybe_die("before_commit")
        self._step(producer.commit_transaction, _TXN_TIMEOUT_S)
        if alerts:
            self.metrics.alerts.inc(alerts)
            log.info("%d alerts committed", alerts)
            self._maybe_die("after_commit")

    def _maybe_die(self, point: str) -> None:
        """Fault injection for the tests (``TOKENLINE_BUDGETS_KILL_AT=point:N``)."""
        wanted = self._settings.budgets_kill_at
        if wanted == f"{point}:{self._alerting_txns}":
            log.warning("killed at %s of alerting transaction %d", point, self._alerting_txns)
            os.kill(os.getpid(), signal.SIGKILL)

    def _step(self, call: Callable[..., None], *args: Any) -> None:
        """One transactional call, repeated while it fails with a retriable error."""
        while True:
            try:
                call(*args)
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if not err.retriable():
                    raise
                self._say(logging.WARNING, f"retry:{call.__name__}", f"retried: {err}")

    def _rewind(self, consumer: Consumer) -> None:
        """After an abort: state from the state topic, positions from the committed offsets."""
        owned = sorted(self.states)
        self._restore(owned)
        committed = consumer.committed([TopicPartition(self._priced, p) for p in owned], 30)
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            consumer.seek(TopicPartition(self._priced, tp.partition, offset))

    # -- budgets and state ------------------------------------------------------------

    def _on_budget(self, _partition: int, key: bytes | None, value: bytes | None) -> None:
        self._apply_budget(key, value)

    def _budget_message(self, m: Message) -> Budget | str | None:
        if m.error() is not None:
            return None
        return self._apply_budget(m.key(), m.value())

    def _apply_budget(self, key: bytes | None, value: bytes | None) -> Budget | str | None:
        """Apply one budgets-topic record; return the budget (or the deleted id) if it changed."""
        if key is None:
            return None
        if value is None:
            known = self.book.delete(key.decode())
            return known.budget_id if known is not None else None
        try:
            budget = Budget.from_record(budget_codec().decode(value))
        except DecodeError as exc:
            self._say(logging.WARNING, "budget", f"budget record not decoded: {exc}")
            return None
        return budget if self.book.put(budget) else None

    def _restore(self, partitions: list[int]) -> None:
        assert self._restorer is not None
        rate = rate_rule(self._settings)
        for p in partitions:
            self.states[p] = PartitionState(rate)

        def load(partition: int, key: bytes | None, value: bytes | None) -> None:
            if key is not None:
                self.states[partition].load(key, value)

        read_to_end(self._restorer, self._state_topic, partitions, load)
        self._pruned_at = 0.0  # the restored state is pruned on the next turn
        log.info("restored the budget state of partitions %s", partitions)

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._restore([p.partition for p in partitions])
        self._report_partitions()

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.states.pop(p.partition, None)
        self._report_partitions()

    def _report_partitions(self) -> None:
        owned = sorted(self.states)
        detail = f"{len(owned)} assigned {owned}" if owned else "none assigned"
        self.health.report("partitions", ok=bool(owned), detail=detail)

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._revoked(consumer, partitions)
