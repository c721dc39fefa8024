"""The native body writer writes exactly fastavro's bytes, and refuses what it does not cover.

On the priced event's tail (its fields after ``event``, which the processor writes), three
writers on the same records: fastavro's ``schemaless_writer`` (the reference), the compiled
Python writer and ``tokenline_native.BodyWriter``. Whatever the native writer writes equals
fastavro's bytes (and the Python writer's, which also writes the decimals fastavro refuses
for trailing zeros only); whatever the Python writer refuses the native writer refuses; what
the native writer refuses (``None``) is left to the Python writer, which writes or raises as
it always did.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tokenline.schemas import catalog
from tokenline.schemas._compiled_writer import compile_writer
from tokenline.schemas._native import body_writer

pytestmark = pytest.mark.unit

native = pytest.importorskip(
    "tokenline_native", reason="tokenline_native is not built here (bash deploy/local/native.sh)"
)

_FIELDS = list(catalog().latest("tokenline.PricedUsageEvent").parsed["fields"])
TAIL = parse_schema({"type": "record", "name": "tokenline.test.Tail", "fields": _FIELDS[1:]})
_python = compile_writer(TAIL)
_native = body_writer(TAIL)
_ERRORS = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


def _fastavro(record: Any) -> bytes | str:
    buf = BytesIO()
    try:
        schemaless_writer(buf, TAIL, record)
    except _ERRORS:
        return "refused"
    return buf.getvalue()


def _compiled(record: Any) -> bytes | str:
    assert _python is not None
    try:
        return _python(record)
    except _ERRORS:
        return "refused"


def _check(record: Any) -> bytes | None:
    """The three writers agree as the module docstring says; the native bytes or None."""
    assert _native is not None
    written = _native.write(record)
    python = _compiled(record)
    if written is None:
        return None
    assert written == python
    reference = _fastavro(record)
    assert written == reference or reference == "refused"
    return written


class _Opaque(tzinfo):
    """A tzinfo that knows no offset: its datetimes are naive for arithmetic."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


class _Money(Decimal):
    pass


class _Text(str):
    __slots__ = ()


_ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
_aware = st.datetimes(
    min_value=datetime(1, 1, 2),  # noqa: DTZ001 - bounds of a naive strategy
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from(_ZONES),
)


def _trailing_zeros(value: Decimal) -> Decimal:
    """``value`` with four more zero digits: finer than the scale, and as exact."""
    sign, digits, exponent = value.as_tuple()
    return Decimal((sign, (*digits, 0, 0, 0, 0), int(exponent) - 4))


_money = st.decimals(
    min_value=Decimal("-" + "9" * 26 + "." + "9" * 12),
    max_value=Decimal("9" * 26 + "." + "9" * 12),
    places=12,
    allow_nan=False,
    allow_infinity=False,
)
_odd_money = (
    st.decimals(places=14, allow_nan=False, allow_infinity=False)  # finer than the scale
    | st.decimals(min_value=10**25, max_value=10**40, places=0)  # past the precision
    | st.builds(_trailing_zeros, _money)  # trailing zeros only
    | st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("-0"), Decimal("0E-30")])
    | st.sampled_from([12.5, "12.5", 3, None])  # not a Decimal
)
_BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning", "total")
_text = st.text(max_size=30)
# Lone surrogates, a str subclass, not a str.
_odd_text = st.sampled_from(["\ud800", "a\udfffb", _Text("x"), b"bytes", 7])
_long = st.integers(-(2**63), 2**63 - 1)


_opt_text = st.none() | _text
_int = st.integers(-(2**31), 2**31 - 1)
_TAILS = st.fixed_dictionaries(
    {
        "canonical_model": _opt_text,
        "pricing_status": st.sampled_from(["priced", "unpriced"]),
        "unpriced_reason": _opt_text,
        "cost": st.none() | st.fixed_dictionaries(dict.fromkeys(_BUCKETS, _money)),
        "currency": _text,
        "price_entry_id": _opt_text,
        "pricing_version": _text,
        "priced_at": _aware,
        "team": _opt_text,
        "cost_center": _opt_text,
        "cloud": _opt_text,
        "cloud_region": _opt_text,
        "cluster": _opt_text,
        "namespace": _opt_text,
        "service": _opt_text,
        "source": st.none()
        | st.fixed_dictionaries({"topic": _text, "partition": _int, "offset": _long}),
    }
)
_odd_int = st.integers(2**31, 2**70) | st.integers(-(2**70), -(2**31) - 1) | st.just(True)
_ODD: dict[str, st.SearchStrategy[Any]] = {
    "pricing_status": st.sampled_from(["bogus", None, 1, _Text("priced")]),
    "cost": st.fixed_dictionaries(dict.fromkeys(_BUCKETS, _money | _odd_money)),
    "currency": _odd_text | st.none(),
    "pricing_version": _odd_text | st.none(),
    "priced_at": st.datetimes()  # naive: fastavro takes local time
    | st.integers(0, 2**62)
    | st.just(datetime(2026, 1, 1, tzinfo=_Opaque())),
    "team": _odd_text,
    "source": st.fixed_dictionaries(
        {"topic": _text | _odd_text, "partition": _int | _odd_int, "offset": _long | _odd_int}
    )
    | st.just([]),
}


def test_the_tail_schema_is_covered() -> None:
    assert _native is not None


@settings(max_examples=300, deadline=None)
@given(record=_TAILS)
def test_valid_tails_are_written_natively_as_fastavro_writes_them(record: dict[str, Any]) -> None:
    written = _check(record)
    assert written is not None
    assert written == _fastavro(record)


