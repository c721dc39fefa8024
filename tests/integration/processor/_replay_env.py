"""The replay tests' world: fresh topics and database, a sink worker subprocess, raw events."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg import sql
from sqlalchemy.engine import make_url

from tests._kafka import KEEP
from tests.factories import usage_event
from tokenline.processor.pricing import BucketPrices, PriceEntry, PriceTable
from tokenline.processor.replay import ReplayRequest, run_replay
from tokenline.processor.settings import ProcessorSettings
from tokenline.processor.topics import ensure_topics, topic_specs
from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from tokenline.processor.pricebook import PriceBook
    from tokenline.processor.replay import ReplayReport

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
#: A few hours before now, on a whole minute. The raw topics are created with explicit infinite
#: retention (``create_topics``), so the broker never deletes these records, whatever the
#: timestamps and whenever its retention check runs.
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
USAGE = AvroCodec[Any]("tokenline.UsageEvent")


class World:
    """Fresh topics and database, a sink worker landing them, and raw events on the topic."""

    def __init__(
        self, settings: ProcessorSettings, url: str, group: str, tmp: Path, span: tuple[Any, Any]
    ) -> None:
        self.settings = settings
        self.url = url
        self.group = group
        self.tmp = tmp
        self.start, self.end = span
        self.events: list[Any] = []
        self.prices: dict[str, Path] = {}

    def add_book(self, name: str, book: PriceBook) -> Path:
        """Write ``book`` as a price-book document; ``prices[name]`` is its path."""
        path = self.tmp / f"{name}.json"
        path.write_text(book.to_json(), encoding="utf-8")
        self.prices[name] = path
        return path

    def replay(self, prices: Path, **more: Any) -> ReplayReport:
        request = ReplayRequest(
            start=self.start,
            end=self.end,
            database_url=self.url,
            prices_file=prices,
            readers=2,
            **more,
        )
        return run_replay(request, self.settings)

    def in_range(self) -> list[Any]:
        return [e for e in self.events if self.start <= e["occurred_at"] < self.end]


@contextmanager
def open_world(
    kafka_bootstrap: str,
    database_url: str,
    tmp: Path,
    records: list[Any],
    span: tuple[datetime, datetime],
    *,
    also_send: Iterable[Any] = (),
) -> Iterator[World]:
    """A :class:`World` whose raw topic holds ``records`` (then ``also_send``)."""
    prefix = f"rp-{uuid.uuid4().hex[:8]}-"
    s = settings(kafka_bootstrap, prefix)
    create_topics(s)
    url = new_database(database_url)
    group = f"sink-{uuid.uuid4().hex[:8]}"
    sink = start_sink(s, url, group, tmp / "sink.log")
    try:
        world = World(s, url, group, tmp, span)
        world.events = records
        produce_raw(s, [*records, *also_send])
        yield world
    finally:
        stop(sink)
        drop_database(database_url, url)


def tokenline() -> str:
    return str(Path(sys.executable).parent / "tokenline")


def per_million(value: str) -> Decimal:
    return Decimal(value) / 1_000_000


def entry(provider: str, model: str, inp: str, out: str) -> PriceEntry:
    prices = BucketPrices(
        input=per_million(inp),
        output=per_million(out),
        cache_read=per_million(inp) / 10,
        cache_write_5m=per_million(inp) * Decimal("1.25"),
        cache_write_1h=per_million(inp) * 2,
        reasoning=None,
    )
    return PriceEntry(PriceEntry.make_id(provider, model, SINCE), provider, model, SINCE, prices)


TABLE_A = PriceTable(
    [entry("anthropic", "claude-sonnet-4-5", "3", "15"), entry("openai", "gpt-4o", "2.50", "10")]
)
#: B changes Sonnet's output price only.
TABLE_B = PriceTable(
    [entry("anthropic", "claude-sonnet-4-5", "3", "17.5"), entry("openai", "gpt-4o", "2.50", "10")]
)


def settings(bootstrap: str, prefix: str, partitions: int = 2) -> ProcessorSettings:
    return ProcessorSettings(
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        topic_partitions=partitions,
        window_grace_s=120,
        metrics_port=0,
    )


def create_topics(s: ProcessorSettings, raw_config: dict[str, str] | None = None) -> None:
    """The pipeline's topics; the raw one with ``raw_config``, by default infinite retention."""
    raw = s.topic(s.raw_topic)
    config = {**KEEP, **(raw_config or {})}
    specs = [
        type(spec)(spec.name, spec.partitions, spec.replication, {**spec.config, **config})
        if spec.name == raw
        else spec
        for spec in topic_specs(s)
    ]
    ensure_topics(s.bootstrap_servers, specs)


