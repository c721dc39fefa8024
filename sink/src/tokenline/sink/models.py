"""SQLAlchemy models of the sink's tables.

The migrations under ``tokenline/sink/migrations`` create these tables with explicit SQL; a test
compares the migrated database with this metadata so the two cannot drift apart. Views and
continuous aggregates (``usage_15m`` ... ``usage_monthly``) are not modelled here: they are
read with plain SQL (see ``sink/QUERIES.md``).

Units follow the project's rules: money is ``NUMERIC(38,12)``, token counts and milliseconds
are ``BIGINT``, every timestamp is ``TIMESTAMPTZ``.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKey",
    "Base",
    "Budget",
    "RepricingRun",
    "Tenant",
    "TokenlineMeta",
    "UsageEvent",
    "UsageEventDuplicate",
    "UsageEventId",
    "UsageRollup1m",
    "UsageTenantDaily",
]

MONEY = Numeric(38, 12, asdecimal=True)
TIMESTAMPTZ = DateTime(timezone=True)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a fixed constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy reads it on the class
        str: Text(),
        int: BigInteger(),
        bool: Boolean(),
        Decimal: MONEY,
        datetime: TIMESTAMPTZ,
        uuid.UUID: UUID(as_uuid=True),
    }


def _tokens(*, nullable: bool = False) -> Mapped[Any]:
    if nullable:
        return mapped_column(BigInteger, nullable=True)
    return mapped_column(BigInteger, nullable=False, server_default=text("0"))


class UsageEvent(Base):
    """One priced LLM call, flattened from ``PricedUsageEvent`` (a hypertable on TimescaleDB).

    Unique by ``(event_id, occurred_at)``: the sink upserts on it, and the time column is part of
    the key so the key is allowed on a hypertable. One row per ``event_id`` all the same: see
    :class:`UsageEventId`. Costs are NULL when the event is unpriced.
    """

    __tablename__ = "usage_events"
    __table_args__ = (
        CheckConstraint("pricing_status IN ('priced', 'unpriced')", name="pricing_status_known"),
        CheckConstraint(
            "(pricing_status = 'priced' AND cost_total IS NOT NULL AND cost_input IS NOT NULL "
            "AND cost_cache_read IS NOT NULL AND cost_cache_write IS NOT NULL "
            "AND cost_output IS NOT NULL AND cost_reasoning IS NOT NULL) OR "
            "(pricing_status = 'unpriced' AND cost_total IS NULL AND cost_input IS NULL "
            "AND cost_cache_read IS NULL AND cost_cache_write IS NULL "
            "AND cost_output IS NULL AND cost_reasoning IS NULL)",
            name="cost_null_iff_unpriced",
        ),
        CheckConstraint(
            "input_tokens >= 0 AND cache_read_input_tokens >= 0 "
            "AND cache_write_input_tokens >= 0 AND output_tokens >= 0 AND reasoning_tokens >= 0",
            name="tokens_not_negative",
        ),
        # Every dashboard and report filters one tenant over a time range.
        Index("ix_usage_events_tenant_id_occurred_at", "tenant_id", text("occurred_at DESC")),
        # Unpriced calls are few and wanted often (reports by reason, replays that price them).
        Index(
            "ix_usage_events_unpriced",
            "tenant_id",
            text("occurred_at DESC"),
            postgresql_where=text("pricing_status = 'unpriced'"),
        ),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(primary_key=True)
    tenant_id: Mapped[str]
    project: Mapped[str | None]
    user_id: Mapped[str | None]
    session_id: Mapped[str | None]
    team: Mapped[str | None]
    tags: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    provider: Mapped[str]
    operation: Mapped[str]
    request_model: Mapped[str | None]
    response_model: Mapped[str | None]
    canonical_model: Mapped[str | None]
    deployment: Mapped[str | None]
    region: Mapped[str | None]
    batch: Mapped[bool] = mapped_column(server_default=text("false"))
    input_tokens: Mapped[int] = _tokens()
    cache_read_input_tokens: Mapped[int] = _tokens()
    cache_write_input_tokens: Mapped[int] = _tokens()
    cache_write_5m_input_tokens: Mapped[int | None] = _tokens(nullable=True)
    cache_write_1h_input_tokens: Mapped[int | None] = _tokens(nullable=True)
    output_tokens: Mapped[int] = _tokens()
    reasoning_tokens: Mapped[int] = _tokens()
    provider_total_tokens: Mapped[int | None] = _tokens(nullable=True)
    usage_mismatch: Mapped[str | None]
    usage_source: Mapped[str]
    streamed: Mapped[bool] = mapped_column(server_default=text("false"))
    latency_ms: Mapped[int]
    time_to_first_token_ms: Mapped[int | None]
    success: Mapped[bool]
    error_type: Mapped[str | None]
    error_message: Mapped[str | None]
    http_status: Mapped[int | None] = mapped_column(Integer)
    provider_request_id: Mapped[str | None]
    hostname: Mapped[str | None]
    host_cloud: Mapped[str | None]
    host_region: Mapped[str | None]
    host_instance_id: Mapped[str | None]
    host_k8s_pod: Mapped[str | None]
    host_k8s_namespace: Mapped[str | None]
    host_k8s_node: Mapped[str | None]
    host_service_name: Mapped[str | None]
    sdk_version: Mapped[str | None]
    sdk_language: Mapped[str | None]
    producer_id: Mapped[uuid.UUID]
    producer_seq: Mapped[int]
    pricing_status: Mapped[str]
    unpriced_reason: Mapped[str | None]
    cost_input: Mapped[Decimal | None]
    cost_cache_read: Mapped[Decimal | None]
    cost_cache_write: Mapped[Decimal | None]
    cost_output: Mapped[Decimal | None]
    cost_reasoning: Mapped[Decimal | None]
    cost_total: Mapped[Decimal | None]
    currency: Mapped[str] = mapped_column(server_default=text("'USD'"))
    price_entry_id: Mapped[str | None]
    pricing_version: Mapped[str]
    priced_at: Mapped[datetime]
    attributed_team: Mapped[str | None]
    attributed_cost_center: Mapped[str | None]
    attributed_cloud: Mapped[str | None]
    attributed_cloud_region: Mapped[str | None]
    attributed_cluster: Mapped[str | None]
    attributed_namespace: Mapped[str | None]
    attributed_service: Mapped[str | None]
    source_topic: Mapped[str | None]
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None]
    ingested_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class UsageEventId(Base):
    """One row per stored ``event_id``: the ``occurred_at`` of the copy in ``usage_events``.

    A plain table on both storage paths (a hypertable's key must hold its time column). The
    sink inserts into it in the transaction that stores the event; a later copy of the event
    with another ``occurred_at`` finds the row and is refused (the first stored copy wins).
    """

    __tablename__ = "usage_event_ids"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime]


class UsageEventDuplicate(Base):
    """A copy of a stored event (same ``event_id``) with another ``occurred_at``, refused."""

    __tablename__ = "usage_event_duplicates"
    __table_args__ = (Index("ix_usage_event_duplicates_occurred_at", "occurred_at"),)

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(primary_key=True)
    kept_occurred_at: Mapped[datetime]
    tenant_id: Mapped[str]
    source_topic: Mapped[str | None]
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None]
    refused_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class UsageRollup1m(Base):
    """Sums of the stored events of each (tenant, window, provider, model); the sink adds to it.

    ``source_partition`` and ``max_source_offset`` are -1 (kept for the column set the
    processor's ``UsageRollup`` shares); see ``tokenline.sink.rollups``.
    """

    __tablename__ = "usage_rollup_1m"

    tenant_id: Mapped[str] = mapped_column(primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(primary_key=True)
    window_seconds: Mapped[int] = mapped_column(Integer)
    requests: Mapped[int]
    failures: Mapped[int]
    input_tokens: Mapped[int]
    cache_read_input_tokens: Mapped[int]
    cache_write_input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    reasoning_tokens: Mapped[int]
    cost_total: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(server_default=text("'USD'"))
    unpriced_count: Mapped[int]
    latency_ms_sum: Mapped[int]
    latency_ms_max: Mapped[int]
    source_partition: Mapped[int] = mapped_column(Integer, server_default=text("-1"))
    max_source_offset: Mapped[int] = mapped_column(server_default=text("-1"))
    updated_at: Mapped[datetime]


class UsageTenantDaily(Base):
    """A tenant's totals per local day (its timezone) and low-cardinality key; the sink adds to it.

    No primary key: ``model``, ``project`` and ``team`` may be NULL; the unique key holds them
    as ``key_digest``. See migration 0006 and ``tokenline.sink.tenant_daily``.
    """

    __tablename__ = "usage_tenant_daily"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "day", "provider", "currency", "key_digest", name="uq_usage_tenant_daily"
        ),
    )
    __mapper_args__ = {  # noqa: RUF012 - SQLAlchemy reads it on the class
        "primary_key": ["tenant_id", "day", "provider", "model", "project", "team", "currency"]
    }

    tenant_id: Mapped[str]
    day: Mapped[date] = mapped_column(Date)
    provider: Mapped[str]
    model: Mapped[str | None]
    project: Mapped[str | None]
    team: Mapped[str | None]
    currency: Mapped[str]
    requests: Mapped[int]
    failures: Mapped[int]
    unpriced_count: Mapped[int]
    input_tokens: Mapped[int]
    cache_read_input_tokens: Mapped[int]
    cache_write_input_tokens: Mapped[int]
    output_tokens: Mapped[int]
    reasoning_tokens: Mapped[int]
    cost_input: Mapped[Decimal]
    cost_cache_read: Mapped[Decimal]
    cost_cache_write: Mapped[Decimal]
    cost_output: Mapped[Decimal]
    cost_reasoning: Mapped[Decimal]
    cost_total: Mapped[Decimal]
    latency_ms_sum: Mapped[int]
    latency_ms_max: Mapped[int]
    key_digest: Mapped[str] = mapped_column(
        Computed(
            "md5(coalesce(length(model)::text || ':' || model, '-') || '/' "
            "|| coalesce(length(project)::text || ':' || project, '-') || '/' "
            "|| coalesce(length(team)::text || ':' || team, '-'))",
            persisted=True,
        )
    )


class Tenant(Base):
    """A tenant's billing settings. ``timezone`` must be a name in ``pg_timezone_names``."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(primary_key=True)
    display_name: Mapped[str | None]
    timezone: Mapped[str] = mapped_column(server_default=text("'UTC'"))
    monthly_budget: Mapped[Decimal | None]
    budget_currency: Mapped[str] = mapped_column(server_default=text("'USD'"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class Budget(Base):
    """A spending budget of a tenant, or of one project, team or user of it (revision 0005)."""

    __tablename__ = "budgets"
    __table_args__ = (
        CheckConstraint("scope IN ('tenant', 'project', 'team', 'user')", name="scope_known"),
        CheckConstraint("(scope = 'tenant') = (scope_value IS NULL)", name="scope_value_given"),
        CheckConstraint("period IN ('day', 'month')", name="period_known"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("hard_limit IS NULL OR hard_limit > 0", name="hard_limit_positive"),
        Index("ix_budgets_tenant_id", "tenant_id"),
    )

    budget_id: Mapped[str] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.tenant_id"))
    scope: Mapped[str]
    scope_value: Mapped[str | None]
    period: Mapped[str]
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(server_default=text("'USD'"))
    thresholds_pct: Mapped[list[int]] = mapped_column(
        ARRAY(Integer), server_default=text("'{50,80,100}'")
    )
    hard_limit: Mapped[Decimal | None]
    version: Mapped[int] = mapped_column(server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class RepricingRun(Base):
    """One ``tokenline replay`` run: its range, tenants, pricing versions and cost change."""

    __tablename__ = "repricing_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status_known"),
        CheckConstraint("range_from < range_to", name="range_not_empty"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    finished_at: Mapped[datetime | None]
    range_from: Mapped[datetime]
    range_to: Mapped[datetime]
    tenants: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    old_pricing_versions: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    new_pricing_version: Mapped[str | None]
    cost_before: Mapped[Decimal | None]
    cost_after: Mapped[Decimal | None]
    events_count: Mapped[int] = mapped_column(server_default=text("0"))
    dry_run: Mapped[bool] = mapped_column(server_default=text("false"))
    status: Mapped[str] = mapped_column(server_default=text("'running'"))
    error: Mapped[str | None]


class ApiKey(Base):
    """A key of ``tokenline api``: only the Argon2id hash of its secret is stored.

    A tenant key has ``tenant_id`` and the scopes ``read`` and/or ``ingest``; an administration
    key has no tenant and the scope ``admin``.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint(
            "scopes <@ ARRAY['read', 'ingest', 'admin']::text[] AND cardinality(scopes) > 0",
            name="scopes_known",
        ),
        CheckConstraint(
            "(tenant_id IS NULL) = ('admin' = ANY(scopes))", name="admin_has_no_tenant"
        ),
        CheckConstraint(
            "rate_limit_per_minute IS NULL OR rate_limit_per_minute > 0", name="rate_positive"
        ),
        Index("ix_api_keys_tenant_id", "tenant_id"),
    )

    key_id: Mapped[str] = mapped_column(primary_key=True)
    secret_hash: Mapped[str]
    tenant_id: Mapped[str | None]
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    name: Mapped[str | None]
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    revoked_at: Mapped[datetime | None]
    rotated_from: Mapped[str | None]


class TokenlineMeta(Base):
    """Facts about the schema itself, e.g. ``storage_path`` = ``timescaledb`` or ``postgresql``."""

    __tablename__ = "tokenline_meta"

    key: Mapped[str] = mapped_column(primary_key=True)
    value: Mapped[str]
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
