"""Every PricedUsageEvent field is its price, pricing bookkeeping, the event or attribution."""

from __future__ import annotations

import json

import pytest

from tokenline.schemas import Attribution, catalog
from tokenline.schemas.priced import COST_COLUMNS, COST_PARTS, PRICE_COLUMNS, PRICE_FIELDS

pytestmark = pytest.mark.unit

BOOKKEEPING = ["event", "pricing_version", "priced_at", "source"]


def _fields(name: str) -> list[str]:
    return [f["name"] for f in json.loads(catalog().latest(name).json)["fields"]]


def test_a_new_priced_event_field_must_be_given_a_meaning() -> None:
    named = [*PRICE_FIELDS, *Attribution.__annotations__, *BOOKKEEPING]
    assert sorted(_fields("tokenline.PricedUsageEvent")) == sorted(named)


def test_price_fields_keep_the_contracts_order() -> None:
    fields = _fields("tokenline.PricedUsageEvent")
    assert [f for f in fields if f in PRICE_FIELDS] == list(PRICE_FIELDS)


def test_cost_is_stored_one_column_per_part_of_the_schema() -> None:
    schema = json.loads(catalog().latest("tokenline.PricedUsageEvent").json)
    (cost,) = [f["type"] for f in schema["fields"] if f["name"] == "cost"]
    parts = [f["name"] for f in next(t for t in cost if t != "null")["fields"]]
    assert list(COST_PARTS) == parts
    assert [c.removeprefix("cost_") for c in COST_COLUMNS] == parts
    assert PRICE_COLUMNS[3 : 3 + len(parts)] == COST_COLUMNS