def new_database(server_url: str) -> str:
    name = f"tl_replay_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    subprocess.run(
        [tokenline(), "sink", "migrate", "--database-url", url, "--storage", "postgresql"],
        check=True,
        capture_output=True,
    )
    return url


def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def sink_env(s: ProcessorSettings, url: str, group: str) -> dict[str, str]:
    return {
        **os.environ,
        "TOKENLINE_DATABASE_URL": url,
        "TOKENLINE_BOOTSTRAP_SERVERS": s.bootstrap_servers,
        "TOKENLINE_TOPIC_PREFIX": s.topic_prefix,
        "TOKENLINE_GROUP_ID": group,
        "TOKENLINE_METRICS_PORT": "0",
        "TOKENLINE_BATCH_MAX_MS": "200",
    }


def start_sink(s: ProcessorSettings, url: str, group: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [tokenline(), "sink", "run"], env=sink_env(s, url, group), stdout=out, stderr=out
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def events(tenants: Iterable[str], *, windows: int, per_window: int) -> list[Any]:
    """Events of every tenant over ``windows`` minutes from T0, alternating two known models
    and now and then an unknown one."""
    out = []
    n = 0
    for tenant in tenants:
        for w in range(windows):
            for i in range(per_window):
                n += 1
                provider, model = (
                    ("anthropic", "claude-sonnet-4-5")
                    if i % 3 == 0
                    else ("openai", "gpt-4o")
                    if i % 3 == 1
                    else ("openai", "gpt-unknown-9")
                )
                out.append(
                    usage_event(
                        event_id=uuid.uuid4(),
                        producer_seq=n,
                        tenant_id=tenant,
                        occurred_at=T0 + timedelta(minutes=w, seconds=i * 7, microseconds=n),
                        provider=provider,
                        request_model=model,
                        response_model=model,
                        usage={
                            "input_tokens": 1000 + n,
                            "cache_read_input_tokens": 10 * n,
                            "cache_write_input_tokens": 0,
                            "cache_write_5m_input_tokens": None,
                            "cache_write_1h_input_tokens": None,
                            "output_tokens": 200 + 3 * n,
                            "reasoning_tokens": 0,
                            "provider_total_tokens": None,
                            "mismatch": None,
                        },
                        latency_ms=100 + n,
                    )
                )
    return out


def produce_raw(s: ProcessorSettings, records: Iterable[Any]) -> None:
    """Produce as the SDK does: key tenant, murmur2, timestamp = occurred_at."""
    producer = Producer(
        {"bootstrap.servers": s.bootstrap_servers, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    for record in records:
        producer.produce(
            s.topic(s.raw_topic),
            key=record["tenant_id"].encode(),
            value=USAGE.encode(record),
            timestamp=int(record["occurred_at"].timestamp() * 1000),
        )
    assert producer.flush(30) == 0


def high_watermarks(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in parts
        }
    finally:
        consumer.close()


def wait_caught_up(s: ProcessorSettings, group: str, timeout_s: float = 60) -> None:
    """Until the sink's group has committed the end of the priced topic (all it reads)."""
    topics = [s.topic(s.priced_topic)]
    ends = {(t, p): h for t in topics for p, h in high_watermarks(s.bootstrap_servers, t).items()}
    consumer = Consumer({"bootstrap.servers": s.bootstrap_servers, "group.id": group})
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            committed = consumer.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
            if all(
                tp.offset >= ends[(tp.topic, tp.partition)]
                for tp in committed
                if ends[(tp.topic, tp.partition)] > 0
            ):
                return
            assert time.monotonic() < deadline, f"sink group {group} did not catch up"
            time.sleep(0.3)
    finally:
        consumer.close()


def snapshot(url: str) -> tuple[list[Any], list[Any]]:
    with psycopg.connect(url) as conn:
        events_rows = conn.execute(
            "SELECT * FROM usage_events ORDER BY event_id, occurred_at"
        ).fetchall()
        rollups = conn.execute(
            "SELECT * FROM usage_rollup_1m ORDER BY tenant_id, window_start, provider, model"
        ).fetchall()
    return events_rows, rollups
