"""Spend per budget and period, and what each priced event changes in it: pure, no Kafka.

The state of one priced-topic partition is two tables, both kept on the compacted state topic
(its partition = the priced partition, so it moves with it in a rebalance):

- ``s/{budget_id}/{period_start}``: the period's spend, the soft thresholds already alerted
  and whether the hard-limit alert went out;
- ``e/{event_id}``: the cost each counted event added and the (budget, period) keys it added
  it to. A priced event seen again (a redelivery, or a replay's re-pricing) first takes its
  old cost back out, then adds its new one: spend always equals the sum of the latest costs.

A threshold, once alerted in a period, stays alerted: a replay that lowers spend below it does
not send it again, and one that raises spend over a threshold not yet alerted sends that one.
Each alert is produced in the transaction that records it in the state, so exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from tokenline.processor.budgets.periods import period_bounds

if TYPE_CHECKING:
    from tokenline.processor.budgets.model import Budget, BudgetBook, RateRule
    from tokenline.schemas import BudgetAlert, BudgetStatus, PricedUsageEvent

__all__ = ["Changes", "Counted", "PartitionState", "Spend", "SpendKey"]

SpendKey = tuple[str, datetime]
"""(budget_id, period_start)."""

_ZERO = Decimal(0)


@dataclass
class Spend:
    """One budget's spend in one period."""

    budget_id: str
    period_start: datetime
    period_end: datetime
    spend: Decimal = _ZERO
    alerted_pct: set[int] = field(default_factory=set)
    hard_alerted: bool = False

    def encode(self) -> bytes:
        """The state topic's value."""
        return json.dumps(
            {
                "budget_id": self.budget_id,
                "period_start": self.period_start.isoformat(),
                "period_end": self.period_end.isoformat(),
                "spend": str(self.spend),
                "alerted_pct": sorted(self.alerted_pct),
                "hard_alerted": self.hard_alerted,
            }
        ).encode()

    @classmethod
    def decode(cls, value: bytes) -> Spend:
        """A value written by :meth:`encode`."""
        doc = json.loads(value)
        return cls(
            budget_id=doc["budget_id"],
            period_start=datetime.fromisoformat(doc["period_start"]),
            period_end=datetime.fromisoformat(doc["period_end"]),
            spend=Decimal(doc["spend"]),
            alerted_pct=set(doc["alerted_pct"]),
            hard_alerted=doc["hard_alerted"],
        )


@dataclass(frozen=True)
class Counted:
    """What one event added: its cost, to each of these (budget, period) keys."""

    cost: Decimal
    keys: tuple[SpendKey, ...]

    def encode(self) -> bytes:
        """The state topic's value."""
        keys = [[b, start.isoformat()] for b, start in self.keys]
        return json.dumps({"cost": str(self.cost), "keys": keys}).encode()

    @classmethod
    def decode(cls, value: bytes) -> Counted:
        """A value written by :meth:`encode`."""
        doc = json.loads(value)
        keys = tuple((b, datetime.fromisoformat(s)) for b, s in doc["keys"])
        return cls(cost=Decimal(doc["cost"]), keys=keys)


@dataclass
class Changes:
    """What a batch (or a budget change) produces, in one transaction."""

    state: dict[str, bytes | None] = field(default_factory=dict)
    alerts: list[BudgetAlert] = field(default_factory=list)
    statuses: dict[str, BudgetStatus] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.state or self.alerts or self.statuses)


def spend_key(budget_id: str, period_start: datetime) -> str:
    """The state topic key of a spend record."""
    return f"s/{budget_id}/{period_start.isoformat()}"


