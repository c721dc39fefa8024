"""usage_15m, usage_hourly, usage_daily, usage_monthly and the tenant-local totals.

On TimescaleDB they are continuous aggregates built on each other (15m from usage_events, each
coarser one from the one below), with real-time aggregation and refresh policies. On plain
PostgreSQL they are views over usage_events with the same names, columns and types, so every
query in sink/QUERIES.md works on both. Daily and monthly buckets are UTC; tenant-local days
and months come from ``tenant_daily_totals`` / ``tenant_monthly_totals`` over the 15-minute base.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

# The SQL here is assembled from module constants and integer settings only:
# ruff: noqa: S608

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from tokenline.sink.migrations.options import MigrationOptions, current_options

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

AGGREGATES = ("usage_15m", "usage_hourly", "usage_daily", "usage_monthly")

# The group-by set, kept small: a tenant's spend by provider, model, project and team.
# ``model`` is the canonical model, else the one reported; ``team`` the attributed one, else
# the one the SDK sent. Amounts are summed per currency, never across currencies.
_KEYS_FROM_EVENTS = """
    tenant_id,
    provider,
    coalesce(canonical_model, response_model, request_model) AS model,
    project,
    coalesce(attributed_team, team) AS team,
    currency"""
_GROUP_FROM_EVENTS = """tenant_id, provider, coalesce(canonical_model, response_model,
    request_model), project, coalesce(attributed_team, team), currency"""

# Measures over raw rows. Casts keep bigint counts and NUMERIC(38,12) money on both paths.
_MEASURES_FROM_EVENTS = """
    count(*)::bigint AS requests,
    sum(CASE WHEN success THEN 0 ELSE 1 END)::bigint AS failures,
    sum(CASE WHEN pricing_status = 'unpriced' THEN 1 ELSE 0 END)::bigint AS unpriced_count,
    sum(input_tokens)::bigint AS input_tokens,
    sum(cache_read_input_tokens)::bigint AS cache_read_input_tokens,
    sum(cache_write_input_tokens)::bigint AS cache_write_input_tokens,
    sum(output_tokens)::bigint AS output_tokens,
    sum(reasoning_tokens)::bigint AS reasoning_tokens,
    coalesce(sum(cost_input), 0)::numeric(38,12) AS cost_input,
    coalesce(sum(cost_cache_read), 0)::numeric(38,12) AS cost_cache_read,
    coalesce(sum(cost_cache_write), 0)::numeric(38,12) AS cost_cache_write,
    coalesce(sum(cost_output), 0)::numeric(38,12) AS cost_output,
    coalesce(sum(cost_reasoning), 0)::numeric(38,12) AS cost_reasoning,
    coalesce(sum(cost_total), 0)::numeric(38,12) AS cost_total,
    sum(latency_ms)::bigint AS latency_ms_sum,
    max(latency_ms)::bigint AS latency_ms_max"""

# Measures re-aggregated from a finer aggregate (sums of sums, max of maxes: exact).
_MEASURES_FROM_AGGREGATE = """
    sum(requests)::bigint AS requests,
    sum(failures)::bigint AS failures,
    sum(unpriced_count)::bigint AS unpriced_count,
    sum(input_tokens)::bigint AS input_tokens,
    sum(cache_read_input_tokens)::bigint AS cache_read_input_tokens,
    sum(cache_write_input_tokens)::bigint AS cache_write_input_tokens,
    sum(output_tokens)::bigint AS output_tokens,
    sum(reasoning_tokens)::bigint AS reasoning_tokens,
    sum(cost_input)::numeric(38,12) AS cost_input,
    sum(cost_cache_read)::numeric(38,12) AS cost_cache_read,
    sum(cost_cache_write)::numeric(38,12) AS cost_cache_write,
    sum(cost_output)::numeric(38,12) AS cost_output,
    sum(cost_reasoning)::numeric(38,12) AS cost_reasoning,
    sum(cost_total)::numeric(38,12) AS cost_total,
    sum(latency_ms_sum)::bigint AS latency_ms_sum,
    max(latency_ms_max)::bigint AS latency_ms_max"""
_KEYS_FROM_AGGREGATE = "tenant_id, provider, model, project, team, currency"

# 15-minute buckets from 2000-01-01 UTC: the same boundaries as time_bucket's.
_PLAIN_BUCKETS = {
    "usage_15m": "date_bin(INTERVAL '15 minutes', occurred_at, TIMESTAMPTZ '2000-01-01 00:00+00')",
    "usage_hourly": "date_trunc('hour', occurred_at, 'UTC')",
    "usage_daily": "date_trunc('day', occurred_at, 'UTC')",
    "usage_monthly": "date_trunc('month', occurred_at, 'UTC')",
}


def plain_sql() -> list[str]:
    """Return the plain-PostgreSQL views: each aggregates usage_events directly."""
    return [
        f"""CREATE VIEW {name} AS
