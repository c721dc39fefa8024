"""Every relation the sink's schema creates and its columns, written once.

Both storage paths must create exactly these (the TimescaleDB path makes usage_events and
usage_rollup_1m hypertables and the four aggregates continuous aggregates; the plain path makes
tables and views). Types are ``information_schema.columns.data_type``.
"""

from __future__ import annotations

TSTZ = "timestamp with time zone"

_AGGREGATE = {
    "bucket": TSTZ,
    "tenant_id": "text",
    "provider": "text",
    "model": "text",
    "project": "text",
    "team": "text",
    "currency": "text",
    "requests": "bigint",
    "failures": "bigint",
    "unpriced_count": "bigint",
    "input_tokens": "bigint",
    "cache_read_input_tokens": "bigint",
    "cache_write_input_tokens": "bigint",
    "output_tokens": "bigint",
    "reasoning_tokens": "bigint",
    "cost_input": "numeric",
    "cost_cache_read": "numeric",
    "cost_cache_write": "numeric",
    "cost_output": "numeric",
    "cost_reasoning": "numeric",
    "cost_total": "numeric",
    "latency_ms_sum": "bigint",
    "latency_ms_max": "bigint",
}

_TEXT_NULLABLE = [
    "project",
    "user_id",
    "session_id",
    "team",
    "request_model",
    "response_model",
    "canonical_model",
    "deployment",
    "region",
    "usage_mismatch",
    "error_type",
    "error_message",
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
    "unpriced_reason",
    "price_entry_id",
    "attributed_team",
    "attributed_cost_center",
    "attributed_cloud",
    "attributed_cloud_region",
    "attributed_cluster",
    "attributed_namespace",
    "attributed_service",
    "source_topic",
]

USAGE_EVENTS = {
    "event_id": "uuid",
    "occurred_at": TSTZ,
    "tenant_id": "text",
    "tags": "jsonb",
    "provider": "text",
    "operation": "text",
    "batch": "boolean",
    "input_tokens": "bigint",
    "cache_read_input_tokens": "bigint",
    "cache_write_input_tokens": "bigint",
    "cache_write_5m_input_tokens": "bigint",
    "cache_write_1h_input_tokens": "bigint",
    "output_tokens": "bigint",
    "reasoning_tokens": "bigint",
    "provider_total_tokens": "bigint",
    "usage_source": "text",
    "streamed": "boolean",
    "latency_ms": "bigint",
    "time_to_first_token_ms": "bigint",
    "success": "boolean",
    "http_status": "integer",
    "producer_id": "uuid",
    "producer_seq": "bigint",
    "pricing_status": "text",
    "cost_input": "numeric",
    "cost_cache_read": "numeric",
    "cost_cache_write": "numeric",
    "cost_output": "numeric",
    "cost_reasoning": "numeric",
    "cost_total": "numeric",
    "currency": "text",
    "pricing_version": "text",
    "priced_at": TSTZ,
    "source_partition": "integer",
    "source_offset": "bigint",
    "ingested_at": TSTZ,
    **dict.fromkeys(_TEXT_NULLABLE, "text"),
}

