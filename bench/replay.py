"""Replay benchmark: re-pricing N raw events end to end, against bare consumption.

    eval "$(.venv/bin/tokenline dev up --env)"
    .venv/bin/python bench/replay.py [--events 1000000] [--readers 2] [--land]

One run, fresh topics (4 partitions) and a fresh plain-PostgreSQL database migrated to head:

1. produce N raw UsageEvents (8 tenants, 4 models of which one is unknown, one hour), keyed
   by tenant with murmur2 and timestamped with ``occurred_at`` as the SDK does; the bodies
   are pre-encoded templates with the event id patched in, sent in large lz4 batches;
2. ceiling: a bare confluent-kafka consumer reading the N records (no decoding);
3. decode only: the same read plus ``AvroCodec.decode`` of every record (one process);
4. ``run_replay`` as `tokenline replay` runs it: plan, read, re-price, re-emit the priced
   events and recompute and send the windows, flushed and acknowledged;
5. with ``--land``: a sink worker subprocess, and the time until PostgreSQL holds every
   re-priced event and window (``--wait-landed``), for the first pricing (fresh rows) and a
   re-pricing (Sonnet's rows updated; every other row compared and left as it is, since the
   sink replaces a stored pricing only when the result differs).

Printed: seconds and events/s of each, and the replay's rate against the ceiling and against
decode-only (per reader process).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg import sql
from sqlalchemy.engine import make_url

from tests.factories import usage_event
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import BucketPrices, PriceEntry, PriceTable
from tokenline.processor.replay import Progress, ReplayRequest, run_replay
from tokenline.processor.settings import ProcessorSettings
from tokenline.processor.topics import ensure_topics, topic_specs
from tokenline.schemas import AvroCodec

# The hour before last: recent enough that the broker's time-based retention (7 days by
# default, judged by the records' timestamps, which are occurred_at) keeps every record.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
SINCE = datetime(2000, 1, 1, tzinfo=UTC)
MODELS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-unknown-9"),
]
TENANTS = [f"tenant-{i}" for i in range(8)]
TIMES = 3_600  # distinct occurred_at values (one per second of the hour)


def _entry(provider: str, model: str, inp: str, out: str) -> PriceEntry:
    m = 1_000_000
    prices = BucketPrices(
        input=Decimal(inp) / m,
        output=Decimal(out) / m,
        cache_read=Decimal(inp) / m / 10,
        cache_write_5m=Decimal(inp) / m * Decimal("1.25"),
        cache_write_1h=Decimal(inp) / m * 2,
        reasoning=None,
    )
    return PriceEntry(PriceEntry.make_id(provider, model, SINCE), provider, model, SINCE, prices)


def _table(sonnet_out: str) -> PriceTable:
    return PriceTable(
        [
            _entry("anthropic", "claude-sonnet-4-5", "3", sonnet_out),
            _entry("openai", "gpt-4o", "2.50", "10"),
            _entry("openai", "gpt-4o-mini", "0.15", "0.60"),
        ]
    )


def _templates() -> list[tuple[bytes, bytes, int]]:
    """(key, encoded event, timestamp ms) per tenant, model and second; event id at [11:47]."""
    codec = AvroCodec[Any]("tokenline.UsageEvent")
    out = []
    for second in range(TIMES):
        for t, tenant in enumerate(TENANTS):
            provider, model = MODELS[(second + t) % len(MODELS)]
            at = T0 + timedelta(seconds=second, microseconds=t)
            record = usage_event(
                tenant_id=tenant,
                provider=provider,
                request_model=model,
                response_model=model,
                occurred_at=at,
                latency_ms=100 + second % 900,
            )
            value = codec.encode(record)
            assert value[10] == 72
            assert value[11:47] == str(record["event_id"]).encode()
            out.append((tenant.encode(), value, int(at.timestamp() * 1000)))
    return out


def produce(settings: ProcessorSettings, n: int) -> float:
    templates = _templates()
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "partitioner": "murmur2_random",
            "linger.ms": 50,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 2_000_000,
        }
    )
    topic = settings.topic(settings.raw_topic)
    start = time.perf_counter()
    for i in range(n):
        key, value, ms = templates[i % len(templates)]
        value = value[:11] + str(uuid.UUID(int=i + 1)).encode() + value[47:]
        while True:
            try:
                producer.produce(topic, value=value, key=key, timestamp=ms)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    return time.perf_counter() - start


def consume(settings: ProcessorSettings, n: int, *, decode: bool) -> float:
    codec = AvroCodec[Any]("tokenline.UsageEvent")
    topic = settings.topic(settings.raw_topic)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 2**20,
            "max.partition.fetch.bytes": 16 * 2**20,
            "queued.max.messages.kbytes": 256 * 2**10,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
    seen = 0
    start = time.perf_counter()
    while seen < n:
        batch = consumer.consume(10_000, timeout=1.0)
        if decode:
            for message in batch:
                codec.decode(message.value() or b"")
        seen += len(batch)
    elapsed = time.perf_counter() - start
    consumer.close()
    return elapsed


def new_database(server_url: str) -> str:
    name = f"tl_bench_replay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    tokenline = str(Path(sys.executable).parent / "tokenline")
    subprocess.run(
        [tokenline, "sink", "migrate", "--database-url", url, "--storage", "postgresql"],
        check=True,
        capture_output=True,
    )
    return url


def _line(what: str, seconds: float, n: int, extra: str = "") -> None:
    print(f"{what:<44} {seconds:8.2f} s {n / seconds:>12,.0f} ev/s  {extra}", flush=True)


class _Clock(Progress):
    """Notes when everything was sent (before waiting for the sink)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.sent = 0.0

    def sent_all(self) -> None:
        self.sent = time.perf_counter() - self.start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--land", action="store_true", help="also time the sink's landing")
    args = parser.parse_args()
    bootstrap = os.environ["TOKENLINE_TEST_KAFKA_BOOTSTRAP"]
    server_url = os.environ["TOKENLINE_TEST_DATABASE_URL"]
    settings = ProcessorSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"bench-replay-{uuid.uuid4().hex[:6]}-",
        topic_partitions=4,
        metrics_port=0,
    )
    ensure_topics(bootstrap, topic_specs(settings))
    url = new_database(server_url)
    n = args.events
    print(f"{n:,} raw events, 4 partitions, {args.readers} reader(s), {os.cpu_count()} cores")
    _line("produce (pre-encoded, lz4)", produce(settings, n), n)
    ceiling = consume(settings, n, decode=False)
    _line("ceiling: bare consume, no decode", ceiling, n)
    decode = consume(settings, n, decode=True)
    _line("decode only (1 process)", decode, n)

    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    prices_a, prices_b = tmp / "a.json", tmp / "b.json"
    prices_a.write_text(PriceBook(_table("15")).to_json(), encoding="utf-8")
    prices_b.write_text(PriceBook(_table("17.5")).to_json(), encoding="utf-8")
    sink = None
    if args.land:
        env = {
            **os.environ,
            "TOKENLINE_DATABASE_URL": url,
            "TOKENLINE_BOOTSTRAP_SERVERS": bootstrap,
            "TOKENLINE_TOPIC_PREFIX": settings.topic_prefix,
            "TOKENLINE_GROUP_ID": f"bench-sink-{uuid.uuid4().hex[:6]}",
            "TOKENLINE_METRICS_PORT": "0",
        }
        log = (tmp / "sink.log").open("wb")
        tokenline = str(Path(sys.executable).parent / "tokenline")
        sink = subprocess.Popen([tokenline, "sink", "run"], env=env, stdout=log, stderr=log)
    try:
        for label, prices in (("first pricing", prices_a), ("re-pricing", prices_b)):
            request = ReplayRequest(
                start=T0,
                end=T0 + timedelta(hours=1),
                database_url=url,
                prices_file=prices,
                readers=args.readers,
                wait_landed_s=900 if sink is not None else None,
            )
            clock = _Clock()
            report = run_replay(request, settings, clock)
            landed = time.perf_counter() - clock.start
            assert report.counts.replayed == n, report.counts
            _line(
                f"replay end to end ({label})",
                clock.sent,
                n,
                f"x{ceiling / clock.sent:.2f} of ceiling, x{decode / clock.sent:.2f} of "
                f"decode-only; {report.rollups_sent} windows",
            )
            if sink is not None:
                _line(f"  until landed in PostgreSQL ({label})", landed, n)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(30)
        with psycopg.connect(server_url, autocommit=True) as conn:
            name = make_url(url).database
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
