"""What a replay covers: the range widened to whole windows, the tenants, the read bounds.

Pure arithmetic. The raw topic's Kafka timestamps are the SDK's ``occurred_at`` (it sets them
explicitly), or the time a spooled event was re-sent (later), or a foreign producer's create
time; so a record's timestamp is normally at or after its ``occurred_at``. Reading therefore
starts ``max_future_s`` before the range (clock skew between hosts) and ends ``window_grace_s``
after it (late arrivals: the processor stops counting them in windows then, too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tokenline.processor.windows import window_start

if TYPE_CHECKING:
    from collections.abc import Collection

    from tokenline.schemas import UsageEvent

__all__ = ["ReplayScope", "ceil_window", "to_ms", "truncated_partitions", "widen"]


def ceil_window(at: datetime, size_s: int) -> datetime:
    """The start of the first window at or after ``at``."""
    start = window_start(at, size_s)
    return start if start == at else start + timedelta(seconds=size_s)


def widen(start: datetime, end: datetime, size_s: int) -> tuple[datetime, datetime]:
    """``[start, end)`` widened to whole windows: start floored, end ceiled."""
    if start.tzinfo is None or end.tzinfo is None:
        msg = "the range must be timezone-aware"
        raise ValueError(msg)
    if end <= start:
        msg = f"empty range: {start.isoformat()} is not before {end.isoformat()}"
        raise ValueError(msg)
    return window_start(start, size_s), ceil_window(end, size_s)


def to_ms(at: datetime) -> int:
    """Milliseconds since the epoch (Kafka's timestamp unit)."""
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@dataclass(frozen=True)
class ReplayScope:
    """The widened range ``[start, end)``, the tenant filter and the read allowances."""

    start: datetime
    end: datetime
    window_seconds: int
    tenants: frozenset[str] = frozenset()
    lead_s: int = 300
    lag_s: int = 600

    @classmethod
    def of(
        cls,
        start: datetime,
        end: datetime,
        *,
        window_seconds: int,
        tenants: Collection[str] = (),
        lead_s: int = 300,
        lag_s: int = 600,
    ) -> ReplayScope:
        """The scope of a request: the range widened to whole windows."""
        wide_start, wide_end = widen(start, end, window_seconds)
        return cls(wide_start, wide_end, window_seconds, frozenset(tenants), lead_s, lag_s)

    @property
    def read_from_ms(self) -> int:
        """Kafka timestamp to start reading at (the range's start minus the clock allowance)."""
        return to_ms(self.start - timedelta(seconds=self.lead_s))

    @property
    def read_to_ms(self) -> int:
        """Kafka timestamp to stop reading at (the range's end plus the late allowance)."""
        return to_ms(self.end + timedelta(seconds=self.lag_s))

    def contains(self, event: UsageEvent) -> bool:
        """Whether ``event`` is replayed: inside the range and of a selected tenant."""
        if self.tenants and event["tenant_id"] not in self.tenants:
            return False
        return self.start <= event["occurred_at"] < self.end

    def after(self, earliest: datetime) -> ReplayScope:
        """The same scope from the first window that starts after ``earliest`` on.

        What retention left whole: records deleted just before the earliest one kept may
        have belonged to its window, so that window is not complete any more.
        """
        size = self.window_seconds
        return ReplayScope(
            max(self.start, window_start(earliest, size) + timedelta(seconds=size)),
            self.end,
            self.window_seconds,
            self.tenants,
            self.lead_s,
            self.lag_s,
        )


def truncated_partitions(
    low: dict[int, int], first_ms: dict[int, int | None], read_from_ms: int
) -> dict[int, int | None]:
    """Partitions whose retained records start after ``read_from_ms``: partition to first ms.

    A partition is truncated when records were deleted (low watermark above 0) and the first
    record still there is later than where the read should start, or none is left at all.
    ``first_ms`` is the first retained record's timestamp (``None`` when none is left).
    """
    found: dict[int, int | None] = {}
    for partition, offset in low.items():
        first = first_ms.get(partition)
        if offset > 0 and (first is None or first > read_from_ms):
            found[partition] = first
    return found
