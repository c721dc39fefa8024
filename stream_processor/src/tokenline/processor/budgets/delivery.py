"""``tokenline alerts``: every committed alert to every webhook, retried, else dead-lettered.

The consumer reads the alerts topic ``read_committed`` in its own group; an alert's offset is
committed once every webhook took it or its failure went to the dead-letter topic (the alert,
the URL, the attempts and the last error, as JSON). So an alert is delivered at least once
per webhook; a crash between a delivery and the commit sends it again, with the same
``X-Tokenline-Alert-Id``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from confluent_kafka import Consumer, Producer

from tokenline.common.kafka_security import librdkafka_config
from tokenline.common.ops.health import Health
from tokenline.processor.budgets import webhooks
from tokenline.processor.budgets.codec import alert_codec
from tokenline.processor.budgets.gauges import BudgetGauges
from tokenline.schemas import DecodeError

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

    from tokenline.processor.budgets.settings import BudgetSettings
    from tokenline.schemas import BudgetAlert

__all__ = ["AlertMetrics", "Delivery", "Outcome"]

log = logging.getLogger(__name__)


class AlertMetrics:
    """Prometheus metrics of ``tokenline alerts``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import Counter

        from tokenline.common.ops.metrics import new_registry

        self.registry = registry or new_registry("alerts", "tokenline-processor")
        r, p = self.registry, "tokenline_alerts"
        self.received = Counter(f"{p}_received", "Alerts read, by kind.", ["kind"], registry=r)
        self.attempts = Counter(
            f"{p}_delivery_attempts",
            "Webhook requests, by result: ok, retry (5xx, 408, 429, no answer), refused (4xx).",
            ["result"],
            registry=r,
        )
        self.delivered = Counter(f"{p}_delivered", "Alerts a webhook took.", registry=r)
        self.dead_letters = Counter(
            f"{p}_dead_letters", "Alerts given up on for one webhook.", registry=r
        )
        self.budgets = BudgetGauges(r)


@dataclass
class Outcome:
    """How one alert went to one webhook."""

    url: str
    delivered: bool
    attempts: int
    error: str | None = None
    statuses: list[int | None] = field(default_factory=list)


class Delivery:
    """Posts alerts to webhooks with retries; dead-letters what never got through."""

    def __init__(
        self,
        settings: BudgetSettings,
        metrics: AlertMetrics | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self.metrics = metrics or AlertMetrics()
        self._sleep = sleep
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value() if secret is not None else None
        self._http = httpx.Client(timeout=settings.webhook_timeout_s)
        self.health = Health(
            stall_after_s=120 + settings.webhook_attempts * settings.webhook_timeout_s
        )
        self.health.report("webhooks", ok=True, detail=f"{len(settings.webhook_urls)} configured")

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def send(self, alert: BudgetAlert, url: str) -> Outcome:
        """Post ``alert`` to ``url`` until it is taken or the tries run out."""
        data = webhooks.body(alert, self._settings.webhook_format)
        outcome = Outcome(url, delivered=False, attempts=0)
        attempts = self._settings.webhook_attempts
        for attempt in range(1, attempts + 1):
            outcome.attempts = attempt
            status, error = self._post(
                url, data, webhooks.headers(alert, data, self._secret, attempt)
            )
            outcome.statuses.append(status)
            if status is not None and 200 <= status < 300:
                self.metrics.attempts.labels("ok").inc()
                self.metrics.delivered.inc()
                outcome.delivered = True
                return outcome
            outcome.error = error
            if not webhooks.retriable(status):
                self.metrics.attempts.labels("refused").inc()
                return outcome
            self.metrics.attempts.labels("retry").inc()
            if attempt < attempts:
                self._sleep(webhooks.backoff_ms(self._settings.webhook_backoff_ms, attempt) / 1000)
        return outcome

    def _post(self, url: str, data: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        try:
            response = self._http.post(url, content=data, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, f"HTTP {response.status_code}: {response.text[:200]}"

    def dead_letter(self, alert: BudgetAlert, outcome: Outcome) -> bytes:
        """The dead-letter record of an alert a webhook never took."""
        self.metrics.dead_letters.inc()
        return json.dumps(
            {
                "alert": json.loads(webhooks.body(alert, "json")),
                "url": outcome.url,
                "attempts": outcome.attempts,
                "statuses": outcome.statuses,
                "error": outcome.error,
            }
        ).encode()

    def run(self, stop: threading.Event) -> None:
        """Deliver alerts until ``stop`` is set."""
        s = self._settings
        kafka = librdkafka_config(s)
        consumer = Consumer(
            {
                **kafka,
                "group.id": s.alerts_group,
                "client.id": f"{s.worker_id}-alerts",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        producer = Producer({**kafka, "acks": "all", "enable.idempotence": True})
        dlq = s.topic(s.alerts_dlq_topic)
        consumer.subscribe([s.topic(s.alerts_topic)])
        self.metrics.budgets.follow(s, stop)
        try:
            while not stop.is_set():
                self.health.beat()
                m = consumer.poll(0.5)
                if m is None:
                    continue
                if m.error() is not None:
                    log.warning("consuming alerts: %s", m.error())
                    continue
                self._handle(m.value() or b"", producer, dlq)
                if producer.flush(30):
                    msg = "dead letters not acknowledged in 30 s"
                    raise RuntimeError(msg)
                consumer.commit(message=m, asynchronous=False)
        finally:
            consumer.close()
            producer.flush(5)
            self.close()

    def _handle(self, value: bytes, producer: Producer, dlq: str) -> None:
        try:
            alert = alert_codec().decode(value)
        except DecodeError as exc:
            log.warning("alert not decoded, skipped: %s", exc)
            return
        self.metrics.received.labels(alert["kind"]).inc()
        for url in self._settings.webhook_urls:
            outcome = self.send(alert, url)
            if outcome.delivered:
                log.info("alert %s delivered to %s", alert["alert_id"], url)
                continue
            log.warning(
                "alert %s not delivered to %s after %d tries: %s",
                alert["alert_id"],
                url,
                outcome.attempts,
                outcome.error,
            )
            producer.produce(dlq, key=alert["alert_id"], value=self.dead_letter(alert, outcome))

    def info(self) -> dict[str, Any]:
        """What this delivery is configured with (for the CLI's check)."""
        return {
            "webhooks": len(self._settings.webhook_urls),
            "format": self._settings.webhook_format,
            "signed": self._secret is not None,
        }
