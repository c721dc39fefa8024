"""Test data: realistic records and hypothesis strategies derived from the shipped schemas."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, get_args

from hypothesis import strategies as st

from tokenline.schemas import Operation, Provider, UsageSource

if TYPE_CHECKING:
    from tokenline.schemas import PricedUsageEvent, UsageEvent, UsageRollup

EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


def host(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "hostname": "api-7f9c",
        "cloud": "aws",
        "region": "eu-west-1",
        "instance_id": "i-0abc",
        "k8s_pod": "api-7f9c-x2",
        "k8s_namespace": "search",
        "k8s_node": "ip-10-0-0-1",
        "service_name": "search-api",
        "sdk_version": "0.1.0",
        "language": "python",
    }
    record.update(overrides)
    return record


def usage_event(**overrides: Any) -> UsageEvent:
    """A complete UsageEvent with every field set; ``overrides`` replace fields."""
    record: dict[str, Any] = {
        "event_id": uuid.UUID("01934b6e-8f7a-7cc2-9d1e-5b3c2a1f0e9d"),
        "producer_id": uuid.UUID("01934b6e-0000-7000-8000-000000000001"),
        "producer_seq": 42,
        "occurred_at": EPOCH + timedelta(microseconds=123_456),
        "tenant_id": "acme",
        "project": "search",
        "user_id": "u-17",
        "session_id": "s-9",
        "team": "relevance",
        "tags": {"feature": "rerank"},
        "provider": "anthropic",
        "operation": "chat",
        "request_model": "claude-sonnet-4-5",
        "response_model": "claude-sonnet-4-5-20250929",
        "deployment": None,
        "region": None,
        "batch": False,
        "usage": {
            "input_tokens": 1200,
            "cache_read_input_tokens": 30_000,
            "cache_write_input_tokens": 2_000,
            "cache_write_5m_input_tokens": 1_500,
            "cache_write_1h_input_tokens": 500,
            "output_tokens": 350,
            "reasoning_tokens": 0,
            "provider_total_tokens": None,
            "mismatch": None,
        },
        "usage_source": "reported",
        "streamed": True,
        "latency_ms": 1834,
        "time_to_first_token_ms": 412,
        "success": True,
        "error_type": None,
        "error_message": None,
        "http_status": 200,
        "provider_request_id": "req_011CT",
        "host": host(),
    }
    record.update(overrides)
    return record  # type: ignore[return-value]


def priced_event(**overrides: Any) -> PricedUsageEvent:
    """A priced event wrapping ``usage_event()``."""
    record: dict[str, Any] = {
        "event": usage_event(),
        "canonical_model": "claude-sonnet-4-5",
        "pricing_status": "priced",
        "unpriced_reason": None,
        "cost": {
            "input": Decimal("0.003600000000"),
            "cache_read": Decimal("0.009000000000"),
            "cache_write": Decimal("0.007500000000"),
            "output": Decimal("0.005250000000"),
            "reasoning": Decimal("0E-12"),
            "total": Decimal("0.025350000000"),
        },
        "currency": "USD",
        "price_entry_id": "anthropic/claude-sonnet-4-5@2025-09-29",
        "pricing_version": "3f2a9c",
        "priced_at": EPOCH + timedelta(seconds=1),
        "team": "relevance",
        "cost_center": "CC-104",
        "cloud": "aws",
        "cloud_region": "eu-west-1",
        "cluster": None,
        "namespace": "search",
        "service": "search-api",
        "source": {"topic": "llm-usage.raw", "partition": 3, "offset": 1017},
    }
    record.update(overrides)
    return record  # type: ignore[return-value]


def rollup(**overrides: Any) -> UsageRollup:
    record: dict[str, Any] = {
        "tenant_id": "acme",
        "window_start": EPOCH,
        "window_seconds": 60,
        "provider": "openai",
        "model": "gpt-4o",
        "requests": 12,
        "failures": 1,
        "input_tokens": 10_000,
        "cache_read_input_tokens": 2_048,
        "cache_write_input_tokens": 0,
        "output_tokens": 1_500,
        "reasoning_tokens": 640,
        "cost_total": Decimal("0.046120000000"),
        "currency": "USD",
        "unpriced_count": 0,
        "latency_ms_sum": 9_000,
        "latency_ms_max": 2_100,
        "source_partition": 0,
        "max_source_offset": 77,
        "updated_at": EPOCH + timedelta(seconds=65),
    }
    record.update(overrides)
    return record  # type: ignore[return-value]


# ----------------------------------------------------------------------------- strategies
_text = st.text(max_size=40)
_opt_text = st.none() | _text
_count = st.integers(min_value=0, max_value=2**62)
_timestamps = st.datetimes(
    min_value=datetime(1971, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by contract
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
_money = st.decimals(min_value=Decimal(0), max_value=Decimal(10) ** 20, places=12, allow_nan=False)

hosts = st.fixed_dictionaries(dict.fromkeys(host(), _opt_text))

usages = st.fixed_dictionaries(
    {
        "input_tokens": _count,
        "cache_read_input_tokens": _count,
        "cache_write_input_tokens": _count,
        "cache_write_5m_input_tokens": st.none() | _count,
        "cache_write_1h_input_tokens": st.none() | _count,
        "output_tokens": _count,
        "reasoning_tokens": _count,
        "provider_total_tokens": st.none() | _count,
        "mismatch": _opt_text,
    }
)

usage_events = st.fixed_dictionaries(
    {
        "event_id": st.uuids(),
        "producer_id": st.uuids(),
        "producer_seq": _count,
        "occurred_at": _timestamps,
        "tenant_id": st.text(min_size=1, max_size=40),
        "project": _opt_text,
        "user_id": _opt_text,
        "session_id": _opt_text,
        "team": _opt_text,
        "tags": st.dictionaries(_text, _text, max_size=5),
        "provider": st.sampled_from(get_args(Provider)),
        "operation": st.sampled_from(get_args(Operation)),
        "request_model": _opt_text,
        "response_model": _opt_text,
        "deployment": _opt_text,
        "region": _opt_text,
        "batch": st.booleans(),
        "usage": usages,
        "usage_source": st.sampled_from(get_args(UsageSource)),
        "streamed": st.booleans(),
        "latency_ms": _count,
        "time_to_first_token_ms": st.none() | _count,
        "success": st.booleans(),
        "error_type": _opt_text,
        "error_message": _opt_text,
        "http_status": st.none() | st.integers(min_value=100, max_value=599),
        "provider_request_id": _opt_text,
        "host": hosts,
    }
)

costs = st.fixed_dictionaries(
    dict.fromkeys(("input", "cache_read", "cache_write", "output", "reasoning", "total"), _money)
)

priced_events = st.fixed_dictionaries(
    {
        "event": usage_events,
        "canonical_model": _opt_text,
        "pricing_status": st.sampled_from(["priced", "unpriced"]),
        "unpriced_reason": _opt_text,
        "cost": st.none() | costs,
        "currency": st.just("USD"),
        "price_entry_id": _opt_text,
        "pricing_version": _text,
        "priced_at": _timestamps,
        "team": _opt_text,
        "cost_center": _opt_text,
        "cloud": _opt_text,
        "cloud_region": _opt_text,
        "cluster": _opt_text,
        "namespace": _opt_text,
        "service": _opt_text,
        "source": st.none()
        | st.fixed_dictionaries(
            {
                "topic": _text,
                "partition": st.integers(0, 2**31 - 1),
                "offset": _count,
            }
        ),
    }
)


def budget(**overrides: Any) -> dict[str, Any]:
    """A Budget record: acme's team 'search' at 100 USD a month, 50/80/100%, hard limit 120."""
    record: dict[str, Any] = {
        "budget_id": "acme-search-monthly",
        "tenant_id": "acme",
        "scope": "team",
        "scope_value": "search",
        "period": "month",
        "timezone": "Asia/Kolkata",
        "amount": Decimal("100.000000000000"),
        "currency": "USD",
        "thresholds_pct": [50, 80, 100],
        "hard_limit": Decimal("120.000000000000"),
        "version": 3,
        "updated_at": EPOCH,
    }
    record.update(overrides)
    return record


