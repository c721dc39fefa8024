"""Webhook bodies, signatures and the retry schedule."""

from __future__ import annotations

import json

import pytest

from tests import factories
from tokenline.processor.budgets import webhooks

pytestmark = pytest.mark.unit


def test_slack_body_says_what_was_crossed() -> None:
    doc = json.loads(webhooks.body(factories.budget_alert(), "slack"))  # type: ignore[arg-type]
    assert list(doc) == ["text"]
    assert "*acme-search-monthly*" in doc["text"]
    assert "80% of 100.000000000000 USD crossed" in doc["text"]
    assert "spend 80.250000000000 USD this month" in doc["text"]


def test_hard_limit_text() -> None:
    alert = factories.budget_alert(kind="hard_limit", threshold_pct=None)
    doc = json.loads(webhooks.body(alert, "slack"))  # type: ignore[arg-type]
    assert "hard limit 80.000000000000 USD crossed" in doc["text"]


def test_json_body_has_no_floats() -> None:
    doc = json.loads(webhooks.body(factories.budget_alert(), "json"))  # type: ignore[arg-type]
    assert doc["type"] == "tokenline.budget_alert"
    assert not any(isinstance(v, float) for v in doc.values())
    assert doc["budget_amount"] == "100.000000000000"


def test_signature_is_verified_and_a_changed_body_is_not() -> None:
    data = b'{"a":1}'
    header = webhooks.signature("k", data)
    # `printf '{"a":1}' | openssl dgst -sha256 -hmac k`
    assert header == "sha256=c3a92ff9e274cdcce27a58c15a78ec6dcbbdbd0038a87e7a11baef2028fd8bff"
    assert webhooks.verify("k", data, header)
    assert not webhooks.verify("k", b'{"a":2}', header)
    assert not webhooks.verify("other", data, header)


@pytest.mark.parametrize(
    ("status", "again"), [(None, True), (500, True), (503, True), (429, True), (408, True),
                          (400, False), (404, False), (410, False)]
)  # fmt: skip
def test_what_is_retried(status: int | None, again: bool) -> None:
    assert webhooks.retriable(status) is again


def test_backoff_doubles() -> None:
    assert [webhooks.backoff_ms(250, a) for a in (1, 2, 3, 4)] == [250, 500, 1000, 2000]


def test_spend_rate_text() -> None:
    alert = factories.budget_alert(kind="spend_rate", threshold_pct=None, period="hour")
    doc = json.loads(webhooks.body(alert, "slack"))  # type: ignore[arg-type]
    assert "Spend rate of *acme*: 80.250000000000 USD in the hour" in doc["text"]
    assert "against a mean of 100.000000000000 USD an hour" in doc["text"]
