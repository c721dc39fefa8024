"""Python types of the newest shipped Avro schemas.

Generated from the .avsc files by ``python -m tokenline.schemas._codegen``; do not edit.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003
from decimal import Decimal  # noqa: TC003
from typing import Literal, TypedDict
from uuid import UUID  # noqa: TC003

__all__ = [
    "Attribution",
    "Budget",
    "BudgetAlert",
    "BudgetStatus",
    "Cost",
    "DeadLetter",
    "Host",
    "Operation",
    "PricedUsageEvent",
    "PricingStatus",
    "Provider",
    "SourcePosition",
    "Usage",
    "UsageEvent",
    "UsageRollup",
    "UsageSource",
]


Provider = Literal["openai", "azure_openai", "anthropic", "bedrock", "gemini", "other", "vertex_ai"]


Operation = Literal["chat", "responses", "completion", "embedding", "image", "audio", "other"]


class Usage(TypedDict):
    """Disjoint token buckets: no token is counted in two of them.

    The sum of the five counts is every token the call was billed for.
    """

    input_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int
    cache_write_5m_input_tokens: int | None
    cache_write_1h_input_tokens: int | None
    output_tokens: int
    reasoning_tokens: int
    provider_total_tokens: int | None
    mismatch: str | None


UsageSource = Literal["reported", "estimated", "none"]


class Host(TypedDict):
    """Where the call was made from, as the SDK detected it once per process."""

    hostname: str | None
    cloud: str | None
    region: str | None
    instance_id: str | None
    k8s_pod: str | None
    k8s_namespace: str | None
    k8s_node: str | None
    service_name: str | None
    sdk_version: str | None
    language: str | None


class UsageEvent(TypedDict):
    """One LLM call, as the producer SDK saw it.

    Key on Kafka: tenant_id. Never holds prompt or completion text.
    """

    event_id: UUID
    producer_id: UUID
    producer_seq: int
    occurred_at: datetime
    tenant_id: str
    project: str | None
    user_id: str | None
    session_id: str | None
    team: str | None
    tags: dict[str, str]
    provider: Provider
    operation: Operation
    request_model: str | None
    response_model: str | None
    deployment: str | None
    region: str | None
    batch: bool
    usage: Usage
    usage_source: UsageSource
    streamed: bool
    latency_ms: int
    time_to_first_token_ms: int | None
    success: bool
    error_type: str | None
    error_message: str | None
    http_status: int | None
    provider_request_id: str | None
    host: Host


PricingStatus = Literal["priced", "unpriced"]


class Cost(TypedDict):
    """Exact cost per usage bucket, in the event's currency.

    Decimal, never float.
    """

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    total: Decimal


class SourcePosition(TypedDict):
    """Where a record was read from on Kafka."""

    topic: str
    partition: int
    offset: int


class Attribution(TypedDict):
    """The normalized host and attribution the processor adds to a PricedUsageEvent."""

    team: str | None
    cost_center: str | None
    cloud: str | None
    cloud_region: str | None
    cluster: str | None
    namespace: str | None
    service: str | None


class PricedUsageEvent(Attribution):
    """A UsageEvent with its price, canonical model and attribution.

    Unpriced events carry a null cost and a reason, never zero. Inherits the fields of
    Attribution.
    """

    event: UsageEvent
    canonical_model: str | None
    pricing_status: PricingStatus
    unpriced_reason: str | None
    cost: Cost | None
    currency: str
    price_entry_id: str | None
    pricing_version: str
    priced_at: datetime
    source: SourcePosition | None


class UsageRollup(TypedDict):
    """What a batch of events adds to one tumbling window per (tenant, provider, model).

    Delta semantics: the records of one window add up (latency_ms_max is a maximum); produced in
    Kafka transactions, read them read_committed.
    """

    tenant_id: str
    window_start: datetime
    window_seconds: int
    provider: Provider
    model: str
    requests: int
    failures: int
    input_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_total: Decimal
    currency: str
    unpriced_count: int
    latency_ms_sum: int
    latency_ms_max: int
    source_partition: int
    max_source_offset: int
    updated_at: datetime


class DeadLetter(TypedDict):
    """A record that could not be processed: the original bytes, where they came from, and why."""

    reason_code: str
    reason: str
    stage: str
    source_topic: str
    source_partition: int
    source_offset: int
    source_timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    failed_at: datetime
    worker: str | None


class Budget(TypedDict):
    """A spending budget.

    Published on the compacted budgets topic (key = budget_id; a null value deletes it). Spend
    of the events whose attribution matches the scope is summed per period in the tenant's
    timezone.
    """

    budget_id: str
    tenant_id: str
    scope: str
    scope_value: str | None
    period: str
    timezone: str
    amount: Decimal
    currency: str
    thresholds_pct: list[int]
    hard_limit: Decimal | None
    version: int
    updated_at: datetime


class BudgetAlert(TypedDict):
    """A budget threshold crossed: exactly one per budget, period and threshold.

    Produced in Kafka transactions with the evaluator's state; read it read_committed.
    """

    alert_id: str
    kind: str
    budget_id: str
    tenant_id: str
    scope: str
    scope_value: str | None
    period: str
    timezone: str
    period_start: datetime
    period_end: datetime
    threshold_pct: int | None
    threshold_amount: Decimal
    spend: Decimal
    budget_amount: Decimal
    currency: str
    crossed_at: datetime
    event_id: str | None


class BudgetStatus(TypedDict):
    """A budget's spend in its current period.

    On the compacted budget-status topic (key = budget_id). SDKs that enforce hard limits follow
    it; a record with budget_id empty is an evaluator's heartbeat.
    """

    budget_id: str
    tenant_id: str
    scope: str
    scope_value: str | None
    period_start: datetime
    period_end: datetime
    spend: Decimal
    amount: Decimal
    hard_limit: Decimal | None
    exceeded: bool
    currency: str
    updated_at: datetime
