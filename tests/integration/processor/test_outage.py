"""The processor across a broker outage: a few log lines, and every event priced once after.

A private broker is stopped for 30 s under a running worker and started again. The worker
logs a bounded number of lines meanwhile (the Kafka clients would say thousands), and the
events produced after the outage are priced, each once. A worker whose raw-topic consumer
hangs in a Kafka call after the restart exits with status 75 for its supervisor; the test
plays the supervisor and restarts it, as Kubernetes or systemd would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Consumer, Producer

from tests.factories import usage_event
from tokenline.dev import kafka
from tokenline.processor.agents import EXIT_STUCK
from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PREFIX = "outage."
USAGE = AvroCodec[Any]("tokenline.UsageEvent")
PRICED = AvroCodec[Any]("tokenline.PricedUsageEvent")
#: Lines a 30 s outage may cost (the first of each kind, then one per 30 s per kind).
MAX_LINES = 80


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[list[kafka.KafkaNode]]:
    nodes = [kafka.start(tmp_path / "broker")]
    try:
        yield nodes
    finally:
        for node in nodes:
            kafka.stop(node)


def _start(bootstrap: str, tmp: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TOKENLINE_BOOTSTRAP_SERVERS": bootstrap,
        "TOKENLINE_TOPIC_PREFIX": PREFIX,
        "TOKENLINE_APP_ID": "outage-processor",
        "TOKENLINE_WORKER_NAME": "outage-1",
        "TOKENLINE_METRICS_PORT": "0",
        "TOKENLINE_DATA_DIR": str(tmp / "data"),
        "TOKENLINE_STUCK_S": "30",
    }
    command = [str(Path(sys.executable).parent / "tokenline"), "processor"]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _produce(bootstrap: str, count: int) -> set[uuid.UUID]:
    producer = Producer({"bootstrap.servers": bootstrap})
    ids = set()
    for _ in range(count):
        event = usage_event(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC))
        ids.add(event["event_id"])
        producer.produce(f"{PREFIX}llm-usage.raw", USAGE.encode(event), key=b"acme")
    assert producer.flush(60) == 0
    return ids


def _priced_ids(bootstrap: str, want: int, timeout_s: float) -> list[uuid.UUID]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": uuid.uuid4().hex,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([f"{PREFIX}llm-usage.priced"])
    found: list[uuid.UUID] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < want and time.monotonic() < deadline:
            found.extend(
                PRICED.decode(m.value() or b"")["event"]["event_id"]
                for m in consumer.consume(500, 1.0)
                if m.error() is None
            )
    finally:
        consumer.close()
    return found


def test_an_outage_costs_a_few_lines_and_no_event(
    broker: list[kafka.KafkaNode], tmp_path: Path
) -> None:
    bootstrap = broker[0].bootstrap
    log = tmp_path / "processor.log"
    worker = _start(bootstrap, tmp_path, log)
    try:
        before = _produce(bootstrap, 50)
        assert sorted(_priced_ids(bootstrap, 50, 120)) == sorted(before)
        lines_before = len(log.read_bytes().splitlines())
        kafka.stop(broker[0])
        time.sleep(30)
        broker.append(kafka.restart(broker[0]))
        lines = len(log.read_bytes().splitlines()) - lines_before
        assert worker.poll() is None, "the worker rode out the outage"
        after = _produce(bootstrap, 50)
        deadline = time.monotonic() + 240
        restarts = 0
        found: list[uuid.UUID] = []
        while len(found) < 100 and time.monotonic() < deadline:
            if worker.poll() is not None:
                assert worker.returncode == EXIT_STUCK, log.read_text(errors="replace")[-3000:]
                restarts += 1
                worker = _start(bootstrap, tmp_path, log)
            found = _priced_ids(bootstrap, 100, 20)
        assert sorted(found) == sorted(before | after), f"{len(found)} of 100 priced"
        assert lines <= MAX_LINES, f"{lines} lines in a 30 s outage"
        print(f"outage: {lines} log lines; worker restarted {restarts} time(s) after it")
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