SELECT {bucket} AS bucket,{_KEYS_FROM_EVENTS},{_MEASURES_FROM_EVENTS}
FROM usage_events
GROUP BY {bucket}, {_GROUP_FROM_EVENTS}"""
        for name, bucket in _PLAIN_BUCKETS.items()
    ]


# (name, source, bucket width, policy start_offset, end_offset, schedule_interval)
def _levels(options: MigrationOptions) -> list[tuple[str, str, str, str, str, str]]:
    lookback = options.refresh_lookback_days
    return [
        ("usage_hourly", "usage_15m", "1 hour", f"{lookback} days", "1 hour", "15 minutes"),
        ("usage_daily", "usage_hourly", "1 day", f"{max(lookback, 3)} days", "1 day", "1 hour"),
        ("usage_monthly", "usage_daily", "1 month", f"{max(lookback, 93)} days", "1 day", "1 day"),
    ]


def timescale_sql(options: MigrationOptions) -> list[str]:
    """Return the continuous aggregates, built on each other, and their refresh policies.

    Real-time aggregation is on (``materialized_only = false``; off by default since 2.13), so
    the views include rows not materialized yet. A refresh materializes only whole buckets
    inside its window; the newest ones are served in real time. The 15-minute level refreshes
    ``refresh_lookback_days`` back; late or re-priced events older than that need an explicit
    ``CALL refresh_continuous_aggregate(...)`` (the replay job does it for its range).
    """
    with_options = "WITH (timescaledb.continuous, timescaledb.materialized_only = false)"
    statements = [
        f"""CREATE MATERIALIZED VIEW usage_15m {with_options} AS
SELECT time_bucket(INTERVAL '15 minutes', occurred_at) AS bucket,{_KEYS_FROM_EVENTS},
{_MEASURES_FROM_EVENTS}
FROM usage_events
GROUP BY time_bucket(INTERVAL '15 minutes', occurred_at), {_GROUP_FROM_EVENTS}
WITH NO DATA""",
        f"""SELECT add_continuous_aggregate_policy('usage_15m',
    start_offset => INTERVAL '{options.refresh_lookback_days} days',
    end_offset => INTERVAL '15 minutes',
    schedule_interval => INTERVAL '5 minutes')""",
    ]
    for name, source, width, start, end, every in _levels(options):
        statements += [
            f"""CREATE MATERIALIZED VIEW {name} {with_options} AS
