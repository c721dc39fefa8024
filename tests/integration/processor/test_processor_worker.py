"""The processor worker on the real broker: `tokenline processor` runs as a subprocess.

One worker serves the module (starting Faust takes a while on two cores); it gets its own
topic prefix and consumer group, and each test its own tenants, so tests do not see each
other's records.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Consumer, Producer

from tests.factories import usage_event
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import BucketPrices, PriceEntry, PriceTable
from tokenline.processor.windows import window_start
from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.integration

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
USAGE = AvroCodec[Any]("tokenline.UsageEvent")
PRICED = AvroCodec[Any]("tokenline.PricedUsageEvent")
ROLLUP = AvroCodec[Any]("tokenline.UsageRollup")
DLQ = AvroCodec[Any]("tokenline.DeadLetter")


def m(per_million: str) -> Decimal:
    return Decimal(per_million) / 1_000_000


def entry(provider: str, model: str, inp: str, out: str, read: str, write: str) -> PriceEntry:
    prices = BucketPrices(
        input=m(inp),
        output=m(out),
        cache_read=m(read),
        cache_write_5m=m(write),
        cache_write_1h=m(write),
        reasoning=None,
    )
    return PriceEntry(PriceEntry.make_id(provider, model, SINCE), provider, model, SINCE, prices)


SONNET = entry("anthropic", "claude-sonnet-4-5", "3", "15", "0.30", "3.75")
GPT4O = entry("openai", "gpt-4o", "2.50", "10", "1.25", "2.50")


class Worker:
    def __init__(self, bootstrap: str, prefix: str, metrics_port: int, log: Path) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.metrics_port = metrics_port
        self.log = log

    def topic(self, name: str) -> str:
        return f"{self.prefix}llm-usage.{name}"

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TOKENLINE_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOKENLINE_TOPIC_PREFIX": self.prefix,
        }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tokenline() -> str:
    return str(Path(sys.executable).parent / "tokenline")


@pytest.fixture(scope="module")
def worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("processor")
    prices = tmp / "prices.json"
    prices.write_text(PriceTable([SONNET]).to_json(), encoding="utf-8")
    run_id = uuid.uuid4().hex[:8]
    handle = Worker(kafka_bootstrap, f"it-{run_id}-", _free_port(), tmp / "worker.log")
    env = {
        **handle.env(),
        "TOKENLINE_APP_ID": f"it-processor-{run_id}",
        "TOKENLINE_METRICS_PORT": str(handle.metrics_port),
        "TOKENLINE_DATA_DIR": str(tmp / "data"),
        "TOKENLINE_PRICES_FILE": str(prices),
        "TOKENLINE_WINDOW_GRACE_S": "120",
    }
    with handle.log.open("wb") as log:
        proc = subprocess.Popen([_tokenline(), "processor"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, handle.log.read_text(errors="replace")[-4000:]
            try:
                handle.metrics()
                break
            except OSError:
                assert time.monotonic() < deadline, "processor did not start"
                time.sleep(0.5)
        yield handle
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -15):
            print(handle.log.read_text(errors="replace")[-4000:])


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def read_until(
    bootstrap: str,
    topic: str,
    decode: Callable[[bytes], Any],
    keep: Callable[[Any], bool],
    done: Callable[[list[Any]], bool],
    timeout_s: float = 45.0,
) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(found):
            assert time.monotonic() < deadline, f"timed out on {topic}; have {found}"
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is None:
                    record = decode(message.value() or b"")
                    if keep(record):
                        found.append(record)
    finally:
        consumer.close()
    return found


def events_now(tenant: str, count: int, **overrides: Any) -> list[Any]:
    start = window_start(datetime.now(UTC))
    return [
        usage_event(
            tenant_id=tenant,
            event_id=uuid.uuid4(),
            producer_seq=i,
            occurred_at=start + timedelta(milliseconds=10 * i),
            latency_ms=100 * (i + 1),
            **overrides,
        )
        for i in range(count)
    ]


def test_events_are_priced_and_rolled_up(worker: Worker) -> None:
    tenant = f"priced-{uuid.uuid4().hex[:6]}"
    events = events_now(tenant, 3)
    produce(
        worker.bootstrap, worker.topic("raw"), [(tenant.encode(), USAGE.encode(e)) for e in events]
    )

    priced = read_until(
        worker.bootstrap,
        worker.topic("priced"),
        PRICED.decode,
        lambda r: r["event"]["tenant_id"] == tenant,
        lambda found: len(found) >= 3,
    )
    assert sorted(r["event"]["event_id"] for r in priced) == sorted(e["event_id"] for e in events)
    for record in priced:
        # 1200 x 3 + 30000 x 0.30 + 2000 x 3.75 + 350 x 15, per million tokens
        assert record["cost"]["total"] == Decimal("0.025350000000")
        assert record["pricing_status"] == "priced"
        assert record["source"]["topic"] == worker.topic("raw")

    rollups = read_until(
        worker.bootstrap,
        worker.topic("rollup-1m"),
        ROLLUP.decode,
        lambda r: r["tenant_id"] == tenant,
        lambda found: sum(r["requests"] for r in found) >= 3,
    )
    # Deltas: each record adds to its window (the three events may come in one batch or more)
    assert {(r["window_start"], r["provider"], r["model"]) for r in rollups} == {
        (window_start(events[0]["occurred_at"]), "anthropic", "claude-sonnet-4-5")
    }
    assert sum(r["requests"] for r in rollups) == 3
    assert sum(r["cost_total"] for r in rollups) == Decimal("0.076050000000")
    assert sum(r["input_tokens"] for r in rollups) == 3600
    assert sum(r["cache_read_input_tokens"] for r in rollups) == 90_000
    assert sum(r["output_tokens"] for r in rollups) == 1050
    assert sum(r["latency_ms_sum"] for r in rollups) == 600
    assert max(r["latency_ms_max"] for r in rollups) == 300
    assert sum(r["unpriced_count"] for r in rollups) == 0


def test_bad_records_go_to_the_dlq(worker: Worker) -> None:
    tenant = f"bad-{uuid.uuid4().hex[:6]}"
    garbage = b"\x07not avro " + tenant.encode()
    (event,) = events_now(tenant, 1)
    negative = USAGE.encode({**event, "usage": {**event["usage"], "output_tokens": -5}})
    produce(
        worker.bootstrap,
        worker.topic("raw"),
        [(tenant.encode(), garbage), (tenant.encode(), negative)],
    )
    letters = read_until(
        worker.bootstrap,
        worker.topic("dlq"),
        DLQ.decode,
        lambda r: r["key"] == tenant.encode(),
        lambda found: len(found) >= 2,
    )
    by_reason = {r["reason_code"]: r for r in letters}
    assert by_reason["wrong_magic"]["value"] == garbage
    assert by_reason["wrong_magic"]["stage"] == "decode"
    assert by_reason["invalid_event"]["value"] == negative
    assert by_reason["invalid_event"]["reason"].startswith("negative_tokens")
    assert 'reason_code="wrong_magic"' in worker.metrics()


def test_published_prices_apply_without_restart(worker: Worker, tmp_path: Path) -> None:
    tenant = f"live-{uuid.uuid4().hex[:6]}"
    overrides = {"provider": "openai", "request_model": "gpt-4o", "response_model": None}
    (before,) = events_now(tenant, 1, **overrides)
    produce(worker.bootstrap, worker.topic("raw"), [(tenant.encode(), USAGE.encode(before))])
    read_until(
        worker.bootstrap,
        worker.topic("priced"),
        PRICED.decode,
        lambda r: r["event"]["tenant_id"] == tenant,
        lambda found: len(found) >= 1 and found[0]["cost"] is None,
    )

    book = PriceBook(PriceTable([SONNET, GPT4O]))
    document = tmp_path / "prices.json"
    document.write_text(book.to_json(), encoding="utf-8")
    subprocess.run(
        [_tokenline(), "prices", "publish", str(document)],
        env=worker.env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    deadline = time.monotonic() + 30
    while f'pricing_version="{book.pricing_version}"' not in worker.metrics():
        assert time.monotonic() < deadline, "the published table was not applied"
        time.sleep(0.5)

    (after,) = events_now(tenant, 1, **overrides)
    produce(worker.bootstrap, worker.topic("raw"), [(tenant.encode(), USAGE.encode(after))])
    priced = read_until(
        worker.bootstrap,
        worker.topic("priced"),
        PRICED.decode,
        lambda r: r["event"]["event_id"] == after["event_id"],
        lambda found: len(found) >= 1,
    )
    # 1200 x 2.50 + 30000 x 1.25 + 2000 x 2.50 + 350 x 10, per million tokens
    assert priced[0]["cost"]["total"] == Decimal("0.049000000000")
    assert priced[0]["pricing_version"] == book.pricing_version
