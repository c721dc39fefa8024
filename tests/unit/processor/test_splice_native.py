"""The spliced priced event is the same with the native tail writer as without it.

Two encoders: one writing the pricing fields natively (falling back to the compiled Python
writer for what it refuses) and one without the module (as where it is not built). On
records either writes, both give the codec's bytes; on records that do not fit the schema,
both raise the same ``EncodeError``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import priced_event
from tokenline.processor import splice
from tokenline.processor.splice import PricedEncoder
from tokenline.schemas import AvroCodec, EncodeError

pytestmark = pytest.mark.unit

pytest.importorskip(
    "tokenline_native", reason="tokenline_native is not built here (bash deploy/local/native.sh)"
)

USAGE = AvroCodec[Any]("tokenline.UsageEvent")
_BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning", "total")


@pytest.fixture
def encoders(monkeypatch: pytest.MonkeyPatch) -> tuple[PricedEncoder, PricedEncoder]:
    """An encoder with the native tail writer, and one as where the module is not built."""
    native = PricedEncoder()
    assert native._native_tail is not None
    monkeypatch.setattr(splice, "body_writer", lambda _parsed: None)
    python_only = PricedEncoder()
    assert python_only._native_tail is None
    return native, python_only


class _Text(str):
    __slots__ = ()


def _record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = dict(priced_event())
    record["cost"] = dict.fromkeys(_BUCKETS, Decimal("0.000375"))
    record.update(overrides)
    return record


def _cost(total: Any) -> dict[str, Any]:
    return {**dict.fromkeys(_BUCKETS, Decimal(0)), "total": total}


@pytest.mark.parametrize(
    ("overrides", "natively"),
    [
        ({}, True),
        (
            {"priced_at": datetime(2026, 12, 5, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=-7)))},
            True,
        ),
        ({"cost": None, "pricing_status": "unpriced", "unpriced_reason": "unknown_model"}, True),
        ({"source": {"topic": "raw", "partition": 7, "offset": 2**62}}, True),
        ({"cost": _cost(Decimal("1.00000000000000"))}, True),  # trailing zeros past the scale
        # Refused natively, written by Python:
        ({"priced_at": datetime(2026, 12, 5, 1, 2, 3)}, False),  # noqa: DTZ001 - local time
        ({"source": {"topic": "raw", "partition": 0, "offset": True}}, False),
        ({"currency": _Text("EUR")}, False),
    ],
)
def test_native_and_python_tails_splice_to_the_codec_bytes(
    overrides: dict[str, Any], natively: bool, encoders: tuple[PricedEncoder, PricedEncoder]
) -> None:
    encoder, python_only = encoders
    record = _record(**overrides)
    raw = USAGE.encode(record["event"])
    assert encoder._native_tail is not None
    assert (encoder._native_tail.write(record) is not None) == natively
    spliced = encoder.encode(record, raw)  # type: ignore[arg-type]
    assert spliced == python_only.encode(record, raw)  # type: ignore[arg-type]
    assert spliced == encoder.codec.encode(record)  # type: ignore[arg-type]
    assert encoder.spliced == 1


@pytest.mark.parametrize(
    "overrides",
    [
        {"pricing_status": "bogus"},
        {"pricing_version": None},
        {"currency": "\ud800"},
        {"cost": _cost(Decimal("0.0000000000001"))},
        {"cost": _cost(Decimal("NaN"))},
        {"cost": _cost(12.5)},
        {"source": {"topic": "raw", "partition": 0}},
    ],
)
def test_records_that_do_not_fit_raise_as_without_the_native_writer(
    overrides: dict[str, Any], encoders: tuple[PricedEncoder, PricedEncoder]
) -> None:
    encoder, python_only = encoders
    record = _record(**overrides)
    raw = USAGE.encode(record["event"])
    with pytest.raises(EncodeError) as expected:
        python_only.encode(record, raw)  # type: ignore[arg-type]
    with pytest.raises(EncodeError) as native:
        encoder.encode(record, raw)  # type: ignore[arg-type]
    assert str(native.value) == str(expected.value)
    assert "does not fit its schema" in str(native.value)
    assert encoder.spliced == python_only.spliced == 0
