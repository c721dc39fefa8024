from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import EPOCH, usage_event
from tokenline.processor.validate import ValidationLimits, validate_event

pytestmark = pytest.mark.unit

NOW = EPOCH + timedelta(seconds=30)


def with_usage(**usage: Any) -> Any:
    event = usage_event()
    return usage_event(usage={**event["usage"], **usage})


def test_valid_event_passes() -> None:
    assert validate_event(usage_event(), NOW) is None


@pytest.mark.parametrize(
    ("event", "rule"),
    [
        (with_usage(output_tokens=-1), "negative_tokens"),
        (with_usage(cache_write_5m_input_tokens=-3), "negative_tokens"),
        (with_usage(input_tokens=10_000_001), "absurd_tokens"),
        (usage_event(tenant_id="  "), "empty_tenant"),
        (usage_event(occurred_at=NOW + timedelta(minutes=6)), "occurred_in_future"),
        (usage_event(occurred_at=NOW - timedelta(days=8)), "occurred_too_long_ago"),
        (usage_event(latency_ms=-5), "negative_latency"),
    ],
)
def test_rules(event: Any, rule: str) -> None:
    violation = validate_event(event, NOW)
    assert violation is not None
    assert violation.reason_code == "invalid_event"
    assert violation.rule == rule


def test_limits_are_configurable() -> None:
    limits = ValidationLimits(max_tokens_per_bucket=100_000, max_age=timedelta(days=30))
    assert validate_event(with_usage(output_tokens=100_001), NOW, limits) is not None
    assert validate_event(usage_event(occurred_at=NOW - timedelta(days=8)), NOW, limits) is None


def test_mismatch_within_tolerance_is_accepted() -> None:
    # buckets sum to 33_550; a provider total 2% off is within the default 5%
    event = with_usage(provider_total_tokens=34_200, mismatch="total differs")
    assert validate_event(event, NOW) is None


def test_mismatch_beyond_tolerance_is_rejected() -> None:
    event = with_usage(provider_total_tokens=40_000, mismatch="total differs")
    violation = validate_event(event, NOW)
    assert violation is not None
    assert violation.rule == "usage_mismatch"
    strict = ValidationLimits(mismatch_tolerance=Decimal("0.5"))
    assert validate_event(event, NOW, strict) is None


def test_unflagged_total_difference_is_not_checked() -> None:
    assert validate_event(with_usage(provider_total_tokens=1), NOW) is None
