"""The sink's rollup deltas: what inserted and re-priced events add to each window."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import EPOCH, priced_event, usage_event
from tokenline.processor.windows import model_of as processor_model_of
from tokenline.processor.windows import window_start
from tokenline.sink.rollups import Delta, deltas, model_of, rollup_key
from tokenline.sink.rows import event_row

pytestmark = pytest.mark.unit


def _row(n: int, **changes: Any) -> dict[str, Any]:
    row = event_row(
        priced_event(
            event=usage_event(
                event_id=uuid.UUID(int=n), occurred_at=EPOCH + timedelta(seconds=n), latency_ms=n
            )
        )
    )
    return row | changes


@pytest.mark.parametrize(
    ("canonical", "response", "requested", "deployment", "expected"),
    [
        ("c", "r", "q", "d", "c"),
        (None, "r", "q", "d", "r"),
        ("", "", "q", "d", "q"),
        (None, None, None, "d", "d"),
        (None, None, "", None, "unknown"),
    ],
)
def test_the_model_is_the_processors(
    canonical: str | None,
    response: str | None,
    requested: str | None,
    deployment: str | None,
    expected: str,
) -> None:
    event = usage_event(response_model=response, request_model=requested, deployment=deployment)
    priced = priced_event(event=event, canonical_model=canonical)
    assert model_of(event_row(priced)) == processor_model_of(priced) == expected


def test_the_window_is_the_processors_minute_in_utc() -> None:
    row = _row(1, occurred_at=datetime(2026, 3, 1, 12, 30, 59, 999_999, tzinfo=UTC))
    local = row["occurred_at"].astimezone(datetime.now().astimezone().tzinfo)
    assert rollup_key(row | {"occurred_at": local})[1] == window_start(row["occurred_at"])


def test_inserted_events_add_their_whole_contribution() -> None:
    unpriced = _row(2, pricing_status="unpriced", cost_total=None, success=False)
    found = deltas([_row(1), unpriced, _row(70)])
    assert len(found) == 2  # seconds 1 and 2 share a minute; 70 is the next one
    first = found[rollup_key(_row(1))]
    assert (first.requests, first.failures, first.unpriced_count) == (2, 1, 1)
    assert first.cost_total == _row(1)["cost_total"]
    assert (first.latency_ms_sum, first.latency_ms_max) == (3, 2)


def test_a_repricing_moves_the_difference_and_a_new_model_moves_the_event() -> None:
    old = _row(1)
    cheaper = old | {"cost_total": Decimal("0.001")}
    found = deltas([], [(old, cheaper)])
    assert list(found.values()) == [
        Delta(cost_total=Decimal("0.001") - old["cost_total"], latency_ms_max=1)
    ]
    moved = old | {"canonical_model": "other"}
    found = deltas([], [(old, moved)])
    assert found[rollup_key(old)].requests == -1
    assert found[rollup_key(moved)].requests == 1
    assert deltas([], [(old, old | {"price_entry_id": "x"})]) == {}
