"""One pricing version over entries, tenant terms, model maps and the rules; dated tenant terms."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner

from tests.factories import usage_event
from tokenline.processor.cli_prices import prices
from tokenline.processor.pricebook import PriceBook, load_price_book
from tokenline.processor.pricing import (
    BucketPrices,
    Normalizer,
    OverridesError,
    PriceEntry,
    PriceTable,
    PriceTableError,
    TenantAdjustment,
    TenantTerms,
    engine,
    parse_overrides,
    price_event,
    pricing_version_of,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

SINCE = datetime(2000, 1, 1, tzinfo=UTC)
JAN = datetime(2026, 1, 1, tzinfo=UTC)
JUL = datetime(2026, 7, 1, tzinfo=UTC)


def entry(model: str, inp: str, out: str, since: datetime = SINCE) -> PriceEntry:
    prices = BucketPrices(
        input=Decimal(inp) / 10**6,
        output=Decimal(out) / 10**6,
        cache_read=Decimal(inp) / 10**7,
        cache_write_5m=Decimal(inp) / 10**6,
        cache_write_1h=Decimal(inp) / 10**6,
    )
    return PriceEntry(PriceEntry.make_id("openai", model, since), "openai", model, since, prices)


TABLE = PriceTable([entry("gpt-4o", "2.50", "10"), entry("gpt-4o-mini", "0.15", "0.60")])
DEPLOYMENTS = {"prod-chat": "gpt-4o"}
PROFILES = {"arn:profile/abc": "anthropic.claude-3-haiku"}
MAPS = Normalizer(DEPLOYMENTS, PROFILES)
TERMS: dict[str, Any] = {
    "acme": TenantAdjustment.discount(Decimal(20)),
    "globex": TenantTerms.of(
        TenantAdjustment.discount(Decimal(10), JAN),
        TenantAdjustment.markup(Decimal(5), JUL),
    ),
}
BASE = pricing_version_of(TABLE, MAPS, TERMS)


def test_the_book_computes_the_version_once_and_prices_with_it() -> None:
    book = PriceBook(TABLE, MAPS, TERMS)
    assert book.pricing_version == BASE
    assert len(BASE) == 16
    assert TABLE.pricing_version != BASE  # more than the entries
    event = usage_event(provider="openai", request_model="gpt-4o", response_model="gpt-4o")
    assert book.price(event).pricing_version == BASE
    assert price_event(event, TABLE, MAPS, TERMS).pricing_version == BASE


def test_the_version_ignores_order_and_equivalent_forms() -> None:
    reordered = PriceTable(list(TABLE)[::-1], {"source": "elsewhere"})
    maps = Normalizer(dict(reversed(list(MAPS.azure_deployments.items()))), MAPS.inference_profiles)
    terms = {
        "globex": TenantTerms.of(
            # the same instants with another offset, given in the other order
            TenantAdjustment.markup(Decimal(5), JUL.astimezone(timezone(timedelta(hours=2)))),
            TenantAdjustment.discount(Decimal("10.0"), JAN),
        ),
        "acme": TenantTerms.of(TenantAdjustment(Decimal(-20))),  # a list of one undated term
    }  # fmt: skip
    assert pricing_version_of(reordered, maps, terms) == BASE
    assert PriceBook.from_json(PriceBook(TABLE, MAPS, TERMS).to_json()).pricing_version == BASE


@pytest.mark.parametrize(
    ("table", "maps", "terms"),
    [
        # entries: one price changes, one entry is added, one gets a later valid_from
        (TABLE.merged([entry("gpt-4o", "2.50", "10.01")]), MAPS, TERMS),
        (TABLE.merged([entry("gpt-4.1", "2", "8")]), MAPS, TERMS),
        (TABLE.merged([entry("gpt-4o", "2.50", "10", JAN)]), MAPS, TERMS),
        # tenant terms: a percent, a date, a new tenant, a tenant removed
        (TABLE, MAPS, {**TERMS, "acme": TenantAdjustment.discount(Decimal(25))}),
        (TABLE, MAPS, {**TERMS, "acme": TenantAdjustment.discount(Decimal(20), JAN)}),
        (TABLE, MAPS, {**TERMS, "initech": TenantAdjustment.markup(Decimal(0))}),
        (TABLE, MAPS, {"globex": TERMS["globex"]}),
        # model maps: a deployment mapped, a deployment remapped, an inference profile remapped
        (TABLE, Normalizer({**DEPLOYMENTS, "batch-chat": "gpt-4o-mini"}, PROFILES), TERMS),
        (TABLE, Normalizer({"prod-chat": "gpt-4o-mini"}, PROFILES), TERMS),
        (TABLE, Normalizer(DEPLOYMENTS, {"arn:profile/abc": "anthropic.claude-3-opus"}), TERMS),
    ],
    ids=[
        "price", "entry-added", "entry-dated", "term-percent", "term-date", "tenant-added",
        "tenant-removed", "deployment-added", "deployment-remapped", "profile-remapped",
    ],
)  # fmt: skip
def test_any_change_of_an_input_changes_the_version(
    table: PriceTable, maps: Normalizer, terms: dict[str, Any]
) -> None:
    assert pricing_version_of(table, maps, terms) != BASE
    assert PriceBook(table, maps, terms).pricing_version != BASE


def test_the_rules_version_is_part_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "PRICING_RULES_VERSION", engine.PRICING_RULES_VERSION + 1)
    assert pricing_version_of(TABLE, MAPS, TERMS) != BASE
    assert PriceBook(TABLE, MAPS, TERMS).pricing_version != BASE


DATED = """
prices:
  - {provider: openai, model: gpt-4o, unit: per_million, input: "2.50", output: "10"}
