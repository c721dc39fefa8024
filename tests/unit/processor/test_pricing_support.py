# ruff: noqa: E501
"""Normalization rules, overrides YAML, the shipped snapshot, the table document and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner

from tests.factories import usage_event
from tokenline.processor.cli_prices import prices
from tokenline.processor.pricing import (
    Normalizer,
    OverridesError,
    PriceTable,
    load_snapshot,
    parse_overrides,
    price_event,
    to_decimal,
)

pytestmark = pytest.mark.unit

ARN = "arn:aws:bedrock:eu-west-1:123456789012:application-inference-profile/prof1"


@pytest.mark.parametrize(
    ("provider", "raw", "canonical", "ids"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o", ("gpt-4o-2024-08-06", "gpt-4o")),
        ("openai", "gpt-4-0613", "gpt-4", ("gpt-4-0613", "gpt-4")),
        ("openai", "openai/gpt-4o-mini", "gpt-4o-mini", ("gpt-4o-mini",)),
        ("openai", "GPT-4o", "gpt-4o", ("gpt-4o",)),
        ("azure_openai", "azure/gpt-4o", "gpt-4o", ("gpt-4o",)),
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5", ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5")),
        ("anthropic", "claude-3-5-sonnet-latest", "claude-3-5-sonnet", ("claude-3-5-sonnet-latest", "claude-3-5-sonnet")),
        ("gemini", "models/gemini-2.5-pro", "gemini-2.5-pro", ("gemini-2.5-pro",)),
        ("gemini", "gemini-1.5-pro-002", "gemini-1.5-pro", ("gemini-1.5-pro-002", "gemini-1.5-pro")),
        ("gemini", "gemini/gemini-2.5-flash", "gemini-2.5-flash", ("gemini-2.5-flash",)),
        ("bedrock", "anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet", ("claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet")),
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5", ("us.claude-sonnet-4-5-20250929-v1:0", "us.claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5")),
        ("bedrock", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet", ("eu.claude-3-7-sonnet-20250219-v1:0", "eu.claude-3-7-sonnet-20250219", "claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet-20250219", "claude-3-7-sonnet")),
        ("bedrock", "apac.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4", ("apac.claude-sonnet-4-20250514-v1:0", "apac.claude-sonnet-4-20250514", "claude-sonnet-4-20250514-v1:0", "claude-sonnet-4-20250514", "claude-sonnet-4")),
        ("bedrock", "jp.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5", ("jp.claude-haiku-4-5-20251001-v1:0", "jp.claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001", "claude-haiku-4-5")),
        ("bedrock", "au.anthropic.claude-sonnet-4-6", "claude-sonnet-4-6", ("au.claude-sonnet-4-6", "claude-sonnet-4-6")),
        ("bedrock", "global.anthropic.claude-opus-4-6-v1", "claude-opus-4-6", ("global.claude-opus-4-6-v1", "global.claude-opus-4-6", "claude-opus-4-6-v1", "claude-opus-4-6")),
        ("bedrock", "anthropic.claude-3-haiku-20240307-v1:0:200k", "claude-3-haiku", ("claude-3-haiku-20240307-v1:0", "claude-3-haiku-20240307", "claude-3-haiku")),
        ("bedrock", "anthropic.claude-v2:1", "claude-v2:1", ("claude-v2:1",)),
        ("bedrock", "amazon.nova-pro-v1:0", "nova-pro", ("nova-pro-v1:0", "nova-pro")),
        ("bedrock", "arn:aws:bedrock:us-east-1:1:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku", ("us.claude-3-5-haiku-20241022-v1:0", "us.claude-3-5-haiku-20241022", "claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022", "claude-3-5-haiku")),
        ("bedrock", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet", ("claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet-20240620", "claude-3-5-sonnet")),
        ("bedrock", ARN, "claude-3-5-sonnet", ("eu.claude-3-5-sonnet-20241022-v2:0", "eu.claude-3-5-sonnet-20241022", "claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet")),
        ("other", "llama-3-70b", "llama-3-70b", ("llama-3-70b",)),
    ],
)  # fmt: skip
def test_normalization_rules(provider: str, raw: str, canonical: str, ids: tuple[str, ...]) -> None:
    normalizer = Normalizer(
        inference_profiles={ARN: "eu.anthropic.claude-3-5-sonnet-20241022-v2:0"}
    )
    result = normalizer.normalize(provider, raw)
    assert result.canonical == canonical
    assert result.lookup_ids == ids


def test_unmapped_application_profile() -> None:
    result = Normalizer().normalize("bedrock", ARN)
    assert result.canonical is None
    assert result.unpriced_reason == "unmapped_inference_profile"


def test_application_profile_by_id() -> None:
    result = Normalizer(inference_profiles={"prof1": "anthropic.claude-3-5-sonnet-20241022-v2:0"})
    assert result.normalize("bedrock", ARN).canonical == "claude-3-5-sonnet"


def test_azure_model_choice() -> None:
    normalizer = Normalizer(azure_deployments={"prod": "gpt-4o-mini"})
    assert (
        normalizer.normalize_event("azure_openai", "prod", "gpt-4o-2024-08-06", "prod").canonical
        == "gpt-4o"
    )
    assert normalizer.normalize_event("azure_openai", None, None, "prod").canonical == "gpt-4o-mini"
    assert (
        normalizer.normalize_event("azure_openai", None, None, "my-deploy").canonical == "my-deploy"
    )
    assert (
        normalizer.normalize_event("azure_openai", None, None, None).unpriced_reason
        == "unknown_model"
    )


def test_to_decimal_never_binary() -> None:
    assert to_decimal(0.003) == Decimal("0.003")
    assert to_decimal(1e-05) == Decimal("0.00001")
    assert to_decimal("2.50") == Decimal("2.50")
    with pytest.raises(ValueError, match="finite"):
        to_decimal("NaN")


NATIVE = """
prices:
  - provider: openai
    model: gpt-4o-2024-08-06
    valid_from: 2026-03-01
    unit: per_million
    input: "2.00"
    output: 8
    cache_read: 0.5
    batch_discount_percent: 50
  - provider: anthropic
    model: claude-sonnet-4-5
    unit: per_1k
    input: 0.003
    output: 0.015
    cache_write_5m: 0.00375
    cache_write_1h: 0.006
    long_context: {threshold_tokens: 200000, input: 0.006, output: 0.0225}
  - provider: other
    model: "mistral-*"
    unit: per_token
    input: "0.000001"
    output: "0.000002"
