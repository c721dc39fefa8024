"""A budget as given (command line or HTTP body) checked whole: every problem, or a row.

``tokenline budgets set`` and the HTTP API's ``PUT /v1/budgets/{budget_id}`` both build
their rows here, so the two accept and refuse the same budgets with the same words.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from tokenline.processor.budgets.model import SCOPES
from tokenline.processor.budgets.store import BudgetRow

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["PERIODS", "budget_row", "parse_scope", "parse_thresholds"]

PERIODS = ("day", "month")
_ID = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def parse_scope(text: str) -> tuple[str, str | None]:
    """``tenant`` or ``project:NAME``, ``team:NAME``, ``user:ID`` as (scope, value)."""
    kind, _, value = text.partition(":")
    return kind, value or None


def parse_thresholds(text: str) -> list[int] | None:
    """``50,80,100`` as percents; None when a part is not a whole number."""
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        return None


def _money(text: object, what: str, problems: list[str]) -> Decimal | None:
    try:
        value = Decimal(str(text).strip()) if isinstance(text, str | int) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        problems.append(f"{what}: {text!r} is not a decimal amount")
        return None
    if value <= 0:
        problems.append(f"{what}: {text!r} must be above 0")
        return None
    return value


def budget_row(
    *,
    budget_id: str,
    tenant_id: str,
    scope: str,
    scope_value: str | None,
    period: str,
    amount: object,
    currency: str,
    thresholds_pct: Sequence[int] | None,
    hard_limit: object | None,
) -> tuple[BudgetRow | None, list[str]]:
    """The row to store, or None and every problem (``field: why``)."""
    problems: list[str] = []
    if not _ID.match(budget_id):
        problems.append(f"budget_id: {budget_id!r}: 1 to 200 letters, digits, '.', '_' or '-'")
    if not tenant_id:
        problems.append("tenant_id: required")
    if scope not in SCOPES:
        problems.append(f"scope: {scope!r}: one of {', '.join(SCOPES)}")
    elif (scope == "tenant") != (scope_value is None):
        problems.append(
            "scope_value: none for a tenant budget"
            if scope == "tenant"
            else f"scope_value: required for a {scope} budget (the {scope}'s name or id)"
        )
    if period not in PERIODS:
        problems.append(f"period: {period!r}: day or month")
    money = _money(amount, "amount", problems)
    hard = None if hard_limit is None else _money(hard_limit, "hard_limit", problems)
    if not _CURRENCY.match(currency):
        problems.append(f"currency: {currency!r}: a three-letter code such as USD")
    if thresholds_pct is None:
        problems.append("thresholds_pct: percents like 50,80,100")
        pcts: tuple[int, ...] = ()
    else:
        pcts = tuple(sorted(set(thresholds_pct)))
        if any(p <= 0 for p in pcts):
            problems.append("thresholds_pct: every threshold must be above 0")
    if problems or money is None:
        return None, problems
    row = BudgetRow(
        budget_id=budget_id,
        tenant_id=tenant_id,
        scope=scope,
        scope_value=scope_value,
        period=period,
        amount=money,
        currency=currency,
        thresholds_pct=pcts,
        hard_limit=hard,
    )
    return row, []