tenants:
  acme: {discount_percent: 20}
  globex:
    - effective_from: 2026-01-01
      discount_percent: 10
    - effective_from: 2026-07-01T00:00:00+00:00
      effective_to: 2026-10-01
      discount_percent: 15
    - effective_from: 2026-11-01
      markup_percent: 5
"""


def event_at(tenant: str, at: datetime) -> Any:
    usage = {
        "input_tokens": 1000, "cache_read_input_tokens": 0, "cache_write_input_tokens": 0,
        "cache_write_5m_input_tokens": None, "cache_write_1h_input_tokens": None,
        "output_tokens": 100, "reasoning_tokens": 0, "provider_total_tokens": None,
        "mismatch": None,
    }  # fmt: skip
    return usage_event(
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o",
        tenant_id=tenant,
        occurred_at=at,
        usage=usage,
    )


@pytest.mark.parametrize(
    ("tenant", "at", "total"),
    [
        # 1000 x $2.50/M + 100 x $10/M = 0.0035 at list price
        ("globex", datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0.003500000000"),
        ("globex", datetime(2026, 1, 1, tzinfo=UTC), "0.003150000000"),  # 10 % off
        ("globex", datetime(2026, 6, 30, 23, 59, tzinfo=UTC), "0.003150000000"),
        ("globex", datetime(2026, 7, 1, tzinfo=UTC), "0.002975000000"),  # 15 % off
        ("globex", datetime(2026, 9, 30, 23, 59, tzinfo=UTC), "0.002975000000"),
        ("globex", datetime(2026, 10, 1, tzinfo=UTC), "0.003500000000"),  # the gap: list price
        ("globex", datetime(2026, 11, 1, tzinfo=UTC), "0.003675000000"),  # 5 % markup, for ever
        ("globex", datetime(2031, 1, 1, tzinfo=UTC), "0.003675000000"),
        ("acme", datetime(2000, 1, 1, tzinfo=UTC), "0.002800000000"),  # undated: always 20 % off
        ("acme", datetime(2026, 8, 1, tzinfo=UTC), "0.002800000000"),
        ("initech", datetime(2026, 8, 1, tzinfo=UTC), "0.003500000000"),  # no terms
    ],
)
def test_the_term_valid_at_occurred_at_applies(tenant: str, at: datetime, total: str) -> None:
    loaded = parse_overrides(DATED)
    book = PriceBook(PriceTable(loaded.entries), loaded.normalizer(), loaded.adjustments)
    result = book.price(event_at(tenant, at))
    assert result.cost is not None
    assert result.cost["total"] == Decimal(total)
    again = PriceBook.from_json(book.to_json()).price(event_at(tenant, at))
    assert again.cost == result.cost
    assert again.pricing_version == result.pricing_version


def test_the_old_document_form_still_reads() -> None:
    doc = PriceBook(TABLE).to_document()
    doc["tenant_adjustments"] = {"acme": "-20", "reseller": 5}
    book = PriceBook.from_json(json.dumps(doc))
    assert book.adjustments == {
        "acme": TenantAdjustment(Decimal(-20)),
        "reseller": TenantAdjustment(Decimal(5)),
    }
    assert book.pricing_version == PriceBook(TABLE, Normalizer(), book.adjustments).pricing_version
    # and is still what a book writes for an undated term; dated terms are written as a list
    written = PriceBook(TABLE, Normalizer(), TERMS).to_document()["tenant_adjustments"]
    assert written["acme"] == "-20"
    assert written["globex"] == [
        {"percent": "-10", "effective_from": "2026-01-01T00:00:00+00:00",
         "effective_to": "2026-07-01T00:00:00+00:00"},
        {"percent": "5", "effective_from": "2026-07-01T00:00:00+00:00", "effective_to": None},
    ]  # fmt: skip


def test_every_problem_of_the_terms_is_listed_with_its_path() -> None:
    bad = """
