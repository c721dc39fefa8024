"""Budgets as the evaluator holds them, and which events count for which budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from decimal import Decimal

    from tokenline.schemas import Budget as BudgetRecord
    from tokenline.schemas import PricedUsageEvent

__all__ = ["RATE_PREFIX", "SCOPES", "Budget", "BudgetBook", "RateRule", "attribution_of"]

#: The budget id of a tenant's spend-rate buckets: ``~rate/{tenant}`` (never a real budget id).
RATE_PREFIX = "~rate/"

#: Scopes a budget can have, and the event attribute each one matches.
SCOPES = ("tenant", "project", "team", "user")


@dataclass(frozen=True)
class Budget:
    """One budget: whose spend it sums, per which period, and its lines."""

    budget_id: str
    tenant_id: str
    scope: str
    scope_value: str | None
    period: str
    timezone: str
    amount: Decimal
    currency: str
    thresholds_pct: tuple[int, ...]
    hard_limit: Decimal | None
    version: int

    @classmethod
    def from_record(cls, record: BudgetRecord) -> Budget:
        """The budget a ``tokenline.Budget`` record describes."""
        return cls(
            budget_id=record["budget_id"],
            tenant_id=record["tenant_id"],
            scope=record["scope"],
            scope_value=record["scope_value"],
            period=record["period"],
            timezone=record["timezone"],
            amount=record["amount"],
            currency=record["currency"],
            thresholds_pct=tuple(sorted(set(record["thresholds_pct"]))),
            hard_limit=record["hard_limit"],
            version=record["version"],
        )

    def threshold_amount(self, pct: int) -> Decimal:
        """The spend at which the soft threshold ``pct`` is crossed."""
        return self.amount * pct / 100

    def exceeded(self, spend: Decimal) -> bool:
        """Whether ``spend`` is at or over the hard limit (never, without one)."""
        return self.hard_limit is not None and spend >= self.hard_limit


@dataclass(frozen=True)
class RateRule:
    """The spend-rate alert: a clock hour's spend against the mean of the hours before it.

    It fires once per hour and tenant (a tenant with at least one budget) when the hour's
    spend reaches ``factor`` times the mean of the ``baseline_hours`` before it (hours without
    spend count 0), that mean is above 0, and the hour's spend is at least ``min_spend``.
    """

    factor: Decimal
    min_spend: Decimal
    baseline_hours: int = 24

    def budget(self, tenant_id: str, currency: str) -> Budget:
        """The pseudo-budget whose hourly periods hold the tenant's spend."""
        return Budget(
            budget_id=RATE_PREFIX + tenant_id,
            tenant_id=tenant_id,
            scope="tenant",
            scope_value=None,
            period="hour",
            timezone="UTC",
            amount=self.min_spend,
            currency=currency,
            thresholds_pct=(),
            hard_limit=None,
            version=0,
        )


def attribution_of(priced: PricedUsageEvent) -> dict[str, str | None]:
    """The value of each scope for a priced event (team: the enrichment's, else the caller's)."""
    event = priced["event"]
    return {
        "tenant": event["tenant_id"],
        "project": event["project"],
        "team": priced["team"] or event["team"],
        "user": event["user_id"],
    }


class BudgetBook:
    """The known budgets, by tenant; a newer version of a budget replaces an older one."""

    def __init__(self, budgets: Iterable[Budget] = ()) -> None:
        self._by_id: dict[str, Budget] = {}
        self._by_tenant: dict[str, list[Budget]] = {}
        for budget in budgets:
            self.put(budget)

    def put(self, budget: Budget) -> bool:
        """Add or replace ``budget``; False when the book already has that version or newer."""
        known = self._by_id.get(budget.budget_id)
        if known is not None and known.version >= budget.version:
            return False
        if known is not None:
            self._remove(known)
        self._by_id[budget.budget_id] = budget
        self._by_tenant.setdefault(budget.tenant_id, []).append(budget)
        return True

    def delete(self, budget_id: str) -> Budget | None:
        """Forget a budget; return it if it was known."""
        known = self._by_id.pop(budget_id, None)
        if known is not None:
            self._remove(known)
        return known

    def _remove(self, budget: Budget) -> None:
        rest = [b for b in self._by_tenant[budget.tenant_id] if b.budget_id != budget.budget_id]
        if rest:
            self._by_tenant[budget.tenant_id] = rest
        else:
            del self._by_tenant[budget.tenant_id]

    def get(self, budget_id: str) -> Budget | None:
        """The budget with this id, if known."""
        return self._by_id.get(budget_id)

    def matching(self, priced: PricedUsageEvent) -> list[Budget]:
        """The budgets whose scope the event's attribution falls in."""
        candidates = self._by_tenant.get(priced["event"]["tenant_id"])
        if not candidates:
            return []
        values: dict[str, Any] = attribution_of(priced)
        return [
            b for b in candidates if b.scope == "tenant" or values.get(b.scope) == b.scope_value
        ]

    def __len__(self) -> int:
        return len(self._by_id)
