"""A budget period's bounds: a day or a month in the tenant's own timezone, as UTC instants.

Periods are half-open, ``[start, end)``. A day in a zone that changes its clock that day is
23 or 25 hours long; a month starts at local midnight of its first day. ``hour`` (the
spend-rate alert's buckets) is a clock hour in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

__all__ = ["Period", "period_bounds"]

Period = Literal["hour", "day", "month"]


def period_bounds(period: str, timezone: str, at: datetime) -> tuple[datetime, datetime]:
    """The UTC bounds of the ``period`` of ``timezone`` that holds the instant ``at``."""
    if period == "hour":  # the spend-rate buckets: clock hours, in UTC
        start = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    if period == "day":
        start = datetime(local.year, local.month, local.day, tzinfo=zone)
        following = start.date() + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=zone)
    elif period == "month":
        start = datetime(local.year, local.month, 1, tzinfo=zone)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = datetime(year, month, 1, tzinfo=zone)
    else:
        msg = f"unknown budget period {period!r}: day or month (or hour)"
        raise ValueError(msg)
    return start.astimezone(UTC), end.astimezone(UTC)
