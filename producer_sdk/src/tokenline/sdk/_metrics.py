"""``sdk.stats()`` as the host application's metrics: Prometheus, OpenTelemetry, or neither.

Nothing is imported that the application does not already use. When ``prometheus_client`` is
imported at ``configure()`` time, a collector is registered once on its default registry;
when ``opentelemetry.metrics`` is, observable counters are created once on the global meter
provider (through its proxy, so a provider the application sets later receives them too).
Each scrape or collection reads the live runtime's ``stats()``.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from tokenline.sdk._stats import Stats

__all__ = ["COUNTERS", "GAUGES", "export"]

COUNTERS = {
    "queued": "Usage events handed to the background sender",
    "sent": "Usage events Kafka acknowledged (re-sent ones included)",
    "spooled": "Usage events written to the disk spool",
    "resent": "Spooled usage events re-sent and acknowledged",
    "send_errors": "Usage events Kafka refused or did not acknowledge",
}
GAUGES = {
    "in_queue": "Usage events waiting for the sender",
    "in_kafka": "Usage events in the Kafka client's queue or in flight",
    "spool_bytes": "Bytes in the disk spool",
}
_PREFIX = "tokenline_sdk_"

_lock = threading.Lock()
_prometheus = False
_otel = False


def export(read: Callable[[], Stats | None]) -> None:
    """Register the exporters the application's imports call for, once each."""
    global _prometheus, _otel  # noqa: PLW0603
    with _lock:
        if not _prometheus and "prometheus_client" in sys.modules:
            _register_prometheus(read)
            _prometheus = True
        if not _otel and "opentelemetry.metrics" in sys.modules:
            _register_otel(read)
            _otel = True


class _Collector:
    def __init__(self, read: Callable[[], Stats | None]) -> None:
        self._read = read

    def describe(self) -> Iterable[Any]:
        return []  # generated on collect: the registry must not call collect() at register

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        stats = self._read()
        if stats is None:
            return
        for name, doc in COUNTERS.items():
            yield CounterMetricFamily(f"{_PREFIX}{name}", doc, value=getattr(stats, name))
        dropped = CounterMetricFamily(
            f"{_PREFIX}dropped", "Usage events lost, by reason", labels=["reason"]
        )
        for reason, count in stats.dropped.items():
            dropped.add_metric([reason], count)
        yield dropped
        for name, doc in GAUGES.items():
            yield GaugeMetricFamily(f"{_PREFIX}{name}", doc, value=getattr(stats, name))


def _register_prometheus(read: Callable[[], Stats | None]) -> None:
    from prometheus_client import REGISTRY

    REGISTRY.register(_Collector(read))


def _register_otel(read: Callable[[], Stats | None]) -> None:
    from opentelemetry import metrics

    meter = metrics.get_meter("tokenline.sdk")

    def observe(name: str) -> Callable[[Any], Iterable[Any]]:
        def callback(_options: Any) -> Iterable[Any]:
            stats = read()
            if stats is None:
                return []
            if name == "dropped":
                return [
                    metrics.Observation(count, {"reason": reason})
                    for reason, count in stats.dropped.items()
                ]
            return [metrics.Observation(getattr(stats, name))]

        return callback

    for name, doc in COUNTERS.items():
        meter.create_observable_counter(f"tokenline.sdk.{name}", [observe(name)], "1", doc)
    meter.create_observable_counter(
        "tokenline.sdk.dropped", [observe("dropped")], "1", "Usage events lost, by reason"
    )
    for name, doc in GAUGES.items():
        unit = "By" if name == "spool_bytes" else "1"
        meter.create_observable_gauge(f"tokenline.sdk.{name}", [observe(name)], unit, doc)
