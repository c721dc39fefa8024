"""What "now" is for the budget evaluator (``TOKENLINE_BUDGETS_CLOCK``).

"Now" decides which period's status the evaluator publishes (the one that holds now: a
status of another period would block or free the SDK's calls at the wrong time), the
``crossed_at`` of alerts and the horizon before which periods are forgotten.

- ``wall`` (the default): the system clock. Periods roll over at the tenant's midnight.
- ``events``: the latest ``occurred_at`` the evaluator has read, never going back. Periods
  roll over when the stream reaches the boundary, so a stream from elsewhere (a recorded day
  played again, a simulation, a test) is judged as it would have been when it happened.
  Before the first event, now is the Unix epoch: no period holds it, so nothing is published.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Clock", "ClockName", "EventClock", "WallClock", "clock_named"]

ClockName = Literal["wall", "events"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Clock(Protocol):
    """The evaluator's now, told of each batch's event times before it is counted."""

    def saw(self, times: Iterable[datetime]) -> None:
        """The ``occurred_at`` of a batch about to be counted."""

    def now(self) -> datetime:
        """Now, in UTC."""
        ...


class WallClock:
    """The system clock; event times change nothing."""

    def saw(self, times: Iterable[datetime]) -> None:
        """Nothing to do."""

    def now(self) -> datetime:
        """The system clock's now."""
        return datetime.now(UTC)


class EventClock:
    """The latest event time read (the epoch before the first); it never goes back."""

    def __init__(self) -> None:
        self._at = _EPOCH

    def saw(self, times: Iterable[datetime]) -> None:
        """Move to the latest of ``times`` if it is later than now."""
        self._at = max([self._at, *times])

    def now(self) -> datetime:
        """The latest event time read."""
        return self._at


def clock_named(name: ClockName) -> Clock:
    """The clock ``TOKENLINE_BUDGETS_CLOCK`` names."""
    return EventClock() if name == "events" else WallClock()
