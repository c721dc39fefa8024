"""The budget gauges `tokenline alerts` exports from the status topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests import factories
from tokenline.processor.budgets.delivery import AlertMetrics

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 15, tzinfo=UTC)
LABELS = {"budget_id": "b", "tenant_id": "acme", "scope": "team", "scope_value": "search"}


def test_ratio_exceeded_and_their_end() -> None:
    metrics = AlertMetrics()
    gauges, registry = metrics.budgets, metrics.registry
    status = factories.budget_status(budget_id="b", spend=Decimal("121.5"), amount=Decimal(100))
    gauges.apply("b", status, NOW)  # type: ignore[arg-type]
    assert registry.get_sample_value("tokenline_budget_used_ratio", LABELS) == 1.215
    assert registry.get_sample_value("tokenline_budget_hard_limit_exceeded", LABELS) == 1
    gauges.sweep(status["period_end"] + timedelta(microseconds=1))
    assert registry.get_sample_value("tokenline_budget_used_ratio", LABELS) is None
    gauges.apply("b", status, NOW)  # type: ignore[arg-type]
    gauges.apply("b", None, NOW)  # deleted
    assert registry.get_sample_value("tokenline_budget_hard_limit_exceeded", LABELS) is None


def test_heartbeat() -> None:
    metrics = AlertMetrics()
    beat = factories.budget_status(budget_id="", updated_at=NOW)
    metrics.budgets.apply("__heartbeat__/w1", beat, NOW)  # type: ignore[arg-type]
    value = metrics.registry.get_sample_value(
        "tokenline_budget_evaluator_heartbeat_timestamp_seconds"
    )
    assert value == NOW.timestamp()
