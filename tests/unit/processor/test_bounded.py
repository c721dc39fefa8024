"""The processor's bounded memories and logs: recent event ids, rate-limited log lines."""

from __future__ import annotations

import logging

import pytest

from tokenline.common.ops.ratelog import RateLimitedLog
from tokenline.processor.recent import RecentIds

pytestmark = pytest.mark.unit


def test_recent_ids_remember_the_last_capacity_ids_only() -> None:
    recent = RecentIds(3)
    assert [recent.first_time(i) for i in (1, 2, 1, 3, 4)] == [True, True, False, True, True]
    assert len(recent) == 3
    assert recent.first_time(1)  # forgotten: 2, 3, 4 were the last three
    assert not recent.first_time(4)


def test_recent_ids_of_capacity_zero_remember_nothing() -> None:
    recent = RecentIds(0)
    assert recent.first_time("x")
    assert recent.first_time("x")
    assert len(recent) == 0


def test_an_outage_of_a_thousand_reports_logs_a_handful_of_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    say = RateLimitedLog(logging.getLogger("t.rate"), every_s=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="t.rate"):
        for i in range(1000):  # 100 s of ten reports a second, of two kinds
            now[0] = i / 10
            say(logging.WARNING, "down" if i % 2 else "timeout", f"broker down ({i})")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 8  # each kind at 0, 30, 60 and 90 s
    assert lines[0] == "broker down (0)"
    assert lines[2].endswith("(149 more like it in the last 30 s)")
