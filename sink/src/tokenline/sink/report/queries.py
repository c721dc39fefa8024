"""SQL of reports and exports, built from fixed fragments; every value is a parameter.

Where a report reads from, the first that can serve it:

- ``usage_tenant_daily`` (kept by the sink, both storage paths) when the grouping and filters
  need only the columns it keeps (tenant, provider, model, project, team, tenant-local day or
  month) and both range ends are tenant-local midnights (dates, months, or ``T00:00``). Its
  days are each tenant's own, so such a report reads a few rows per tenant and day.
- ``usage_15m`` (the 15-minute continuous aggregate) on the TimescaleDB path when the range ends
  fall on the 15-minute grid. Every UTC offset in use is a multiple of 15 minutes, so every
  15-minute bucket lies inside one local day of every tenant: summing buckets by local date is
  exact. The coarser aggregates are not used: an hourly bucket straddles a local midnight at
  +05:30.
- ``usage_events`` otherwise: a user, session, host, service, cloud, operation or unpriced
  reason grouping or filter, a success filter, a range end off the grid, or plain PostgreSQL,
  where ``usage_15m`` is a view over ``usage_events`` that cannot use the ``(tenant_id,
  occurred_at)`` index.

All sources give the same columns. Identifiers come from the allow-lists below only.
"""

# Every fragment joined here is a constant of this module; values go as parameters:
# ruff: noqa: S608

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from psycopg import sql
from psycopg.types.json import Jsonb

from tokenline.sink.columns import COST_COLUMNS
from tokenline.sink.errors import ReportError
from tokenline.sink.tenant_daily import SUMS

if TYPE_CHECKING:
    from tokenline.sink.report.selection import Bound, ReportSpec, Selection

__all__ = [
    "EXPORT_COLUMNS",
    "MEASURES",
    "Query",
    "Source",
    "choose_source",
    "export_query",
    "latency_query",
    "report_query",
    "timezones_query",
]

Source = Literal["usage_tenant_daily", "usage_15m", "usage_events"]

# The tenant's billing timezone; UTC for a tenant without a row.
_TZ = "coalesce(tn.timezone, 'UTC')"
_MODEL = "coalesce(u.canonical_model, u.response_model, u.request_model)"

# Over usage_tenant_daily: the aggregate columns, and the tenant-local day stored as such.
_DAILY_SQL = {"day": "u.day", "month": "date_trunc('month', u.day)::date"}

# dimension -> (expression over usage_events, expression over usage_15m or None)
_DIMENSION_SQL: dict[str, tuple[str, str | None]] = {
    "tenant": ("u.tenant_id", "u.tenant_id"),
    "provider": ("u.provider", "u.provider"),
    "model": (_MODEL, "u.model"),
    "project": ("u.project", "u.project"),
    "team": ("coalesce(u.attributed_team, u.team)", "u.team"),
    "user": ("u.user_id", None),
    "session": ("u.session_id", None),
    "host": ("u.hostname", None),
    "service": ("coalesce(u.attributed_service, u.host_service_name)", None),
    "cloud": ("coalesce(u.attributed_cloud, u.host_cloud)", None),
    "operation": ("u.operation", None),
    "unpriced_reason": ("u.unpriced_reason", None),
    "day": (f"(u.occurred_at AT TIME ZONE {_TZ})::date", f"(u.bucket AT TIME ZONE {_TZ})::date"),
    "month": (
        f"date_trunc('month', u.occurred_at AT TIME ZONE {_TZ})::date",
        f"date_trunc('month', u.bucket AT TIME ZONE {_TZ})::date",
    ),
}

# The measures, in output order, and their SQL over each source (bigint counts, NUMERIC money):
# usage_tenant_daily's, which keeps every one of them.
MEASURES = (*SUMS, "latency_ms_max")
_TOKENS = MEASURES[3:8]
_COSTS = MEASURES[8:14]
_EVENT_MEASURES = [
    "count(*)::bigint",
    "count(*) FILTER (WHERE NOT u.success)::bigint",
    "count(*) FILTER (WHERE u.pricing_status = 'unpriced')::bigint",
    *[f"sum(u.{name})::bigint" for name in _TOKENS],
    *[f"coalesce(sum(u.{name}), 0)::numeric(38,12)" for name in _COSTS],
    "sum(u.latency_ms)::bigint",
    "max(u.latency_ms)::bigint",
]
_AGGREGATE_MEASURES = [
    "sum(u.requests)::bigint",
    "sum(u.failures)::bigint",
    "sum(u.unpriced_count)::bigint",
    *[f"sum(u.{name})::bigint" for name in _TOKENS],
    *[f"sum(u.{name})::numeric(38,12)" for name in _COSTS],
    "sum(u.latency_ms_sum)::bigint",
    "max(u.latency_ms_max)::bigint",
]

