from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import EPOCH, usage_event
from tokenline.processor.enrich import AttributionRule
from tokenline.processor.pipeline import DeadLettered, PipelineConfig, Priced, process
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import (
    BucketPrices,
    Normalizer,
    PriceEntry,
    PriceTable,
    TenantAdjustment,
)
from tokenline.schemas import AvroCodec

pytestmark = pytest.mark.unit

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
NOW = EPOCH + timedelta(seconds=5)
SOURCE: Any = {"topic": "llm-usage.raw", "partition": 2, "offset": 99}
CODEC = AvroCodec[Any]("tokenline.UsageEvent")


def m(per_million: str) -> Decimal:
    return Decimal(per_million) / 1_000_000


SONNET = PriceEntry(
    PriceEntry.make_id("anthropic", "claude-sonnet-4-5", SINCE),
    "anthropic",
    "claude-sonnet-4-5",
    SINCE,
    BucketPrices(
        input=m("3"),
        output=m("15"),
        cache_read=m("0.30"),
        cache_write_5m=m("3.75"),
        cache_write_1h=m("6"),
        reasoning=None,
    ),
)
BOOK = PriceBook(PriceTable([SONNET]))


def run(raw: bytes, book: PriceBook = BOOK, **config: Any) -> Any:
    return process(
        raw,
        key=b"acme",
        source=SOURCE,
        timestamp_ms=1234,
        now=NOW,
        book=book,
        config=PipelineConfig(**config),
    )


def test_good_event_is_priced_exactly() -> None:
    rules = (AttributionRule(tenant="acme", cost_center="CC-104"),)
    outcome = run(CODEC.encode(usage_event()), rules=rules)
    assert isinstance(outcome, Priced)
    record = outcome.record
    # input 1200 x 3 + read 30000 x 0.30 + write 1500 x 3.75 + 500 x 6 + output 350 x 15, per 1M
    assert record["cost"] == {
        "input": Decimal("0.003600000000"),
        "cache_read": Decimal("0.009000000000"),
        "cache_write": Decimal("0.008625000000"),
        "output": Decimal("0.005250000000"),
        "reasoning": Decimal(0),
        "total": Decimal("0.026475000000"),
    }
    assert record["pricing_status"] == "priced"
    assert record["canonical_model"] == "claude-sonnet-4-5"
    assert record["pricing_version"] == BOOK.pricing_version
    assert record["priced_at"] == NOW
    assert record["source"] == SOURCE
    assert (record["team"], record["cost_center"]) == ("relevance", "CC-104")
    assert (record["cloud"], record["namespace"], record["service"]) == (
        "aws",
        "search",
        "search-api",
    )
    codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
    assert codec.decode(codec.encode(record)) == record


def test_tenant_adjustment_applies() -> None:
    book = PriceBook(BOOK.table, Normalizer(), {"acme": TenantAdjustment.discount(Decimal(10))})
    outcome = run(CODEC.encode(usage_event()), book=book)
    assert isinstance(outcome, Priced)
    assert outcome.record["cost"] is not None
    assert outcome.record["cost"]["total"] == Decimal("0.023827500000")


def test_garbage_goes_to_the_dlq_with_its_bytes() -> None:
    outcome = run(b"\x07garbage")
    assert isinstance(outcome, DeadLettered)
    record = outcome.record
    assert (record["reason_code"], record["stage"]) == ("wrong_magic", "decode")
    assert (record["value"], record["key"]) == (b"\x07garbage", b"acme")
    assert (record["source_topic"], record["source_partition"], record["source_offset"]) == (
        "llm-usage.raw",
        2,
        99,
    )
    assert record["source_timestamp_ms"] == 1234
    assert record["failed_at"] == NOW
    codec = AvroCodec[Any]("tokenline.DeadLetter")
    assert codec.decode(codec.encode(record)) == record


def test_negative_tokens_go_to_the_dlq() -> None:
    event = usage_event()
    raw = CODEC.encode(usage_event(usage={**event["usage"], "output_tokens": -1}))
    outcome = run(raw, worker="w1")
    assert isinstance(outcome, DeadLettered)
    assert (outcome.reason_code, outcome.record["stage"]) == ("invalid_event", "validate")
    assert outcome.record["reason"].startswith("negative_tokens")
    assert outcome.record["value"] == raw
    assert outcome.record["worker"] == "w1"


def test_unknown_model_is_unpriced_not_free() -> None:
    raw = CODEC.encode(
        usage_event(provider="openai", request_model="gpt-9-ultra", response_model=None)
    )
    outcome = run(raw)
    assert isinstance(outcome, Priced)
    assert outcome.record["cost"] is None
    assert outcome.record["pricing_status"] == "unpriced"
    assert outcome.record["unpriced_reason"] == "unknown_model"


def test_price_book_round_trips_through_json() -> None:
    book = PriceBook(
        BOOK.table,
        Normalizer({"prod-gpt": "gpt-4o"}, {}),
        {"acme": TenantAdjustment.markup(Decimal("2.5"))},
    )
    again = PriceBook.from_json(book.to_json())
    assert again.pricing_version == book.pricing_version
    assert again.adjustments == book.adjustments
    assert dict(again.normalizer.azure_deployments) == {"prod-gpt": "gpt-4o"}
    assert PriceBook.from_json(BOOK.table.to_json()).adjustments == {}
