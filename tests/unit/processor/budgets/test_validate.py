"""A budget checked whole: the row `budgets set` and the HTTP API store, or every problem."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tokenline.processor.budgets.validate import budget_row, parse_scope, parse_thresholds

pytestmark = pytest.mark.unit

GOOD: dict[str, Any] = {
    "budget_id": "acme-search.v2",
    "tenant_id": "acme",
    "scope": "team",
    "scope_value": "search",
    "period": "day",
    "amount": "250.50",
    "currency": "EUR",
    "thresholds_pct": [100, 50, 80, 50],
    "hard_limit": "300",
}


def test_a_good_budget_is_a_row() -> None:
    row, problems = budget_row(**GOOD)
    assert problems == []
    assert row is not None
    assert (row.amount, row.hard_limit) == (Decimal("250.50"), Decimal(300))
    assert row.thresholds_pct == (50, 80, 100)  # sorted, once each


def test_every_problem_is_listed_at_once() -> None:
    bad = {
        **GOOD,
        "budget_id": "no spaces",
        "tenant_id": "",
        "scope_value": None,
        "period": "week",
        "amount": "0",
        "currency": "euro",
        "thresholds_pct": [0],
        "hard_limit": "NaN",
    }
    row, problems = budget_row(**bad)
    assert row is None
    fields = [p.split(":")[0] for p in problems]
    assert fields == [
        "budget_id",
        "tenant_id",
        "scope_value",
        "period",
        "amount",
        "hard_limit",
        "currency",
        "thresholds_pct",
    ]


@pytest.mark.parametrize(
    ("scope", "value", "problem"),
    [
        ("tenant", "x", "scope_value: none for a tenant budget"),
        ("project", None, "scope_value: required for a project budget"),
        ("org", None, "scope: 'org'"),
    ],
)
def test_a_scope_and_its_value_agree(scope: str, value: str | None, problem: str) -> None:
    row, problems = budget_row(**{**GOOD, "scope": scope, "scope_value": value})
    assert row is None
    assert len(problems) == 1
    assert problems[0].startswith(problem)


def test_the_command_line_forms() -> None:
    assert parse_scope("tenant") == ("tenant", None)
    assert parse_scope("user:ana:1") == ("user", "ana:1")
    assert parse_thresholds("50, 80,100,") == [50, 80, 100]
    assert parse_thresholds("50%") is None
