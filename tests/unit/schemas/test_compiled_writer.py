"""The compiled writer writes exactly fastavro's bytes, and refuses what fastavro refuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st
from uuid6 import uuid7

from tests import factories
from tokenline.schemas import AvroCodec, EncodeError, catalog
from tokenline.schemas._compiled_writer import compile_writer

pytestmark = pytest.mark.unit

PRICED = "tokenline.PricedUsageEvent"
ROLLUP = "tokenline.UsageRollup"
NAMES = ("tokenline.UsageEvent", PRICED, ROLLUP, "tokenline.DeadLetter")

_wide_money = st.decimals(
    min_value=Decimal("-" + "9" * 26 + "." + "9" * 12),
    max_value=Decimal("9" * 26 + "." + "9" * 12),
    places=12,
    allow_nan=False,
    allow_infinity=False,
)
# Fewer places than the schema's scale are written scaled up, as fastavro does.
_coarse_money = st.decimals(min_value=-(10**20), max_value=10**20, places=3, allow_nan=False)
_BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning", "total")
_costs = st.fixed_dictionaries(dict.fromkeys(_BUCKETS, _wide_money | _coarse_money))


def _fastavro(name: str, record: Any) -> bytes | str:
    buf = BytesIO()
    try:
        schemaless_writer(buf, catalog().latest(name).parsed, record)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return "refused"
    return buf.getvalue()


def _compiled(name: str, record: Any) -> bytes | str:
    writer = compile_writer(catalog().latest(name).parsed)
    assert writer is not None
    try:
        return writer(record)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
        return "refused"


def _same(name: str, record: Any) -> None:
    assert _compiled(name, record) == _fastavro(name, record)


def test_every_shipped_record_is_covered() -> None:
    for name in NAMES:
        assert compile_writer(catalog().latest(name).parsed) is not None, name


@settings(max_examples=100, deadline=None)
@given(record=factories.priced_events, cost=st.none() | _costs)
def test_priced_events_are_written_like_fastavro(record: dict[str, Any], cost: Any) -> None:
    record["cost"] = cost
    _same(PRICED, record)


@settings(max_examples=50, deadline=None)
@given(record=factories.usage_events)
def test_usage_events_are_written_like_fastavro(record: dict[str, Any]) -> None:
    _same("tokenline.UsageEvent", record)


@settings(max_examples=100, deadline=None)
@given(
    requests=st.integers(-(2**63), 2**63 - 1),
    cost=_wide_money | _coarse_money,
    model=st.text(max_size=20),
)
def test_rollups_are_written_like_fastavro(requests: int, cost: Decimal, model: str) -> None:
    _same(ROLLUP, factories.rollup(requests=requests, cost_total=cost, model=model))


@pytest.mark.parametrize(
    "cost",
    [
        Decimal("0.0000000000001"),  # finer than the schema's scale of 12
        Decimal("1" * 39),  # more digits than the precision of 38
        Decimal("NaN"),
        "12.5",  # not a Decimal
    ],
)
def test_what_fastavro_refuses_is_refused(cost: Any) -> None:
    record = factories.rollup(cost_total=cost)
    assert _compiled(ROLLUP, record) == _fastavro(ROLLUP, record) == "refused"
    with pytest.raises(EncodeError, match="does not fit its schema"):
        AvroCodec[Any](ROLLUP).encode(record)


@pytest.mark.parametrize("cost", ["1.0000000000000", "-2.50000000000000000", "0E-20"])
def test_a_scale_finer_only_by_trailing_zeros_is_written_exactly(cost: str) -> None:
    """fastavro refuses these; the value's unscaled integer is exact, so it is written."""
    record = factories.rollup(cost_total=Decimal(cost))
    assert _fastavro(ROLLUP, record) == "refused"
    written = AvroCodec[Any](ROLLUP).decode(AvroCodec[Any](ROLLUP).encode(record))
    assert written["cost_total"] == Decimal(cost)


def test_defaults_uuid_strings_and_naive_times_match_fastavro() -> None:
    record: dict[str, Any] = dict(factories.priced_event())
    del record["team"]  # a field with a default, left out
    _same(PRICED, record)
    event = dict(factories.usage_event())
    event["event_id"] = str(event["event_id"])  # a uuid given as its text
    _same("tokenline.UsageEvent", event)
    event["event_id"] = uuid7()  # a subclass of uuid.UUID, as the SDK makes them
    _same("tokenline.UsageEvent", event)
    # Naive: fastavro reads it as local time.
    event["occurred_at"] = datetime(2026, 3, 8, 7, 30)  # noqa: DTZ001
    _same("tokenline.UsageEvent", event)
    event["occurred_at"] = 1_700_000_000_000_000  # already micros
    _same("tokenline.UsageEvent", event)


def test_the_codec_round_trips_through_the_compiled_writer() -> None:
    codec = AvroCodec[Any](PRICED)
    record = factories.priced_event(priced_at=datetime(2026, 11, 1, 4, 5, 6, 7, tzinfo=UTC))
    record["event"]["event_id"] = uuid.uuid4()
    assert codec.decode(codec.encode(record)) == record


def test_uncovered_types_fall_back_to_fastavro() -> None:
    for field_type in ("double", ["string", "long"], {"type": "array", "items": "long"}):
        parsed = parse_schema(
            {"type": "record", "name": "A", "fields": [{"name": "x", "type": field_type}]}
        )
        assert compile_writer(parsed) is None, field_type
