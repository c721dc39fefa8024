"""Helpers of the sink's Kafka tests: produce priced events and rollups, wait for rows."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from confluent_kafka import Producer
from pydantic import SecretStr

from tests._kafka import new_topic
from tests.factories import EPOCH, priced_event, rollup, usage_event
from tokenline.schemas import AvroCodec
from tokenline.sink.settings import SinkSettings

if TYPE_CHECKING:
    from collections.abc import Iterable


def topics(bootstrap: str, partitions: int = 4) -> dict[str, str]:
    return {
        "priced_topic": new_topic(bootstrap, "priced", partitions),
        "rollup_topic": new_topic(bootstrap, "rollup", partitions),
        "dlq_topic": new_topic(bootstrap, "dlq", 1),
    }


def settings(bootstrap: str, url: str, names: dict[str, str], **more: Any) -> SinkSettings:
    return SinkSettings(
        database_url=SecretStr(url),
        storage="postgresql",
        bootstrap_servers=bootstrap,
        group_id=f"sink-{uuid.uuid4().hex[:8]}",
        metrics_port=0,
        batch_max_ms=200,
        **names,
        **more,
    )


def env(s: SinkSettings) -> dict[str, str]:
    """The ``TOKENLINE_*`` variables that configure a worker subprocess like ``s``."""
    values = s.model_dump(exclude_none=True)
    values["database_url"] = s.database_url.get_secret_value()
    return {f"TOKENLINE_{k.upper()}": str(v) for k, v in values.items()}


def event(n: int, *, seed: int = 0) -> Any:
    """Priced event number ``n`` with a distinct id and a cost with 12 decimals."""
    total = Decimal(n % 997 + 1) / Decimal(1000) + Decimal("0.000000000001") * (n % 13)
    return priced_event(
        event=usage_event(
            event_id=uuid.UUID(int=(seed << 64) + n + 1),
            occurred_at=EPOCH + timedelta(milliseconds=n),
            tenant_id=f"t{n % 7}",
        ),
        cost={
            "input": total,
            "cache_read": Decimal(0),
            "cache_write": Decimal(0),
            "output": Decimal(0),
            "reasoning": Decimal(0),
            "total": total,
        },
    )


def produce(bootstrap: str, topic: str, values: Iterable[bytes], *, pace_per_s: int = 0) -> int:
    """Produce ``values`` round-robin over the partitions; optionally at about ``pace_per_s``."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    count = 0
    start = time.monotonic()
    for value in values:
        while True:
            try:
                producer.produce(topic, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if pace_per_s and count % 500 == 0:
            ahead = count / pace_per_s - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        producer.poll(0)
    assert producer.flush(60) == 0
    return count


def encoded_events(n: int, *, seed: int = 0) -> tuple[list[bytes], Decimal]:
    codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
    records = [event(i, seed=seed) for i in range(n)]
    return [codec.encode(r) for r in records], sum(
        (r["cost"]["total"] for r in records), Decimal(0)
    )


def encoded_rollups(n: int) -> list[bytes]:
    codec = AvroCodec[Any]("tokenline.UsageRollup")
    return [codec.encode(rollup(model=f"m{i}", requests=i)) for i in range(n)]


def totals(url: str) -> tuple[int, Decimal | None]:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*), sum(cost_total) FROM usage_events").fetchone()
    assert row is not None
    return int(row[0]), row[1]


def wait_for_rows(url: str, expected: int, timeout_s: float) -> tuple[int, Decimal | None]:
    deadline = time.monotonic() + timeout_s
    found = totals(url)
    while found[0] < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        found = totals(url)
    return found
