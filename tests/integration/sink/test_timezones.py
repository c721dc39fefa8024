"""Tenant-local daily and monthly totals equal a brute-force zoneinfo computation, exactly."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.integration.sink._data import EventFactory, insert_rows, utc

pytestmark = pytest.mark.integration

TENANTS = {
    "t-utc": "UTC",
    "t-kolkata": "Asia/Kolkata",
    "t-kathmandu": "Asia/Kathmandu",
    "t-new-york": "America/New_York",
}
FROM_DAY, TO_DAY = date(2026, 10, 29), date(2026, 11, 4)
MEASURES = ("requests", "failures", "unpriced_count", "input_tokens", "output_tokens", "cost_total")


def _edge_times(tz: str) -> list[datetime]:
    """Instants on both sides of every local midnight, and both 01:30s of the DST change."""
    zone = ZoneInfo(tz)
    found = []
    day = FROM_DAY - timedelta(days=1)
    while day <= TO_DAY:
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
        found += [midnight, midnight - timedelta(microseconds=1), midnight + timedelta(minutes=14)]
        day += timedelta(days=1)
    found += [
        datetime(2026, 11, 1, 1, 30, tzinfo=zone, fold=0),
        datetime(2026, 11, 1, 1, 30, tzinfo=zone, fold=1),
    ]
    return [moment.astimezone(ZoneInfo("UTC")) for moment in found]


@pytest.fixture(scope="module")
def rows(plain_url: str) -> list[dict[str, Any]]:
    factory = EventFactory(seed=2026)
    made: list[dict[str, Any]] = []
    for tenant, tz in TENANTS.items():
        made += factory.spread(tenant, utc(2026, 10, 27), utc(2026, 11, 6), 600)
        made += [factory.row(tenant, moment) for moment in _edge_times(tz)]
    # A tenant without a row in tenants is summed in UTC.
    made += factory.spread("t-no-row", utc(2026, 10, 30), utc(2026, 11, 2), 50)
    insert_rows(plain_url, made, tenants=TENANTS)
    return made


def _brute_force(
    rows: list[dict[str, Any]], tenant: str, tz: str, monthly: bool
) -> dict[date, dict[str, Any]]:
    zone = ZoneInfo(tz)
    totals: dict[date, dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(MEASURES, 0) | {"cost_total": Decimal(0)}
    )
    for row in rows:
        if row["tenant_id"] != tenant:
            continue
        local_day = row["occurred_at"].astimezone(zone).date()
        if not FROM_DAY <= local_day < TO_DAY:
            continue
        key = local_day.replace(day=1) if monthly else local_day
        acc = totals[key]
        acc["requests"] += 1
        acc["failures"] += 0 if row["success"] else 1
        acc["unpriced_count"] += row["pricing_status"] == "unpriced"
        acc["input_tokens"] += row["input_tokens"]
        acc["output_tokens"] += row["output_tokens"]
        acc["cost_total"] += row["cost_total"] or Decimal(0)
    return dict(totals)


def _from_sql(url: str, function: str, tenant: str) -> dict[date, dict[str, Any]]:
    query = f"SELECT * FROM {function}(%s, %s, %s)"
    with psycopg.connect(url) as conn:
        cursor = conn.execute(query, (tenant, FROM_DAY, TO_DAY))
        names = [column.name for column in cursor.description or ()]
        result = [dict(zip(names, row, strict=True)) for row in cursor]
    totals = {}
    for row in result:
        assert row["currency"] == "USD"
        totals[row.pop(names[0])] = {key: row[key] for key in MEASURES}
    return totals


@pytest.mark.parametrize(("tenant", "tz"), [*TENANTS.items(), ("t-no-row", "UTC")])
def test_daily_totals_in_tenant_timezone(
    plain_url: str, rows: list[dict[str, Any]], tenant: str, tz: str
) -> None:
    expected = _brute_force(rows, tenant, tz, monthly=False)
    assert expected, "the data must cover the range"
    assert _from_sql(plain_url, "tenant_daily_totals", tenant) == expected


@pytest.mark.parametrize(("tenant", "tz"), [*TENANTS.items(), ("t-no-row", "UTC")])
def test_monthly_totals_in_tenant_timezone(
    plain_url: str, rows: list[dict[str, Any]], tenant: str, tz: str
) -> None:
    expected = _brute_force(rows, tenant, tz, monthly=True)
    assert set(expected) <= {date(2026, 10, 1), date(2026, 11, 1)}
    assert _from_sql(plain_url, "tenant_monthly_totals", tenant) == expected


def test_dst_day_in_new_york_has_25_hours(plain_url: str, rows: list[dict[str, Any]]) -> None:
    daily = _from_sql(plain_url, "tenant_daily_totals", "t-new-york")
    zone = ZoneInfo("America/New_York")
    both_folds = [
        r
        for r in rows
        if r["tenant_id"] == "t-new-york"
        and r["occurred_at"].astimezone(zone).replace(tzinfo=None) == datetime(2026, 11, 1, 1, 30)  # noqa: DTZ001 - a local wall-clock time
    ]
    assert len(both_folds) >= 2
    assert daily[date(2026, 11, 1)]["requests"] >= len(both_folds)


def test_utc_daily_view_matches_utc_tenant(plain_url: str, rows: list[dict[str, Any]]) -> None:
    with psycopg.connect(plain_url) as conn:
        found = dict(
            conn.execute(
                "SELECT bucket::date, sum(cost_total) FROM usage_daily"
                " WHERE tenant_id = 't-utc' AND bucket >= %s AND bucket < %s GROUP BY 1",
                (utc(2026, 10, 29), utc(2026, 11, 4)),
            )
        )
    expected = _brute_force(rows, "t-utc", "UTC", monthly=False)
    assert found == {day: totals["cost_total"] for day, totals in expected.items()}
