"""A budget's spend in its current period, as ``tokenline report`` gives it.

A period is the tenant-local day or month holding an instant (``[start, end)`` between
tenant-local midnights, so a report can read ``usage_tenant_daily`` for a tenant budget). The
spend is the report's priced cost of the budget's tenant and scope in that period, in the
budget's currency; the thresholds reached and the hard limit are judged against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tokenline.sink.report.run import run_report
from tokenline.sink.report.selection import Bound, ReportSpec, Selection

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.sink.report.run import ReportConnection

__all__ = ["BudgetSpend", "budget_spend", "local_period"]


@dataclass(frozen=True)
class BudgetSpend:
    """A budget's period (UTC instants), spend, thresholds reached and hard limit reached."""

    period_start: datetime
    period_end: datetime
    spend: Decimal
    thresholds_crossed: tuple[int, ...]
    hard_limit_exceeded: bool


def local_period(period: str, timezone: str, now: datetime) -> tuple[date, date]:
    """The tenant-local first day of the ``day`` or ``month`` holding ``now``, and the next's."""
    local = now.astimezone(ZoneInfo(timezone)).date()
    if period == "day":
        return local, local + timedelta(days=1)
    first = local.replace(day=1)
    return first, (first + timedelta(days=32)).replace(day=1)


def budget_spend(conn: ReportConnection, budget: Mapping[str, Any], now: datetime) -> BudgetSpend:
    """The spend of ``budget`` (a ``tokenline.Budget`` record) in its period holding ``now``."""
    start, end = local_period(budget["period"], budget["timezone"], now)
    scope = budget["scope"]
    filters = () if scope == "tenant" else ((scope, (budget["scope_value"],)),)
    selection = Selection((budget["tenant_id"],), Bound.on_date(start), Bound.on_date(end), filters)
    totals = run_report(conn, ReportSpec(selection)).totals.get(budget["currency"])
    spend = totals.cost_total if totals is not None else Decimal(0)
    amount: Decimal = budget["amount"]
    hard: Decimal | None = budget["hard_limit"]
    zone = ZoneInfo(budget["timezone"])
    return BudgetSpend(
        period_start=datetime(start.year, start.month, start.day, tzinfo=zone).astimezone(UTC),
        period_end=datetime(end.year, end.month, end.day, tzinfo=zone).astimezone(UTC),
        spend=spend,
        thresholds_crossed=tuple(p for p in budget["thresholds_pct"] if spend * 100 >= amount * p),
        hard_limit_exceeded=hard is not None and spend >= hard,
    )
