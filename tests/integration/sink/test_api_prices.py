"""``GET /v1/providers/{provider}/models``: the prices the processor prices with, at a date.

Truths: the per-million prices written in an overrides file here (one model's price changes
on 2026-07-01), and ``tokenline prices show`` (the CLI's own lookup) for a shipped model.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from tests.integration.sink._api import TIMEZONES, api_settings, bearer, make_keys
from tests.integration.sink._data import insert_rows
from tokenline.processor.cli_prices import prices as prices_command
from tokenline.processor.price_catalog import BookPrices
from tokenline.processor.pricebook import load_price_book
from tokenline.sink.api.app import create_app
from tokenline.sink.api.prices import find_catalog

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

pytestmark = pytest.mark.integration

MODEL = "tokenline-test-model"
OVERRIDES = f"""
prices:
  - provider: openai
    model: {MODEL}
    valid_from: 2026-01-01
    unit: per_million
    input: "1.25"
    output: "10"
    cache_read: "0.125"
  - provider: openai
    model: {MODEL}
    valid_from: 2026-07-01
    unit: per_million
    input: "2.50"
    output: "15"
    reasoning: "20"
"""
MILLION = Decimal(10**6)


@pytest.fixture(scope="module")
def overrides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prices") / "overrides.yaml"
    path.write_text(OVERRIDES, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def client(plain_url: str, overrides: Path) -> Iterator[TestClient]:
    insert_rows(plain_url, [], tenants=TIMEZONES)
    keys = make_keys(plain_url)
    catalog = BookPrices(lambda: (load_price_book(overrides), str(overrides)))
    with TestClient(create_app(api_settings(plain_url), make_prices=lambda: catalog)) as test:
        test.headers.update(bearer(keys.kolkata))
        yield test


def _models(client: TestClient, provider: str, at: str | None) -> dict[str, Any]:
    response = client.get(
        f"/v1/providers/{provider}/models", params={} if at is None else {"at": at}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _model(document: dict[str, Any], model: str) -> dict[str, Any] | None:
    found = [m for m in document["models"] if m["model"] == model and m["region"] is None]
    assert len(found) <= 1
    return found[0] if found else None


def _per_token(per_million: str) -> Decimal:
    return Decimal(per_million) / MILLION


@pytest.mark.parametrize(
    ("at", "written", "valid_to"),
    [
        ("2026-03-01", {"input": "1.25", "output": "10", "cache_read": "0.125"}, "2026-07-01"),
        ("2026-06-30T23:59:59Z", {"input": "1.25", "output": "10"}, "2026-07-01"),
        ("2026-07-01T00:00:00Z", {"input": "2.50", "output": "15", "reasoning": "20"}, None),
        (
            "2027-01-01T05:30:00+05:30",
            {"input": "2.50", "output": "15", "cache_read": "2.50", "reasoning": "20"},
            None,
        ),
    ],
)
def test_the_price_in_force_at_the_date_is_the_written_one(
    client: TestClient, at: str, written: dict[str, str], valid_to: str | None
) -> None:
    model = _model(_models(client, "openai", at), MODEL)
    assert model is not None
    for bucket, per_million in written.items():
        assert Decimal(model["prices"][bucket]) == _per_token(per_million), bucket
        assert isinstance(model["prices"][bucket], str)  # decimal text, never a JSON number
    if "reasoning" not in written:
        assert model["prices"]["reasoning"] is None  # billed at the output price
    if valid_to is None:
        assert model["valid_to"] is None
    else:
        assert model["valid_to"].startswith(valid_to)


def test_a_model_is_absent_before_its_first_price(client: TestClient) -> None:
    document = _models(client, "openai", "2025-12-31T23:59:59Z")
    assert _model(document, MODEL) is None
    assert document["models"], "the shipped models are priced at that date"


def test_every_model_is_the_cli_lookup(client: TestClient, overrides: Path) -> None:
    document = _models(client, "anthropic", "2026-10-01")
    assert {m["entry_id"].split("/")[0] for m in document["models"]} == {"anthropic"}
    shown = 0
    for model in document["models"][:: max(1, len(document["models"]) // 5)]:
        if model["region"] is not None or "*" in model["model"]:
            continue
        output = _cli_show("anthropic", model["model"], "2026-10-01", overrides)
        assert f"entry      {model['entry_id']} " in output
        for bucket in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h"):
            line = re.search(rf"^{bucket}\s+(\S+) (\S+) / 1M tokens$", output, re.MULTILINE)
            assert line is not None, (bucket, output)
            assert line.group(1) == model["currency"]
            assert Decimal(line.group(2)) / MILLION == Decimal(model["prices"][bucket])
        shown += 1
    assert shown >= 3


def _cli_show(provider: str, model: str, at: str, overrides: Path) -> str:
    result = CliRunner().invoke(
        prices_command, ["show", provider, model, "--at", at, "--overrides", str(overrides)]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_default_is_now(client: TestClient) -> None:
    model = _model(_models(client, "openai", None), MODEL)
    assert model is not None
    assert Decimal(model["prices"]["input"]) == _per_token("2.50")  # it is past 2026-07-01


def test_an_at_that_is_no_date_is_a_400(client: TestClient) -> None:
    response = client.get("/v1/providers/openai/models", params={"at": "next tuesday"})
    assert response.status_code == 400
    assert "next tuesday" in response.json()["detail"]


def test_a_key_is_required(client: TestClient) -> None:
    response = client.get("/v1/providers/openai/models", headers={"Authorization": ""})
    assert response.status_code == 401


def test_the_processor_installs_the_catalog() -> None:
    assert isinstance(find_catalog(), BookPrices)
