"""Re-pricing's aggregate changes, summed in SQL, equal the Python rules and the raw sums.

The re-pricing ``UPDATE`` stages what it changes in ``usage_rollup_1m`` and
``usage_tenant_daily`` itself (:mod:`tokenline.sink.repricing_sql`). Two independent checks:

- what it stages equals what :func:`tokenline.sink.rollups.deltas` and
  :func:`tokenline.sink.tenant_daily.deltas` (the Python rules, a second implementation) make
  of the same (old, new) event rows, read back from the database;
- after batches mixing new events and re-priced ones in the same keys (new costs, priced and
  unpriced turns, models moved, empty model names, another currency), the rollups and the
  tenant-local days equal the raw sums (:mod:`tests._rollup_truth`, :mod:`tests._daily_truth`).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests._daily_truth import check_daily
from tests._rollup_truth import check_rollups
from tests.factories import priced_event
from tests.integration.sink._data import EventFactory, utc
from tokenline.sink import rollups, tenant_daily
from tokenline.sink import store_sql as q
from tokenline.sink.batch import ROLLUP_KEY
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration

_TEMPLATE = event_row(priced_event())
ZONES = {"t-a": "Asia/Kathmandu", "t-b": "America/New_York"}


@pytest.fixture(params=["postgresql", pytest.param("timescaledb", marks=pytest.mark.timescale)])
def url(new_database: Callable[[], str], request: pytest.FixtureRequest) -> str:
    """A database migrated on each storage path, two tenants with their zones."""
    from tests.integration.sink.conftest import zoned_database

    return zoned_database(new_database(), request.param, ZONES)


def _events(factory: EventFactory, count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        tenant = ("t-a", "t-b", "t-none")[n % 3]
        # A few minutes either side of a UTC midnight, so keys are shared by many events.
        made = factory.row(tenant, utc(2026, 10, 31, 23, 57) + timedelta(seconds=n * 3))
        row = {**_TEMPLATE, **made, "attributed_team": "platform" if n % 7 == 0 else None}
        if n % 11 == 0:  # empty names: the rollup model skips them, the daily model does not
            row |= {"canonical_model": "", "response_model": "", "deployment": "dep-1"}
        rows.append(row)
    return rows


def _repriced(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """A later pricing of each row: another cost, unpriced, moved to a model, or in EUR."""
    out = []
    for n, row in enumerate(rows):
        new = {**row, "pricing_version": f"v{seed}", "priced_at": row["priced_at"] + timedelta(1)}
        kind = (n + seed) % 5
        if kind == 0:
            new |= {"pricing_status": "unpriced", "unpriced_reason": "unknown_model"}
            new |= dict.fromkeys(
                ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output"), None
            )
            new |= {"cost_reasoning": None, "cost_total": None}
        else:
            parts = [Decimal(n % 89 + i + seed) / 1000 for i in range(5)]
            new |= dict(
                zip(
                    ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output"),
                    parts[:4],
                    strict=True,
                )
            )
            new |= {"cost_reasoning": parts[4], "cost_total": sum(parts, Decimal(0))}
            new |= {"pricing_status": "priced", "unpriced_reason": None}
            if kind == 1:
                new["canonical_model"] = f"renamed-{seed}"
            if kind == 2:
                new["currency"] = "EUR"
        out.append(new)
    return out


def _stored(url: str, rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        found = conn.execute(
            "SELECT * FROM usage_events WHERE event_id = ANY(%s)", ([r["event_id"] for r in rows],)
        ).fetchall()
    return {r["event_id"]: r for r in found}


def _tables(url: str) -> list[list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5").fetchall()
            for table in ("usage_rollup_1m", "usage_tenant_daily")
        ]


def _staged(store: PostgresUsageStore) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """What the last landing left in the two staging tables (temporary: the store's session)."""
    conn = store._connection()  # the staging tables live in the store's own session
    with conn.cursor(row_factory=dict_row) as cur:
        rollup = {
            tuple(r[k] for k in ROLLUP_KEY): r
            for r in cur.execute(f"SELECT * FROM {q.ROLLUP_STAGING}").fetchall()
        }
        daily = {
            tuple(r[k] for k in tenant_daily.KEY): r
            for r in cur.execute(f"SELECT * FROM {q.DAILY_STAGING}").fetchall()
        }
    conn.rollback()
    return rollup, daily


def test_what_sql_stages_equals_the_python_rules(url: str) -> None:
    factory = EventFactory(seed=23)
    events = _events(factory, 150)
    store = PostgresUsageStore(url)
    try:
        assert store.write(events) == []
        newer = _repriced(events, 1)
        old = _stored(url, events)
        assert store.write(newer) == []  # every event stored: only the UPDATE stages
        new = _stored(url, events)
        pairs = [(old[r["event_id"]], new[r["event_id"]]) for r in events]
        changed = [(o, n) for o, n in pairs if o != n]
        assert len(changed) > len(events) // 2

        rollup, daily = _staged(store)
        want_rollup = rollups.deltas([], changed)
        assert rollup.keys() == want_rollup.keys()
        for key, delta in want_rollup.items():
            for column in (*q.DELTA_SUMS, "latency_ms_max"):
                assert rollup[key][column] == getattr(delta, column), (key, column)
            if delta.requests > 0:
                assert rollup[key]["currency"] == delta.currency, key
        want_daily = tenant_daily.deltas([], changed)
        assert daily.keys() == want_daily.keys()
        for key, sums in want_daily.items():
            assert [daily[key][c] for c in tenant_daily.SUMS] == sums[:-1], key
            # The largest latency of the events counted under the key now (the Python rule
            # leaves an event re-priced in place out, as it was counted there already).
            now = [n["latency_ms"] for _, n in changed if tenant_daily.quarter_key(n) == key]
            assert daily[key]["latency_ms_max"] == max(now, default=0), key
        # Some keys lost events (moved models, currencies): they are there, negative.
        assert any(d.requests < 0 for d in want_rollup.values())
    finally:
        store.close()


def test_mixed_batches_keep_rollups_and_days_equal_to_the_raw_sums(url: str) -> None:
    factory = EventFactory(seed=29)
    events = _events(factory, 240)
    store = PostgresUsageStore(url)
    try:
        assert store.write(events[:120]) == []
        # New events and re-priced ones of the same minutes in one batch, then again later.
        for seed, batch in enumerate((events[60:180], events[100:240], events[::2]), 1):
            newer = _repriced(batch, seed)
            assert store.write([*newer[1::2], *batch[::2]]) == []
            result = check_rollups(url)
            assert result.exact, result.differing[:3]
            day = check_daily(url)
            assert day.exact, day.differing[:3]
            last = [*newer[1::2], *batch[::2]]
        assert result.events == len(events)
        # The last batch again (a replay) changes nothing.
        before = _tables(url)
        assert store.write(last) == []
        assert _tables(url) == before
    finally:
        store.close()