tenants:
  acme: {discount_percent: 10}
  resale: {markup_percent: 5}
azure_deployments: {prod-chat: gpt-4o}
bedrock_inference_profiles: {"{ARN}": "anthropic.claude-3-5-sonnet-20241022-v2:0"}
""".replace("{ARN}", ARN)


def test_native_overrides() -> None:
    loaded = parse_overrides(NATIVE)
    by_model = {e.model: e for e in loaded.entries}
    gpt = by_model["gpt-4o-2024-08-06"]
    assert gpt.valid_from == datetime(2026, 3, 1, tzinfo=UTC)
    assert gpt.prices.input == Decimal("0.000002")
    assert gpt.prices.cache_read == Decimal("0.0000005")
    assert gpt.batch_factor == Decimal("0.5")
    claude = by_model["claude-sonnet-4-5"]
    assert claude.prices.cache_write_1h == Decimal("0.000006")
    assert claude.long_context is not None
    assert claude.long_context.prices.output == Decimal("0.0000225")
    assert by_model["mistral-*"].is_pattern
    assert loaded.adjustments["acme"].percent == Decimal(-10)
    assert loaded.adjustments["resale"].factor == Decimal("1.05")
    normalizer = loaded.normalizer()
    assert normalizer.normalize("bedrock", ARN).canonical == "claude-3-5-sonnet"


def test_overrides_replace_base_after_valid_from() -> None:
    loaded = parse_overrides(NATIVE)
    table = load_snapshot().merged(loaded.entries)
    event = usage_event(provider="openai", response_model="gpt-4o-2024-08-06", tenant_id="acme")
    before = price_event({**event, "occurred_at": datetime(2026, 2, 1, tzinfo=UTC)}, table, loaded.normalizer(), loaded.adjustments)  # type: ignore[typeddict-item]  # fmt: skip
    after = price_event({**event, "occurred_at": datetime(2026, 3, 2, tzinfo=UTC)}, table, loaded.normalizer(), loaded.adjustments)  # type: ignore[typeddict-item]  # fmt: skip
    assert before.price_entry_id != after.price_entry_id
    assert after.price_entry_id == "openai/gpt-4o-2024-08-06@2026-03-01"


TRACKR = """
bedrock:
  anthropic.claude-3-sonnet-20240229-v1:0:
    input_per_1k: 0.003
    output_per_1k: 0.015
azure_openai:
  gpt-4o:
    input_per_1k: 0.005
    output_per_1k: 0.015
gemini:
  gemini-1.5-pro:
    input_per_1k: 0.00125
    output_per_1k: 0.005
tenant_overrides:
  enterprise-tenant:
    discount_percent: 20
