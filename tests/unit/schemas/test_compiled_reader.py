"""The compiled body reader returns exactly what fastavro returns, and fails where it fails."""

from __future__ import annotations

from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import factories
from tokenline.schemas import AvroCodec, SchemaMismatch, catalog
from tokenline.schemas._compiled import compile_reader

pytestmark = pytest.mark.unit

PRICED = "tokenline.PricedUsageEvent"

# Negative, zero and 38-digit unscaled values: the decimal conversion is where exactness is at
# stake (the shipped factories only make non-negative amounts).
_wide_money = st.decimals(
    min_value=Decimal("-" + "9" * 26 + "." + "9" * 12),
    max_value=Decimal("9" * 26 + "." + "9" * 12),
    places=12,
    allow_nan=False,
    allow_infinity=False,
)
_BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning", "total")
_wide_costs = st.fixed_dictionaries(dict.fromkeys(_BUCKETS, _wide_money))


def _body(name: str, record: Any) -> bytes:
    buf = BytesIO()
    schemaless_writer(buf, catalog().latest(name).parsed, record)
    return buf.getvalue()


def _both(name: str, body: bytes) -> tuple[Any, Any]:
    """(fastavro's record or its exception type, the compiled reader's record or exception type)."""
    parsed = catalog().latest(name).parsed
    reader = compile_reader(parsed)
    assert reader is not None
    try:
        buf = BytesIO(body)
        slow: Any = schemaless_reader(buf, parsed, None)
        if buf.tell() != len(body):
            slow = "trailing"
    except Exception:  # noqa: BLE001 - any failure counts as a failure
        slow = "error"
    try:
        fast: Any
        fast, end = reader(body, 0)
        if end != len(body):
            fast = "trailing" if end < len(body) else "error"
    except Exception:  # noqa: BLE001
        fast = "error"
    return slow, fast


def _same(slow: Any, fast: Any) -> None:
    assert fast == slow
    assert repr(fast) == repr(slow)  # same types, same Decimal exponents, same tzinfo


def test_every_shipped_record_is_covered() -> None:
    for name in ("tokenline.UsageEvent", PRICED, "tokenline.UsageRollup", "tokenline.DeadLetter"):
        assert compile_reader(catalog().latest(name).parsed) is not None, name


@settings(max_examples=100, deadline=None)
@given(record=factories.priced_events, cost=st.none() | _wide_costs)
def test_priced_events_read_like_fastavro(record: dict[str, Any], cost: Any) -> None:
    record["cost"] = cost
    _same(*_both(PRICED, _body(PRICED, record)))


@settings(max_examples=50, deadline=None)
@given(record=factories.usage_events)
def test_usage_events_read_like_fastavro(record: dict[str, Any]) -> None:
    name = "tokenline.UsageEvent"
    _same(*_both(name, _body(name, record)))


@settings(max_examples=50, deadline=None)
@given(requests=st.integers(0, 2**62), cost=_wide_money, model=st.text(max_size=20))
def test_rollups_read_like_fastavro(requests: int, cost: Decimal, model: str) -> None:
    name = "tokenline.UsageRollup"
    record = factories.rollup(requests=requests, cost_total=cost, model=model)
    _same(*_both(name, _body(name, record)))


@settings(max_examples=150, deadline=None)
@given(record=factories.priced_events, data=st.data())
def test_damaged_bodies_fail_like_fastavro(record: dict[str, Any], data: st.DataObject) -> None:
    """Cut or overwrite bytes: where fastavro fails the compiled reader fails too, else agrees."""
    body = bytearray(_body(PRICED, record))
    if data.draw(st.booleans(), label="cut"):
        del body[data.draw(st.integers(0, len(body) - 1), label="cut at") :]
    else:
        at = data.draw(st.integers(0, len(body) - 1), label="at")
        body[at] = data.draw(st.integers(0, 255), label="byte")
    slow, fast = _both(PRICED, bytes(body))
    refused = ("error", "trailing")  # the codec refuses both alike (SchemaMismatch)
    if slow in refused:
        # A damaged length can leave fastavro stopping early (trailing bytes) where the
        # compiled reader trips over the same damage first: a refusal either way.
        assert fast in refused
    elif fast in refused:
        # fastavro reads a negative enum or union index as Python's negative list index (the
        # last symbol or branch); the compiled reader refuses it. Such bytes are not the
        # encoding of anything: what fastavro read from them encodes to other bytes. The
        # compiled reader may refuse only bytes of that kind.
        assert _body(PRICED, slow) != bytes(body)
    else:
        _same(slow, fast)


def test_uncovered_types_fall_back_to_fastavro() -> None:
    parsed = parse_schema(
        {"type": "record", "name": "A", "fields": [{"name": "x", "type": "double"}]}
    )
    assert compile_reader(parsed) is None


def test_the_codec_reports_a_damaged_body_as_a_schema_mismatch() -> None:
    codec = AvroCodec[Any](PRICED)
    good = codec.encode(factories.priced_event())
    with pytest.raises(SchemaMismatch, match="body does not match") as info:
        codec.decode(good[:-3])
    assert info.value.data == good[:-3]


@pytest.mark.parametrize(
    ("varint", "what"),
    [
        (b"\xff" * 1_000_000 + b"\x01", "longer than 10 bytes"),  # read in linear time
        (b"\x8e" + b"\x80" * 8 + b"\x04", "wider than a long"),  # 2**64 + 7, zig-zagged
    ],
)
def test_a_long_beyond_64_bits_is_a_schema_mismatch(varint: bytes, what: str) -> None:
    """``producer_seq`` (the first long of a UsageEvent) as a varint no long can be."""
    codec = AvroCodec[Any]("tokenline.UsageEvent")
    good = codec.encode(factories.usage_event(producer_seq=1))
    seq_at = 10 + 2 * (1 + 36)  # header, then two uuid strings (length byte, 36 characters)
    assert good[seq_at] == 2  # producer_seq = 1, zig-zagged
    with pytest.raises(SchemaMismatch, match=what):
        codec.decode(good[:seq_at] + varint + good[seq_at + 1 :])
    # fastavro reads these bytes only by wrapping them to 64 bits
    parsed = catalog().latest("tokenline.UsageEvent").parsed
    wrapped = schemaless_reader(
        BytesIO(good[10:seq_at] + varint + good[seq_at + 1 :]), parsed, None
    )
    assert wrapped["producer_seq"] < 2**63
