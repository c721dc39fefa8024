"""usage_tenant_daily: each tenant's totals per local day, kept by the sink; fast on both paths.

The questions users ask (QUERIES.md, ``tokenline report``, billing, the dashboards) are a
tenant's days and months *in its own timezone*, by provider, model, project and team. The
aggregates of revision 0002 cannot answer them fast: on plain PostgreSQL they are views over
raw rows, and on TimescaleDB ``usage_15m`` keeps user and session detail and needs summing by
local date at query time.

``usage_tenant_daily`` holds one row per (tenant, local day, provider, model, project, team,
currency): a low-cardinality table, the same plain table on both storage paths. The day is the
date of ``occurred_at`` in ``tenants.timezone`` (UTC for a tenant without a row), so a local
month is the sum of its days: exact for every offset (+05:30, +05:45, DST) with no 15-minute
buckets at query time. The unique key's index leads with ``(tenant_id, day)``: the tenant index.
Model, project and team enter it as ``key_digest``, an MD5 of their length-prefixed values (NULL
apart from ''): the contract lets each be 256 characters of 4 bytes, more together than a
B-tree entry may hold.

The sink adds to it in the transaction that lands the events (``tokenline.sink.tenant_daily``),
the way it keeps ``usage_rollup_1m``: new events add, re-priced events move their old
contribution to the new one, an event stored already adds nothing. A change of a tenant's
timezone rebuilds that tenant's rows from its events in the same transaction (a trigger on
``tenants``); ``tokenline_rebuild_tenant_daily(tenant)`` rebuilds one tenant (NULL: all).
Both take ``SHARE ROW EXCLUSIVE`` on the table, which waits for the sinks' writes in flight
(``ROW EXCLUSIVE``) and holds back new ones, so no event is counted twice or missed.

``tenant_daily_totals`` and ``tenant_monthly_totals`` keep their signatures and results and read
the new table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

# The SQL here is assembled from module constants only:
# ruff: noqa: S608

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from tokenline.sink.migrations.versions.rev_0002_aggregates import (
    _TOTALS_COLUMNS,
    _TOTALS_MEASURES,
    functions_sql,
)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

#: The grouping key, in the unique constraint's order (tenant and day first: the tenant index).
KEY = ("tenant_id", "day", "provider", "model", "project", "team", "currency")
#: Additive measures (sums); ``latency_ms_max`` is kept with greatest().
SUMS = (
    "requests",
    "failures",
    "unpriced_count",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_input",
    "cost_cache_read",
    "cost_cache_write",
    "cost_output",
    "cost_reasoning",
    "cost_total",
    "latency_ms_sum",
)
_COSTS = SUMS[8:14]

TABLE = """
CREATE TABLE usage_tenant_daily (
    tenant_id                text           NOT NULL,
    day                      date           NOT NULL,
    provider                 text           NOT NULL,
    model                    text,
    project                  text,
    team                     text,
    currency                 text           NOT NULL,
    requests                 bigint         NOT NULL,
    failures                 bigint         NOT NULL,
    unpriced_count           bigint         NOT NULL,
    input_tokens             bigint         NOT NULL,
    cache_read_input_tokens  bigint         NOT NULL,
    cache_write_input_tokens bigint         NOT NULL,
    output_tokens            bigint         NOT NULL,
    reasoning_tokens         bigint         NOT NULL,
    cost_input               numeric(38,12) NOT NULL,
    cost_cache_read          numeric(38,12) NOT NULL,
    cost_cache_write         numeric(38,12) NOT NULL,
    cost_output              numeric(38,12) NOT NULL,
    cost_reasoning           numeric(38,12) NOT NULL,
    cost_total               numeric(38,12) NOT NULL,
    latency_ms_sum           bigint         NOT NULL,
    latency_ms_max           bigint         NOT NULL,
    key_digest               text           NOT NULL GENERATED ALWAYS AS (md5(
        coalesce(length(model)::text || ':' || model, '-') || '/'
        || coalesce(length(project)::text || ':' || project, '-') || '/'
        || coalesce(length(team)::text || ':' || team, '-'))) STORED,
    CONSTRAINT uq_usage_tenant_daily UNIQUE (tenant_id, day, provider, currency, key_digest)
)"""

# The same expressions as the aggregates of revision 0002 (model and team as reports see them).
_KEY_FROM_EVENTS = (
    "e.tenant_id",
    "(e.occurred_at AT TIME ZONE coalesce(t.timezone, 'UTC'))::date",
    "e.provider",
    "coalesce(e.canonical_model, e.response_model, e.request_model)",
    "e.project",
    "coalesce(e.attributed_team, e.team)",
    "e.currency",
)
_MEASURES_FROM_EVENTS = (
    "count(*)",
    "count(*) FILTER (WHERE NOT e.success)",
    "count(*) FILTER (WHERE e.pricing_status = 'unpriced')",
    *(f"sum(e.{c})" for c in SUMS[3:8]),
    *(f"coalesce(sum(e.{c}), 0)" for c in _COSTS),
    "sum(e.latency_ms)",
    "max(e.latency_ms)",
)
_COLUMNS = ", ".join((*KEY, *SUMS, "latency_ms_max"))

REBUILD_FUNCTION = f"""
CREATE FUNCTION tokenline_rebuild_tenant_daily(tenant text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    written bigint;
BEGIN
    LOCK TABLE usage_tenant_daily IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM usage_tenant_daily WHERE tenant IS NULL OR tenant_id = tenant;
    INSERT INTO usage_tenant_daily ({_COLUMNS})
    SELECT {", ".join(_KEY_FROM_EVENTS)}, {", ".join(_MEASURES_FROM_EVENTS)}
    FROM usage_events e
    LEFT JOIN tenants t ON t.tenant_id = e.tenant_id
    WHERE tenant IS NULL OR e.tenant_id = tenant
    GROUP BY 1, 2, 3, 4, 5, 6, 7;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$fn$;
COMMENT ON FUNCTION tokenline_rebuild_tenant_daily(text) IS
    'Rebuild usage_tenant_daily from usage_events for one tenant (NULL: every tenant) in its '
    'current timezone; returns the rows written.';

CREATE FUNCTION tokenline_tenant_timezone_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM tokenline_rebuild_tenant_daily(OLD.tenant_id);
    ELSIF TG_OP = 'INSERT' OR OLD.timezone IS DISTINCT FROM NEW.timezone
            OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
        IF TG_OP = 'UPDATE' AND OLD.tenant_id IS DISTINCT FROM NEW.tenant_id THEN
            PERFORM tokenline_rebuild_tenant_daily(OLD.tenant_id);
        END IF;
        PERFORM tokenline_rebuild_tenant_daily(NEW.tenant_id);
    END IF;
    RETURN NULL;
END
$fn$;
CREATE TRIGGER tenants_timezone_rebuilds_daily AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tokenline_tenant_timezone_changed();
"""


def _totals_function(name: str, unit: str) -> str:
    period = "u.day" if unit == "day" else "date_trunc('month', u.day)::date"
    return f"""CREATE FUNCTION {name}(tenant text, from_day date, to_day date)
RETURNS TABLE ({unit} date,{_TOTALS_COLUMNS})
LANGUAGE sql STABLE AS $fn$
    SELECT {period},{_TOTALS_MEASURES}
    FROM usage_tenant_daily u
    WHERE u.tenant_id = tenant AND u.day >= from_day AND u.day < to_day
    GROUP BY 1, 2
    ORDER BY 1, 2
$fn$"""


TOTALS_FUNCTIONS = [
    _totals_function("tenant_daily_totals", "day"),
    "COMMENT ON FUNCTION tenant_daily_totals(text, date, date) IS "
    "'Exact totals per local day in [from_day, to_day) in the tenant''s timezone "
    "(tenants.timezone; UTC for a tenant without a row), per currency; from usage_tenant_daily.'",
    _totals_function("tenant_monthly_totals", "month"),
    "COMMENT ON FUNCTION tenant_monthly_totals(text, date, date) IS "
    "'Exact totals per local month of the local days in [from_day, to_day) in the "
    "tenant''s timezone, per currency; month is the first day of the month.'",
]
_DROP_TOTALS = (
    "DROP FUNCTION IF EXISTS tenant_monthly_totals(text, date, date)",
    "DROP FUNCTION IF EXISTS tenant_daily_totals(text, date, date)",
)


def upgrade() -> None:
    """Create the table, fill it from the events, and point the totals functions at it."""
    op.execute(text(TABLE))
    op.execute(text(REBUILD_FUNCTION))
    op.execute(text("SELECT tokenline_rebuild_tenant_daily(NULL)"))
    for statement in (*_DROP_TOTALS, *TOTALS_FUNCTIONS):
        op.execute(text(statement))


def downgrade() -> None:
    """Drop the table, its trigger and functions; the totals functions read usage_15m again."""
    for statement in _DROP_TOTALS:
        op.execute(text(statement))
    op.execute(
        text(
            "DROP TRIGGER IF EXISTS tenants_timezone_rebuilds_daily ON tenants;"
            "DROP FUNCTION IF EXISTS tokenline_tenant_timezone_changed();"
            "DROP FUNCTION IF EXISTS tokenline_rebuild_tenant_daily(text);"
            "DROP TABLE IF EXISTS usage_tenant_daily;"
        )
    )
    for statement in functions_sql():
        op.execute(text(statement))
