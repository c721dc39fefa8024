"""Every shipped version is read by the newest reader, and the newest by every old one."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from tests import factories
from tokenline.schemas import RECORD_NAMES, AvroCodec, catalog

pytestmark = [pytest.mark.unit, pytest.mark.contract]

SAMPLES: dict[str, Any] = {
    "tokenline.UsageEvent": factories.usage_event,
    "tokenline.PricedUsageEvent": factories.priced_event,
    "tokenline.UsageRollup": factories.rollup,
    "tokenline.DeadLetter": lambda: {
        "reason_code": "wrong_magic",
        "reason": "magic 7b22 is neither",
        "stage": "decode",
        "source_topic": "llm-usage.raw",
        "source_partition": 2,
        "source_offset": 99,
        "source_timestamp_ms": 1_764_000_000_000,
        "key": b"acme",
        "value": b'{"x": 1}',
        "failed_at": factories.EPOCH,
        "worker": "processor-1",
    },
    "tokenline.Budget": factories.budget,
    "tokenline.BudgetAlert": factories.budget_alert,
    "tokenline.BudgetStatus": factories.budget_status,
}

VERSIONS = [(name, shipped.version) for name in RECORD_NAMES for shipped in catalog().history(name)]


def _encode_with(parsed: dict[str, Any], record: Any) -> bytes:
    buf = BytesIO()
    schemaless_writer(buf, parsed, record)
    return buf.getvalue()


def test_every_record_has_a_sample() -> None:
    assert set(SAMPLES) == set(RECORD_NAMES) == set(catalog().names)


@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_old_writer_new_reader(name: str, version: int) -> None:
    old = next(s for s in catalog().history(name) if s.version == version)
    record = SAMPLES[name]()
    data = b"\xc3\x01" + old.fingerprint + _encode_with(old.parsed, record)
    decoded = AvroCodec[Any](name).decode(data)
    for field in old.parsed["fields"]:
        assert decoded[field["name"]] == record[field["name"]]


@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_new_writer_old_reader(name: str, version: int) -> None:
    old = next(s for s in catalog().history(name) if s.version == version)
    newest = catalog().latest(name)
    record = SAMPLES[name]()
    body = AvroCodec(name).encode(record)[10:]
    decoded = schemaless_reader(BytesIO(body), newest.parsed, old.parsed)
    assert isinstance(decoded, dict)
    for field in old.parsed["fields"]:
        assert decoded[field["name"]] == record[field["name"]]


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_every_field_added_after_v1_has_a_default(name: str) -> None:
    first = {f["name"] for f in catalog().history(name)[0].parsed["fields"]}
    for shipped in catalog().history(name)[1:]:
        for field in shipped.parsed["fields"]:
            assert field["name"] in first or "default" in field, (shipped.version, field["name"])


def test_fingerprints_are_unique() -> None:
    prints = [s.fingerprint for n in RECORD_NAMES for s in catalog().history(n)]
    assert len(prints) == len(set(prints))


@pytest.mark.parametrize("name", ["tokenline.UsageEvent", "tokenline.UsageRollup"])
def test_a_provider_an_old_reader_does_not_know_reads_as_other(name: str) -> None:
    oldest = catalog().history(name)[0]
    assert "vertex_ai" not in _provider_symbols(oldest.parsed)
    record = SAMPLES[name]()
    record["provider"] = "vertex_ai"
    body = AvroCodec(name).encode(record)[10:]
    decoded = schemaless_reader(BytesIO(body), catalog().latest(name).parsed, oldest.parsed)
    assert isinstance(decoded, dict)
    assert decoded["provider"] == "other"
    assert AvroCodec[Any](name).decode(AvroCodec(name).encode(record))["provider"] == "vertex_ai"


def _provider_symbols(parsed: dict[str, Any]) -> list[str]:
    field = next(f for f in parsed["fields"] if f["name"] == "provider")
    return list(field["type"]["symbols"])