SELECT time_bucket(INTERVAL '{width}', bucket) AS bucket, {_KEYS_FROM_AGGREGATE},
{_MEASURES_FROM_AGGREGATE}
FROM {source}
GROUP BY time_bucket(INTERVAL '{width}', bucket), {_KEYS_FROM_AGGREGATE}
WITH NO DATA""",
            f"""SELECT add_continuous_aggregate_policy('{name}',
    start_offset => INTERVAL '{start}',
    end_offset => INTERVAL '{end}',
    schedule_interval => INTERVAL '{every}')""",
        ]
    return statements


_TOTALS_COLUMNS = """
    currency text,
    requests bigint,
    failures bigint,
    unpriced_count bigint,
    input_tokens bigint,
    cache_read_input_tokens bigint,
    cache_write_input_tokens bigint,
    output_tokens bigint,
    reasoning_tokens bigint,
    cost_total numeric(38,12)"""

_TOTALS_MEASURES = """
    u.currency,
    sum(u.requests)::bigint,
    sum(u.failures)::bigint,
    sum(u.unpriced_count)::bigint,
    sum(u.input_tokens)::bigint,
    sum(u.cache_read_input_tokens)::bigint,
    sum(u.cache_write_input_tokens)::bigint,
    sum(u.output_tokens)::bigint,
    sum(u.reasoning_tokens)::bigint,
    sum(u.cost_total)::numeric(38,12)"""

# Every real UTC offset today is a multiple of 15 minutes (+5:30, +5:45, +12:45, DST shifts of
# 30 or 60 minutes), so every 15-minute bucket lies inside one local day: summing buckets by
# their local date is exact. The range is widened by a day on each side to use the bucket
# index, then cut exactly by local date.
_TENANT_TZ = """(SELECT coalesce((SELECT t.timezone FROM tenants t WHERE t.tenant_id = tenant),
                         'UTC') AS name)"""


def _totals_function(name: str, unit: str) -> str:
    local = "(u.bucket AT TIME ZONE tz.name)"
    period = f"{local}::date" if unit == "day" else f"date_trunc('month', {local})::date"
    return f"""CREATE FUNCTION {name}(tenant text, from_day date, to_day date)
RETURNS TABLE ({unit} date,{_TOTALS_COLUMNS})
LANGUAGE sql STABLE AS $fn$
    SELECT {period},{_TOTALS_MEASURES}
    FROM usage_15m u CROSS JOIN {_TENANT_TZ} tz
    WHERE u.tenant_id = tenant
      AND u.bucket >= (from_day::timestamp AT TIME ZONE tz.name) - INTERVAL '1 day'
      AND u.bucket < (to_day::timestamp AT TIME ZONE tz.name) + INTERVAL '1 day'
      AND {local}::date >= from_day
      AND {local}::date < to_day
    GROUP BY 1, 2
    ORDER BY 1, 2
$fn$"""


def functions_sql() -> list[str]:
    """Return the tenant-local totals functions (both storage paths)."""
    return [
        _totals_function("tenant_daily_totals", "day"),
        "COMMENT ON FUNCTION tenant_daily_totals(text, date, date) IS "
        "'Exact totals per local day in [from_day, to_day) in the tenant''s timezone "
        "(tenants.timezone; UTC for a tenant without a row), per currency.'",
        _totals_function("tenant_monthly_totals", "month"),
        "COMMENT ON FUNCTION tenant_monthly_totals(text, date, date) IS "
        "'Exact totals per local month of the local days in [from_day, to_day) in the "
        "tenant''s timezone, per currency; month is the first day of the month.'",
    ]


def _storage_path() -> str:
    found = op.get_bind().execute(text("SELECT tokenline_storage_path()")).scalar_one_or_none()
    return str(found or "postgresql")


def upgrade() -> None:
    """Create the aggregates for the storage path revision 0001 took, then the functions."""
    if _storage_path() == "timescaledb":
        statements = timescale_sql(current_options())
    else:
        statements = plain_sql()
    for statement in statements + functions_sql():
        op.execute(text(statement))


def downgrade() -> None:
    """Drop the functions and the aggregates, coarsest first."""
    op.execute(text("DROP FUNCTION IF EXISTS tenant_monthly_totals(text, date, date)"))
    op.execute(text("DROP FUNCTION IF EXISTS tenant_daily_totals(text, date, date)"))
    kind = "MATERIALIZED VIEW" if _storage_path() == "timescaledb" else "VIEW"
    for name in reversed(AGGREGATES):
        op.execute(text(f"DROP {kind} IF EXISTS {name}"))
