"""Budgets over the HTTP API, on the real database and broker.

Truths: ``tokenline budgets list`` (the command's view of the same table), the records on
the compacted budgets topic, and each budget's spend summed here in SQL over the raw
``usage_events`` of its tenant-local period and scope.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from click.testing import CliRunner
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from tests.integration.sink._api import TIMEZONES, api_settings, bearer, make_keys
from tests.integration.sink._data import EventFactory, insert_rows
from tokenline.processor.budgets.admin import BudgetAdmin
from tokenline.processor.budgets.codec import budget_codec
from tokenline.processor.budgets.settings import BudgetSettings
from tokenline.processor.cli_budgets import budgets as budgets_command
from tokenline.sink.api.app import create_app
from tokenline.sink.api.budgets import find_budget_admin

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.sink._api import Keys

pytestmark = pytest.mark.integration

TENANT, OTHER = "t-kolkata", "t-new-york"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str) -> BudgetSettings:
    prefix = f"api-budgets-{uuid.uuid4().hex[:8]}."
    return BudgetSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=prefix)


@pytest.fixture(scope="module")
def keys(plain_url: str) -> Keys:
    factory = EventFactory(seed=18)
    rows = []
    for tenant in TIMEZONES:  # this month and the last, so periods cut through the data
        rows += factory.spread(tenant, NOW - timedelta(days=40), NOW, 300)
    insert_rows(plain_url, rows, tenants=TIMEZONES)
    return make_keys(plain_url)


@pytest.fixture(scope="module")
def client(plain_url: str, keys: Keys, settings: BudgetSettings) -> Iterator[TestClient]:
    app = create_app(api_settings(plain_url), make_budgets=lambda url: BudgetAdmin(url, settings))
    with TestClient(app) as test:
        yield test


def _budget(**given: Any) -> dict[str, Any]:
    return {"tenant_id": TENANT, "amount": "100", **given}


def _put(client: TestClient, key: str, budget_id: str, body: dict[str, Any]) -> Any:
    return client.put(f"/v1/budgets/{budget_id}", json=body, headers=bearer(key))


def _on_topic(settings: BudgetSettings) -> dict[str, Any]:
    """The budgets topic compacted by hand: the last value of each key (None: deleted)."""
    topic = settings.topic(settings.budgets_topic)
    consumer = Consumer({"bootstrap.servers": settings.bootstrap_servers, "group.id": "unused"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        found: dict[str, Any] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)])
            read = 0
            while read < high - low:
                for message in consumer.consume(num_messages=100, timeout=5):
                    assert message.error() is None
                    value = message.value()
                    key = (message.key() or b"").decode()
                    found[key] = None if value is None else budget_codec().decode(value)
                    read += 1
        return found
    finally:
        consumer.close()


def _cli_list(plain_url: str) -> list[str]:
    result = CliRunner().invoke(budgets_command, ["list", "--database-url", plain_url])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_a_bad_budget_lists_every_problem_and_stores_nothing(
    client: TestClient, keys: Keys, plain_url: str
) -> None:
    body = _budget(
        amount="-1",
        period="week",
        scope="project",
        currency="usd",
        thresholds_pct=[0, 50],
        hard_limit="lots",
    )
    response = _put(client, keys.admin, "bad-one", body)
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    fields = sorted(problem.split(":")[0] for problem in problems)
    expected = ["amount", "currency", "hard_limit", "period", "scope_value", "thresholds_pct"]
    assert fields == expected
    assert not [line for line in _cli_list(plain_url) if line.startswith("bad-one\t")]
    unknown = _put(client, keys.admin, "bad-two", _budget(tenant_id="nobody"))
    assert unknown.status_code == 422
    assert "no tenant 'nobody'" in unknown.json()["problems"][0]


def test_the_admin_sets_lists_and_removes_as_the_command_does(
    client: TestClient, keys: Keys, plain_url: str, settings: BudgetSettings
) -> None:
    made = _put(client, keys.admin, "k-search", _budget(scope="project", scope_value="search"))
    assert made.status_code == 200, made.text
    assert made.json()["version"] == 1
    assert made.json()["timezone"] == TIMEZONES[TENANT]
    again = _put(client, keys.admin, "k-search", _budget(amount="250.50", hard_limit="300"))
    assert again.json()["version"] == 2
    amounts = (Decimal(again.json()["amount"]), Decimal(again.json()["hard_limit"]))
    assert amounts == (Decimal("250.5"), Decimal(300))
    line = next(x for x in _cli_list(plain_url) if x.startswith("k-search\t"))
    assert line.split("\t")[1:5] == [
        TENANT,
        "tenant",
        "month (Asia/Kolkata)",
        "250.500000000000 USD",
    ]
    published = _on_topic(settings)["k-search"]
    assert (published["version"], published["amount"]) == (2, Decimal("250.5"))
    listed = client.get("/v1/budgets", params={"tenant": TENANT}, headers=bearer(keys.admin))
    assert [b["budget_id"] for b in listed.json()] == ["k-search"]
    assert client.delete("/v1/budgets/k-search", headers=bearer(keys.admin)).status_code == 204
    assert client.delete("/v1/budgets/k-search", headers=bearer(keys.admin)).status_code == 404
    assert not [x for x in _cli_list(plain_url) if x.startswith("k-search\t")]
    assert _on_topic(settings)["k-search"] is None  # the deletion is published


def test_tenant_keys_cannot_manage_budgets(client: TestClient, keys: Keys) -> None:
    assert _put(client, keys.kolkata, "mine", _budget()).status_code == 403
    assert client.get("/v1/budgets", headers=bearer(keys.kolkata)).status_code == 403
    assert client.delete("/v1/budgets/mine", headers=bearer(keys.kolkata)).status_code == 403


_SPEND = """
SELECT coalesce(sum(cost_total), 0) AS spend FROM usage_events u
WHERE tenant_id = %(tenant)s AND currency = %(currency)s
  AND occurred_at >= %(start)s::timestamp AT TIME ZONE %(zone)s
  AND occurred_at < %(end)s::timestamp AT TIME ZONE %(zone)s
