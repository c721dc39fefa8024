# ruff: noqa: E501
"""Golden costs of Vertex AI calls on the shipped snapshot, derived by hand from the map.

Every expected cost is tokens times the per-token number LiteLLM's map (litellm 1.109.1)
gives for the key named in the test. Vertex AI is its own price list: Gemini under the bare
``vertex_ai-language-models`` keys (and ``vertex_ai/gemini-…``), Claude under
``vertex_ai/claude-…`` (``vertex_ai-anthropic_models``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.factories import usage_event
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import (
    Normalizer,
    PriceTable,
    load_snapshot,
    parse_overrides,
    price_event,
)

pytestmark = pytest.mark.unit

TABLE = load_snapshot()


def _usage(inp: int, out: int = 0, read: int = 0, write: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "cache_read_input_tokens": read,
        "cache_write_input_tokens": write,
        "cache_write_5m_input_tokens": write if write else None,
        "cache_write_1h_input_tokens": 0 if write else None,
        "output_tokens": out,
        "reasoning_tokens": 0,
        "provider_total_tokens": None,
        "mismatch": None,
    }


def _price(**fields: Any) -> tuple[str, Decimal | None, str | None]:
    event = usage_event(**fields)
    result = price_event(event, TABLE, Normalizer())
    book = PriceBook(TABLE, Normalizer()).price(event)
    assert (book.cost, book.unpriced_reason) == (result.cost, result.unpriced_reason)
    if result.cost is None:
        return str(result.unpriced_reason), None, result.canonical_model
    return "priced", result.cost["total"], result.canonical_model


def test_vertex_gemini_cache_reads_at_vertex_cache_read_rate() -> None:
    # gemini-2.5-flash (vertex_ai-language-models): input 3e-07, cache_read 3e-08, output 2.5e-06
    # 1000 * 3e-07 + 4000 * 3e-08 + 500 * 2.5e-06 = 0.0003 + 0.00012 + 0.00125
    found = _price(
        provider="vertex_ai",
        request_model="gemini-2.5-flash",
        response_model="gemini-2.5-flash",
        usage=_usage(1000, 500, read=4000),
    )
    assert found == ("priced", Decimal("0.00167"), "gemini-2.5-flash")


def test_vertex_cache_read_rate_where_the_gemini_api_has_none() -> None:
    # deep-research-pro-preview-12-2025 (vertex_ai-language-models): input 2e-06, cache_read 2e-07
    # 1000 * 2e-06 + 10000 * 2e-07 = 0.004
    usage = _usage(1000, read=10_000)
    model = "deep-research-pro-preview-12-2025"
    vertex = _price(provider="vertex_ai", request_model=model, response_model=model, usage=usage)
    assert vertex == ("priced", Decimal("0.004"), model)
    # gemini/deep-research-pro-preview-12-2025 has no cache-read rate: 11000 * 2e-06
    gemini = _price(provider="gemini", request_model=model, response_model=model, usage=usage)
    assert gemini == ("priced", Decimal("0.022"), model)


def test_vertex_gemini_resource_path_is_the_model() -> None:
    # gemini-2.5-flash again, named by its Vertex AI resource path: 1000 * 3e-07 + 500 * 2.5e-06
    path = "projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash"
    found = _price(
        provider="vertex_ai", request_model=path, response_model=None, usage=_usage(1000, 500)
    )
    assert found == ("priced", Decimal("0.00155"), "gemini-2.5-flash")


def test_vertex_claude_is_priced() -> None:
    # vertex_ai/claude-sonnet-4-5@20250929: input 3e-06, cache_read 3e-07, cache_creation 3.75e-06, output 1.5e-05
    # 1000 * 3e-06 + 2000 * 3e-07 + 400 * 3.75e-06 + 500 * 1.5e-05 = 0.003 + 0.0006 + 0.0015 + 0.0075
    found = _price(
        provider="vertex_ai",
        request_model="claude-sonnet-4-5@20250929",
        response_model="claude-sonnet-4-5-20250929",
        usage=_usage(1000, 500, read=2000, write=400),
    )
    assert found == ("priced", Decimal("0.0126"), "claude-sonnet-4-5")


def test_vertex_claude_by_the_name_the_sdk_sent_alone() -> None:
    # vertex_ai/claude-haiku-4-5@20251001: input 1e-06, output 5e-06: 1000 * 1e-06 + 100 * 5e-06
    found = _price(
        provider="vertex_ai",
        request_model="claude-haiku-4-5@20251001",
        response_model=None,
        usage=_usage(1000, 100),
    )
    assert found == ("priced", Decimal("0.0015"), "claude-haiku-4-5")


def test_vertex_gemini_batch_cache_reads_keep_the_cache_read_rate() -> None:
    # gemini-2.5-flash: input_cost_per_token_batches 1.5e-07, output_cost_per_token_batches
    # 1.25e-06, no batch cache-read rate; Vertex AI's cache and batch discounts do not stack, so
    # cache reads stay at cache_read_input_token_cost 3e-08 (not 1.5e-08, not 1.5e-07):
    # 1000 * 1.5e-07 + 4000 * 3e-08 + 500 * 1.25e-06 = 0.00015 + 0.00012 + 0.000625
    found = _price(
        provider="vertex_ai",
        request_model="gemini-2.5-flash",
        response_model="gemini-2.5-flash",
        batch=True,
        usage=_usage(1000, 500, read=4000),
    )
    assert found == ("priced", Decimal("0.000895"), "gemini-2.5-flash")


def test_vertex_gemini_batch_without_a_cache_discount_bills_cached_tokens_as_batch_input() -> None:
    # vertex_ai/gemini-2.0-flash: no cache-read rate; input_cost_per_token_batches 7.5e-08,
    # output_cost_per_token_batches 3e-07: (1000 + 4000) * 7.5e-08 + 500 * 3e-07
    found = _price(
        provider="vertex_ai",
        request_model="gemini-2.0-flash",
        response_model="gemini-2.0-flash",
        batch=True,
        usage=_usage(1000, 500, read=4000),
    )
    assert found == ("priced", Decimal("0.000525"), "gemini-2.0-flash")


def test_vertex_gemini_long_context_batch_cache_reads_keep_the_tier_cache_read_rate() -> None:
    # gemini-2.5-pro over 200k: input_cost_per_token_above_200k_tokens_batches 1.25e-06,
    # output_cost_per_token_above_200k_tokens_batches 7.5e-06, cache reads at
    # cache_read_input_token_cost_above_200k_tokens 2.5e-07:
    # 200000 * 1.25e-06 + 50000 * 2.5e-07 + 1000 * 7.5e-06 = 0.25 + 0.0125 + 0.0075
    found = _price(
        provider="vertex_ai",
        request_model="gemini-2.5-pro",
        response_model="gemini-2.5-pro",
        batch=True,
        usage=_usage(200_000, 1000, read=50_000),
    )
    assert found == ("priced", Decimal("0.27"), "gemini-2.5-pro")


def test_vertex_claude_batch_cache_discounts_stack_as_the_map_gives_them() -> None:
    # vertex_ai/claude-sonnet-4-5@20250929: input_cost_per_token_batches 1.5e-06,
    # cache_read_input_token_cost_batches 1.5e-07, output_cost_per_token_batches 7.5e-06:
    # 1000 * 1.5e-06 + 2000 * 1.5e-07 + 500 * 7.5e-06 = 0.0015 + 0.0003 + 0.00375
    found = _price(
        provider="vertex_ai",
        request_model="claude-sonnet-4-5@20250929",
        response_model="claude-sonnet-4-5-20250929",
        batch=True,
        usage=_usage(1000, 500, read=2000),
    )
    assert found == ("priced", Decimal("0.00555"), "claude-sonnet-4-5")


OPERATOR_PRICES = """
prices:
  - provider: vertex_ai
    model: gemini-9-pro
    unit: per_million
    input: 2
    output: 12
    cache_read: "0.2"
    batch_discount_percent: 50
  - provider: vertex_ai
    model: claude-opus-9
    unit: per_million
    input: 2
    output: 12
    cache_read: "0.2"
    batch_discount_percent: 50
