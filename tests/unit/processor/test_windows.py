from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.factories import EPOCH, priced_event, usage_event
from tokenline.processor.windows import (
    apply,
    model_of,
    parse_key,
    rollup_key,
    window_end,
    window_start,
)
from tokenline.schemas import AvroCodec

pytestmark = pytest.mark.unit


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def test_window_is_floored_and_half_open() -> None:
    assert window_start(at(0)) == EPOCH
    assert window_start(at(59.999999)) == EPOCH
    assert window_start(at(60)) == at(60)
    assert window_end(EPOCH) == at(60)
    assert window_start(at(-0.000001)) == at(-60)
    assert window_start(at(125), 300) == EPOCH


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        window_start(datetime(2026, 1, 1))  # noqa: DTZ001


def test_key_round_trip_with_awkward_names() -> None:
    key = rollup_key('te|n"ant', "openai", "gpt-4o")
    assert parse_key(key) == ('te|n"ant', "openai", "gpt-4o")


def test_apply_sums_and_skips_redeliveries() -> None:
    first = priced_event(event=usage_event(occurred_at=at(1), latency_ms=100))
    failed = priced_event(
        event=usage_event(occurred_at=at(59), success=False, latency_ms=300),
        cost=None,
        pricing_status="unpriced",
        priced_at=at(70),
    )
    value = apply(None, first, partition=3, offset=10)
    assert value is not None
    value = apply(value, failed, partition=3, offset=11)
    assert value is not None
    assert apply(value, first, partition=3, offset=10) is None
    assert apply(value, failed, partition=3, offset=11) is None
    assert value["requests"] == 2
    assert value["failures"] == 1
    assert value["input_tokens"] == 2400
    assert value["cache_read_input_tokens"] == 60_000
    assert value["cost_total"] == Decimal("0.025350000000")
    assert value["unpriced_count"] == 1
    assert (value["latency_ms_sum"], value["latency_ms_max"]) == (400, 300)
    assert (value["source_partition"], value["max_source_offset"]) == (3, 11)
    assert value["updated_at"] == at(70)


def test_apply_does_not_modify_its_input() -> None:
    value = apply(None, priced_event(), partition=0, offset=1)
    assert value is not None
    snapshot = dict(value)
    apply(value, priced_event(), partition=0, offset=2)
    assert value == snapshot


def test_a_window_total_is_a_rollup_record_that_encodes_with_the_schema() -> None:
    priced = priced_event()
    rollup = apply(None, priced, partition=3, offset=1017)
    assert rollup is not None
    assert rollup["window_start"] == datetime(2026, 11, 1, tzinfo=UTC)
    assert (rollup["tenant_id"], rollup["provider"]) == ("acme", "anthropic")
    assert rollup["model"] == "claude-sonnet-4-5"
    assert rollup["cost_total"] == Decimal("0.025350000000")
    codec = AvroCodec[dict[str, object]]("tokenline.UsageRollup")
    assert codec.decode(codec.encode(rollup)) == rollup


def test_model_falls_back_to_what_the_event_named() -> None:
    priced = priced_event(canonical_model=None, event=usage_event(response_model=None))
    assert model_of(priced) == "claude-sonnet-4-5"
