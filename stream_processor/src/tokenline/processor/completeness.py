"""Producer-sequence accounting: lost events (gaps) and redeliveries (repeats), bounded memory.

Every SDK process numbers its events (``producer_id``, ``producer_seq`` from 0 up). Per
producer the tracker keeps the highest sequence seen, the recent sequences seen below it (up
to ``window`` back) and the missing ones in that range. A sequence above the highest opens a
gap for everything skipped; a missing one arriving late closes its gap (``filled``); one seen
before, or one too old to remember, is a repeat. At most ``max_producers`` producers are
remembered, the least recently seen forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Hashable

__all__ = ["Observation", "SequenceTracker"]


@dataclass(frozen=True, slots=True)
class Observation:
    """What one sequence number told: new gaps opened, a gap filled, or a repeat."""

    gaps: int = 0
    filled: bool = False
    repeat: bool = False


_NOTHING = Observation()
_REPEAT = Observation(repeat=True)
_FILLED = Observation(filled=True)


@dataclass(slots=True)
class _Producer:
    high: int
    seen: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)


class SequenceTracker:
    """Gap and repeat accounting for many producers in bounded memory."""

    def __init__(self, max_producers: int = 10_000, window: int = 4_096) -> None:
        if max_producers < 1 or window < 1:
            msg = "max_producers and window must be positive"
            raise ValueError(msg)
        self._max_producers = max_producers
        self._window = window
        self._producers: OrderedDict[Hashable, _Producer] = OrderedDict()
        self.gaps_total = 0
        self.repeats_total = 0
        self.filled_total = 0

    def __len__(self) -> int:
        return len(self._producers)

    def totals(self) -> tuple[int, int, int]:
        """Gaps opened, repeats and gaps filled so far: ``(gaps, repeats, filled)``."""
        return self.gaps_total, self.repeats_total, self.filled_total

    def open_gaps(self, producer_id: Hashable) -> int:
        """How many sequences of ``producer_id`` are missing within the remembered window."""
        state = self._producers.get(producer_id)
        return len(state.missing) if state else 0

    def observe(self, producer_id: Hashable, seq: int) -> Observation:
        """Account for ``seq`` from ``producer_id``."""
        state = self._producers.get(producer_id)
        if state is None:
            self._remember(producer_id, _Producer(high=seq))
            return _NOTHING
        self._producers.move_to_end(producer_id)
        if seq > state.high:
            result = self._advance(state, seq)
        elif seq == state.high or seq in state.seen:
            result = _REPEAT
        elif seq in state.missing and seq >= state.high - self._window:
            state.missing.discard(seq)
            state.seen.add(seq)
            result = _FILLED
        else:  # older than the remembered window: most likely a redelivery
            result = _REPEAT
        self.gaps_total += result.gaps
        self.repeats_total += int(result.repeat)
        self.filled_total += int(result.filled)
        return result

    def _advance(self, state: _Producer, seq: int) -> Observation:
        skipped = seq - state.high - 1
        floor = seq - self._window
        state.seen.add(state.high)
        state.missing.update(range(max(state.high + 1, floor), seq))
        state.high = seq
        if len(state.seen) + len(state.missing) > 2 * self._window:  # prune now and then
            state.seen = {s for s in state.seen if s >= floor}
            state.missing = {s for s in state.missing if s >= floor}
        return Observation(gaps=skipped) if skipped else _NOTHING

    def _remember(self, producer_id: Hashable, state: _Producer) -> None:
        self._producers[producer_id] = state
        while len(self._producers) > self._max_producers:
            self._producers.popitem(last=False)