"""


def test_token_trackr_shape() -> None:
    loaded = parse_overrides(TRACKR)
    by_key = {(e.provider, e.model): e for e in loaded.entries}
    # A stated Bedrock version prices that version.
    bedrock = by_key[("bedrock", "claude-3-sonnet-20240229-v1:0")]
    assert bedrock.prices.input == Decimal("0.000003")
    assert by_key[("gemini", "gemini-1.5-pro")].prices.output == Decimal("0.000005")
    assert loaded.adjustments["enterprise-tenant"].percent == Decimal(-20)
    table = PriceTable(loaded.entries)
    event = usage_event(
        provider="bedrock", request_model="us.anthropic.claude-3-sonnet-20240229-v1:0",
        response_model=None, tenant_id="enterprise-tenant",
        usage={**usage_event()["usage"], "input_tokens": 1000, "cache_read_input_tokens": 0,
               "cache_write_input_tokens": 0, "cache_write_5m_input_tokens": None,
               "cache_write_1h_input_tokens": None, "output_tokens": 1000},
    )  # fmt: skip
    result = price_event(event, table, loaded.normalizer(), loaded.adjustments)
    assert result.cost is not None
    assert result.cost["total"] == Decimal("0.014400000000")  # (0.003 + 0.015) * 0.8


BAD = """
prices:
  - provider: openaii
    model: gpt-4o
    unit: per_gallon
    input: -1
    output: "abc"
  - provider: anthropic
    model: ""
    unit: per_1k
    input: 1
tenants:
  acme: {discount_percent: 150}
  beta: {refund: 3}
colour: blue
"""


def test_bad_file_lists_every_problem() -> None:
    with pytest.raises(OverridesError) as info:
        parse_overrides(BAD, "bad.yaml")
    text = "\n".join(info.value.problems)
    for where in ("prices.0.provider", "prices.0.unit", "prices.0.input", "prices.0.output",
                  "prices.1.model", "prices.1.output", "tenants.acme.discount_percent",
                  "tenants.beta.refund", "colour"):  # fmt: skip
        assert where in text, where
    assert len(info.value.problems) >= 9
    assert str(info.value).startswith("bad.yaml:")


def test_semantic_problems_all_at_once() -> None:
    text = """
tenants:
  a: {}
  b: {discount_percent: 1, markup_percent: 2}
prices:
  - {provider: openai, model: gpt-4o, unit: per_1k, input: 1, output: 1, batch_discount_percent: 5, batch: {input: 1, output: 1}}
"""
    with pytest.raises(OverridesError) as info:
        parse_overrides(text)
    assert len(info.value.problems) == 3


def test_yaml_syntax_error() -> None:
    with pytest.raises(OverridesError, match="not valid YAML"):
        parse_overrides("prices: [")


def test_snapshot_loads_and_prices_real_models() -> None:
    table = load_snapshot()
    assert len(table) > 300
    assert table.pricing_version == load_snapshot().pricing_version
    assert "litellm-1.109.1" in table.metadata["source"]
    normalizer = Normalizer()
    cases = [
        ("openai", "gpt-4o-2024-08-06"),
        ("anthropic", "claude-sonnet-4-5-20250929"),
        ("gemini", "gemini-2.5-flash"),
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
        ("azure_openai", "gpt-4o"),
    ]
    for provider, model in cases:
        event = usage_event(provider=provider, response_model=model, request_model=model)
        result = price_event(event, table, normalizer)
        assert result.status == "priced", (provider, model, result)
        assert result.cost is not None
        assert result.cost["total"] > 0


def test_snapshot_known_prices() -> None:
    table = load_snapshot()
    entry = table.lookup("openai", "gpt-4o", datetime(2026, 1, 1, tzinfo=UTC))
    assert entry is not None
    assert entry.prices.input == Decimal("0.0000025")
    assert entry.prices.output == Decimal("0.00001")


def test_table_document_round_trip_and_order_independence() -> None:
    table = load_snapshot()
    again = PriceTable.from_json(table.to_json())
    assert again.pricing_version == table.pricing_version
    reversed_table = PriceTable(list(table)[::-1])
    assert reversed_table.pricing_version == table.pricing_version
    assert len(table.pricing_version) == 16


def test_cli_show_and_validate(tmp_path: object) -> None:
    runner = CliRunner()
    shown = runner.invoke(prices, ["show", "openai", "gpt-4o-2024-08-06", "--at", "2026-01-01"])
    assert shown.exit_code == 0, shown.output
    assert "USD 2.5 / 1M" in shown.output
    from pathlib import Path

    good = Path(str(tmp_path)) / "good.yaml"
    good.write_text(TRACKR)
    assert runner.invoke(prices, ["validate", str(good)]).exit_code == 0
    bad = Path(str(tmp_path)) / "bad.yaml"
    bad.write_text(BAD)
    result = runner.invoke(prices, ["validate", str(bad)])
    assert result.exit_code == 1
    assert "problem(s)" in result.output


def test_cli_refresh_offline_fails_clearly() -> None:
    result = CliRunner().invoke(prices, ["refresh", "--timeout", "3"])
    assert result.exit_code != 0
    assert "cannot fetch LiteLLM prices" in result.output
    assert len(result.output.strip().splitlines()) == 1
