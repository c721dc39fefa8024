# ruff: noqa: E501
"""Golden pricing cases: every expected cost is computed by hand from the table below.

Prices are stated per million tokens (``m("2.50")`` = $2.50 / 1M tokens = 0.0000025 per token).
The table is fixed here, independent of the shipped LiteLLM snapshot.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import usage_event
from tokenline.processor.pricing import (
    BucketPrices,
    LongContextTier,
    Normalizer,
    PriceEntry,
    PriceTable,
    TenantAdjustment,
    price_event,
    pricing_version_of,
)

pytestmark = pytest.mark.unit

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
ARN_APP = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4"
ARN_SYS = (
    "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
)


def m(per_million: str) -> Decimal:
    return Decimal(per_million) / 1_000_000


def bp(
    inp: str, out: str, read: str | None = None, w5: str | None = None, w1: str | None = None,
    reasoning: str | None = None,
) -> BucketPrices:  # fmt: skip
    return BucketPrices(
        input=m(inp),
        output=m(out),
        cache_read=m(read or inp),
        cache_write_5m=m(w5 or inp),
        cache_write_1h=m(w1 or w5 or inp),
        reasoning=None if reasoning is None else m(reasoning),
    )


def entry(provider: str, model: str, prices: BucketPrices, since: datetime = SINCE, **kw: Any) -> PriceEntry:  # fmt: skip
    return PriceEntry(PriceEntry.make_id(provider, model, since), provider, model, since, prices, **kw)  # fmt: skip


TABLE = PriceTable(
    [
        # openai gpt-4o: in 2.50, out 10, cache read 1.25; batch in 1.25, out 5, read 0.625
        entry("openai", "gpt-4o", bp("2.50", "10", "1.25"), batch=bp("1.25", "5", "0.625")),
        entry("openai", "gpt-4o-2024-05-13", bp("5", "15")),
        # openai o3: in 2, out 8, read 0.50; reasoning at the output rate
        entry("openai", "o3", bp("2", "8", "0.50")),
        # azure gpt-4o: in 2.75, out 11, read 1.375
        entry("azure_openai", "gpt-4o", bp("2.75", "11", "1.375")),
        # anthropic sonnet 4.5: in 3, out 15, read 0.30, write 5m 3.75, 1h 6;
        # tier above 200K prompt tokens: in 6, out 22.5, read 0.60, 5m 7.5, 1h 12; batch x0.5
        entry(
            "anthropic", "claude-sonnet-4-5", bp("3", "15", "0.30", "3.75", "6"),
            long_context=LongContextTier(200_000, bp("6", "22.5", "0.60", "7.5", "12")),
            batch_factor=Decimal("0.5"),
        ),
        # opus 4.1: in 15, out 75 until 2026-06-01; then in 5, out 25
        entry("anthropic", "claude-opus-4-1", bp("15", "75")),
        entry("anthropic", "claude-opus-4-1", bp("5", "25"), datetime(2026, 6, 1, tzinfo=UTC)),
        entry("anthropic", "claude-new", bp("1", "2"), datetime(2026, 12, 1, tzinfo=UTC)),
        # bedrock: base in 3, out 15, read 0.30, write 3.75; US regional profile +10%
        entry("bedrock", "claude-3-5-sonnet-20241022", bp("3", "15", "0.30", "3.75")),
        entry("bedrock", "us.claude-3-5-sonnet-20241022", bp("3.3", "16.5", "0.33", "4.125")),
        # gemini 2.5 pro: in 1.25, out 10, read 0.125; tier above 200K: in 2.5, out 15,
        # read 0.25; batch x0.5
        entry(
            "gemini", "gemini-2.5-pro", bp("1.25", "10", "0.125"),
            long_context=LongContextTier(200_000, bp("2.5", "15", "0.25")),
            batch_factor=Decimal("0.5"),
        ),
        # gemini 2.5 flash: in 0.30, out 2.50, read 0.03, thinking 3.50
        entry("gemini", "gemini-2.5-flash", bp("0.30", "2.50", "0.03", reasoning="3.50")),
        entry("gemini", "gemini-1.5-pro", bp("1.25", "5")),
        # patterns: llama-* in 0.10, out 0.20; tiny-* in 0.0000005, out 0.0000015 (rounding)
        entry("other", "llama-*", bp("0.10", "0.20")),
        entry("other", "tiny-*", bp("0.0000005", "0.0000015")),
    ]
)  # fmt: skip

NORMALIZER = Normalizer(
    azure_deployments={"prod-chat": "gpt-4o"},
    inference_profiles={ARN_APP: "anthropic.claude-3-5-sonnet-20241022-v2:0"},
)
ADJUSTMENTS = {
    "enterprise": TenantAdjustment.discount(Decimal(20)),
    "reseller": TenantAdjustment.markup(Decimal(10)),
}


def usage(
    inp: int = 0, read: int = 0, write: int = 0, w5: int | None = None, w1: int | None = None,
    out: int = 0, reasoning: int = 0,
) -> dict[str, Any]:  # fmt: skip
    return {
        "input_tokens": inp,
        "cache_read_input_tokens": read,
        "cache_write_input_tokens": write,
        "cache_write_5m_input_tokens": w5,
        "cache_write_1h_input_tokens": w1,
        "output_tokens": out,
        "reasoning_tokens": reasoning,
        "provider_total_tokens": None,
        "mismatch": None,
    }


Z = "0"
# id, event overrides, (input, cache_read, cache_write, output, reasoning, total), canonical
CASES: list[tuple[str, dict[str, Any], tuple[str, ...] | str, str | None]] = [
    ("openai-plain", {"provider": "openai", "response_model": "gpt-4o", "usage": usage(1000, out=500)},
     ("0.0025", Z, Z, "0.005", Z, "0.0075"), "gpt-4o"),
    ("openai-cached-read", {"provider": "openai", "response_model": "gpt-4o", "usage": usage(800, read=1200, out=100)},
     ("0.002", "0.0015", Z, "0.001", Z, "0.0045"), "gpt-4o"),
    ("openai-dated-falls-back", {"provider": "openai", "response_model": "gpt-4o-2024-08-06", "usage": usage(1000, out=1000)},
     ("0.0025", Z, Z, "0.01", Z, "0.0125"), "gpt-4o"),
    ("openai-dated-own-price", {"provider": "openai", "response_model": "gpt-4o-2024-05-13", "usage": usage(1000, out=1000)},
     ("0.005", Z, Z, "0.015", Z, "0.02"), "gpt-4o"),
    ("openai-reasoning-at-output-rate", {"provider": "openai", "response_model": "o3", "usage": usage(2000, out=300, reasoning=1700)},
     ("0.004", Z, Z, "0.0024", "0.0136", "0.02"), "o3"),
    ("openai-dated-reasoning", {"provider": "openai", "response_model": "o3-2025-04-16", "usage": usage(1000, reasoning=500)},
     ("0.002", Z, Z, Z, "0.004", "0.006"), "o3"),
    ("openai-batch", {"provider": "openai", "response_model": "gpt-4o", "batch": True, "usage": usage(10000, out=2000)},
     ("0.0125", Z, Z, "0.01", Z, "0.0225"), "gpt-4o"),
    ("openai-batch-cached", {"provider": "openai", "response_model": "gpt-4o", "batch": True, "usage": usage(read=4000)},
     (Z, "0.0025", Z, Z, Z, "0.0025"), "gpt-4o"),
    ("openai-one-token", {"provider": "openai", "response_model": "gpt-4o", "usage": usage(1, out=1)},
     ("0.0000025", Z, Z, "0.00001", Z, "0.0000125"), "gpt-4o"),
    ("openai-unknown", {"provider": "openai", "response_model": "gpt-9-ultra", "usage": usage(1000)},
     "unknown_model", "gpt-9-ultra"),
    ("azure-response-model", {"provider": "azure_openai", "request_model": "prod-chat", "deployment": "prod-chat", "response_model": "gpt-4o-2024-11-20", "usage": usage(1000, out=1000)},
     ("0.00275", Z, Z, "0.011", Z, "0.01375"), "gpt-4o"),
    ("azure-deployment-map", {"provider": "azure_openai", "request_model": None, "deployment": "prod-chat", "response_model": None, "usage": usage(2000, read=2000)},
     ("0.0055", "0.00275", Z, Z, Z, "0.00825"), "gpt-4o"),
    ("azure-deployment-named-like-model", {"provider": "azure_openai", "request_model": None, "deployment": "gpt-4o", "response_model": None, "usage": usage(1000)},
     ("0.00275", Z, Z, Z, Z, "0.00275"), "gpt-4o"),
    ("azure-deployment-from-request-model", {"provider": "azure_openai", "request_model": "prod-chat", "deployment": None, "response_model": None, "usage": usage(out=1000)},
     (Z, Z, Z, "0.011", Z, "0.011"), "gpt-4o"),
    ("azure-unmapped-deployment", {"provider": "azure_openai", "request_model": None, "deployment": "team-x-llm", "response_model": None, "usage": usage(1000)},
     "unknown_model", "team-x-llm"),
    ("anthropic-plain", {"response_model": "claude-sonnet-4-5-20250929", "usage": usage(1200, out=350)},
     ("0.0036", Z, Z, "0.00525", Z, "0.00885"), "claude-sonnet-4-5"),
    ("anthropic-cache-unsplit-write", {"usage": usage(100, read=30000, write=2000, out=350)},
     ("0.0003", "0.009", "0.0075", "0.00525", Z, "0.02205"), "claude-sonnet-4-5"),
    ("anthropic-cache-5m-1h-split", {"usage": usage(1200, read=30000, write=2000, w5=1500, w1=500, out=350)},
     ("0.0036", "0.009", "0.008625", "0.00525", Z, "0.026475"), "claude-sonnet-4-5"),
    ("anthropic-cache-1h-only", {"usage": usage(write=1000, w1=1000)},
     (Z, Z, "0.006", Z, Z, "0.006"), "claude-sonnet-4-5"),
    ("anthropic-thinking", {"usage": usage(500, out=200, reasoning=800)},
     ("0.0015", Z, Z, "0.003", "0.012", "0.0165"), "claude-sonnet-4-5"),
    ("anthropic-long-context", {"usage": usage(150000, read=60000, out=1000)},
     ("0.9", "0.036", Z, "0.0225", Z, "0.9585"), "claude-sonnet-4-5"),
    ("anthropic-at-threshold-is-base", {"usage": usage(200000)},
     ("0.6", Z, Z, Z, Z, "0.6"), "claude-sonnet-4-5"),
    ("anthropic-threshold-plus-one", {"usage": usage(200001)},
     ("1.200006", Z, Z, Z, Z, "1.200006"), "claude-sonnet-4-5"),
    ("anthropic-writes-count-toward-tier", {"usage": usage(100000, write=100001)},
     ("0.6", Z, "0.7500075", Z, Z, "1.3500075"), "claude-sonnet-4-5"),
    ("anthropic-batch", {"batch": True, "usage": usage(10000, out=1000)},
     ("0.015", Z, Z, "0.0075", Z, "0.0225"), "claude-sonnet-4-5"),
    ("anthropic-batch-cache", {"batch": True, "usage": usage(read=10000, write=1000, w5=1000, w1=0)},
     (Z, "0.0015", "0.001875", Z, Z, "0.003375"), "claude-sonnet-4-5"),
    ("anthropic-before-price-change", {"response_model": "claude-opus-4-1-20250805", "occurred_at": datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC), "usage": usage(1000, out=1000)},
     ("0.015", Z, Z, "0.075", Z, "0.09"), "claude-opus-4-1"),
    ("anthropic-after-price-change", {"response_model": "claude-opus-4-1-20250805", "occurred_at": datetime(2026, 6, 1, tzinfo=UTC), "usage": usage(1000, out=1000)},
     ("0.005", Z, Z, "0.025", Z, "0.03"), "claude-opus-4-1"),
    ("anthropic-tenant-discount", {"tenant_id": "enterprise", "usage": usage(1000, out=1000)},
     ("0.0024", Z, Z, "0.012", Z, "0.0144"), "claude-sonnet-4-5"),
    ("anthropic-tenant-markup", {"tenant_id": "reseller", "usage": usage(1000)},
     ("0.0033", Z, Z, Z, Z, "0.0033"), "claude-sonnet-4-5"),
    ("anthropic-unknown", {"response_model": "claude-7-mega", "usage": usage(1000)},
     "unknown_model", "claude-7-mega"),
    ("anthropic-no-price-yet", {"response_model": "claude-new", "usage": usage(1000)},
     "no_price_at_date", "claude-new"),
    ("bedrock-base-id", {"provider": "bedrock", "request_model": "anthropic.claude-3-5-sonnet-20241022-v2:0", "response_model": None, "usage": usage(1000, out=1000)},
     ("0.003", Z, Z, "0.015", Z, "0.018"), "claude-3-5-sonnet"),
    ("bedrock-us-regional-price", {"provider": "bedrock", "request_model": "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "response_model": None, "usage": usage(1000, out=1000)},
     ("0.0033", Z, Z, "0.0165", Z, "0.0198"), "claude-3-5-sonnet"),
    ("bedrock-eu-prefix", {"provider": "bedrock", "request_model": "eu.anthropic.claude-3-5-sonnet-20241022-v2:0", "response_model": None, "usage": usage(1000, out=1000)},
     ("0.003", Z, Z, "0.015", Z, "0.018"), "claude-3-5-sonnet"),
    ("bedrock-global-cache", {"provider": "bedrock", "request_model": "global.anthropic.claude-3-5-sonnet-20241022-v2:0", "response_model": None, "usage": usage(read=10000, write=2000)},
     (Z, "0.003", "0.0075", Z, Z, "0.0105"), "claude-3-5-sonnet"),
    ("bedrock-apac-prefix", {"provider": "bedrock", "request_model": "apac.anthropic.claude-3-5-sonnet-20241022-v2:0", "response_model": None, "usage": usage(2000)},
     ("0.006", Z, Z, Z, Z, "0.006"), "claude-3-5-sonnet"),
    ("bedrock-system-profile-arn", {"provider": "bedrock", "request_model": ARN_SYS, "response_model": None, "usage": usage(1000, out=1000)},
     ("0.0033", Z, Z, "0.0165", Z, "0.0198"), "claude-3-5-sonnet"),
    ("bedrock-application-profile-mapped", {"provider": "bedrock", "request_model": ARN_APP, "response_model": None, "usage": usage(out=2000)},
     (Z, Z, Z, "0.03", Z, "0.03"), "claude-3-5-sonnet"),
    ("bedrock-application-profile-unmapped", {"provider": "bedrock", "request_model": ARN_APP.replace("a1b2c3d4", "zzz"), "response_model": None, "usage": usage(1000)},
     "unmapped_inference_profile", None),
    ("gemini-models-prefix-cached", {"provider": "gemini", "response_model": "models/gemini-2.5-pro", "usage": usage(1000, read=3000, out=500)},
     ("0.00125", "0.000375", Z, "0.005", Z, "0.006625"), "gemini-2.5-pro"),
    ("gemini-long-context", {"provider": "gemini", "response_model": "gemini-2.5-pro", "usage": usage(150000, read=50001, out=10000)},
     ("0.375", "0.01250025", Z, "0.15", Z, "0.53750025"), "gemini-2.5-pro"),
    ("gemini-thinking-price", {"provider": "gemini", "response_model": "gemini-2.5-flash", "usage": usage(1000, out=200, reasoning=1000)},
     ("0.0003", Z, Z, "0.0005", "0.0035", "0.0043"), "gemini-2.5-flash"),
    ("gemini-versioned-name", {"provider": "gemini", "response_model": "gemini-1.5-pro-002", "usage": usage(1000, out=1000)},
     ("0.00125", Z, Z, "0.005", Z, "0.00625"), "gemini-1.5-pro"),
    ("gemini-batch-factor", {"provider": "gemini", "response_model": "gemini-2.5-pro", "batch": True, "usage": usage(1000, out=1000)},
     ("0.000625", Z, Z, "0.005", Z, "0.005625"), "gemini-2.5-pro"),
    ("gemini-batch-and-tier", {"provider": "gemini", "response_model": "gemini-2.5-pro", "batch": True, "usage": usage(300000, out=1000)},
     ("0.375", Z, Z, "0.0075", Z, "0.3825"), "gemini-2.5-pro"),
    ("gemini-litellm-prefix", {"provider": "gemini", "response_model": "gemini/gemini-2.5-flash", "usage": usage(10000)},
     ("0.003", Z, Z, Z, Z, "0.003"), "gemini-2.5-flash"),
    ("other-pattern", {"provider": "other", "response_model": "llama-3-70b", "usage": usage(1000, out=1000)},
     ("0.0001", Z, Z, "0.0002", Z, "0.0003"), "llama-3-70b"),
    ("rounding-half-even-per-bucket", {"provider": "other", "response_model": "tiny-1", "usage": usage(1, out=1)},
     (Z, Z, Z, "0.000000000002", Z, "0.000000000002"), "tiny-1"),
    ("rounding-half-even-odd", {"provider": "other", "response_model": "tiny-1", "usage": usage(3, out=3)},
     ("0.000000000002", Z, Z, "0.000000000004", Z, "0.000000000006"), "tiny-1"),
]  # fmt: skip

BUCKETS = ("input", "cache_read", "cache_write", "output", "reasoning", "total")


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("overrides", "expected", "canonical"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_golden(overrides: dict[str, Any], expected: tuple[str, ...] | str, canonical: str | None) -> None:  # fmt: skip
    event = usage_event(**{"occurred_at": AT, **overrides})
    result = price_event(event, TABLE, NORMALIZER, ADJUSTMENTS)
    assert result.canonical_model == canonical
    assert result.pricing_version == pricing_version_of(TABLE, NORMALIZER, ADJUSTMENTS)
    if isinstance(expected, str):
        assert result.status == "unpriced"
        assert result.unpriced_reason == expected
        assert result.cost is None
        assert result.price_entry_id is None
        return
    assert result.status == "priced"
    assert result.unpriced_reason is None
    assert result.cost is not None
    got = {k: result.cost[k] for k in BUCKETS}  # type: ignore[literal-required]
    assert got == {k: Decimal(v) for k, v in zip(BUCKETS, expected, strict=True)}
    for value in got.values():
        assert value.as_tuple().exponent == -12
    assert got["total"] == sum(got[k] for k in BUCKETS[:-1])


def test_price_change_uses_entry_ids() -> None:
    before = usage_event(
        response_model="claude-opus-4-1", occurred_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    after = usage_event(
        response_model="claude-opus-4-1", occurred_at=datetime(2026, 7, 1, tzinfo=UTC)
    )
    assert (
        price_event(before, TABLE, NORMALIZER).price_entry_id
        == "anthropic/claude-opus-4-1@2000-01-01"
    )
    assert (
        price_event(after, TABLE, NORMALIZER).price_entry_id
        == "anthropic/claude-opus-4-1@2026-06-01"
    )


_ZERO_USAGE = {
    "input_tokens": 0,
    "cache_read_input_tokens": 0,
    "cache_write_input_tokens": 0,
    "cache_write_5m_input_tokens": None,
    "cache_write_1h_input_tokens": None,
    "output_tokens": 0,
    "reasoning_tokens": 0,
    "provider_total_tokens": None,
    "mismatch": None,
}


@pytest.mark.parametrize(
    ("success", "first_token_ms", "unknown"),
    [
        (True, None, True),  # answered, usage never reported (a stream cut before its usage)
        (True, 300, True),
        (False, 300, True),  # output had begun, then the stream failed: tokens were billed
        (False, None, False),  # refused before any answer: nothing billable
    ],
)
def test_unreported_usage_is_never_priced_as_zero(
    success: bool, first_token_ms: int | None, unknown: bool
) -> None:
    event = usage_event(
        occurred_at=AT,
        usage=_ZERO_USAGE,
        usage_source="none",
        success=success,
        time_to_first_token_ms=first_token_ms,
    )
    result = price_event(event, TABLE, NORMALIZER, ADJUSTMENTS)
    assert result.canonical_model == "claude-sonnet-4-5"
    if unknown:
        assert (result.status, result.unpriced_reason, result.cost) == (
            "unpriced",
            "usage_not_reported",
            None,
        )
    else:
        assert result.status == "priced"
        assert result.cost is not None
        assert result.cost["total"] == 0


def test_reported_zero_usage_is_priced_as_zero() -> None:
    event = usage_event(occurred_at=AT, usage=_ZERO_USAGE, usage_source="reported")
    result = price_event(event, TABLE, NORMALIZER, ADJUSTMENTS)
    assert result.status == "priced"
    assert result.cost is not None
    assert result.cost["total"] == 0
