"""usage_tenant_daily, kept by the sink, equals zoneinfo sums of the raw events, exactly.

Tenants at +05:30, +05:45, a 60-minute DST change (New York), a 30-minute one (Lord Howe) and
+12:45/+13:45 (Chatham); events on both sides of every local midnight and in the repeated hour.
The events land through ``PostgresUsageStore`` (duplicates, re-pricing, a replay of older and
newer pricings); after each step the table is compared with :func:`tests._daily_truth.check_daily`
(Python zoneinfo over the stored rows). A timezone change through ``tokenline sink
set-timezone`` rebuilds the tenant's rows. On both storage paths (TimescaleDB: marked
``timescale``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner

from tests._daily_truth import check_daily
from tests.factories import priced_event
from tests.integration.sink._data import EventFactory, utc
from tokenline.sink.cli import sink
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration

TENANTS = {
    "t-kolkata": "Asia/Kolkata",
    "t-kathmandu": "Asia/Kathmandu",
    "t-new-york": "America/New_York",
    "t-lord-howe": "Australia/Lord_Howe",
    "t-chatham": "Pacific/Chatham",
}
FIRST, LAST = date(2026, 9, 25), date(2026, 11, 3)
# Local times that occur twice (the hour, or half hour, a DST change repeats).
REPEATED = {
    "America/New_York": datetime(2026, 11, 1, 1, 30),  # noqa: DTZ001 - local wall clock
    "Australia/Lord_Howe": datetime(2026, 4, 5, 1, 45),  # noqa: DTZ001
}
_TEMPLATE = event_row(priced_event())


def _row(factory: EventFactory, tenant: str, moment: datetime) -> dict[str, Any]:
    """A complete usage_events row (every column the sink writes) at ``moment``."""
    made = factory.row(tenant, moment)
    return {**_TEMPLATE, **made, "attributed_team": None}


def _edges(tz: str) -> list[datetime]:
    zone = ZoneInfo(tz)
    found = []
    day = FIRST
    while day <= LAST:
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        found += [midnight, midnight - timedelta(microseconds=1), midnight + timedelta(minutes=7)]
        day += timedelta(days=1)
    if tz in REPEATED:
        wall = REPEATED[tz].replace(tzinfo=zone)
        found += [wall.replace(fold=0), wall.replace(fold=1)]
    return [moment.astimezone(ZoneInfo("UTC")) for moment in found]


def _events() -> list[dict[str, Any]]:
    factory = EventFactory(seed=15)
    made: list[dict[str, Any]] = []
    for tenant, tz in TENANTS.items():
        made += [_row(factory, tenant, moment) for moment in _edges(tz)]
        span = (LAST - FIRST).days * 86_400
        made += [
            _row(factory, tenant, utc(2026, 9, 25) + timedelta(seconds=factory.rng.randrange(span)))
            for _ in range(120)
        ]
    # A tenant without a row in tenants is summed in UTC.
    made += [_row(factory, "t-no-row", utc(2026, 10, 31, 23, 59, 59)) for _ in range(3)]
    return made


def _repriced(rows: list[dict[str, Any]], step: int) -> list[dict[str, Any]]:
    """A newer pricing of every ``step``-th row: a new cost, some now unpriced or re-modelled."""
    out = []
    for n, row in enumerate(rows[::step]):
        new = {**row, "pricing_version": "v-new", "priced_at": row["priced_at"] + timedelta(1)}
        if n % 5 == 0:  # unpriced now
            new |= {"pricing_status": "unpriced", "unpriced_reason": "unknown_model"}
            new |= dict.fromkeys(
                ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output"), None
            )
            new |= {"cost_reasoning": None, "cost_total": None}
        else:
            costs = [Decimal(n % 97 + i) / 1000 for i in range(5)]
            new |= dict(
                zip(
                    ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output"),
                    costs[:4],
                    strict=True,
                )
            )
            new |= {"pricing_status": "priced", "unpriced_reason": None}
            new |= {"cost_reasoning": costs[4], "cost_total": sum(costs, Decimal(0))}
            if n % 3 == 0:  # the canonical model changes: the event moves to another key
                new["canonical_model"] = "model-renamed"
        out.append(new)
    return out


def _land(store: PostgresUsageStore, rows: list[dict[str, Any]], size: int = 250) -> None:
    for start in range(0, len(rows), size):
        assert store.write(rows[start : start + size]) == []


def _table(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT * FROM usage_tenant_daily ORDER BY 1, 2, 3, 4, 5, 6, 7"
        ).fetchall()


@pytest.fixture(params=["postgresql", pytest.param("timescaledb", marks=pytest.mark.timescale)])
def url(new_database: Callable[[], str], request: pytest.FixtureRequest) -> str:
    """A database migrated on each storage path (TimescaleDB: usage_events a hypertable)."""
    from tests.integration.sink.conftest import zoned_database

    return zoned_database(new_database(), request.param, TENANTS)


def test_exact_under_duplicates_repricing_replay_and_a_timezone_change(url: str) -> None:
    events = _events()
    store = PostgresUsageStore(url)
    try:
        # Fresh events, a batch delivered twice, and copies inside one batch.
        _land(store, events)
        _land(store, events[100:400])
        assert store.write([*events[:50], *events[:50]]) == []
        first = check_daily(url)
        assert first.exact, first.differing[:3]
        assert first.events == len(events)
        before = _table(url)

        # A re-pricing: new costs, some events unpriced now, some moved to another model.
        newer = _repriced(events, 3)
        _land(store, newer, 97)
        second = check_daily(url)
        assert second.exact, second.differing[:3]
        assert _table(url) != before

        # A replay: the older pricing again (ignored) and the newer one again (no change).
        after_repricing = _table(url)
        _land(store, events[::3])
        _land(store, newer, 61)
        assert _table(url) == after_repricing
        assert check_daily(url).exact
    finally:
        store.close()

    # New York's tenant moves to Kolkata's zone: one command rebuilds its days.
    result = CliRunner().invoke(
        sink, ["set-timezone", "t-new-york", "Asia/Kolkata", "--database-url", url], env={}
    )
    assert result.exit_code == 0, result.output
    assert "daily rows rebuilt" in result.output
    third = check_daily(url)
    assert third.exact, third.differing[:3]
    assert _table(url) != after_repricing


def test_an_unknown_zone_is_refused_and_changes_nothing(url: str) -> None:
    store = PostgresUsageStore(url)
    try:
        _land(store, _events()[:200])
    finally:
        store.close()
    before = _table(url)
    assert before
    result = CliRunner().invoke(
        sink, ["set-timezone", "t-kolkata", "+05:30", "--database-url", url], env={}
    )
    assert result.exit_code != 0
    assert "unknown time zone" in result.output
    assert _table(url) == before
    with psycopg.connect(url) as conn:
        zone = conn.execute("SELECT timezone FROM tenants WHERE tenant_id = 't-kolkata'")
        assert zone.fetchone() == ("Asia/Kolkata",)
