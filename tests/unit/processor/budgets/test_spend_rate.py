"""The spend-rate alert: a clock hour's spend against the mean of the 24 hours before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.unit.processor.budgets.test_state import alerts, budget, event
from tokenline.processor.budgets.model import BudgetBook, RateRule
from tokenline.processor.budgets.state import Changes, PartitionState

pytestmark = pytest.mark.unit

HOUR = datetime(2026, 11, 15, 12, tzinfo=UTC)
RULE = RateRule(factor=Decimal(3), min_spend=Decimal(1))


def history(state: PartitionState, book: BudgetBook) -> None:
    """1 USD in each of the 24 hours before HOUR (a big budget: no threshold fires)."""
    for h in range(1, 25):
        state.apply(book, event(1000 + h, "1", at=HOUR - timedelta(hours=h)), HOUR, Changes())


def rate_alerts(state: PartitionState, book: BudgetBook, *events: object) -> list[object]:
    changes = Changes()
    for e in events:
        state.apply(book, e, HOUR, changes)
    return [a for a in changes.alerts if a["kind"] == "spend_rate"]


def test_fires_once_an_hour_at_the_factor() -> None:
    book, state = (
        BudgetBook([budget(amount=Decimal(10_000), hard_limit=None)]),
        PartitionState(RULE),
    )
    history(state, book)
    assert rate_alerts(state, book, event(1, "2.99", at=HOUR)) == []
    (alert,) = rate_alerts(state, book, event(2, "0.01", at=HOUR + timedelta(minutes=5)))
    assert alert["spend"] == Decimal(3)  # type: ignore[index]
    assert alert["budget_amount"] == Decimal(1)  # type: ignore[index]  # the mean
    assert alert["alert_id"] == "~rate/acme/2026-11-15T12:00:00+00:00/rate"  # type: ignore[index]
    assert rate_alerts(state, book, event(3, "50", at=HOUR + timedelta(minutes=9))) == []
    # A re-pricing that lowers the hour does not send it again either.
    assert rate_alerts(state, book, event(3, "0", at=HOUR + timedelta(minutes=9))) == []
    # The next hour has a baseline of its own: (23 x 1 + 3) / 24 = 1.0833...
    later = HOUR + timedelta(hours=1)
    assert rate_alerts(state, book, event(4, "3.24", at=later)) == []
    assert len(rate_alerts(state, book, event(5, "0.02", at=later))) == 1


def test_needs_a_baseline_a_budget_and_the_minimum() -> None:
    book = BudgetBook([budget(amount=Decimal(10_000), hard_limit=None)])
    fresh = PartitionState(RULE)
    assert rate_alerts(fresh, book, event(1, "500", at=HOUR)) == []  # no history: no mean
    quiet = PartitionState(RateRule(factor=Decimal(3), min_spend=Decimal(5)))
    history(quiet, book)
    assert rate_alerts(quiet, book, event(1, "4.99", at=HOUR)) == []  # under the minimum
    unbudgeted = PartitionState(RULE)
    history(unbudgeted, BudgetBook())
    assert unbudgeted.spends == {}
    assert rate_alerts(unbudgeted, BudgetBook(), event(1, "500", at=HOUR)) == []
    off = PartitionState()
    history(off, book)
    assert rate_alerts(off, book, event(1, "500", at=HOUR)) == []


def test_thresholds_still_fire_beside_it() -> None:
    book, state = BudgetBook([budget(period="day")]), PartitionState(RULE)
    assert alerts(Changes()) == []
    changes = Changes()
    state.apply(book, event(1, "6", at=HOUR), HOUR, changes)
    assert alerts(changes) == [("threshold", 50)]
