"""Runs reports and exports on PostgreSQL.

Connections are opened with ``prepare_threshold=None``: psycopg would otherwise prepare a
statement after five runs, and PostgreSQL may then choose a generic plan that makes a query
over a continuous aggregate several times slower than a raw scan. Sessions run in UTC, so
every timestamp comes back in UTC.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import DictRow, dict_row

from tokenline.sink.errors import DatabaseUnavailable, ReportError
from tokenline.sink.report.model import Latency, Report, ReportRow, Totals, keys_of
from tokenline.sink.report.queries import (
    choose_source,
    export_query,
    latency_query,
    report_query,
    timezones_query,
)
from tokenline.sink.report.selection import Bound

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenline.sink.report.selection import ReportSpec, Selection

__all__ = [
    "connect",
    "iter_events",
    "localize_default_range",
    "run_latency",
    "run_report",
    "storage_path",
    "tenant_timezones",
]

ReportConnection = psycopg.Connection[DictRow]


def connect(url: str, connect_timeout_s: int = 5) -> ReportConnection:
    """Open a read connection for reports (no server-side prepared statements, UTC session)."""
    try:
        conn = psycopg.connect(
            url,
            prepare_threshold=None,
            row_factory=dict_row,
            connect_timeout=connect_timeout_s,
            options="-c TimeZone=UTC",
        )
    except psycopg.OperationalError as exc:
        msg = f"cannot reach the database: {exc}"
        raise DatabaseUnavailable(msg) from exc
    conn.read_only = True
    return conn


def storage_path(conn: ReportConnection) -> str:
    """Return ``timescaledb`` or ``postgresql`` (the path the schema was created with)."""
    try:
        row = conn.execute("SELECT tokenline_storage_path() AS path").fetchone()
    except psycopg.errors.UndefinedFunction as exc:
        msg = "the database has no Tokenline schema; run `tokenline sink migrate` first"
        raise ReportError(msg) from exc
    return str(row["path"]) if row and row["path"] else "postgresql"


def unknown_tenants(conn: ReportConnection, tenants: tuple[str, ...]) -> list[str]:
    """The tenants of ``tenants`` the database has never heard of.

    No row in ``tenants`` and not one event: a typo, not a quiet month.
    """
    rows = conn.execute(
        "SELECT t AS tenant_id FROM unnest(%s::text[]) AS t "
        "WHERE NOT EXISTS (SELECT 1 FROM tenants WHERE tenant_id = t) "
        "AND NOT EXISTS (SELECT 1 FROM usage_events WHERE tenant_id = t) ORDER BY 1",
        (list(tenants),),
    ).fetchall()
    return [row["tenant_id"] for row in rows]


def tenant_timezones(conn: ReportConnection, tenants: tuple[str, ...]) -> dict[str, str]:
    """Return each tenant's billing timezone (UTC for a tenant without a row)."""
    query = timezones_query(tenants)
    rows = conn.execute(query.statement, query.params).fetchall()
    return {row["tenant_id"]: row["timezone"] for row in rows}


def localize_default_range(conn: ReportConnection, selection: Selection) -> Selection:
    """Turn the default "current month" into local dates when every tenant shares one zone.

    Only the choice of month moves to Python; the cut is still made in SQL at local midnight.
    Without named tenants, or with several zones, the month stays relative to each tenant.
    """
    if selection.tenants is None or selection.start.kind != "month":
        return selection
    zones = set(tenant_timezones(conn, selection.tenants).values())
    if len(zones) != 1:
        return selection
    local_now = selection.start.value.astimezone(ZoneInfo(zones.pop()))

    def local_month(bound: Bound) -> Bound:
        index = local_now.year * 12 + local_now.month - 1 + bound.months
        return Bound.on_date(date(index // 12, index % 12 + 1, 1))

    end = local_month(selection.end) if selection.end is not None else None
    return replace(selection, start=local_month(selection.start), end=end)


def run_report(conn: ReportConnection, spec: ReportSpec) -> Report:
    """Run ``spec`` and return its rows (the source is chosen by :func:`choose_source`)."""
    spec = replace(spec, selection=localize_default_range(conn, spec.selection))
    source = choose_source(spec, storage_path(conn))
    query = report_query(spec, source)
    rows = conn.execute(query.statement, query.params).fetchall()
    return Report(
        spec=spec,
        source=source,
        rows=tuple(
            ReportRow(keys_of(row, spec.group_by), row["currency"], Totals.from_row(row))
            for row in rows
        ),
    )


def run_latency(conn: ReportConnection, selection: Selection) -> Latency:
    """Return the latency figures of ``selection``'s calls (raw events; see the query)."""
    selection = localize_default_range(conn, selection)
    query = latency_query(selection)
    row = conn.execute(query.statement, query.params).fetchone()
    return Latency.from_row(row) if row is not None else Latency()


def iter_events(
    conn: ReportConnection, selection: Selection, fetch_rows: int = 2_000
) -> Iterator[dict[str, Any]]:
    """Yield the raw usage_events rows of ``selection`` in time order.

    A server-side cursor fetches ``fetch_rows`` at a time, so an export of any size holds only
    one such batch in memory. The cursor lives in the connection's transaction; close the
    generator (or exhaust it) before reusing the connection.
    """
    query = export_query(selection)
    with conn.cursor(name="tokenline_export") as cursor:
        cursor.itersize = fetch_rows
        cursor.execute(query.statement, query.params)
        yield from cursor