tenants:
  acme: {discount_percent: 10, markup_percent: 5}
  globex:
    - {effective_from: 2026-01-01, discount_percent: 10}
    - {effective_from: 2026-01-01, discount_percent: 12}
  initech:
    - {effective_from: 2026-01-01, effective_to: 2026-06-01, discount_percent: 10}
    - {effective_from: 2026-03-01, discount_percent: 12}
    - {effective_from: 2026-09-01, effective_to: 2026-08-01, discount_percent: 12}
  umbrella:
    - {effective_from: "2026-01-01T06:00:00", discount_percent: 10}
    - {markup_percent: 3}
tenant_overrides:
  acme: {discount_percent: 5}
"""
    with pytest.raises(OverridesError) as caught:
        parse_overrides(bad, "terms.yaml")
    assert sorted(caught.value.problems) == sorted(
        [
            "tenants.acme: give exactly one of discount_percent, markup_percent",
            "tenants.globex: terms 0 and 1 start at the same time",
            "tenants.initech: term 2: effective_to must be after effective_from",
            "tenants.initech: terms 0 and 1 overlap",
            "tenants.umbrella.0.effective_from: must include a UTC offset",
            "tenant_overrides.acme: tenant configured twice",
        ]
    )


def test_schema_problems_name_the_term() -> None:
    bad = """
tenants:
  acme: {discount_percent: 120}
  globex:
    - {effective_from: 2026-01-01, discount_percent: 10}
    - {effective_from: not-a-date, discount_percent: 12, typo: 1}
"""
    with pytest.raises(OverridesError) as caught:
        parse_overrides(bad)
    where = {p.split(":")[0] for p in caught.value.problems}
    assert where == {
        "tenants.acme.discount_percent",
        "tenants.globex.1.effective_from",
        "tenants.globex.1.typo",
    }


def test_prices_show_names_the_book_version_and_the_tenants_term(tmp_path: Path) -> None:
    overrides = tmp_path / "terms.yaml"
    overrides.write_text(DATED, encoding="utf-8")
    book = load_price_book(overrides)
    runner = CliRunner()
    args = ["show", "openai", "gpt-4o", "--overrides", str(overrides), "--tenant", "globex"]

    shown = runner.invoke(prices, [*args, "--at", "2026-08-01"])
    assert shown.exit_code == 0, shown.output
    assert f"(pricing version {book.pricing_version})" in shown.output
    assert "globex: 15 % discount, from 2026-07-01T00:00:00+00:00 until 2026-10-01" in shown.output
    gap = runner.invoke(prices, [*args, "--at", "2026-10-15"])
    assert "globex: list price (no term at that time)" in gap.output


def test_a_term_refuses_naive_bounds_and_terms_refuse_overlaps() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TenantAdjustment(Decimal(-10), datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="terms 0 and 1 overlap"):
        TenantTerms.of(
            TenantAdjustment(Decimal(-10), JAN, datetime(2026, 8, 1, tzinfo=UTC)),
            TenantAdjustment(Decimal(-15), JUL),
        )


def test_text_that_is_not_json_is_refused_by_the_table_and_the_book() -> None:
    for parse in (PriceTable.from_json, PriceBook.from_json):
        with pytest.raises(PriceTableError, match="not JSON"):
            parse('{"format": ')
