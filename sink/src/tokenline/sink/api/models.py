"""The JSON shapes of the API (they make the OpenAPI document). Money is decimal text."""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic reads it
from decimal import Decimal  # noqa: TC003 - pydantic reads it
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tokenline.sink.report.render import measures
from tokenline.sink.report.values import decimal_text, json_value

if TYPE_CHECKING:
    from tokenline.sink.report.model import Report, Totals

__all__ = [
    "Accepted",
    "ErrorOut",
    "Invalid",
    "Page",
    "ReplayRunOut",
    "ReportOut",
    "RowOut",
    "TotalsOut",
    "report_out",
    "totals_out",
]

Money = str  # decimal text, e.g. "0.025350000000"
_MONEY = Field(pattern=r"^-?\d+(\.\d+)?$", description="Decimal text, exact; never a float.")


class TotalsOut(BaseModel):
    """Sums over a set of calls in one currency, and the averages derived from them.

    The fields and their names are those of ``tokenline report --format json``.
    """

    model_config = ConfigDict(frozen=True)

    requests: int
    succeeded: int
    failed: int
    unpriced_requests: int
    input_tokens: int
    cache_read_input_tokens: int
    cache_write_input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cost_input: Money = _MONEY
    cost_cache_read: Money = _MONEY
    cost_cache_write: Money = _MONEY
    cost_output: Money = _MONEY
    cost_reasoning: Money = _MONEY
    cost_total: Money = _MONEY
    avg_cost_per_request: Money | None = Field(
        default=None, description="Over priced calls; null without priced calls."
    )
    latency_ms_sum: int | None
    avg_latency_ms: int | None
    max_latency_ms: int | None


class RowOut(BaseModel):
    """One group: its dimension values, currency and totals."""

    group: dict[str, str | None]
    currency: str
    totals: TotalsOut


class Page(BaseModel):
    """Where this page of rows lies; ask again with ``offset=next_offset`` for more."""

    limit: int
    offset: int
    total_rows: int
    next_offset: int | None


class ReportOut(BaseModel):
    """A report: rows per group and currency, and a total per currency over every row."""

    tenant_id: str
    range: str
    group_by: list[str]
    source: str
    rows: list[RowOut]
    totals: dict[str, TotalsOut]
    page: Page


class ReplayRunOut(BaseModel):
    """One ``tokenline replay`` run."""

    id: int
    started_at: datetime
    finished_at: datetime | None
    range_from: datetime
    range_to: datetime
    tenants: list[str] | None
    new_pricing_version: str | None
    cost_before: Money | None
    cost_after: Money | None
    events_count: int
    dry_run: bool
    status: str


class Accepted(BaseModel):
    """Events produced to the raw topic and acknowledged by Kafka."""

    accepted: int
    event_ids: list[str]


class Invalid(BaseModel):
    """Every problem of a refused ingest; nothing of the request was sent."""

    detail: str
    problems: list[str]


class ErrorOut(BaseModel):
    """An error."""

    detail: str


def totals_out(totals: Totals) -> TotalsOut:
    """Totals as the report's JSON gives them (amounts as exact decimal text)."""
    return TotalsOut(**{name: json_value(value) for name, value in measures(totals).items()})


def report_out(tenant_id: str, report: Report, limit: int, offset: int) -> ReportOut:
    """One page of ``report``'s rows; totals are over every row, not just the page."""
    group_by = list(report.spec.group_by)
    rows = report.rows[offset : offset + limit]
    end = offset + len(rows)
    return ReportOut(
        tenant_id=tenant_id,
        range=report.spec.selection.describe_range(),
        group_by=group_by,
        source=report.source,
        rows=[
            RowOut(
                group={
                    name: (None if key is None else str(json_value(key)))
                    for name, key in zip(group_by, row.keys, strict=True)
                },
                currency=row.currency,
                totals=totals_out(row.totals),
            )
            for row in rows
        ],
        totals={currency: totals_out(t) for currency, t in sorted(report.totals.items())},
        page=Page(
            limit=limit,
            offset=offset,
            total_rows=len(report.rows),
            next_offset=end if end < len(report.rows) else None,
        ),
    )


def money_or_none(value: Decimal | None) -> str | None:
    """Decimal text, or None."""
    return None if value is None else decimal_text(value)
