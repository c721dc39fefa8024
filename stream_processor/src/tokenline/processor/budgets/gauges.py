"""Budget gauges for Prometheus, from the budget-status topic (``tokenline alerts`` serves them).

``tokenline_budget_used_ratio`` is spend / amount in the current period (a ratio, never money
in a float), ``tokenline_budget_hard_limit_exceeded`` 1 while spend is at or over the hard
limit, ``tokenline_budget_evaluator_heartbeat_timestamp_seconds`` when an evaluator last said
it lives. A budget's series go away when it is deleted or its period ends.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from tokenline.common.kafka_security import librdkafka_config
from tokenline.processor.budgets.codec import HEARTBEAT_PREFIX, status_codec
from tokenline.processor.budgets.follow import reader
from tokenline.schemas import DecodeError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from tokenline.processor.budgets.settings import BudgetSettings
    from tokenline.schemas import BudgetStatus

__all__ = ["BudgetGauges"]

log = logging.getLogger(__name__)

_LABELS = ("budget_id", "tenant_id", "scope", "scope_value")


class BudgetGauges:
    """Follows the status topic; keeps one series per budget in its current period."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Gauge

        p = "tokenline_budget"
        self.used = Gauge(
            f"{p}_used_ratio", "Spend / amount this period.", _LABELS, registry=registry
        )
        self.exceeded = Gauge(
            f"{p}_hard_limit_exceeded",
            "1 while spend is at or over the hard limit.",
            _LABELS,
            registry=registry,
        )
        self.heartbeat = Gauge(
            f"{p}_evaluator_heartbeat_timestamp_seconds",
            "When a budget evaluator last said it lives (its clock).",
            registry=registry,
        )
        self._labels: dict[str, tuple[str, ...]] = {}
        self._ends: dict[str, datetime] = {}

    def apply(self, key: str, status: BudgetStatus | None, now: datetime) -> None:
        """One status-topic record."""
        if key.startswith(HEARTBEAT_PREFIX):
            if status is not None:
                self.heartbeat.set(status["updated_at"].timestamp())
            return
        self._forget(key)
        if status is None or status["period_end"] <= now:
            return
        labels = (key, status["tenant_id"], status["scope"], status["scope_value"] or "")
        self._labels[key] = labels
        self._ends[key] = status["period_end"]
        self.used.labels(*labels).set(float(status["spend"] / status["amount"]))
        self.exceeded.labels(*labels).set(1 if status["exceeded"] else 0)

    def sweep(self, now: datetime) -> None:
        """Drop the series of periods that ended."""
        for key in [k for k, end in self._ends.items() if end <= now]:
            self._forget(key)

    def _forget(self, key: str) -> None:
        labels = self._labels.pop(key, None)
        self._ends.pop(key, None)
        if labels is not None:
            self.used.remove(*labels)
            self.exceeded.remove(*labels)

    def follow(self, settings: BudgetSettings, stop: threading.Event) -> threading.Thread:
        """Follow the status topic on a daemon thread until ``stop`` is set."""
        thread = threading.Thread(
            target=self._run, args=(settings, stop), name="budget-gauges", daemon=True
        )
        thread.start()
        return thread

    def _run(self, settings: BudgetSettings, stop: threading.Event) -> None:
        topic = settings.topic(settings.budget_status_topic)
        consumer = reader(librdkafka_config(settings), f"{settings.worker_id}-budget-gauges")
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        try:
            while not stop.is_set():
                now = datetime.now(UTC)
                for m in consumer.consume(500, 0.5):
                    if m.error() is None:
                        self._message(m.key(), m.value(), now)
                self.sweep(now)
        finally:
            consumer.close()

    def _message(self, key: bytes | None, value: bytes | None, now: datetime) -> None:
        try:
            status: Any = status_codec().decode(value) if value is not None else None
        except DecodeError as exc:
            log.warning("budget status not decoded: %s", exc)
            return
        self.apply((key or b"").decode(errors="replace"), status, now)
