"""The event ids a worker saw last: a duplicate among them counts once in the windows.

The SDK may send an event twice (it re-sends what the broker did not acknowledge, though the
broker may have stored it), and a raw record may be produced twice on purpose. The sink stores
an ``event_id`` once; the windows skip an id this worker saw among its last ``capacity`` events.
Older duplicates, or one read by another worker after a rebalance, do count twice in the live
rollup feed (never in ``usage_rollup_1m``, which the sink builds from the stored events).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Hashable

__all__ = ["RecentIds"]


class RecentIds:
    """A set of the last ``capacity`` ids added, oldest forgotten first."""

    __slots__ = ("_capacity", "_order", "_seen")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            msg = "capacity must not be negative"
            raise ValueError(msg)
        self._capacity = capacity
        self._order: deque[Hashable] = deque()
        self._seen: set[Hashable] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, event_id: Hashable) -> bool:
        """Remember ``event_id``; False when it is among the remembered ones already."""
        seen = self._seen
        if event_id in seen:
            return False
        if self._capacity:
            seen.add(event_id)
            self._order.append(event_id)
            if len(self._order) > self._capacity:
                seen.discard(self._order.popleft())
        return True
