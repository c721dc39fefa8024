"""The tenant-local reports are planned over the tenant index of usage_tenant_daily (EXPLAIN).

``usage_tenant_daily`` is filled with 50 tenants' days (100,000 rows, in SQL) and analyzed; each
query a report, QUERIES.md or the totals functions run for one tenant is explained, and its plan
must read the table through ``uq_usage_tenant_daily`` with the tenant in the index condition,
never by a sequential scan. On both storage paths (TimescaleDB: marked ``timescale``).
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import sql

from tokenline.sink.report.queries import report_query
from tokenline.sink.report.selection import ReportSpec, Selection

pytestmark = pytest.mark.integration

INDEX = "uq_usage_tenant_daily"
FILL = """
INSERT INTO tenants (tenant_id, timezone)
SELECT 't-' || n, (ARRAY['Asia/Kolkata', 'Asia/Kathmandu', 'America/New_York', 'UTC'])[n % 4 + 1]
FROM generate_series(1, 50) n;
INSERT INTO usage_tenant_daily
SELECT 't-' || n, DATE '2025-11-01' + d, 'openai', 'model-' || m, 'project-' || (m % 2),
       NULL, 'USD', 10, 1, 0, 100, 0, 0, 50, 0, 1, 0, 0, 1, 0, 2, 1000, 300
FROM generate_series(1, 50) n, generate_series(0, 399) d, generate_series(1, 5) m;
ANALYZE usage_tenant_daily;
ANALYZE tenants;
"""


@pytest.fixture(
    scope="module",
    params=["plain_url", pytest.param("timescale_url", marks=pytest.mark.timescale)],
)
def url(request: pytest.FixtureRequest) -> str:
    """The filled table on each storage path (TimescaleDB's planner hooks see the same SQL)."""
    found: str = request.getfixturevalue(request.param)
    with psycopg.connect(found) as conn:
        conn.execute("ALTER TABLE tenants DISABLE TRIGGER tenants_timezone_rebuilds_daily")
        conn.execute(FILL)
        conn.execute("ALTER TABLE tenants ENABLE TRIGGER tenants_timezone_rebuilds_daily")
    return found


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += _nodes(child)
    return found


def _reads_of_daily(
    url: str, query: str | sql.Composed, params: Any = None
) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        statement = sql.SQL("EXPLAIN (FORMAT JSON) ") + (
            sql.SQL(query) if isinstance(query, str) else query  # type: ignore[arg-type]
        )
        (document,) = conn.execute(statement, params).fetchone()  # type: ignore[misc]
    nodes = _nodes(document[0]["Plan"])
    return [n for n in nodes if n.get("Relation Name") == "usage_tenant_daily"]


def _assert_tenant_index(reads: list[dict[str, Any]]) -> None:
    """Every read is an index scan, or a bitmap scan over one, on the tenant index."""
    assert reads, "the plan does not read usage_tenant_daily"
    for node in reads:
        assert node["Node Type"] != "Seq Scan", node
        scans = [node]
        if node["Node Type"] == "Bitmap Heap Scan":
            scans = [n for n in _nodes(node) if n["Node Type"] == "Bitmap Index Scan"]
        assert scans, node
        for scan in scans:
            assert scan.get("Index Name") == INDEX, scan
            assert "tenant_id" in scan.get("Index Cond", ""), scan


@pytest.mark.parametrize(
    "group_by", [(), ("model",), ("day",), ("month", "provider", "model"), ("project", "team")]
)
def test_reports_use_the_tenant_index(url: str, group_by: tuple[str, ...]) -> None:
    selection = Selection.build(("t-7",), start="2026-10-01", end="2026-11-01")
    query = report_query(ReportSpec(selection, group_by), "usage_tenant_daily")
    _assert_tenant_index(_reads_of_daily(url, query.statement, query.params))


def test_current_month_report_uses_the_tenant_index(url: str) -> None:
    selection = Selection.build(("t-8", "t-9"), start=None, end=None)
    query = report_query(ReportSpec(selection, ("model",)), "usage_tenant_daily")
    _assert_tenant_index(_reads_of_daily(url, query.statement, query.params))


@pytest.mark.parametrize("function", ["tenant_daily_totals", "tenant_monthly_totals"])
def test_totals_functions_use_the_tenant_index(url: str, function: str) -> None:
    query = f"SELECT * FROM {function}('t-3', DATE '2026-01-01', DATE '2026-04-01')"
    _assert_tenant_index(_reads_of_daily(url, query))


def test_queries_md_month_by_model_uses_the_tenant_index(url: str) -> None:
    query = """
SELECT date_trunc('month', d.day)::date AS month, d.provider, d.model, d.currency,
       sum(d.requests) AS requests, sum(d.cost_total) AS cost
FROM usage_tenant_daily d
WHERE d.tenant_id = 't-11' AND d.day >= DATE '2026-10-01' AND d.day < DATE '2026-12-01'
GROUP BY 1, 2, 3, 4
ORDER BY 1, cost DESC"""
    _assert_tenant_index(_reads_of_daily(url, query))
