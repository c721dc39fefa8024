"""The codec: both encodings round-trip, and every kind of bad bytes has its own error."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from hypothesis import given, settings

from tests import factories
from tokenline.schemas import (
    AvroCodec,
    DecodeError,
    EncodeError,
    SchemaMismatch,
    TruncatedMessage,
    UnknownFingerprint,
    UnknownSchemaId,
    WrongMagic,
    catalog,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

pytestmark = [pytest.mark.unit, pytest.mark.contract]

EVENT = "tokenline.UsageEvent"
PRICED = "tokenline.PricedUsageEvent"


@pytest.fixture
def registry() -> SchemaRegistryClient:
    # new_client, not the constructor: only new_client returns the in-process mock for mock://
    return SchemaRegistryClient.new_client({"url": "mock://tokenline-tests"})


@pytest.fixture(params=["single-object", "confluent"])
def codec_pair(request: pytest.FixtureRequest, registry: SchemaRegistryClient) -> Any:
    def make(name: str) -> tuple[AvroCodec[Any], AvroCodec[Any]]:
        if request.param == "confluent":
            return AvroCodec(name, registry=registry), AvroCodec(name, registry=registry)
        return AvroCodec(name), AvroCodec(name)

    return make


def assert_same(decoded: Mapping[str, Any], original: Mapping[str, Any]) -> None:
    assert dict(decoded) == dict(original)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        (EVENT, factories.usage_event),
        (PRICED, factories.priced_event),
        ("tokenline.UsageRollup", factories.rollup),
    ],
)
def test_each_record_round_trips(codec_pair: Any, name: str, make: Any) -> None:
    writer, reader = codec_pair(name)
    record = make()
    assert_same(reader.decode(writer.encode(record)), record)


def test_single_object_header_is_magic_and_fingerprint() -> None:
    data = AvroCodec(EVENT).encode(factories.usage_event())
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == catalog().latest(EVENT).fingerprint


def test_confluent_header_is_zero_and_registered_id(registry: SchemaRegistryClient) -> None:
    data = AvroCodec(EVENT, registry=registry).encode(factories.usage_event())
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0
    assert registry.get_schema(schema_id).schema_str is not None
    assert registry.get_latest_version(EVENT).schema_id == schema_id


def test_a_single_object_reader_with_a_registry_reads_both(registry: SchemaRegistryClient) -> None:
    record = factories.usage_event()
    reader = AvroCodec[Any](EVENT, registry=registry)
    assert_same(reader.decode(AvroCodec(EVENT).encode(record)), record)
    assert_same(reader.decode(AvroCodec(EVENT, registry=registry).encode(record)), record)


def test_unpriced_event_keeps_a_null_cost() -> None:
    record = factories.priced_event(
        pricing_status="unpriced", unpriced_reason="unknown_model", cost=None
    )
    codec = AvroCodec[Any](PRICED)
    assert codec.decode(codec.encode(record))["cost"] is None


@settings(max_examples=150, deadline=None)
@given(record=factories.usage_events)
def test_usage_events_round_trip_single_object(record: dict[str, Any]) -> None:
    codec = AvroCodec[Any](EVENT)
    assert_same(codec.decode(codec.encode(record)), record)


@settings(max_examples=100, deadline=None)
@given(record=factories.priced_events)
def test_priced_events_round_trip_confluent(record: dict[str, Any]) -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://hypothesis"})
    codec = AvroCodec[Any](PRICED, registry=registry)
    assert_same(codec.decode(codec.encode(record)), record)


# ------------------------------------------------------------------------------ bad bytes
@pytest.fixture
def good() -> bytes:
    return AvroCodec(EVENT).encode(factories.usage_event())


@pytest.mark.parametrize("data", [b"", b"\xc3"])
def test_shorter_than_any_header_is_truncated(data: bytes) -> None:
    with pytest.raises(TruncatedMessage, match="shorter than any header"):
        AvroCodec(EVENT).decode(data)


def test_single_object_header_cut_short_is_truncated(good: bytes) -> None:
    with pytest.raises(TruncatedMessage, match="needs 10 bytes, got 6") as info:
        AvroCodec(EVENT).decode(good[:6])
    assert info.value.data == good[:6]
    assert info.value.reason_code == "truncated"


def test_confluent_header_cut_short_is_truncated() -> None:
    with pytest.raises(TruncatedMessage, match="needs 5 bytes, got 3"):
        AvroCodec(EVENT).decode(b"\x00\x00\x01")


def test_body_cut_short_does_not_match(good: bytes) -> None:
    with pytest.raises(SchemaMismatch, match="body does not match"):
        AvroCodec(EVENT).decode(good[:-20])


def test_wrong_magic() -> None:
    with pytest.raises(WrongMagic, match=r"magic 7b22 is neither") as info:
        AvroCodec(EVENT).decode(b'{"tenant_id": "acme"}')
    assert info.value.reason_code == "wrong_magic"


def test_unknown_fingerprint(good: bytes) -> None:
    forged = good[:2] + b"\x00" * 8 + good[10:]
    with pytest.raises(UnknownFingerprint, match="0000000000000000 is not among"):
        AvroCodec(EVENT).decode(forged)


def test_confluent_without_registry_is_unknown_schema_id() -> None:
    with pytest.raises(UnknownSchemaId, match="no schema registry is configured"):
        AvroCodec(EVENT).decode(b"\x00\x00\x00\x00\x07" + b"\x00" * 40)


def test_schema_id_unknown_to_registry(registry: SchemaRegistryClient) -> None:
    with pytest.raises(UnknownSchemaId, match="schema id 999 is unknown") as info:
        AvroCodec(EVENT, registry=registry).decode(b"\x00\x00\x00\x03\xe7" + b"\x00" * 40)
    assert info.value.reason_code == "unknown_schema_id"


def test_trailing_bytes_do_not_match(good: bytes) -> None:
    with pytest.raises(SchemaMismatch, match="2 trailing byte"):
        AvroCodec(EVENT).decode(good + b"\x00\x00")


def test_garbage_body_does_not_match(good: bytes) -> None:
    with pytest.raises(SchemaMismatch):
        AvroCodec(EVENT).decode(good[:10] + b"\xff" * 64)


def test_another_record_type_does_not_match() -> None:
    rollup_bytes = AvroCodec("tokenline.UsageRollup").encode(factories.rollup())
    with pytest.raises(
        SchemaMismatch, match=r"expected tokenline\.UsageEvent, got tokenline\.UsageRollup"
    ):
        AvroCodec(EVENT).decode(rollup_bytes)


def test_another_record_type_registered_does_not_match(registry: SchemaRegistryClient) -> None:
    registry.register_schema("other", Schema('{"type":"record","name":"X","fields":[]}', "AVRO"))
    schema_id = registry.get_latest_version("other").schema_id
    with pytest.raises(SchemaMismatch, match="is X"):
        AvroCodec(EVENT, registry=registry).decode(struct.pack(">bI", 0, schema_id) + b"\x00")


def test_every_decode_error_is_a_decode_error_with_its_bytes(good: bytes) -> None:
    for bad in (b"", b"xx", good[:2] + b"\x01" * 8 + good[10:], good + b"\x00"):
        with pytest.raises(DecodeError) as info:
            AvroCodec(EVENT).decode(bad)
        assert info.value.data == bad


def test_a_record_that_does_not_fit_is_an_encode_error() -> None:
    with pytest.raises(EncodeError, match="UsageEvent does not fit"):
        AvroCodec(EVENT).encode(factories.usage_event(provider="openai", latency_ms="slow"))


def test_money_with_more_places_than_the_schema_is_an_encode_error() -> None:
    from decimal import Decimal

    priced = factories.priced_event()
    assert priced["cost"] is not None
    priced["cost"]["total"] = Decimal("0.0000000000001")
    with pytest.raises(EncodeError):
        AvroCodec(PRICED).encode(priced)