# Raw columns of an export, in order (no prompt or completion text exists to leave out).
EXPORT_COLUMNS = (
    "event_id",
    "occurred_at",
    "tenant_id",
    "project",
    "user_id",
    "session_id",
    "team",
    "tags",
    "provider",
    "operation",
    "request_model",
    "response_model",
    "canonical_model",
    "deployment",
    "region",
    "batch",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "cache_write_5m_input_tokens",
    "cache_write_1h_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "provider_total_tokens",
    "usage_mismatch",
    "usage_source",
    "streamed",
    "latency_ms",
    "time_to_first_token_ms",
    "success",
    "error_type",
    "error_message",
    "http_status",
    "provider_request_id",
    "hostname",
    "host_cloud",
    "host_region",
    "host_instance_id",
    "host_k8s_pod",
    "host_k8s_namespace",
    "host_k8s_node",
    "host_service_name",
    "sdk_version",
    "sdk_language",
    "producer_id",
    "producer_seq",
    "pricing_status",
    "unpriced_reason",
    *COST_COLUMNS,
    "currency",
    "price_entry_id",
    "pricing_version",
    "priced_at",
    "attributed_team",
    "attributed_cost_center",
    "attributed_cloud",
    "attributed_cloud_region",
    "attributed_cluster",
    "attributed_namespace",
    "attributed_service",
    "ingested_at",
)


@dataclass(frozen=True)
class Query:
    """A composed statement and its parameters."""

    statement: sql.Composed
    params: dict[str, Any]

    def text(self) -> str:
        """Return the statement's text with placeholders (for tests and debugging)."""
        return self.statement.as_string()


def choose_source(spec: ReportSpec, storage_path: str) -> Source:
    """Return the relation a report reads (see the module docstring for the rule)."""
    blockers = spec.aggregate_blockers()
    daily = not blockers and spec.selection.aligned_day
    if spec.source == "events":
        return "usage_events"
    if spec.source == "aggregate":
        if blockers:
            msg = f"the aggregates cannot serve this report: {'; '.join(blockers)}"
            raise ReportError(msg)
        return "usage_tenant_daily" if daily else "usage_15m"
    if daily:
        return "usage_tenant_daily"
    if blockers or storage_path != "timescaledb":
        return "usage_events"
    return "usage_15m"


def _bound_sql(bound: Bound, name: str, params: dict[str, Any], source: Source) -> str:
    """Return the instant of ``bound`` in the row's tenant timezone (its local day), as SQL."""
    params[name] = bound.value
    if bound.kind == "instant":
        return f"%({name})s::timestamptz"
    if bound.kind == "month":
        start = (
            f"(date_trunc('month', %({name})s::timestamptz AT TIME ZONE {_TZ})"
            f" + INTERVAL '1 month' * {int(bound.months)})"
        )
        return (
            f"{start}::date" if source == "usage_tenant_daily" else f"({start} AT TIME ZONE {_TZ})"
        )
    if source == "usage_tenant_daily":
        return f"%({name})s::timestamp::date"
    return f"(%({name})s::timestamp AT TIME ZONE {_TZ})"


def _where(selection: Selection, source: Source, params: dict[str, Any]) -> list[str]:
    time = {"usage_events": "u.occurred_at", "usage_15m": "u.bucket"}.get(source, "u.day")
    daily = source == "usage_tenant_daily"
    conditions = []
    if selection.tenants is not None:
        params["tenants"] = list(selection.tenants)
        conditions.append("u.tenant_id = ANY(%(tenants)s)")
    lower = selection.start.widened("lower")
    params["lo_wide"] = lower.date() if daily else lower
    conditions.append(f"{time} >= %(lo_wide)s")
    conditions.append(f"{time} >= {_bound_sql(selection.start, 'lo', params, source)}")
    if selection.end is not None:
        upper = selection.end.widened("upper")
        params["hi_wide"] = upper.date() + timedelta(days=1) if daily else upper
        conditions.append(f"{time} < %(hi_wide)s")
        conditions.append(f"{time} < {_bound_sql(selection.end, 'hi', params, source)}")
    for name, values in selection.filters:
        expression = _expression(name, source)
        params[f"f_{name}"] = list(values)
        conditions.append(f"{expression} = ANY(%(f_{name})s)")
    if selection.success is not None:
        params["success"] = selection.success
        conditions.append("u.success = %(success)s")
    if selection.tags:  # only usage_events has tags (aggregate_blockers says so)
        params["tags"] = Jsonb(dict(selection.tags))
        conditions.append("u.tags @> %(tags)s")
    return conditions


