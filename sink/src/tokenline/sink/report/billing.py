"""The monthly billing CSV: per tenant, one line per provider and model, and a total line.

The month is the tenant's own (``tenants.timezone``; UTC without a row), cut at local midnight
exactly as ``tenant_monthly_totals`` cuts it. A line has the request counts, the token count of
every bucket, the cost of every bucket and the total cost, in the currency it was priced in;
amounts are exact decimal text. Unpriced calls are counted in ``unpriced_requests`` and add no
cost (they have none until a replay prices them).
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING

from tokenline.sink.columns import COST_COLUMNS, TOKEN_COLUMNS
from tokenline.sink.report.selection import ReportSpec, Selection, month_bounds
from tokenline.sink.report.values import csv_value

if TYPE_CHECKING:
    from typing import TextIO

    from tokenline.sink.report.model import Report, Totals

__all__ = ["BILLING_COLUMNS", "billing_spec", "write_billing_csv"]

BILLING_COLUMNS = (
    "tenant_id",
    "month",
    "timezone",
    "line",
    "provider",
    "model",
    "currency",
    "requests",
    "failed",
    "unpriced_requests",
    *TOKEN_COLUMNS,
    *COST_COLUMNS,
)


def billing_spec(tenants: tuple[str, ...] | None, month: str) -> ReportSpec:
    """Return the report behind a billing CSV: ``month`` (YYYY-MM) by tenant, provider, model."""
    start, end = month_bounds(month)
    return ReportSpec(Selection(tenants, start, end), group_by=("tenant", "provider", "model"))


def _cells(totals: Totals) -> list[object]:
    return [
        totals.requests,
        totals.failures,
        totals.unpriced_count,
        totals.input_tokens,
        totals.cache_read_input_tokens,
        totals.cache_write_input_tokens,
        totals.output_tokens,
        totals.reasoning_tokens,
        totals.cost_input,
        totals.cost_cache_read,
        totals.cost_cache_write,
        totals.cost_output,
        totals.cost_reasoning,
        totals.cost_total,
    ]


def write_billing_csv(report: Report, month: str, timezones: dict[str, str], stream: TextIO) -> int:
    """Write the billing lines of ``report`` (from :func:`billing_spec`); return the line count.

    Lines are sorted by tenant, currency, provider and model; each tenant and currency ends
    with a ``total`` line. ``timezones`` maps each tenant to its billing timezone.
    """
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(BILLING_COLUMNS)
    by_tenant: dict[tuple[str, str], list[tuple[str, str, Totals]]] = {}
    for row in report.rows:
        tenant, provider, model = (str(key) if key is not None else "" for key in row.keys)
        by_tenant.setdefault((tenant, row.currency), []).append((provider, model, row.totals))
    count = 0
    for (tenant, currency), lines in sorted(by_tenant.items()):
        zone = timezones.get(tenant, "UTC")
        total = None
        for provider, model, totals in sorted(lines, key=lambda line: (line[0], line[1])):
            head = [tenant, month, zone, "model", provider, model, currency]
            writer.writerow([csv_value(v) for v in head + _cells(totals)])
            total = totals if total is None else total + totals
            count += 1
        if total is not None:
            head = [tenant, month, zone, "total", "", "", currency]
            writer.writerow([csv_value(v) for v in head + _cells(total)])
            count += 1
    return count
