"""Tables, and the storage path: TimescaleDB hypertables when the extension can be created.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from tokenline.sink.errors import StorageUnavailable
from tokenline.sink.migrations.options import MigrationOptions, current_options
from tokenline.sink.migrations.timescale import Timescale, decide, timescale_status

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TABLES = """
CREATE TABLE usage_events (
    event_id                    uuid        NOT NULL,
    occurred_at                 timestamptz NOT NULL,
    tenant_id                   text        NOT NULL,
    project                     text,
    user_id                     text,
    session_id                  text,
    team                        text,
    tags                        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    provider                    text        NOT NULL,
    operation                   text        NOT NULL,
    request_model               text,
    response_model              text,
    canonical_model             text,
    deployment                  text,
    region                      text,
    batch                       boolean     NOT NULL DEFAULT false,
    input_tokens                bigint      NOT NULL DEFAULT 0,
    cache_read_input_tokens     bigint      NOT NULL DEFAULT 0,
    cache_write_input_tokens    bigint      NOT NULL DEFAULT 0,
    cache_write_5m_input_tokens bigint,
    cache_write_1h_input_tokens bigint,
    output_tokens               bigint      NOT NULL DEFAULT 0,
    reasoning_tokens            bigint      NOT NULL DEFAULT 0,
    provider_total_tokens       bigint,
    usage_mismatch              text,
    usage_source                text        NOT NULL,
    streamed                    boolean     NOT NULL DEFAULT false,
    latency_ms                  bigint      NOT NULL,
    time_to_first_token_ms      bigint,
    success                     boolean     NOT NULL,
    error_type                  text,
    error_message               text,
    http_status                 integer,
    provider_request_id         text,
    hostname                    text,
    host_cloud                  text,
    host_region                 text,
    host_instance_id            text,
    host_k8s_pod                text,
    host_k8s_namespace          text,
    host_k8s_node               text,
    host_service_name           text,
    sdk_version                 text,
    sdk_language                text,
    producer_id                 uuid        NOT NULL,
    producer_seq                bigint      NOT NULL,
    pricing_status              text        NOT NULL,
    unpriced_reason             text,
    cost_input                  numeric(38,12),
    cost_cache_read             numeric(38,12),
    cost_cache_write            numeric(38,12),
    cost_output                 numeric(38,12),
    cost_reasoning              numeric(38,12),
    cost_total                  numeric(38,12),
    currency                    text        NOT NULL DEFAULT 'USD',
    price_entry_id              text,
    pricing_version             text        NOT NULL,
    priced_at                   timestamptz NOT NULL,
    attributed_team             text,
    attributed_cost_center      text,
    attributed_cloud            text,
    attributed_cloud_region     text,
    attributed_cluster          text,
    attributed_namespace        text,
    attributed_service          text,
    source_topic                text,
    source_partition            integer,
    source_offset               bigint,
    ingested_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_usage_events PRIMARY KEY (event_id, occurred_at),
    CONSTRAINT ck_usage_events_pricing_status_known
        CHECK (pricing_status IN ('priced', 'unpriced')),
    CONSTRAINT ck_usage_events_cost_null_iff_unpriced CHECK (
        (pricing_status = 'priced' AND cost_total IS NOT NULL AND cost_input IS NOT NULL
         AND cost_cache_read IS NOT NULL AND cost_cache_write IS NOT NULL
         AND cost_output IS NOT NULL AND cost_reasoning IS NOT NULL)
        OR
        (pricing_status = 'unpriced' AND cost_total IS NULL AND cost_input IS NULL
         AND cost_cache_read IS NULL AND cost_cache_write IS NULL
         AND cost_output IS NULL AND cost_reasoning IS NULL)),
    CONSTRAINT ck_usage_events_tokens_not_negative CHECK (
        input_tokens >= 0 AND cache_read_input_tokens >= 0 AND cache_write_input_tokens >= 0
        AND output_tokens >= 0 AND reasoning_tokens >= 0)
);
-- Every dashboard and report reads one tenant over a time range.
CREATE INDEX ix_usage_events_tenant_id_occurred_at ON usage_events (tenant_id, occurred_at DESC);
-- Unpriced calls are few and wanted often: reports by reason, replays that price them.
CREATE INDEX ix_usage_events_unpriced ON usage_events (tenant_id, occurred_at DESC)
    WHERE pricing_status = 'unpriced';

CREATE TABLE usage_rollup_1m (
    tenant_id                text        NOT NULL,
    window_start             timestamptz NOT NULL,
    provider                 text        NOT NULL,
    model                    text        NOT NULL,
    window_seconds           integer     NOT NULL,
    requests                 bigint      NOT NULL,
    failures                 bigint      NOT NULL,
    input_tokens             bigint      NOT NULL,
    cache_read_input_tokens  bigint      NOT NULL,
    cache_write_input_tokens bigint      NOT NULL,
    output_tokens            bigint      NOT NULL,
    reasoning_tokens         bigint      NOT NULL,
    cost_total               numeric(38,12) NOT NULL,
    currency                 text        NOT NULL DEFAULT 'USD',
    unpriced_count           bigint      NOT NULL,
    latency_ms_sum           bigint      NOT NULL,
    latency_ms_max           bigint      NOT NULL,
    source_partition         integer     NOT NULL DEFAULT -1,
    max_source_offset        bigint      NOT NULL DEFAULT -1,
    updated_at               timestamptz NOT NULL,
    CONSTRAINT pk_usage_rollup_1m PRIMARY KEY (tenant_id, window_start, provider, model)
);