"""


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # Gemini: the batch discount on input and output, cache reads at 0.2 per million:
        # 1000 * 1e-06 + 10000 * 2e-07 + 100 * 6e-06
        ("gemini-9-pro", Decimal("0.0036")),
        # Claude: the batch discount stacks with the cache-read rate:
        # 1000 * 1e-06 + 10000 * 1e-07 + 100 * 6e-06
        ("claude-opus-9", Decimal("0.0026")),
    ],
)
def test_operator_batch_discount_follows_the_vertex_rule(model: str, expected: Decimal) -> None:
    loaded = parse_overrides(OPERATOR_PRICES)
    table = PriceTable(loaded.entries)
    event = usage_event(
        provider="vertex_ai",
        request_model=model,
        response_model=model,
        batch=True,
        usage=_usage(1000, 100, read=10_000),
    )
    result = price_event(event, table, Normalizer())
    assert result.cost is not None
    assert result.cost["total"] == expected
    assert PriceBook(table, Normalizer()).price(event).cost == result.cost


def test_a_vertex_event_from_the_wire_is_priced_and_kept_as_vertex_ai() -> None:
    from tokenline.processor.pipeline import PipelineConfig, Priced, process
    from tokenline.schemas import AvroCodec

    event = usage_event(
        provider="vertex_ai",
        request_model="claude-sonnet-4-5@20250929",
        response_model="claude-sonnet-4-5-20250929",
    )
    outcome = process(
        AvroCodec[Any]("tokenline.UsageEvent").encode(event),
        key=b"acme",
        source={"topic": "llm-usage.raw", "partition": 0, "offset": 1},
        timestamp_ms=1,
        now=event["occurred_at"],
        book=PriceBook(TABLE),
        config=PipelineConfig(),
    )
    assert isinstance(outcome, Priced)
    record = outcome.record
    assert record["event"]["provider"] == "vertex_ai"
    assert record["pricing_status"] == "priced"
    assert record["price_entry_id"] == "vertex_ai/claude-sonnet-4-5-20250929@2000-01-01"
    # vertex_ai/claude-sonnet-4-5@20250929: input 1200 * 3e-06 + read 30000 * 3e-07
    # + 5m writes 1500 * 3.75e-06 + 1h writes 500 * 6e-06 + output 350 * 1.5e-05
    assert record["cost"] is not None
    assert record["cost"]["total"] == Decimal("0.026475")
    codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
    assert codec.decode(codec.encode(record)) == record


@pytest.mark.parametrize(
    ("reported", "lookup_ids", "canonical"),
    [
        (
            "claude-sonnet-4-5@20250929",
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            "claude-sonnet-4-5",
        ),
        (
            "claude-sonnet-4-5-20250929",
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            "claude-sonnet-4-5",
        ),
        (
            "claude-opus-4-6@default",
            ("claude-opus-4-6@default", "claude-opus-4-6"),
            "claude-opus-4-6",
        ),
        ("gemini-2.5-pro", ("gemini-2.5-pro",), "gemini-2.5-pro"),
        ("publishers/google/models/gemini-2.5-pro", ("gemini-2.5-pro",), "gemini-2.5-pro"),
        (
            "projects/p/locations/europe-west4/publishers/google/models/gemini-1.5-pro-002",
            ("gemini-1.5-pro-002", "gemini-1.5-pro"),
            "gemini-1.5-pro",
        ),
        (
            "vertex_ai/mistral-large@2411-001",
            ("mistral-large@2411-001", "mistral-large"),
            "mistral-large",
        ),
    ],
)
def test_vertex_model_names(reported: str, lookup_ids: tuple[str, ...], canonical: str) -> None:
    found = Normalizer().normalize("vertex_ai", reported)
    assert (found.lookup_ids, found.canonical) == (lookup_ids, canonical)
