"""A provider's models at a date: the entry in force for each model and region, by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from tokenline.processor.cli_prices import prices
from tokenline.processor.price_catalog import BookPrices
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import BucketPrices, PriceEntry, PriceTable

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def entry(
    provider: str, model: str, since: datetime, rate: str, region: str | None = None
) -> PriceEntry:
    r = Decimal(rate)
    prices_ = BucketPrices(r, r * 4, r / 10, r, r)
    return PriceEntry(
        PriceEntry.make_id(provider, model, since, region),
        provider,
        model,
        since,
        prices_,
        region=region,
    )


TABLE = PriceTable(
    [
        entry("openai", "m-1", utc(2026, 1, 1), "0.000001"),
        entry("openai", "m-1", utc(2026, 7, 1), "0.000002"),
        entry("openai", "m-2", utc(2026, 9, 1), "0.000003"),
        entry("openai", "m-*", utc(2025, 1, 1), "0.000009"),
        entry("azure_openai", "m-1", utc(2026, 1, 1), "0.000005"),
        entry("azure_openai", "m-1", utc(2026, 1, 1), "0.000006", region="eu"),
    ]
)


def test_the_entry_in_force_for_each_model() -> None:
    found = BookPrices(lambda: (PriceBook(TABLE), "by hand")).models("openai", utc(2026, 8, 1))
    assert found["source"] == "by hand"
    listed = [(m["model"], m["prices"]["input"], m["valid_to"]) for m in found["models"]]
    assert listed == [("m-*", "0.000009", None), ("m-1", "0.000002", None)]  # m-2 not yet


def test_valid_to_is_the_next_entry() -> None:
    found = BookPrices(lambda: (PriceBook(TABLE), "")).models("openai", utc(2026, 6, 30, 23))
    m1 = next(m for m in found["models"] if m["model"] == "m-1")
    assert (m1["prices"]["input"], m1["valid_to"]) == ("0.000001", "2026-07-01T00:00:00Z")


def test_regions_are_listed_apart() -> None:
    found = BookPrices(lambda: (PriceBook(TABLE), "")).models("azure_openai", utc(2026, 2, 1))
    listed = [(m["model"], m.get("region"), m["prices"]["input"]) for m in found["models"]]
    assert listed == [("m-1", None, "0.000005"), ("m-1", "eu", "0.000006")]


def test_the_book_is_read_again_after_its_ttl() -> None:
    now = [0.0]
    loads = []

    def load() -> tuple[PriceBook, str]:
        loads.append(now[0])
        return PriceBook(TABLE), ""

    catalog = BookPrices(load, ttl_s=60, clock=lambda: now[0])
    for at in (0.0, 59.0, 60.0, 61.0):
        now[0] = at
        catalog.models("openai", utc(2026, 8, 1))
    assert loads == [0.0, 60.0]


def test_the_command_prints_the_list(tmp_path: Path) -> None:
    overrides = tmp_path / "o.yaml"
    overrides.write_text(
        "prices:\n  - {provider: openai, model: m-new, valid_from: 2026-02-01, unit: per_million,"
        ' input: "3", output: "12"}\n',
        encoding="utf-8",
    )
    args = ["models", "openai", "--at", "2026-03-01", "--overrides", str(overrides)]
    result = CliRunner().invoke(prices, args)
    assert result.exit_code == 0, result.output
    models = {m["model"]: m for m in json.loads(result.output)["models"]}
    assert models["m-new"]["prices"]["input"] == "0.000003"
    assert models["m-new"]["prices"]["output"] == "0.000012"
    early = CliRunner().invoke(prices, [*args[:3], "2026-01-31", *args[4:]])
    assert "m-new" not in {m["model"] for m in json.loads(early.output)["models"]}
