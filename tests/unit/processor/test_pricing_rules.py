# ruff: noqa: E501
"""Golden costs of the converter's rules on the shipped snapshot, derived by hand from the map.

Every expected cost is tokens times the per-token number LiteLLM's map
(litellm 1.109.1) gives for the key named in the test.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.factories import usage_event
from tokenline.processor.pricing import Normalizer, load_snapshot, price_event

pytestmark = pytest.mark.unit

TABLE = load_snapshot()


def _usage(inp: int, out: int = 0, read: int = 0) -> dict[str, Any]:
    return {
        "input_tokens": inp,
        "cache_read_input_tokens": read,
        "cache_write_input_tokens": 0,
        "cache_write_5m_input_tokens": None,
        "cache_write_1h_input_tokens": None,
        "output_tokens": out,
        "reasoning_tokens": 0,
        "provider_total_tokens": None,
        "mismatch": None,
    }


def _price(normalizer: Normalizer | None = None, **fields: Any) -> tuple[str, Decimal | None]:
    result = price_event(usage_event(**fields), TABLE, normalizer or Normalizer())
    if result.cost is None:
        return str(result.unpriced_reason), None
    return "priced", result.cost["total"]


def test_provider_prefixed_key_wins_over_bare_key() -> None:
    # gemini/gemini-exp-1206: 0 / 0 (the bare key's 0.30 / 2.50 per million is not the
    # Gemini API's price)
    found = _price(
        provider="gemini",
        request_model="gemini-exp-1206",
        response_model="gemini-exp-1206",
        usage=_usage(1000, 500),
    )
    assert found == ("priced", Decimal(0))


def test_vertex_keys_do_not_price_gemini_api_calls() -> None:
    # gemini-flash-experimental is only a vertex_ai-language-models key
    status, cost = _price(
        provider="gemini",
        request_model="gemini-flash-experimental",
        response_model="gemini-flash-experimental",
        usage=_usage(1000, 500),
    )
    assert (status, cost) == ("unknown_model", None)


def test_versions_that_price_differently_stay_apart() -> None:
    # amazon.titan-embed-text-v2:0: 2e-08 per token; v1 is 1e-07
    v2 = _price(provider="bedrock", request_model="amazon.titan-embed-text-v2:0",
                response_model=None, usage=_usage(1000))  # fmt: skip
    v1 = _price(provider="bedrock", request_model="amazon.titan-embed-text-v1",
                response_model=None, usage=_usage(1000))  # fmt: skip
    assert v2 == ("priced", Decimal("0.00002"))
    assert v1 == ("priced", Decimal("0.0001"))


def test_unknown_version_of_a_model_whose_versions_differ_is_unpriced() -> None:
    found = _price(provider="bedrock", request_model="amazon.titan-embed-text-v3:0",
                   response_model=None, usage=_usage(1000))  # fmt: skip
    assert found == ("unknown_model", None)


def test_bedrock_region_price() -> None:
    # bedrock/eu-west-2/meta.llama3-70b-instruct-v1:0: 3.45e-06 in, 4.55e-06 out
    found = _price(provider="bedrock", request_model="meta.llama3-70b-instruct-v1:0",
                   response_model=None, region="eu-west-2", usage=_usage(1000, 100))  # fmt: skip
    assert found == ("priced", Decimal("0.003905"))
    # meta.llama3-70b-instruct-v1:0 (the US rate): 2.65e-06 in, 3.5e-06 out
    found = _price(provider="bedrock", request_model="meta.llama3-70b-instruct-v1:0",
                   response_model=None, region="us-east-2", usage=_usage(1000, 100))  # fmt: skip
    assert found == ("priced", Decimal("0.003"))


def test_bedrock_region_without_its_price_is_unpriced() -> None:
    found = _price(provider="bedrock", request_model="meta.llama3-70b-instruct-v1:0",
                   response_model=None, region="eu-central-1", usage=_usage(1000, 100))  # fmt: skip
    assert found == ("no_price_in_region", None)


def test_azure_data_zone_from_the_deployment_map() -> None:
    # azure/eu/gpt-4o: 2.75e-06 in, 1.1e-05 out (the global azure/gpt-4o is 2.5e-06 / 1e-05)
    normalizer = Normalizer(azure_deployments={"prod-eu": "eu/gpt-4o", "prod": "gpt-4o"})
    zoned = _price(normalizer, provider="azure_openai", request_model="prod-eu",
                   response_model="gpt-4o", deployment="prod-eu", usage=_usage(1000, 100))  # fmt: skip
    plain = _price(normalizer, provider="azure_openai", request_model="prod",
                   response_model="gpt-4o", deployment="prod", usage=_usage(1000, 100))  # fmt: skip
    assert zoned == ("priced", Decimal("0.00385"))
    assert plain == ("priced", Decimal("0.0035"))


def test_batch_cache_reads_are_cache_rate_times_the_batch_discount() -> None:
    # gpt-4o: batch input 1.25e-06, batch output 5e-06, cache read 1.25e-06 and no batch
    # cache-read key: OpenAI's Batch API halves cached input too, 6.25e-07
    found = _price(provider="openai", request_model="gpt-4o", response_model="gpt-4o",
                   batch=True, usage=_usage(1000, 100, read=2000))  # fmt: skip
    assert found == ("priced", Decimal("0.003"))  # 0.00125 + 0.00125 + 0.0005


def test_batch_without_batch_rates_in_the_map_is_half_of_every_bucket() -> None:
    # claude-mythos-preview: 1e-05 in, 1e-06 cache read, 5e-05 out, no batch keys; Anthropic's
    # Message Batches are half of every price, cache reads included
    found = _price(provider="anthropic", request_model="claude-mythos-preview",
                   response_model="claude-mythos-preview", batch=True,
                   usage=_usage(1000, 100, read=2000))  # fmt: skip
    assert found == ("priced", Decimal("0.0085"))  # 0.005 + 0.001 + 0.0025


def test_batch_over_the_long_context_threshold_is_half_the_tier_price() -> None:
    # anthropic.claude-sonnet-4-20250514-v1:0 above 200k: 6e-06 in, 2.25e-05 out, no batch
    # keys: a batch request is half the long-context price (Anthropic: the discounts stack)
    found = _price(provider="bedrock", request_model="anthropic.claude-sonnet-4-20250514-v1:0",
                   response_model=None, batch=True, usage=_usage(200_001, 100))  # fmt: skip
    assert found == ("priced", Decimal("0.601128"))  # 200001 * 3e-06 + 100 * 1.125e-05


def test_cache_writes_over_the_threshold_without_a_write_price_are_tier_input() -> None:
    # azure/gpt-5.4 has no cache-write keys (writes bill as input) and is 5e-06 in,
    # 2.25e-05 out above 272k: 270000 + 2001 written = 272001 prompt tokens
    usage = {**_usage(270_000, 100), "cache_write_input_tokens": 2001,
             "cache_write_5m_input_tokens": 2001, "cache_write_1h_input_tokens": 0}  # fmt: skip
    found = _price(provider="azure_openai", request_model="gpt-5.4", response_model="gpt-5.4",
                   usage=usage)  # fmt: skip
    assert found == ("priced", Decimal("1.362255"))  # 1.35 + 0.010005 + 0.00225


def test_azure_government_region_is_the_us_gov_zone() -> None:
    # azure/us-gov/gpt-5.1: 1.71875e-06 in, 1.375e-05 out
    found = _price(provider="azure_openai", request_model="gpt-5.1", response_model="gpt-5.1",
                   region="usgovvirginia", usage=_usage(1000, 100))  # fmt: skip
    assert found == ("priced", Decimal("0.00309375"))


def test_bedrock_prices_the_profile_the_call_named_not_the_body_model() -> None:
    # bedrock/us.claude-haiku-4-5-20251001 (key us.anthropic.claude-haiku-4-5-20251001-v1:0):
    # 1.1e-06 in, 5.5e-06 out; the body's "claude-haiku-4-5-20251001" alone would be the
    # global 1e-06 / 5e-06
    found = _price(
        provider="bedrock",
        request_model="us.anthropic.claude-haiku-4-5-20251001-v1:0",
        response_model="claude-haiku-4-5-20251001",
        region="us-east-1",
        usage=_usage(1000, 100),
    )
    assert found == ("priced", Decimal("0.00165"))
