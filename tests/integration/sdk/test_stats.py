"""``sdk.stats()``: where every event went, and the same numbers as Prometheus metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests._kafka import new_topic, read_events
from tokenline import sdk
from tokenline.dev._proc import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _closed() -> Iterator[None]:
    yield
    sdk.close(0)


def scrape() -> dict[str, float]:
    """The ``tokenline_sdk_*`` samples on the default registry, as the exposition shows them."""
    text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("tokenline_sdk_"):
                reason = sample.labels.get("reason")
                samples[f"{sample.name}{{{reason}}}" if reason else sample.name] = sample.value
    return samples


def test_events_sent_are_counted_and_scraped(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = new_topic(kafka_bootstrap, "stats")
    sdk.configure(  # prometheus_client is imported: the collector is registered
        tenant_id="acme",
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        spool_dir=tmp_path / "spool",
        detect_host=False,
    )
    for i in range(100):
        sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=i)
    assert sdk.flush(30) == 0
    stats = sdk.stats()
    assert (stats.queued, stats.sent, stats.spooled, stats.resent, stats.send_errors) == (
        100, 100, 0, 0, 0,
    )  # fmt: skip
    assert set(stats.dropped.values()) == {0}
    assert (stats.in_queue, stats.in_kafka) == (0, 0)
    metrics = scrape()
    assert metrics["tokenline_sdk_queued_total"] == 100
    assert metrics["tokenline_sdk_sent_total"] == 100
    assert metrics["tokenline_sdk_spooled_total"] == 0
    assert metrics["tokenline_sdk_dropped_total{queue_full}"] == 0
    assert len(read_events(kafka_bootstrap, topic, 100)) == 100

    sdk.configure(  # a second configure() registers nothing twice and reports the new runtime
        tenant_id="acme", bootstrap_servers=kafka_bootstrap, topic=topic, detect_host=False
    )
    assert scrape()["tokenline_sdk_sent_total"] == 0


def test_with_no_broker_close_spools_what_kafka_holds(tmp_path: Path) -> None:
    runtime = sdk.configure(
        tenant_id="acme",
        bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens there
        spool_dir=tmp_path / "spool",
        detect_host=False,
    )
    for _ in range(20):
        sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=1)
    sdk.close(2)
    stats = runtime.stats()
    assert (stats.queued, stats.sent, stats.spooled, stats.send_errors) == (20, 0, 20, 20)
    assert set(stats.dropped.values()) == {0}
    assert stats.spool_bytes > 0
    assert sdk.stats().queued == 0  # closed: no runtime any more


def test_drops_are_counted_by_reason(tmp_path: Path) -> None:
    runtime = sdk.configure(
        tenant_id="acme",
        bootstrap_servers=f"127.0.0.1:{free_port()}",
        spool_enabled=False,
        queue_max_messages=5,
        send_interval_ms=10_000,  # the sender sleeps: the queue fills
        detect_host=False,
    )
    for _ in range(8):
        sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=1)
    assert sdk.stats().dropped["queue_full"] == 3
    assert scrape()["tokenline_sdk_dropped_total{queue_full}"] == 3
    sdk.close(1)
    stats = runtime.stats()
    assert stats.queued == 5
    assert dict(stats.dropped) == {
        "queue_full": 3,
        "spool_full": 0,
        "build_failed": 0,
        "no_spool": 5,
        "refused": 0,
    }
    assert stats.send_errors == 5


OTEL_CHILD = """
import json, sys
from opentelemetry import metrics

class Meter(metrics.NoOpMeter):
    '''Keeps the observable instruments' callbacks, as an OpenTelemetry SDK's reader would.'''
    def __init__(self, name):
        super().__init__(name)
        self.callbacks = {}
    def create_observable_counter(self, name, callbacks=None, unit="", description=""):
        self.callbacks[name] = list(callbacks or [])
        return super().create_observable_counter(name, callbacks, unit, description)
    def create_observable_gauge(self, name, callbacks=None, unit="", description=""):
        self.callbacks[name] = list(callbacks or [])
        return super().create_observable_gauge(name, callbacks, unit, description)

class Provider(metrics.NoOpMeterProvider):
    def __init__(self):
        self.meters = []
    def get_meter(self, name, version=None, schema_url=None, attributes=None):
        self.meters.append(Meter(name))
        return self.meters[-1]

provider = Provider()
metrics.set_meter_provider(provider)

from tokenline import sdk

bootstrap, topic, spool = sys.argv[1:4]
sdk.configure(tenant_id="acme", bootstrap_servers=bootstrap, topic=topic, spool_dir=spool,
              detect_host=False)
sdk.configure(tenant_id="acme", bootstrap_servers=bootstrap, topic=topic, spool_dir=spool,
              detect_host=False)  # registers nothing twice
for i in range(10):
    sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=i)
assert sdk.flush(30) == 0
out = {"meters": [m.name for m in provider.meters]}
for meter in provider.meters:
    for name, callbacks in meter.callbacks.items():
        out[name] = [[o.value, dict(o.attributes or {})] for cb in callbacks
                     for o in cb(metrics.CallbackOptions())]
sdk.close()
print(json.dumps(out))
"""


def test_stats_are_observed_by_the_applications_meter_provider(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A host that set an OpenTelemetry MeterProvider gets the stats as observable counters."""
    topic = new_topic(kafka_bootstrap, "stats-otel")
    args = [sys.executable, "-c", OTEL_CHILD, kafka_bootstrap, topic, str(tmp_path / "spool")]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    observed = json.loads(done.stdout.splitlines()[-1])
    assert observed["meters"] == ["tokenline.sdk"]
    assert observed["tokenline.sdk.queued"] == [[10, {}]]
    assert observed["tokenline.sdk.sent"] == [[10, {}]]
    assert observed["tokenline.sdk.spooled"] == [[0, {}]]
    assert observed["tokenline.sdk.in_queue"] == [[0, {}]]
    assert sorted(r for _, a in observed["tokenline.sdk.dropped"] for r in a.values()) == [
        "build_failed", "no_spool", "queue_full", "refused", "spool_full",
    ]  # fmt: skip
