"""Rows for usage_events, built like the sink will build them from a PricedUsageEvent."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, insert, pool, text

from tokenline.sink.models import Tenant, UsageEvent
from tokenline.sink.settings import sqlalchemy_url

PRODUCER = uuid.UUID("00000000-0000-7000-8000-000000000001")
QUANTUM = Decimal("0.000000000001")
MODELS = ("gpt-4o", "claude-sonnet-4", "gemini-2.5-pro")
PROVIDERS = {"gpt-4o": "openai", "claude-sonnet-4": "anthropic", "gemini-2.5-pro": "gemini"}


@dataclass
class EventFactory:
    """Makes usage_events rows with random but reproducible values."""

    seed: int = 7
    seq: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def row(self, tenant_id: str, occurred_at: datetime, **overrides: Any) -> dict[str, Any]:
        rng = self.rng
        self.seq += 1
        model = rng.choice(MODELS)
        priced = rng.random() > 0.15
        costs = [Decimal(rng.randrange(0, 10**9)) * QUANTUM for _ in range(5)]
        row: dict[str, Any] = {
            "event_id": uuid.UUID(int=rng.getrandbits(128)),
            "occurred_at": occurred_at,
            "tenant_id": tenant_id,
            "project": rng.choice(["search", "chat", None]),
            "user_id": rng.choice(["ana", "bo", "cy", "di"]),
            "team": rng.choice(["core", "growth"]),
            "tags": {"env": "test"},
            "provider": PROVIDERS[model],
            "operation": "chat",
            "request_model": model,
            "response_model": model,
            "canonical_model": model if priced else None,
            "input_tokens": rng.randrange(0, 5000),
            "cache_read_input_tokens": rng.randrange(0, 2000),
            "cache_write_input_tokens": rng.randrange(0, 500),
            "output_tokens": rng.randrange(0, 3000),
            "reasoning_tokens": rng.randrange(0, 1000),
            "usage_source": "reported",
            "latency_ms": rng.randrange(50, 20_000),
            "success": rng.random() > 0.1,
            "producer_id": PRODUCER,
            "producer_seq": self.seq,
            "pricing_status": "priced" if priced else "unpriced",
            "unpriced_reason": None
            if priced
            else rng.choice(["unknown_model", "no_price_at_date"]),
            "cost_input": costs[0] if priced else None,
            "cost_cache_read": costs[1] if priced else None,
            "cost_cache_write": costs[2] if priced else None,
            "cost_output": costs[3] if priced else None,
            "cost_reasoning": costs[4] if priced else None,
            "cost_total": sum(costs, Decimal(0)) if priced else None,
            "currency": "USD",
            "pricing_version": "v-test",
            "priced_at": occurred_at + timedelta(seconds=1),
            "source_topic": "llm-usage.priced",
            "source_partition": 0,
            "source_offset": self.seq,
        }
        row.update(overrides)
        return row

    def spread(
        self, tenant_id: str, start: datetime, end: datetime, count: int
    ) -> list[dict[str, Any]]:
        """``count`` rows at random microseconds in ``[start, end)``."""
        span = int((end - start) / timedelta(microseconds=1))
        return [
            self.row(tenant_id, start + timedelta(microseconds=self.rng.randrange(span)))
            for _ in range(count)
        ]


def insert_rows(
    url: str, rows: list[dict[str, Any]], tenants: dict[str, str] | None = None
) -> None:
    """Insert usage_events rows and tenants (id -> timezone) through the models.

    The rows bypass the sink, which keeps ``usage_tenant_daily``: it is rebuilt from the
    events afterwards (``tokenline_rebuild_tenant_daily``), as a migration would.
    """
    engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            if tenants:
                conn.execute(
                    insert(Tenant),
                    [{"tenant_id": t, "timezone": tz} for t, tz in tenants.items()],
                )
            if rows:
                conn.execute(insert(UsageEvent), rows)
                conn.execute(text("SELECT tokenline_rebuild_tenant_daily(NULL)"))
    finally:
        engine.dispose()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