"""
_SCOPE_SQL = {
    "tenant": "",
    "project": " AND project = %(value)s",
    "team": " AND coalesce(attributed_team, team) = %(value)s",
    "user": " AND user_id = %(value)s",
}


def _raw_spend(url: str, budget: dict[str, Any]) -> Decimal:
    zone = ZoneInfo(budget["timezone"])
    start = datetime.fromisoformat(budget["period_start"]).astimezone(zone).replace(tzinfo=None)
    end = datetime.fromisoformat(budget["period_end"]).astimezone(zone).replace(tzinfo=None)
    assert start.time() == end.time() == datetime.min.time()  # tenant-local midnights
    local_now = NOW.astimezone(zone).replace(tzinfo=None)
    assert start <= local_now < end
    if budget["period"] == "month":
        assert start.day == end.day == 1
    else:
        assert end - start == timedelta(days=1)
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute(
            _SPEND + _SCOPE_SQL[budget["scope"]],
            {
                "tenant": budget["tenant_id"],
                "currency": budget["currency"],
                "start": start,
                "end": end,
                "zone": budget["timezone"],
                "value": budget["scope_value"],
            },
        ).fetchone()
    assert row is not None
    return Decimal(row["spend"])


def test_a_tenant_reads_its_own_budgets_and_their_status(
    client: TestClient, keys: Keys, plain_url: str
) -> None:
    mine = {
        "k-month": _budget(amount="0.5", thresholds_pct=[1, 50, 100, 100000], hard_limit="1"),
        "k-day": _budget(period="day", amount="1000000", hard_limit="2000000"),
        "k-team": _budget(scope="team", scope_value="core", amount="3"),
        "k-user": _budget(scope="user", scope_value="ana", period="day", amount="2"),
    }
    for budget_id, body in mine.items():
        assert _put(client, keys.admin, budget_id, body).status_code == 200
    theirs = _put(client, keys.admin, "ny-month", _budget(tenant_id=OTHER))
    assert theirs.status_code == 200
    response = client.get(f"/v1/tenants/{TENANT}/budgets", headers=bearer(keys.kolkata))
    assert response.status_code == 200, response.text
    statuses = {b["budget_id"]: b for b in response.json()}
    assert set(statuses) == set(mine)  # nothing of the other tenant
    spent_somewhere = False
    for budget_id, status in statuses.items():
        spend = _raw_spend(plain_url, status)
        spent_somewhere |= spend > 0
        assert Decimal(status["spend"]) == spend, budget_id
        amount = Decimal(status["amount"])
        crossed = [p for p in status["thresholds_pct"] if spend * 100 >= amount * p]
        assert status["thresholds_crossed"] == crossed
        hard = status["hard_limit"]
        assert status["hard_limit_exceeded"] == (hard is not None and spend >= Decimal(hard))
    assert spent_somewhere
    assert statuses["k-month"]["thresholds_crossed"][:1] == [1]  # the data spent 0.005 at least
    refused = client.get(f"/v1/tenants/{OTHER}/budgets", headers=bearer(keys.kolkata))
    assert refused.status_code == 403


def test_the_processor_installs_the_budget_admin(plain_url: str) -> None:
    assert isinstance(find_budget_admin(plain_url), BudgetAdmin)
