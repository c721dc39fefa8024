"""Every SQL block in sink/QUERIES.md runs, and those over a fixed period return rows."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration.sink._data import EventFactory, insert_rows, utc

pytestmark = pytest.mark.integration

QUERIES_MD = Path(__file__).resolve().parents[3] / "sink" / "QUERIES.md"
BLOCKS = re.findall(r"```sql\n(.*?)```", QUERIES_MD.read_text(encoding="utf-8"), re.DOTALL)


def test_queries_md_has_the_queries() -> None:
    assert len(BLOCKS) >= 6


@pytest.fixture(scope="module")
def loaded(plain_url: str) -> str:
    factory = EventFactory(seed=11)
    rows: list[dict[str, Any]] = factory.spread("acme", utc(2026, 10, 25), utc(2026, 11, 30), 300)
    rows += factory.spread("other", utc(2026, 11, 1), utc(2026, 11, 3), 30)
    insert_rows(plain_url, rows, tenants={"acme": "Asia/Kolkata", "other": "UTC"})
    with psycopg.connect(plain_url) as conn:
        conn.execute("UPDATE tenants SET monthly_budget = 500 WHERE tenant_id = 'acme'")
        conn.execute(
            "INSERT INTO repricing_runs (range_from, range_to, tenants, old_pricing_versions,"
            " new_pricing_version, cost_before, cost_after, events_count, status, finished_at)"
            " VALUES (%s, %s, ARRAY['acme'], ARRAY['v-test'], 'v-2', 10, %s, 300, 'succeeded',"
            " now())",
            (utc(2026, 11, 1), utc(2026, 11, 30), Decimal("12.5")),
        )
        # Something inside the last 24 hours, for the query that reads relative to now().
        conn.execute(
            "INSERT INTO usage_events (event_id, occurred_at, tenant_id, provider, operation,"
            " usage_source, latency_ms, success, producer_id, producer_seq, pricing_status,"
            " unpriced_reason, pricing_version, priced_at)"
            " VALUES (gen_random_uuid(), now() - %s, 'acme', 'openai', 'chat', 'reported', 10,"
            " true, gen_random_uuid(), 0, 'unpriced', 'unknown_model', 'v-test', now())",
            (timedelta(hours=1),),
        )
    return plain_url


@pytest.mark.parametrize("query", BLOCKS, ids=[f"query{i}" for i in range(len(BLOCKS))])
def test_query_runs_and_returns_rows(loaded: str, query: str) -> None:
    with psycopg.connect(loaded, prepare_threshold=None) as conn:
        rows = conn.execute(query).fetchall()
    assert rows, query
