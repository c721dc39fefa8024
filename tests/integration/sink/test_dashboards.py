"""Every SQL query of the Grafana dashboards runs against a migrated database and finds its rows.

Grafana expands a few macros before it sends a query; the test expands the same ones the way
Grafana's PostgreSQL datasource does (``$__timeFilter(col)`` is ``col BETWEEN 'from' AND 'to'``,
``$__timeFrom()`` / ``$__timeTo()`` are quoted RFC 3339 instants, ``$tenant`` is the raw value)
and fails on any other ``$`` left in a query, so a dashboard cannot use a macro it does not know.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from tests.integration.sink._data import EventFactory, insert_rows, utc

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "dashboards"
TENANT = "acme"
FROM = utc(2026, 11, 1)
TO = utc(2026, 11, 15)


def _queries() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        found.extend(
            (f"{path.stem}:${variable['name']}", variable["query"])
            for variable in dashboard.get("templating", {}).get("list", [])
            if variable.get("type") == "query"
        )
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if "rawSql" not in target:
                    continue  # PromQL: tests/integration/test_prometheus.py runs those
                ref = f"{path.stem}:{panel['title']}:{target['refId']}"
                found.append((ref, target["rawSql"]))
    return found


QUERIES = _queries()
TENANT_QUERIES = [(ref, sql) for ref, sql in QUERIES if "$tenant" in sql]


def expand(sql: str, tenant: str = TENANT) -> str:
    """Expand the Grafana macros the dashboards may use; anything else stays and fails."""
    start, end = (f"'{t.strftime('%Y-%m-%dT%H:%M:%SZ')}'" for t in (FROM, TO))
    sql = re.sub(r"\$__timeFilter\(([^()]+)\)", rf"\1 BETWEEN {start} AND {end}", sql)
    sql = sql.replace("$__timeFrom()", start).replace("$__timeTo()", end)
    return sql.replace("$tenant", tenant)


def test_dashboards_have_queries() -> None:
    dashboards = {ref.split(":", 1)[0] for ref, _ in QUERIES}
    assert dashboards == {"overview", "tenant-detail"}
    assert len(QUERIES) >= 20


@pytest.mark.parametrize(("ref", "sql"), QUERIES, ids=[ref for ref, _ in QUERIES])
def test_only_known_macros(ref: str, sql: str) -> None:
    expanded = expand(sql)
    # $fn$-style dollar quoting is not used in dashboard queries: any $ left is an unknown macro.
    assert "$" not in expanded, f"{ref} uses a macro the test does not expand: {expanded}"


def test_expand_matches_grafana() -> None:
    expanded = expand("WHERE $__timeFilter(bucket) AND tenant_id = '$tenant' AND $__timeTo() > x")
    assert expanded == (
        "WHERE bucket BETWEEN '2026-11-01T00:00:00Z' AND '2026-11-15T00:00:00Z'"
        " AND tenant_id = 'acme' AND '2026-11-15T00:00:00Z' > x"
    )


def _load(url: str) -> str:
    factory = EventFactory(seed=23)
    rows: list[dict[str, Any]] = factory.spread(TENANT, FROM, TO, 400)
    rows += factory.spread("other", FROM, FROM + timedelta(days=2), 40)
    # Rows outside the range the queries read, which must not break anything.
    rows += factory.spread(TENANT, FROM - timedelta(days=40), FROM - timedelta(days=35), 20)
    # At least one of every kind the tenant dashboard shows, whatever the random draw.
    rows.append(
        factory.row(
            TENANT,
            FROM + timedelta(hours=5),
            success=False,
            error_type="RateLimitError",
            http_status=429,
        )
    )
    rows.append(
        factory.row(
            TENANT,
            FROM + timedelta(hours=6),
            canonical_model=None,
            pricing_status="unpriced",
            unpriced_reason="unknown_model",
            cost_input=None,
            cost_cache_read=None,
            cost_cache_write=None,
            cost_output=None,
            cost_reasoning=None,
            cost_total=None,
        )
    )
    insert_rows(url, rows, tenants={TENANT: "America/New_York", "other": "UTC"})
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO budgets (budget_id, tenant_id, scope, scope_value, period, amount,"
            " hard_limit) VALUES ('acme-all', %s, 'tenant', NULL, 'month', 5, NULL),"
            " ('acme-core', %s, 'team', 'core', 'day', 0.01, 0.02)",
            (TENANT, TENANT),
        )
    return url


@pytest.fixture(scope="module")
def loaded_plain(plain_url: str) -> str:
    return _load(plain_url)


@pytest.fixture(scope="module")
def loaded_timescale(timescale_url: str) -> str:
    return _load(timescale_url)


def _run(url: str, sql: str, tenant: str = TENANT) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, prepare_threshold=None) as conn:
        return conn.execute(expand(sql, tenant)).fetchall()


def _has_values(rows: list[tuple[Any, ...]]) -> bool:
    return any(value is not None for row in rows for value in row)


@pytest.mark.parametrize(("ref", "sql"), QUERIES, ids=[ref for ref, _ in QUERIES])
def test_query_runs_and_returns_rows(loaded_plain: str, ref: str, sql: str) -> None:
    rows = _run(loaded_plain, sql)
    assert _has_values(rows), f"{ref} returned nothing"


@pytest.mark.parametrize(("ref", "sql"), TENANT_QUERIES, ids=[ref for ref, _ in TENANT_QUERIES])
def test_tenant_queries_see_only_the_tenant(loaded_plain: str, ref: str, sql: str) -> None:
    # A tenant without any row: every query filtered by $tenant returns no value at all.
    rows = _run(loaded_plain, sql, tenant="nobody")
    assert not _has_values(rows), f"{ref} shows rows of other tenants: {rows}"


def test_tenant_variable_lists_tenants(loaded_plain: str) -> None:
    sql = next(sql for ref, sql in QUERIES if ref == "tenant-detail:$tenant")
    assert [row[0] for row in _run(loaded_plain, sql)] == [TENANT, "other"]


def test_cost_panel_matches_raw_events(loaded_plain: str) -> None:
    sql = next(sql for ref, sql in QUERIES if ref == "tenant-detail:Cost:A")
    with psycopg.connect(loaded_plain) as conn:
        expected = conn.execute(
            "SELECT currency, sum(cost_total) FROM usage_events"
            " WHERE tenant_id = %s AND occurred_at BETWEEN %s AND %s AND cost_total IS NOT NULL"
            " GROUP BY currency ORDER BY currency",
            (TENANT, FROM, TO),
        ).fetchall()
    assert _run(loaded_plain, sql) == expected


def test_budget_panel_matches_raw_events(loaded_plain: str) -> None:
    """Per budget and local period, the panel's spend is the raw rows' sum, grouped here."""
    sql = next(sql for ref, sql in QUERIES if ref.startswith("tenant-detail:Budgets"))
    zone = ZoneInfo("America/New_York")
    with psycopg.connect(loaded_plain) as conn:
        rows = conn.execute(
            "SELECT occurred_at, cost_total, COALESCE(attributed_team, team) FROM usage_events"
            " WHERE tenant_id = %s AND occurred_at BETWEEN %s AND %s AND cost_total IS NOT NULL"
            " AND currency = 'USD'",
            (TENANT, FROM, TO),
        ).fetchall()
    expected: dict[tuple[str, datetime], Decimal] = defaultdict(Decimal)
    for at, cost, team in rows:
        local = at.astimezone(zone)
        expected["acme-all", local.replace(day=1, hour=0, minute=0, second=0, microsecond=0,
                                           tzinfo=None)] += cost  # fmt: skip
        if team == "core":
            day = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
            expected["acme-core", day] += cost
    shown = {(r[0], r[2]): r[3] for r in _run(loaded_plain, sql)}
    assert shown == dict(expected)
    crossed = {r[0]: r[6] for r in _run(loaded_plain, sql)}
    assert crossed["acme-core"] == "50%, 80%, 100%"  # a cent a day: every day crosses all


@pytest.mark.timescale
@pytest.mark.parametrize(("ref", "sql"), QUERIES, ids=[ref for ref, _ in QUERIES])
def test_query_runs_on_timescaledb(loaded_timescale: str, ref: str, sql: str) -> None:
    rows = _run(loaded_timescale, sql)
    assert _has_values(rows), f"{ref} returned nothing"
