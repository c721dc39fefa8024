from __future__ import annotations

import pytest

from tokenline.processor.completeness import Observation, SequenceTracker

pytestmark = pytest.mark.unit


def test_in_order_sequence_has_no_gaps_or_repeats() -> None:
    tracker = SequenceTracker()
    assert [tracker.observe("p", s) for s in range(5)] == [Observation()] * 5
    assert (tracker.gaps_total, tracker.repeats_total) == (0, 0)


def test_gap_repeat_and_late_fill() -> None:
    tracker = SequenceTracker()
    tracker.observe("p", 0)
    assert tracker.observe("p", 4) == Observation(gaps=3)
    assert tracker.open_gaps("p") == 3
    assert tracker.observe("p", 2) == Observation(filled=True)
    assert tracker.observe("p", 2) == Observation(repeat=True)
    assert tracker.observe("p", 4) == Observation(repeat=True)
    assert tracker.observe("p", 0) == Observation(repeat=True)
    assert tracker.open_gaps("p") == 2
    assert (tracker.gaps_total, tracker.repeats_total, tracker.filled_total) == (3, 3, 1)


def test_producers_are_independent() -> None:
    tracker = SequenceTracker()
    tracker.observe("a", 10)
    assert tracker.observe("b", 0) == Observation()
    assert tracker.observe("a", 11) == Observation()


def test_memory_is_bounded() -> None:
    tracker = SequenceTracker(max_producers=3, window=16)
    for producer in range(10):
        tracker.observe(producer, 0)
    assert len(tracker) == 3
    tracker.observe("p", 0)
    tracker.observe("p", 1_000_000)  # a huge jump remembers at most `window` missing
    assert tracker.open_gaps("p") <= 16
    assert tracker.gaps_total == 999_999
    for seq in range(1_000_001, 1_000_200):
        tracker.observe("p", seq)
    assert tracker.observe("p", 5) == Observation(repeat=True)  # too old to remember
