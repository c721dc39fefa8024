"""The evaluator's clock: the system's, or the latest event time read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokenline.processor.budgets.clock import EventClock, WallClock, clock_named

pytestmark = pytest.mark.unit

T = datetime(2031, 3, 31, 18, 14, tzinfo=UTC)


def test_the_event_clock_is_the_latest_event_time_and_never_goes_back() -> None:
    clock = EventClock()
    assert clock.now() == datetime(1970, 1, 1, tzinfo=UTC)  # no period holds it
    clock.saw([T - timedelta(hours=1), T, T - timedelta(minutes=5)])
    assert clock.now() == T
    clock.saw([T - timedelta(days=3)])  # a late event
    clock.saw([])
    assert clock.now() == T
    clock.saw([T + timedelta(microseconds=1)])
    assert clock.now() == T + timedelta(microseconds=1)


def test_the_wall_clock_ignores_event_times() -> None:
    clock = WallClock()
    before = datetime.now(UTC)
    clock.saw([T + timedelta(days=3650)])
    assert before <= clock.now() <= datetime.now(UTC)


def test_named() -> None:
    assert isinstance(clock_named("events"), EventClock)
    assert isinstance(clock_named("wall"), WallClock)