def budget_alert(**overrides: Any) -> dict[str, Any]:
    """A BudgetAlert record: the 80% threshold of ``budget()`` crossed."""
    record: dict[str, Any] = {
        "alert_id": "acme-search-monthly/2026-10-31T18:30:00+00:00/80",
        "kind": "threshold",
        "budget_id": "acme-search-monthly",
        "tenant_id": "acme",
        "scope": "team",
        "scope_value": "search",
        "period": "month",
        "timezone": "Asia/Kolkata",
        "period_start": datetime(2026, 10, 31, 18, 30, tzinfo=UTC),
        "period_end": datetime(2026, 11, 30, 18, 30, tzinfo=UTC),
        "threshold_pct": 80,
        "threshold_amount": Decimal("80.000000000000"),
        "spend": Decimal("80.250000000000"),
        "budget_amount": Decimal("100.000000000000"),
        "currency": "USD",
        "crossed_at": EPOCH,
        "event_id": str(uuid.UUID(int=7)),
    }
    record.update(overrides)
    return record


def budget_status(**overrides: Any) -> dict[str, Any]:
    """A BudgetStatus record for ``budget()``, over its hard limit."""
    record: dict[str, Any] = {
        "budget_id": "acme-search-monthly",
        "tenant_id": "acme",
        "scope": "team",
        "scope_value": "search",
        "period_start": datetime(2026, 10, 31, 18, 30, tzinfo=UTC),
        "period_end": datetime(2026, 11, 30, 18, 30, tzinfo=UTC),
        "spend": Decimal("121.500000000000"),
        "amount": Decimal("100.000000000000"),
        "hard_limit": Decimal("120.000000000000"),
        "exceeded": True,
        "currency": "USD",
        "updated_at": EPOCH,
    }
    record.update(overrides)
    return record