@settings(max_examples=500, deadline=None)
@given(
    record=_TAILS,
    odd=st.dictionaries(st.sampled_from(sorted(_ODD)), st.none(), max_size=2).flatmap(
        lambda keys: st.fixed_dictionaries({k: _ODD[k] for k in keys})
    ),
    missing=st.sets(st.sampled_from([f["name"] for f in _FIELDS[1:]]), max_size=1),
)
def test_any_tail_is_written_as_python_writes_it_or_refused(
    record: dict[str, Any], odd: dict[str, Any], missing: set[str]
) -> None:
    record.update(odd)
    for name in missing:
        del record[name]
    written = _check(record)
    event("native refused" if written is None else "native wrote")
    if missing:
        assert written is None  # the Python writer takes defaults (or raises)


_VALID: dict[str, Any] = {
    "canonical_model": "gpt-4o",
    "pricing_status": "priced",
    "unpriced_reason": None,
    "cost": dict.fromkeys(_BUCKETS, Decimal("0.000125")),
    "currency": "USD",
    "price_entry_id": "openai/gpt-4o@2026-01-01",
    "pricing_version": "a" * 64,
    "priced_at": datetime(2026, 12, 5, 6, 0, 0, 123456, tzinfo=UTC),
    "team": None,
    "cost_center": None,
    "cloud": None,
    "cloud_region": None,
    "cluster": None,
    "namespace": None,
    "service": None,
    "source": {"topic": "raw", "partition": 3, "offset": 2**40},
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("priced_at", datetime(2026, 12, 5, 6, 0)),  # noqa: DTZ001 - naive: local time
        ("priced_at", datetime(2026, 12, 5, tzinfo=_Opaque())),
        ("priced_at", 1_700_000_000_000_000),
        ("pricing_status", "bogus"),
        ("pricing_status", _Text("priced")),
        ("currency", "\ud800"),
        ("currency", None),
        ("source", {"topic": "raw", "partition": True, "offset": 1}),
        ("source", {"topic": "raw", "partition": 0, "offset": 2**63}),
        ("cost", {**dict.fromkeys(_BUCKETS, Decimal(0)), "total": Decimal("0.0000000000001")}),
        ("cost", {**dict.fromkeys(_BUCKETS, Decimal(0)), "total": Decimal("1" * 39)}),
        ("cost", {**dict.fromkeys(_BUCKETS, Decimal(0)), "total": Decimal("NaN")}),
        ("cost", {**dict.fromkeys(_BUCKETS, Decimal(0)), "total": _Money("1.5")}),
        ("cost", {**dict.fromkeys(_BUCKETS, Decimal(0)), "total": 1.5}),
    ],
)
def test_values_not_covered_are_refused_and_left_to_python(field: str, value: Any) -> None:
    assert _native is not None
    record = {**_VALID, field: value}
    assert _native.write(record) is None
    assert _native.write(_VALID) == _fastavro(_VALID)
    _check(record)


def test_decimals_are_the_minimal_twos_complement_of_the_unscaled_value() -> None:
    """From the Avro spec: big-endian two's complement, scale 12 (hand-computed bytes)."""
    assert _native is not None
    schema = parse_schema(
        {
            "type": "record",
            "name": "D",
            "fields": [
                {
                    "name": "d",
                    "type": {
                        "type": "bytes",
                        "logicalType": "decimal",
                        "precision": 38,
                        "scale": 12,
                    },
                }
            ],
        }
    )
    writer = body_writer(schema)
    assert writer is not None
    cases = {
        Decimal(0): b"\x02\x00",
        Decimal("1E-12"): b"\x02\x01",
        Decimal("-1E-12"): b"\x02\xff",
        Decimal("1.27E-10"): b"\x02\x7f",
        Decimal("1.28E-10"): b"\x04\x00\x80",
        Decimal("-1.28E-10"): b"\x04\xff\x80",  # as fastavro: one byte more than needed
        Decimal("-1.29E-10"): b"\x04\xff\x7f",
    }
    for value, body in cases.items():
        assert writer.write({"d": value}) == body, value


def test_schemas_with_types_it_does_not_write_get_no_writer() -> None:
    for field_type in ("double", ["string", "long"], ["null", "string", "long"]):
        parsed = parse_schema(
            {"type": "record", "name": "A", "fields": [{"name": "x", "type": field_type}]}
        )
        assert body_writer(parsed) is None, field_type
        schema = {"type": "record", "name": "A", "fields": [{"name": "x", "type": field_type}]}
        with pytest.raises(ValueError, match="schema not covered"):
            native.BodyWriter(json.dumps(schema))


@pytest.mark.parametrize(
    "total",
    ["1.5E+3", "-0", "0E+50", "0E-30", "1.000000000000000000", "-12E-12", "9" * 26 + ".5"],
)
def test_decimal_forms_are_written_as_python_writes_them(total: str) -> None:
    record = {**_VALID, "cost": {**_VALID["cost"], "total": Decimal(total)}}
    assert _check(record) is not None


def test_a_shared_timestamp_is_written_right_each_time() -> None:
    """Records of a batch share one ``priced_at``; others come between them."""
    shared = datetime(2026, 12, 5, 6, 7, 8, 9, tzinfo=UTC)
    other = datetime(2026, 12, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=1)))
    for when in (shared, shared, other, shared, other, other):
        assert _check({**_VALID, "priced_at": when}) == _fastavro({**_VALID, "priced_at": when})