class PartitionState:
    """The spend state of one priced-topic partition."""

    def __init__(self, rate: RateRule | None = None) -> None:
        self.rate = rate
        self.spends: dict[SpendKey, Spend] = {}
        self.events: dict[str, Counted] = {}
        self.horizon: datetime | None = None
        """Periods that ended at or before this are forgotten, and count nothing any more."""

    def load(self, key: bytes, value: bytes | None) -> None:
        """Apply one state-topic record while restoring (in offset order)."""
        text = key.decode()
        if text.startswith("e/"):
            if value is None:
                self.events.pop(text[2:], None)
            else:
                self.events[text[2:]] = Counted.decode(value)
        elif text.startswith("s/"):
            if value is None:
                budget_id, _, start = text[2:].rpartition("/")
                self.spends.pop((budget_id, datetime.fromisoformat(start)), None)
            else:
                spend = Spend.decode(value)
                self.spends[spend.budget_id, spend.period_start] = spend

    def apply(
        self, book: BudgetBook, priced: PricedUsageEvent, now: datetime, changes: Changes
    ) -> None:
        """Count one priced event (again: only its difference), adding what changes."""
        event = priced["event"]
        event_id = str(event["event_id"])
        cost = priced["cost"]["total"] if priced["cost"] is not None else None
        at = event["occurred_at"]
        matched = [
            b
            for b in book.matching(priced)
            if b.currency == priced["currency"]
            and (self.horizon is None or period_bounds(b.period, b.timezone, at)[1] > self.horizon)
        ]
        if self.rate is not None and matched:
            matched.append(self.rate.budget(event["tenant_id"], priced["currency"]))
        keys = tuple((b.budget_id, period_bounds(b.period, b.timezone, at)[0]) for b in matched)
        new = Counted(cost if cost is not None else _ZERO, keys)
        old = self.events.get(event_id)
        if old == new or (old is None and not keys):
            return
        touched: set[SpendKey] = set()
        if old is not None:
            for key in old.keys:
                spend = self.spends.get(key)
                if spend is not None:
                    spend.spend -= old.cost
                    touched.add(key)
        by_id = {b.budget_id: b for b in matched}
        for budget, key in zip(matched, keys, strict=True):
            spend = self.spends.get(key)
            if spend is None:
                start, end = period_bounds(budget.period, budget.timezone, event["occurred_at"])
                spend = self.spends[key] = Spend(budget.budget_id, start, end)
            spend.spend += new.cost
            touched.add(key)
        self.events[event_id] = new
        changes.state[f"e/{event_id}"] = new.encode()
        for key in sorted(touched, key=lambda k: (k[0], k[1])):
            judged = book.get(key[0]) or by_id.get(key[0])
            if judged is not None:
                self._judge(judged, self.spends[key], now, changes, event_id)
            changes.state[spend_key(*key)] = self.spends[key].encode()

    def rebudget(self, budget: Budget, now: datetime, changes: Changes) -> None:
        """A budget changed: judge its periods' spend against the new lines."""
        for (budget_id, start), spend in sorted(self.spends.items(), key=lambda kv: kv[0][1]):
            if budget_id != budget.budget_id:
                continue
            before = (set(spend.alerted_pct), spend.hard_alerted)
            self._judge(budget, spend, now, changes, None)
            if before != (spend.alerted_pct, spend.hard_alerted):
                changes.state[spend_key(budget_id, start)] = spend.encode()

    def prune(self, horizon: datetime, changes: Changes) -> None:
        """Forget the periods that ended at or before ``horizon`` and the events only in them.

        Their alerts were sent; an event of such a period read later (a replay of an old
        range) counts nothing, so the state does not grow without end.
        """
        self.horizon = horizon
        old = {key for key, spend in self.spends.items() if spend.period_end <= horizon}
        if not old:
            return
        for key in old:
            del self.spends[key]
            changes.state[spend_key(*key)] = None
        for event_id, counted in list(self.events.items()):
            if not any(key in self.spends for key in counted.keys):
                del self.events[event_id]
                changes.state[f"e/{event_id}"] = None

    def _judge(
        self, budget: Budget, spend: Spend, now: datetime, changes: Changes, event_id: str | None
    ) -> None:
        if budget.period == "hour":
            self._judge_rate(budget, spend, now, changes, event_id)
            return
        for pct in budget.thresholds_pct:
            line = budget.threshold_amount(pct)
            if pct not in spend.alerted_pct and spend.spend >= line:
                spend.alerted_pct.add(pct)
                changes.alerts.append(_alert(budget, spend, now, pct, line, event_id))
        hard = budget.hard_limit
        if hard is not None and not spend.hard_alerted and spend.spend >= hard:
            spend.hard_alerted = True
            changes.alerts.append(_alert(budget, spend, now, None, hard, event_id))
        if spend.period_start <= now < spend.period_end:
            changes.statuses[budget.budget_id] = status_of(budget, spend, now)

    def _judge_rate(
        self, budget: Budget, spend: Spend, now: datetime, changes: Changes, event_id: str | None
    ) -> None:
        rate = self.rate
        if rate is None or spend.alerted_pct or spend.spend < rate.min_spend:
            return
        earlier = (
            self.spends.get((budget.budget_id, spend.period_start - timedelta(hours=h)))
            for h in range(1, rate.baseline_hours + 1)
        )
        baseline = sum((s.spend for s in earlier if s is not None), _ZERO) / rate.baseline_hours
        if baseline > 0 and spend.spend >= rate.factor * baseline:
            spend.alerted_pct.add(0)
            alert = _alert(budget, spend, now, None, rate.factor * baseline, event_id)
            alert["kind"] = "spend_rate"
            alert["alert_id"] = f"{budget.budget_id}/{spend.period_start.isoformat()}/rate"
            alert["budget_amount"] = _money(baseline)
            changes.alerts.append(alert)


def _alert(  # noqa: PLR0917 - the alert's six facts, each named at the one call site
    budget: Budget,
    spend: Spend,
    now: datetime,
    pct: int | None,
    line: Decimal,
    event_id: str | None,
) -> BudgetAlert:
    which = "hard" if pct is None else str(pct)
    return {
        "alert_id": f"{budget.budget_id}/{spend.period_start.isoformat()}/{which}",
        "kind": "hard_limit" if pct is None else "threshold",
        "budget_id": budget.budget_id,
        "tenant_id": budget.tenant_id,
        "scope": budget.scope,
        "scope_value": budget.scope_value,
        "period": budget.period,
        "timezone": budget.timezone,
        "period_start": spend.period_start,
        "period_end": spend.period_end,
        "threshold_pct": pct,
        "threshold_amount": _money(line),
        "spend": _money(spend.spend),
        "budget_amount": _money(budget.amount),
        "currency": budget.currency,
        "crossed_at": now,
        "event_id": event_id,
    }


def status_of(budget: Budget, spend: Spend, now: datetime) -> BudgetStatus:
    """The budget-status record of ``spend``."""
    return {
        "budget_id": budget.budget_id,
        "tenant_id": budget.tenant_id,
        "scope": budget.scope,
        "scope_value": budget.scope_value,
        "period_start": spend.period_start,
        "period_end": spend.period_end,
        "spend": _money(spend.spend),
        "amount": _money(budget.amount),
        "hard_limit": _money(budget.hard_limit) if budget.hard_limit is not None else None,
        "exceeded": budget.exceeded(spend.spend),
        "currency": budget.currency,
        "updated_at": now,
    }


_SCALE = Decimal("1e-12")


def _money(value: Decimal) -> Decimal:
    """``value`` at the contract's scale (12 places); the sums are exact at that scale."""
    return value.quantize(_SCALE)
