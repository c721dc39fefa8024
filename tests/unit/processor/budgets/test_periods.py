"""Budget periods in a tenant's timezone: bounds written out by hand, not recomputed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tokenline.processor.budgets.periods import period_bounds

pytestmark = pytest.mark.unit


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "zone", "at", "start", "end"),
    [
        # Kolkata is UTC+05:30: its day starts at 18:30 UTC the day before.
        ("day", "Asia/Kolkata", utc(2026, 11, 15, 18, 29, 59), utc(2026, 11, 14, 18, 30),
         utc(2026, 11, 15, 18, 30)),
        ("day", "Asia/Kolkata", utc(2026, 11, 15, 18, 30), utc(2026, 11, 15, 18, 30),
         utc(2026, 11, 16, 18, 30)),
        # Kathmandu is UTC+05:45.
        ("day", "Asia/Kathmandu", utc(2026, 11, 15, 0, 0), utc(2026, 11, 14, 18, 15),
         utc(2026, 11, 15, 18, 15)),
        # New York's 2026-11-01 has 25 hours (EDT -> EST at 02:00 local).
        ("day", "America/New_York", utc(2026, 11, 1, 12), utc(2026, 11, 1, 4),
         utc(2026, 11, 2, 5)),
        # New York's 2026-03-08 has 23 hours.
        ("day", "America/New_York", utc(2026, 3, 8, 12), utc(2026, 3, 8, 5),
         utc(2026, 3, 9, 4)),
        # Months: local midnight of the first, December into January.
        ("month", "Asia/Kolkata", utc(2026, 11, 30, 18, 29), utc(2026, 10, 31, 18, 30),
         utc(2026, 11, 30, 18, 30)),
        ("month", "Asia/Kolkata", utc(2026, 11, 30, 18, 30), utc(2026, 11, 30, 18, 30),
         utc(2026, 12, 31, 18, 30)),
        ("month", "America/New_York", utc(2026, 12, 31, 23), utc(2026, 12, 1, 5),
         utc(2027, 1, 1, 5)),
        ("month", "UTC", utc(2027, 2, 14), utc(2027, 2, 1), utc(2027, 3, 1)),
    ],
)  # fmt: skip
def test_bounds(period: str, zone: str, at: datetime, start: datetime, end: datetime) -> None:
    assert period_bounds(period, zone, at) == (start, end)


def test_bounds_are_half_open_and_adjacent() -> None:
    at = utc(2026, 11, 15, 18, 30)
    start, end = period_bounds("day", "Asia/Kolkata", at)
    assert period_bounds("day", "Asia/Kolkata", end - timedelta(microseconds=1))[0] == start
    assert period_bounds("day", "Asia/Kolkata", end)[0] == end


def test_unknown_period_is_refused() -> None:
    with pytest.raises(ValueError, match="day or month"):
        period_bounds("week", "UTC", utc(2026, 1, 1))
