"""Spend and alerts per budget and period: each case's expected spend is summed by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests import factories
from tokenline.processor.budgets.model import Budget, BudgetBook
from tokenline.processor.budgets.state import Changes, PartitionState

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 15, 12, tzinfo=UTC)


def budget(**overrides: Any) -> Budget:
    record = factories.budget(
        budget_id="b1",
        scope="tenant",
        scope_value=None,
        timezone="UTC",
        amount=Decimal(10),
        hard_limit=Decimal(12),
        version=1,
    )
    record.update(overrides)
    return Budget.from_record(record)  # type: ignore[arg-type]


def event(n: int, cost: str | None, *, at: datetime = NOW, **fields: Any) -> Any:
    usage = factories.usage_event(
        event_id=uuid.UUID(int=n), occurred_at=at, **{"team": None, **fields}
    )
    total = None if cost is None else {**factories.priced_event()["cost"], "total": Decimal(cost)}
    return factories.priced_event(event=usage, cost=total, team=None)


def feed(state: PartitionState, book: BudgetBook, *events: Any) -> Changes:
    changes = Changes()
    for e in events:
        state.apply(book, e, NOW, changes)
    return changes


def alerts(changes: Changes) -> list[tuple[str, int | None]]:
    return [(a["kind"], a["threshold_pct"]) for a in changes.alerts]


def spend_of(state: PartitionState) -> Decimal:
    (spend,) = state.spends.values()
    return spend.spend


def test_each_threshold_alerts_once_in_order() -> None:
    book, state = BudgetBook([budget()]), PartitionState()
    first = feed(state, book, event(1, "4.99"), event(2, "0.01"))  # 5.00: 50% exactly
    assert alerts(first) == [("threshold", 50)]
    assert first.alerts[0]["spend"] == Decimal("5.000000000000")
    assert first.alerts[0]["event_id"] == str(uuid.UUID(int=2))
    second = feed(state, book, event(3, "7"))  # 12.00: 80%, 100% and the hard limit
    assert alerts(second) == [("threshold", 80), ("threshold", 100), ("hard_limit", None)]
    assert second.statuses["b1"]["exceeded"] is True
    assert alerts(feed(state, book, event(4, "1"))) == []
    assert spend_of(state) == Decimal(13)


def test_a_redelivered_event_counts_once() -> None:
    book, state = BudgetBook([budget()]), PartitionState()
    feed(state, book, event(1, "3"))
    again = feed(state, book, event(1, "3"))
    assert spend_of(state) == Decimal(3)
    assert not again


def test_repricing_lower_does_not_resend_and_higher_sends_new_ones_once() -> None:
    book, state = BudgetBook([budget()]), PartitionState()
    assert alerts(feed(state, book, event(1, "6"))) == [("threshold", 50)]
    lowered = feed(state, book, event(1, "2"))  # a replay re-prices it lower
    assert spend_of(state) == Decimal(2)
    assert alerts(lowered) == []
    raised = feed(state, book, event(1, "9"))
    assert spend_of(state) == Decimal(9)
    assert alerts(raised) == [("threshold", 80)]
    assert alerts(feed(state, book, event(1, "9.5"))) == []


def test_an_unpriced_event_counts_when_a_replay_prices_it() -> None:
    book, state = BudgetBook([budget()]), PartitionState()
    assert alerts(feed(state, book, event(1, None))) == []
    assert spend_of(state) == Decimal(0)
    assert alerts(feed(state, book, event(1, "5"))) == [("threshold", 50)]


def test_periods_are_apart_and_a_late_event_sends_no_status() -> None:
    book, state = BudgetBook([budget(period="day", timezone="Asia/Kolkata")]), PartitionState()
    # 18:29:59 UTC on the 14th is 23:59:59 in Kolkata, the 14th; 18:30 is the 15th.
    late = feed(state, book, event(1, "6", at=datetime(2026, 11, 14, 18, 29, 59, tzinfo=UTC)))
    assert alerts(late) == [("threshold", 50)]
    assert late.statuses == {}  # that day is over: SDKs do not need it
    today = feed(state, book, event(2, "4", at=datetime(2026, 11, 14, 18, 30, tzinfo=UTC)))
    assert alerts(today) == []
    assert today.statuses["b1"]["period_start"] == datetime(2026, 11, 14, 18, 30, tzinfo=UTC)
    assert sorted(s.spend for s in state.spends.values()) == [Decimal(4), Decimal(6)]


def test_scopes_match_their_attribute_only() -> None:
    book = BudgetBook(
        [
            budget(budget_id="team", scope="team", scope_value="search"),
            budget(budget_id="user", scope="user", scope_value="u-1"),
            budget(budget_id="project", scope="project", scope_value="p"),
            budget(budget_id="other-tenant", tenant_id="globex"),
        ]
    )
    state = PartitionState()
    feed(
        state,
        book,
        event(1, "1", team="search", user_id="u-1", project="p"),
        event(2, "2", team="ads", user_id="u-1", project="q"),
        event(3, "4", team="search", user_id="u-2", project="p"),
    )
    by_budget = {b: s.spend for (b, _), s in state.spends.items()}
    assert by_budget == {"team": Decimal(5), "user": Decimal(3), "project": Decimal(5)}


def test_a_raised_budget_lifts_the_hard_limit_and_a_lowered_one_alerts() -> None:
    book, state = BudgetBook([budget()]), PartitionState()
    feed(state, book, event(1, "12.5"))
    raised = budget(amount=Decimal(100), hard_limit=Decimal(120), version=2)
    assert book.put(raised)
    changes = Changes()
    state.rebudget(raised, NOW, changes)
    assert changes.statuses["b1"]["exceeded"] is False
    assert changes.alerts == []
    lowered = budget(amount=Decimal(20), thresholds_pct=[50, 60], hard_limit=None, version=3)
    assert book.put(lowered)
    changes = Changes()
    state.rebudget(lowered, NOW, changes)
    assert alerts(changes) == [("threshold", 60)]  # 50 was sent at 5.00 of the old amount


def test_restoring_from_the_state_records_gives_the_same_state() -> None:
    book, state = BudgetBook([budget()]), PartitionState()
    changes = feed(state, book, event(1, "3"), event(2, "4.25"), event(1, "1"))
    restored = PartitionState()
    for key, value in changes.state.items():
        restored.load(key.encode(), value)
    assert restored.spends == state.spends
    assert restored.events == state.events
    assert alerts(feed(restored, book, event(3, "0.75"))) == alerts(
        feed(state, book, event(3, "0.75"))
    )


def test_an_older_budget_version_is_ignored() -> None:
    book = BudgetBook([budget(version=5)])
    assert not book.put(budget(amount=Decimal(1), version=4))
    assert book.get("b1") is not None
    assert book.get("b1").amount == Decimal(10)  # type: ignore[union-attr]


def test_other_currencies_do_not_count() -> None:
    book, state = BudgetBook([budget(currency="EUR")]), PartitionState()
    assert not feed(state, book, event(1, "50"))
    assert state.spends == {}


def test_timestamps_in_alert_ids_are_the_periods() -> None:
    book, state = BudgetBook([budget()]), PartitionState()
    (alert,) = feed(state, book, event(1, "5")).alerts
    assert alert["alert_id"] == "b1/2026-11-01T00:00:00+00:00/50"
    assert alert["period_end"] - alert["period_start"] == timedelta(days=30)


def test_pruning_forgets_ended_periods_and_their_events_for_good() -> None:
    book = BudgetBook([budget(period="day")])
    state = PartitionState()
    old_day = datetime(2026, 10, 1, 12, tzinfo=UTC)
    written = feed(state, book, event(1, "6", at=old_day), event(2, "1"))
    changes = Changes()
    state.prune(datetime(2026, 10, 10, tzinfo=UTC), changes)
    assert changes.state == {"s/b1/2026-10-01T00:00:00+00:00": None, f"e/{uuid.UUID(int=1)}": None}
    assert [s.period_start for s in state.spends.values()] == [datetime(2026, 11, 15, tzinfo=UTC)]
    # A replay of the old day counts nothing any more, and sends nothing.
    assert not feed(state, book, event(1, "9", at=old_day), event(3, "9", at=old_day))
    # Restoring from the records, tombstones included, gives the same state.
    restored = PartitionState()
    for key, value in [*written.state.items(), *changes.state.items()]:
        restored.load(key.encode(), value)
    assert restored.spends == state.spends
    assert restored.events == state.events