def _expression(dimension: str, source: Source) -> str:
    on_events, on_aggregate = _DIMENSION_SQL[dimension]
    if source == "usage_events":
        return on_events
    if on_aggregate is None:
        msg = f"{source} has no {dimension} column"
        raise ReportError(msg)
    if source == "usage_tenant_daily":
        return _DAILY_SQL.get(dimension, on_aggregate)
    return on_aggregate


def report_query(spec: ReportSpec, source: Source) -> Query:
    """Return the grouped totals of ``spec`` over ``source``, one row per group and currency.

    Columns: the ``group_by`` dimensions (named after them), ``currency``, then
    :data:`MEASURES`. Amounts are never added across currencies. Rows come by the time
    dimensions first, then by cost (largest first).
    """
    params: dict[str, Any] = {}
    relation = source
    keys = [f'{_expression(name, source)} AS "{name}"' for name in spec.group_by]
    keys.append("u.currency AS currency")
    measures = _EVENT_MEASURES if source == "usage_events" else _AGGREGATE_MEASURES
    columns = keys + [f"{expr} AS {name}" for expr, name in zip(measures, MEASURES, strict=True)]
    conditions = _where(spec.selection, source, params)
    group = ", ".join(str(i) for i in range(1, len(keys) + 1))
    time_keys = [f'"{name}"' for name in spec.group_by if name in ("day", "month")]
    other_keys = [f'"{name}" NULLS LAST' for name in spec.group_by if name not in ("day", "month")]
    order = [*time_keys, "cost_total DESC", "requests DESC", *other_keys, "currency"]
    text = (
        f"SELECT {', '.join(columns)}\n"
        f"FROM {relation} u\n"
        "LEFT JOIN tenants tn ON tn.tenant_id = u.tenant_id\n"
        f"WHERE {' AND '.join(conditions)}\n"
        f"GROUP BY {group}\n"
        f"ORDER BY {', '.join(order)}"
    )
    return Query(sql.Composed([sql.SQL(text)]), params)


def export_query(selection: Selection) -> Query:
    """Return the raw usage_events rows of ``selection``, in time order (for a server cursor)."""
    params: dict[str, Any] = {}
    conditions = _where(selection, "usage_events", params)
    text = (
        f"SELECT {', '.join(f'u.{name}' for name in EXPORT_COLUMNS)}\n"
        "FROM usage_events u\n"
        "LEFT JOIN tenants tn ON tn.tenant_id = u.tenant_id\n"
        f"WHERE {' AND '.join(conditions)}\n"
        "ORDER BY u.occurred_at, u.event_id"
    )
    return Query(sql.Composed([sql.SQL(text)]), params)


def latency_query(selection: Selection) -> Query:
    """Return the latency and time-to-first-token distribution of ``selection``'s calls.

    Percentiles are ``percentile_disc``: a latency some call really had (whole milliseconds),
    the smallest whose share of calls at or below it reaches p. They need every call's value,
    so they read ``usage_events`` whatever the grouping. Calls without a time to first token
    (not streamed) are left out of its figures.
    """
    params: dict[str, Any] = {}
    conditions = _where(selection, "usage_events", params)
    text = (
        "SELECT count(*)::bigint AS requests,\n"
        "  percentile_disc(0.5) WITHIN GROUP (ORDER BY u.latency_ms)::bigint AS latency_ms_p50,\n"
        "  percentile_disc(0.95) WITHIN GROUP (ORDER BY u.latency_ms)::bigint AS latency_ms_p95,\n"
        "  count(u.time_to_first_token_ms)::bigint AS ttft_count,\n"
        "  sum(u.time_to_first_token_ms)::bigint AS ttft_ms_sum,\n"
        "  percentile_disc(0.5) WITHIN GROUP (ORDER BY u.time_to_first_token_ms)::bigint"
        " AS ttft_ms_p50,\n"
        "  percentile_disc(0.95) WITHIN GROUP (ORDER BY u.time_to_first_token_ms)::bigint"
        " AS ttft_ms_p95\n"
        "FROM usage_events u\n"
        "LEFT JOIN tenants tn ON tn.tenant_id = u.tenant_id\n"
        f"WHERE {' AND '.join(conditions)}"
    )
    return Query(sql.Composed([sql.SQL(text)]), params)


def timezones_query(tenants: tuple[str, ...]) -> Query:
    """Return each named tenant's billing timezone (UTC when the tenant has no row)."""
    text = (
        f"SELECT t.tenant_id, {_TZ} AS timezone FROM unnest(%(tenants)s::text[]) AS t(tenant_id)"
        " LEFT JOIN tenants tn ON tn.tenant_id = t.tenant_id ORDER BY 1"
    )
    return Query(sql.Composed([sql.SQL(text)]), {"tenants": list(tenants)})