RELATIONS: dict[str, dict[str, str]] = {
    "usage_events": USAGE_EVENTS,
    "usage_rollup_1m": {
        "tenant_id": "text",
        "window_start": TSTZ,
        "window_seconds": "integer",
        "provider": "text",
        "model": "text",
        "requests": "bigint",
        "failures": "bigint",
        "input_tokens": "bigint",
        "cache_read_input_tokens": "bigint",
        "cache_write_input_tokens": "bigint",
        "output_tokens": "bigint",
        "reasoning_tokens": "bigint",
        "cost_total": "numeric",
        "currency": "text",
        "unpriced_count": "bigint",
        "latency_ms_sum": "bigint",
        "latency_ms_max": "bigint",
        "source_partition": "integer",
        "max_source_offset": "bigint",
        "updated_at": TSTZ,
    },
    "tenants": {
        "tenant_id": "text",
        "display_name": "text",
        "timezone": "text",
        "monthly_budget": "numeric",
        "budget_currency": "text",
        "created_at": TSTZ,
        "updated_at": TSTZ,
    },
    "budgets": {
        "budget_id": "text",
        "tenant_id": "text",
        "scope": "text",
        "scope_value": "text",
        "period": "text",
        "amount": "numeric",
        "currency": "text",
        "thresholds_pct": "ARRAY",
        "hard_limit": "numeric",
        "version": "bigint",
        "created_at": TSTZ,
        "updated_at": TSTZ,
    },
    "repricing_runs": {
        "id": "bigint",
        "started_at": TSTZ,
        "finished_at": TSTZ,
        "range_from": TSTZ,
        "range_to": TSTZ,
        "tenants": "ARRAY",
        "old_pricing_versions": "ARRAY",
        "new_pricing_version": "text",
        "cost_before": "numeric",
        "cost_after": "numeric",
        "events_count": "bigint",
        "dry_run": "boolean",
        "status": "text",
        "error": "text",
    },
    "tokenline_meta": {"key": "text", "value": "text", "updated_at": TSTZ},
    "api_keys": {
        "key_id": "text",
        "secret_hash": "text",
        "tenant_id": "text",
        "scopes": "ARRAY",
        "name": "text",
        "rate_limit_per_minute": "integer",
        "created_at": TSTZ,
        "revoked_at": TSTZ,
        "rotated_from": "text",
    },
    "usage_event_ids": {"event_id": "uuid", "occurred_at": TSTZ},
    "usage_event_duplicates": {
        "event_id": "uuid",
        "occurred_at": TSTZ,
        "kept_occurred_at": TSTZ,
        "tenant_id": "text",
        "source_topic": "text",
        "source_partition": "integer",
        "source_offset": "bigint",
        "refused_at": TSTZ,
    },
    "usage_tenant_daily": {
        "tenant_id": "text",
        "day": "date",
        "provider": "text",
        "model": "text",
        "project": "text",
        "team": "text",
        "currency": "text",
        **{c: "bigint" for c in _AGGREGATE if _AGGREGATE[c] == "bigint"},
        **{c: "numeric" for c in _AGGREGATE if _AGGREGATE[c] == "numeric"},
        "key_digest": "text",
    },
    "usage_15m": _AGGREGATE,
    "usage_hourly": _AGGREGATE,
    "usage_daily": _AGGREGATE,
    "usage_monthly": _AGGREGATE,
}

# Money columns are NUMERIC(38,12) wherever they are stored or aggregated.
MONEY_COLUMNS = {
    (relation, column)
    for relation, columns in RELATIONS.items()
    for column, data_type in columns.items()
    if data_type == "numeric"
}

FUNCTIONS = {
    "tokenline_storage_path",
    "tokenline_check_tenant_timezone",
    "tenant_daily_totals",
    "tenant_monthly_totals",
    "tokenline_rebuild_tenant_daily",
    "tokenline_tenant_timezone_changed",
}

COLUMNS_QUERY = """
SELECT table_name, column_name, data_type, numeric_precision, numeric_scale
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name <> 'alembic_version'
"""


def relation_columns(
    rows: list[tuple[str, str, str, int | None, int | None]],
) -> dict[str, dict[str, str]]:
    """Group ``COLUMNS_QUERY`` rows into {relation: {column: data_type}}."""
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type, _precision, _scale in rows:
        found.setdefault(table, {})[column] = data_type
    return found


def money_precisions(
    rows: list[tuple[str, str, str, int | None, int | None]],
) -> dict[tuple[str, str], tuple[int | None, int | None]]:
    """Return (precision, scale) of every expected money column among ``COLUMNS_QUERY`` rows."""
    return {
        (table, column): (precision, scale)
        for table, column, _type, precision, scale in rows
        if (table, column) in MONEY_COLUMNS
    }
