"""A report as a terminal table (rich), JSON, CSV or JSON Lines.

JSON, CSV and JSON Lines carry every measure with every digit: amounts as decimal strings, the
average cost rounded half-even to 12 places, average latency in whole milliseconds. CSV and JSON
Lines rows carry ``row_type``: ``group`` for a group, ``total`` for the total of a currency.
The table trims trailing zeros of amounts, which changes no value.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console
from rich.table import Table

from tokenline.sink.columns import COST_COLUMNS, TOKEN_COLUMNS
from tokenline.sink.report.model import Totals
from tokenline.sink.report.values import csv_value, decimal_text, json_value

if TYPE_CHECKING:
    from collections.abc import Iterator
    from decimal import Decimal
    from typing import TextIO

    from tokenline.sink.report.model import GroupKey, Report

__all__ = ["FORMATS", "MEASURE_FIELDS", "ReportFormat", "render", "report_records"]

ReportFormat = Literal["table", "json", "csv", "jsonl"]
FORMATS: tuple[ReportFormat, ...] = ("table", "json", "csv", "jsonl")

# Output fields of a row's measures, in order.
MEASURE_FIELDS = (
    "requests",
    "succeeded",
    "failed",
    "unpriced_requests",
    *TOKEN_COLUMNS,
    "total_tokens",
    *COST_COLUMNS,
    "avg_cost_per_request",
    "latency_ms_sum",
    "avg_latency_ms",
    "max_latency_ms",
)


def measures(totals: Totals) -> dict[str, Any]:
    """Return the output fields of ``totals`` (raw Python values)."""
    return {
        "requests": totals.requests,
        "succeeded": totals.succeeded,
        "failed": totals.failures,
        "unpriced_requests": totals.unpriced_count,
        "input_tokens": totals.input_tokens,
        "cache_read_input_tokens": totals.cache_read_input_tokens,
        "cache_write_input_tokens": totals.cache_write_input_tokens,
        "output_tokens": totals.output_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "total_tokens": totals.total_tokens,
        "cost_input": totals.cost_input,
        "cost_cache_read": totals.cost_cache_read,
        "cost_cache_write": totals.cost_cache_write,
        "cost_output": totals.cost_output,
        "cost_reasoning": totals.cost_reasoning,
        "cost_total": totals.cost_total,
        "avg_cost_per_request": totals.avg_cost_per_request,
        "latency_ms_sum": totals.latency_ms_sum,
        "avg_latency_ms": totals.avg_latency_ms,
        "max_latency_ms": totals.latency_ms_max,
    }


def report_records(report: Report) -> Iterator[dict[str, Any]]:
    """Yield one flat record per group, then one per currency total (raw Python values).

    Without a grouping there are only the totals.
    """
    group_by = report.spec.group_by
    for row in report.rows if group_by else ():
        keys = dict(zip(group_by, row.keys, strict=True))
        yield {"row_type": "group", **keys, "currency": row.currency, **measures(row.totals)}
    for currency, totals in report.totals.items():
        keys = dict.fromkeys(group_by)
        yield {"row_type": "total", **keys, "currency": currency, **measures(totals)}


def _header(report: Report) -> dict[str, Any]:
    selection = report.spec.selection
    return {
        "tenants": list(selection.tenants) if selection.tenants is not None else None,
        "from": selection.start.describe(),
        "to": selection.end.describe() if selection.end is not None else None,
        "range": selection.describe_range(),
        "filters": {name: list(values) for name, values in selection.filters},
        "success": selection.success,
        "group_by": list(report.spec.group_by),
        "source": report.source,
    }


def render(report: Report, fmt: ReportFormat, stream: TextIO, *, width: int | None = None) -> None:
    """Write ``report`` to ``stream`` in ``fmt``."""
    if fmt == "table":
        _table(report, stream, width)
        return
    records = [{k: json_value(v) for k, v in r.items()} for r in report_records(report)]
    if fmt == "json":
        document = _header(report)
        document["rows"] = [_without_type(r) for r in records if r["row_type"] == "group"]
        document["totals"] = [_without_type(r) for r in records if r["row_type"] == "total"]
        json.dump(document, stream, indent=2)
        stream.write("\n")
    elif fmt == "jsonl":
        for record in records:
            stream.write(json.dumps(record) + "\n")
    else:
        fieldnames = ["row_type", *report.spec.group_by, "currency", *MEASURE_FIELDS]
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(fieldnames)
        for raw in report_records(report):
            writer.writerow([csv_value(raw[name]) for name in fieldnames])


def _without_type(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "row_type"}


def _amount(value: Decimal | None) -> str:
    """Return an amount without trailing zeros (at least two decimals); exact."""
    if value is None:
        return "-"
    text = decimal_text(value)
    if "." in text:
        whole, fraction = text.split(".")
        fraction = fraction.rstrip("0").ljust(2, "0")
        text = f"{whole}.{fraction}"
    return text


def _key(value: GroupKey) -> str:
    return "(none)" if value is None else str(value)


def _table(report: Report, stream: TextIO, width: int | None) -> None:
    selection = report.spec.selection
    tenants = ", ".join(selection.tenants) if selection.tenants is not None else "all tenants"
    by = f" by {', '.join(report.spec.group_by)}" if report.spec.group_by else ""
    table = Table(
        title=f"Usage of {tenants}{by}, {selection.describe_range()}",
        caption=f"source: {report.source}; avg cost over priced requests",
        title_justify="left",
    )
    for name in report.spec.group_by:
        table.add_column(name.capitalize())
    table.add_column("Cur")
    numeric = (
        "Requests",
        "OK",
        "Failed",
        "Input",
        "Cache read",
        "Cache write",
        "Output",
        "Reasoning",
        "Cost",
        "Unpriced",
        "Avg cost/req",
        "Avg ms",
    )
    for title in numeric:
        table.add_column(title, justify="right")

    def cells(totals: Totals) -> list[str]:
        avg_ms = totals.avg_latency_ms
        return [
            f"{totals.requests:,}",
            f"{totals.succeeded:,}",
            f"{totals.failures:,}",
            f"{totals.input_tokens:,}",
            f"{totals.cache_read_input_tokens:,}",
            f"{totals.cache_write_input_tokens:,}",
            f"{totals.output_tokens:,}",
            f"{totals.reasoning_tokens:,}",
            _amount(totals.cost_total),
            f"{totals.unpriced_count:,}",
            _amount(totals.avg_cost_per_request),
            "-" if avg_ms is None else f"{avg_ms:,}",
        ]

    for row in report.rows if report.spec.group_by else ():
        table.add_row(*[_key(k) for k in row.keys], row.currency, *cells(row.totals))
    if report.rows and report.spec.group_by:
        table.add_section()
    label = ["TOTAL"] + [""] * (len(report.spec.group_by) - 1) if report.spec.group_by else []
    for currency, total in (report.totals or {"-": Totals()}).items():
        table.add_row(*label, currency, *cells(total), style="bold")
    if stream.isatty():  # rich sizes the table to the terminal and styles it
        Console(file=stream, width=width, highlight=False).print(table)
        return
    buffer = io.StringIO()
    Console(file=buffer, width=width or 220, highlight=False).print(table)
    stream.writelines(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())
