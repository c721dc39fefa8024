"""The quarter-hour sums the sink adds to usage_tenant_daily (pure arithmetic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import priced_event, usage_event
from tokenline.sink.rows import event_row
from tokenline.sink.tenant_daily import SUMS, deltas, quarter_key

pytestmark = pytest.mark.unit


def _row(**overrides: Any) -> dict[str, Any]:
    moment = datetime(2026, 11, 1, 5, 44, 59, 999_999, tzinfo=UTC)
    return {**event_row(priced_event(event=usage_event(occurred_at=moment))), **overrides}


def test_quarter_is_the_utc_quarter_hour_whatever_the_offset_given() -> None:
    row = _row()
    assert quarter_key(row)[1] == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    # The same instant written at +05:45 falls in the same UTC quarter-hour.
    shifted = row["occurred_at"].astimezone(timezone(timedelta(hours=5, minutes=45)))
    assert quarter_key(_row(occurred_at=shifted))[1] == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_model_and_team_as_the_aggregates_take_them() -> None:
    key = quarter_key(_row(canonical_model=None, response_model="", attributed_team="ops"))
    assert key[3] == ""  # coalesce keeps an empty string, as SQL does
    assert key[5] == "ops"


def _net(found: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
    return {k: v[:15] for k, v in found.items()}


@pytest.mark.parametrize(
    "change",
    [
        {"cost_total": Decimal("0.9"), "cost_input": Decimal("0.9")},
        {"pricing_status": "unpriced", "cost_total": None, "cost_input": None},
        {"canonical_model": "renamed", "cost_total": Decimal("0.1")},
        {"currency": "EUR"},
    ],
)
def test_a_repricing_adds_the_new_contribution_less_the_old(change: dict[str, Any]) -> None:
    old = _row()
    new = {**old, **change}
    moved = _net(deltas([], [(old, new)]))
    # The truth: the new row's whole contribution minus the old row's, key by key.
    expected: dict[Any, list[Any]] = {}
    for row, sign in ((old, -1), (new, 1)):
        for key, sums in deltas([row]).items():
            acc = expected.setdefault(key, [0] * 15)
            for i in range(15):
                acc[i] += sign * sums[i]
    assert moved == {k: v for k, v in expected.items() if any(v)}
    assert len(SUMS) == 15


def test_an_unchanged_repricing_adds_nothing() -> None:
    row = _row()
    assert deltas([], [(row, dict(row))]) == {}
