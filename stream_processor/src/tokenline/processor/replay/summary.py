"""The before/after summary of a replay, and its terminal table.

``before`` is what the database holds for the range now (per tenant and model, the model as
:func:`~tokenline.processor.windows.model_of` names it); ``after`` is what the replay computed
for the events it read. Unpriced events have no cost on either side, and are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.processor.replay.state import CostLine, Counts

__all__ = ["Summary", "SummaryRow", "render", "render_counts", "summarize"]


@dataclass(frozen=True)
class SummaryRow:
    """One tenant and model: replayed events, cost before and after."""

    tenant_id: str
    model: str
    events_before: int
    events: int
    unpriced: int
    before: Decimal
    after: Decimal
    unpriced_before: int = 0

    @property
    def delta(self) -> Decimal:
        """After minus before."""
        return self.after - self.before


@dataclass(frozen=True)
class Summary:
    """Every row, sorted by tenant and model, with the totals."""

    rows: list[SummaryRow] = field(default_factory=list)

    @property
    def before(self) -> Decimal:
        """Total cost before."""
        return sum((r.before for r in self.rows), Decimal(0))

    @property
    def after(self) -> Decimal:
        """Total cost after."""
        return sum((r.after for r in self.rows), Decimal(0))

    @property
    def delta(self) -> Decimal:
        """Total change."""
        return self.after - self.before

    @property
    def events(self) -> int:
        """Events replayed."""
        return sum(r.events for r in self.rows)


def summarize(
    before: Mapping[tuple[str, str], CostLine], after: Mapping[tuple[str, str], CostLine]
) -> Summary:
    """Pair the lines of both sides by (tenant, model); a side without the pair counts zero."""
    rows = []
    for tenant, model in sorted(set(before) | set(after)):
        old, new = before.get((tenant, model)), after.get((tenant, model))
        rows.append(
            SummaryRow(
                tenant_id=tenant,
                model=model,
                events_before=0 if old is None else old.events,
                events=0 if new is None else new.events,
                unpriced=0 if new is None else new.unpriced,
                before=Decimal(0) if old is None else old.cost,
                after=Decimal(0) if new is None else new.cost,
                unpriced_before=0 if old is None else old.unpriced,
            )
        )
    return Summary(rows)


def _money(value: Decimal) -> str:
    """Exact: every digit the amount has (at least two decimals), never rounded."""
    whole, _, digits = f"{value.normalize():,f}".partition(".")
    return f"{whole}.{digits.ljust(2, '0')}"


def _signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + _money(value) if value else "0"


def _cost(value: Decimal, events: int, unpriced: int) -> str:
    """An amount, or ``unpriced`` when every event of the line is (no cost is not $0)."""
    if events and unpriced == events:
        return "unpriced"
    return _money(value)


def render(summary: Summary, *, title: str) -> Table:
    """A rich table: tenant, model, events, unpriced, before, after, delta, then totals."""
    table = Table(title=title, show_footer=True)
    table.add_column("tenant", footer="total")
    table.add_column("model")
    table.add_column("events", justify="right", footer=f"{summary.events:,}")
    table.add_column(
        "unpriced", justify="right", footer=f"{sum(r.unpriced for r in summary.rows):,}"
    )
    table.add_column("before (USD)", justify="right", footer=_money(summary.before))
    table.add_column("after (USD)", justify="right", footer=_money(summary.after))
    table.add_column("delta (USD)", justify="right", footer=_signed(summary.delta))
    for row in summary.rows:
        table.add_row(
            row.tenant_id,
            row.model,
            f"{row.events:,}",
            f"{row.unpriced:,}",
            _cost(row.before, row.events_before, row.unpriced_before),
            _cost(row.after, row.events, row.unpriced),
            _signed(row.delta),
        )
    return table


def render_counts(
    counts: Counts, *, rollups: int, rollups_unchanged: int, dry_run: bool = False
) -> Table:
    """A small table of what happened to the records read (a dry run: what would)."""
    table = Table(title="records", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    dead = sum(counts.dead_lettered.values())
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts.dead_lettered.items()))
    for what, count in (
        ("read", counts.read),
        ("outside the range or tenants", counts.out_of_scope),
        ("duplicate event ids (counted once)", counts.duplicates),
        ("priced", counts.priced),
        ("unpriced", counts.unpriced),
        (f"dead-lettered{f' ({reasons})' if reasons else ''}", dead),
        ("windows that would change (dry run)" if dry_run else "windows re-emitted", rollups),
        ("windows unchanged", rollups_unchanged),
    ):
        table.add_row(what, f"{count:,}")
    return table
