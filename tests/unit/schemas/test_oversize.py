"""Dead letters are cut to fit one Kafka message; the measure is aiokafka's own estimate."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from tokenline.schemas import AvroCodec
from tokenline.schemas.oversize import RECORD_OVERHEAD, fit_dead_letter, oversized

pytestmark = pytest.mark.unit

CODEC = AvroCodec[Any]("tokenline.DeadLetter")
LIMIT = 1_000_000  # aiokafka's, Faust's and librdkafka's default


def _dead(value: bytes | None, key: bytes | None = b"acme", reason: str = "wrong magic") -> Any:
    return {
        "reason_code": "wrong_magic",
        "reason": reason,
        "stage": "decode",
        "source_topic": "llm-usage.raw",
        "source_partition": 3,
        "source_offset": 1017,
        "source_timestamp_ms": 1_700_000_000_000,
        "key": key,
        "value": value,
        "failed_at": datetime(2026, 11, 1, tzinfo=UTC),
        "worker": "w",
    }


def _estimate(key: bytes | None, value: bytes) -> int:
    """What aiokafka's producer compares with max_request_size before it refuses a record."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []))


def test_a_small_dead_letter_is_left_as_it_is() -> None:
    record = _dead(b"\x01\x02")
    assert fit_dead_letter(record, kafka_key=b"acme", max_bytes=LIMIT, encode=CODEC.encode) == (
        CODEC.encode(record)
    )


@pytest.mark.parametrize("key", [None, b"acme", os.urandom(200_000)])
def test_a_megabyte_of_random_bytes_is_cut_to_fit_and_keeps_its_coordinates(
    key: bytes | None,
) -> None:
    original = os.urandom(1_000_000)
    record = _dead(original, key=key)
    assert oversized(key, CODEC.encode(record), LIMIT) is not None
    encoded = fit_dead_letter(record, kafka_key=key, max_bytes=LIMIT, encode=CODEC.encode)
    assert _estimate(key, encoded) <= LIMIT
    assert oversized(key, encoded, LIMIT) is None
    fitted = CODEC.decode(encoded)
    assert original.startswith(fitted["value"])
    assert len(fitted["value"]) > LIMIT - len(key or b"") * 2 - 2 * RECORD_OVERHEAD
    assert fitted["reason"].startswith("wrong magic [value truncated from 1000000 to ")
    assert fitted["key"] == key
    for name in ("source_topic", "source_partition", "source_offset", "reason_code", "stage"):
        assert fitted[name] == record[name]


def test_a_key_too_large_to_keep_beside_any_value_is_cut_too() -> None:
    key = os.urandom(600_000)
    record = _dead(os.urandom(300_000), key=key, reason="r" * 50_000)
    encoded = fit_dead_letter(record, kafka_key=key, max_bytes=LIMIT, encode=CODEC.encode)
    assert _estimate(key, encoded) <= LIMIT
    fitted = CODEC.decode(encoded)
    assert fitted["key"] is None
    assert fitted["value"] == b""
    assert "key truncated from 600000 to 0 bytes" in fitted["reason"]
    assert fitted["source_offset"] == 1017
