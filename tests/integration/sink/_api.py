"""Helpers of the API tests: two tenants' usage, keys for each, a client over the database."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from pydantic import SecretStr

from tests.integration.sink._data import EventFactory, utc
from tokenline.sink.api.keys import KeyStore
from tokenline.sink.api.settings import ApiSettings

TIMEZONES = {"t-kolkata": "Asia/Kolkata", "t-new-york": "America/New_York"}
TAGS = (
    {},
    {"env": "prod"},
    {"env": "prod", "feature": "search"},
    {"env": "test", "feature": "search"},
    {"env": "prod", "feature": "chat", "tier": "free"},
)


@dataclass(frozen=True)
class Keys:
    kolkata: str  # read and ingest t-kolkata
    new_york: str  # read and ingest t-new-york
    kolkata_ingest_only: str
    admin: str


def landed_rows() -> list[dict[str, Any]]:
    factory = EventFactory(seed=16)
    rng = random.Random(16)
    tag_rng = random.Random(17)
    rows: list[dict[str, Any]] = []
    for tenant in TIMEZONES:
        rows += factory.spread(tenant, utc(2026, 9, 29), utc(2026, 11, 3), 400)
    for row in rows:
        row["session_id"] = rng.choice(["s1", "s2", None])
        row["hostname"] = rng.choice(["web-1", "web-2", "batch-1"])
        row["host_cloud"] = rng.choice(["aws", "gcp", None])
        row["attributed_team"] = rng.choice(["relevance", None])
        row["currency"] = "EUR" if rng.random() < 0.05 else "USD"
        row["streamed"] = rng.random() < 0.5
        row["time_to_first_token_ms"] = rng.randrange(20, 900) if row["streamed"] else None
        row["tags"] = tag_rng.choice(TAGS)
    return rows


def make_keys(plain_url: str) -> Keys:
    store = KeyStore()
    with psycopg.connect(plain_url, row_factory=dict_row, autocommit=True) as conn:
        return Keys(
            kolkata=store.create(conn, tenant_id="t-kolkata", scopes=("read", "ingest")).text,
            new_york=store.create(conn, tenant_id="t-new-york", scopes=("read", "ingest")).text,
            kolkata_ingest_only=store.create(conn, tenant_id="t-kolkata", scopes=("ingest",)).text,
            admin=store.create(conn, tenant_id=None, scopes=("admin",)).text,
        )


def api_settings(url: str, **extra: Any) -> ApiSettings:
    return ApiSettings(database_url=SecretStr(url), api_rate_limit_per_minute=1_000_000, **extra)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