CREATE TABLE tenants (
    tenant_id       text        NOT NULL,
    display_name    text,
    timezone        text        NOT NULL DEFAULT 'UTC',
    monthly_budget  numeric(38,12),
    budget_currency text        NOT NULL DEFAULT 'USD',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_tenants PRIMARY KEY (tenant_id)
);

-- A CHECK constraint cannot look into pg_timezone_names; a trigger can. Abbreviations (EST)
-- and POSIX strings ('+05:30', whose sign PostgreSQL reads inverted) are refused.
CREATE FUNCTION tokenline_check_tenant_timezone() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = NEW.timezone) THEN
        RAISE EXCEPTION 'unknown time zone %', quote_literal(NEW.timezone)
            USING ERRCODE = 'check_violation',
                  HINT = 'Use an IANA name from pg_timezone_names, e.g. Asia/Kolkata.';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$;
CREATE TRIGGER tenants_timezone_valid BEFORE INSERT OR UPDATE ON tenants
    FOR EACH ROW EXECUTE FUNCTION tokenline_check_tenant_timezone();

CREATE TABLE repricing_runs (
    id                   bigint      GENERATED BY DEFAULT AS IDENTITY,
    started_at           timestamptz NOT NULL DEFAULT now(),
    finished_at          timestamptz,
    range_from           timestamptz NOT NULL,
    range_to             timestamptz NOT NULL,
    tenants              text[],
    old_pricing_versions text[],
    new_pricing_version  text,
    cost_before          numeric(38,12),
    cost_after           numeric(38,12),
    events_count         bigint      NOT NULL DEFAULT 0,
    dry_run              boolean     NOT NULL DEFAULT false,
    status               text        NOT NULL DEFAULT 'running',
    error                text,
    CONSTRAINT pk_repricing_runs PRIMARY KEY (id),
    CONSTRAINT ck_repricing_runs_status_known
        CHECK (status IN ('running', 'succeeded', 'failed')),
    CONSTRAINT ck_repricing_runs_range_not_empty CHECK (range_from < range_to)
);

CREATE TABLE tokenline_meta (
    key        text        NOT NULL,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pk_tokenline_meta PRIMARY KEY (key)
);

CREATE FUNCTION tokenline_storage_path() RETURNS text
LANGUAGE sql STABLE AS $fn$
    SELECT value FROM tokenline_meta WHERE key = 'storage_path'
$fn$;
"""


def _days(days: int) -> str:
    return f"INTERVAL '{int(days)} days'"


def timescale_sql(options: MigrationOptions) -> list[str]:
    """Return the statements that make the two raw tables hypertables with their policies."""
    statements = []
    # Segments per tenant (every query filters one); ordered by time, then by the rest of the
    # unique key so an upsert into a compressed chunk checks few batches.
    raw_tables = (
        ("usage_events", "occurred_at", "occurred_at DESC, event_id"),
        ("usage_rollup_1m", "window_start", "window_start DESC, provider, model"),
    )
    for table, time_column, order_by in raw_tables:
        statements += [
            # The pre-2.13 signature, still accepted by every 2.x release since caggs on caggs.
            f"SELECT create_hypertable('{table}', '{time_column}', "
            "chunk_time_interval => INTERVAL '1 day', migrate_data => true)",
            f"ALTER TABLE {table} SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'tenant_id', "
            f"timescaledb.compress_orderby = '{order_by}')",
            f"SELECT add_compression_policy('{table}', "
            f"compress_after => {_days(options.compress_after_days)})",
        ]
        if options.raw_retention_days is not None:
            statements.append(
                f"SELECT add_retention_policy('{table}', "
                f"drop_after => {_days(options.raw_retention_days)})"
            )
    return statements


def _try_timescale(connection: Connection, options: MigrationOptions) -> bool:
    status = timescale_status(connection)
    # Not preloaded: CREATE EXTENSION would end the session; `migrate` says what to do.
    if not decide(status, options.storage):
        return False
    if status is Timescale.ACTIVE:
        return True
    try:
        with connection.begin_nested():
            connection.execute(text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
    except DBAPIError:
        return False
    return True


def upgrade() -> None:
    """Create the tables; take the TimescaleDB path when the extension can be created."""
    options = current_options()
    connection = op.get_bind()
    timescale = options.storage != "postgresql" and _try_timescale(connection, options)
    if options.storage == "timescaledb" and not timescale:
        msg = (
            "storage=timescaledb, but TimescaleDB is not installed on this PostgreSQL server "
            "(or CREATE EXTENSION timescaledb failed): install it, or use --storage postgresql"
        )
        raise StorageUnavailable(msg)
    op.execute(text(TABLES))
    if timescale:
        for statement in timescale_sql(options):
            op.execute(text(statement))
    path = "timescaledb" if timescale else "postgresql"
    meta = {
        "storage_path": path,
        "compress_after_days": str(options.compress_after_days),
        "refresh_lookback_days": str(options.refresh_lookback_days),
        "raw_retention_days": str(options.raw_retention_days or ""),
    }
    for key, value in meta.items():
        connection.execute(
            text("INSERT INTO tokenline_meta (key, value) VALUES (:key, :value)"),
            {"key": key, "value": value},
        )


def downgrade() -> None:
    """Drop everything this revision created; the timescaledb extension stays installed."""
    op.execute(
        text(
            "DROP FUNCTION IF EXISTS tokenline_storage_path();"
            "DROP TABLE IF EXISTS tokenline_meta, repricing_runs, tenants, "
            "usage_rollup_1m, usage_events CASCADE;"
            "DROP FUNCTION IF EXISTS tokenline_check_tenant_timezone();"
        )
    )
