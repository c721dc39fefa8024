"""The sending chain on the real broker: background thread → Kafka → spool and back."""

from __future__ import annotations

import socket
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests import factories
from tests._kafka import new_topic, read_events
from tokenline.sdk._settings import load_settings
from tokenline.sdk.emitters import BackgroundEmitter, DiskSpool, KafkaEmitter, SpoolingEmitter

if TYPE_CHECKING:
    from pathlib import Path

    from tokenline.schemas import UsageEvent

pytestmark = pytest.mark.integration


def _chain(
    bootstrap: str, topic: str, spool_dir: Path, timeout_ms: int = 1000
) -> tuple[BackgroundEmitter, DiskSpool]:
    settings = load_settings(
        tenant_id="acme", bootstrap_servers=bootstrap, topic=topic, message_timeout_ms=timeout_ms
    )
    spool = DiskSpool(spool_dir, settings.spool_max_bytes)
    emitter = BackgroundEmitter(
        SpoolingEmitter(KafkaEmitter(settings), spool, probe_interval_s=0.2)
    )
    return emitter, spool


def _events(n: int) -> list[UsageEvent]:
    return [
        factories.usage_event(event_id=uuid.uuid4(), tenant_id=f"tenant-{i % 7}", producer_seq=i)
        for i in range(n)
    ]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_events_arrive_once_each(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = new_topic(kafka_bootstrap, "emit")
    emitter, spool = _chain(kafka_bootstrap, topic, tmp_path, timeout_ms=30_000)
    events = _events(500)
    for event in events:
        emitter.emit(event)
    assert emitter.flush(30) == 0
    emitter.close(5)
    received = read_events(kafka_bootstrap, topic, len(events))
    assert Counter(e["event_id"] for e in received) == Counter(e["event_id"] for e in events)
    assert spool.appended == 0


def test_unreachable_broker_spools_and_a_later_process_resends(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_bootstrap, "spool")
    events = _events(300)
    down, down_spool = _chain(f"127.0.0.1:{_closed_port()}", topic, tmp_path)
    started = time.perf_counter()
    for event in events:
        down.emit(event)
    assert time.perf_counter() - started < 1.0  # nothing waited on the network
    deadline = time.monotonic() + 20
    while down_spool.appended < len(events) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert down_spool.appended == len(events)
    down.close(1)

    up, up_spool = _chain(kafka_bootstrap, topic, tmp_path)
    up.emit(events[0])  # any traffic starts the sender, which finds the spool and drains it
    deadline = time.monotonic() + 30
    while up_spool.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    up.close(10)
    assert not list(tmp_path.glob("*.seg"))
    received = read_events(kafka_bootstrap, topic, len(events) + 1)
    counts = Counter(e["event_id"] for e in received)
    assert set(counts) == {e["event_id"] for e in events}
    assert counts[events[0]["event_id"]] == 2  # sent twice on purpose above
    assert all(c == 1 for eid, c in counts.items() if eid != events[0]["event_id"])
