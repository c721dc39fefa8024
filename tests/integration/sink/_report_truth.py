"""Brute-force report totals computed in Python from the landed rows (the ground truth)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tokenline.sink.report.model import Totals

if TYPE_CHECKING:
    from collections.abc import Callable

Row = dict[str, Any]


def dimension(row: Row, name: str, tz: str) -> Any:
    local = row["occurred_at"].astimezone(ZoneInfo(tz))
    return {
        "tenant": lambda: row["tenant_id"],
        "provider": lambda: row["provider"],
        "model": lambda: row["canonical_model"] or row["response_model"] or row["request_model"],
        "project": lambda: row["project"],
        "team": lambda: row.get("attributed_team") or row["team"],
        "user": lambda: row["user_id"],
        "session": lambda: row.get("session_id"),
        "host": lambda: row.get("hostname"),
        "service": lambda: row.get("attributed_service") or row.get("host_service_name"),
        "cloud": lambda: row.get("attributed_cloud") or row.get("host_cloud"),
        "operation": lambda: row["operation"],
        "unpriced_reason": lambda: row.get("unpriced_reason"),
        "day": local.date,
        "month": lambda: date(local.year, local.month, 1),
    }[name]()


def totals_of(rows: list[Row]) -> Totals:
    total = Totals()
    for row in rows:
        priced = row["pricing_status"] == "priced"
        total += Totals(
            requests=1,
            failures=0 if row["success"] else 1,
            unpriced_count=0 if priced else 1,
            input_tokens=row["input_tokens"],
            cache_read_input_tokens=row["cache_read_input_tokens"],
            cache_write_input_tokens=row["cache_write_input_tokens"],
            output_tokens=row["output_tokens"],
            reasoning_tokens=row["reasoning_tokens"],
            cost_input=row["cost_input"] or Decimal(0),
            cost_cache_read=row["cost_cache_read"] or Decimal(0),
            cost_cache_write=row["cost_cache_write"] or Decimal(0),
            cost_output=row["cost_output"] or Decimal(0),
            cost_reasoning=row["cost_reasoning"] or Decimal(0),
            cost_total=row["cost_total"] or Decimal(0),
            latency_ms_sum=row["latency_ms"],
            latency_ms_max=row["latency_ms"],
        )
    return total


def brute_force(
    rows: list[Row],
    timezones: dict[str, str],
    group_by: tuple[str, ...],
    keep: Callable[[Row, datetime], bool],
) -> dict[tuple[Any, ...], Totals]:
    """Group ``rows`` kept by ``keep(row, local_time)`` by ``group_by`` and currency."""
    groups: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        tz = timezones.get(row["tenant_id"], "UTC")
        local = row["occurred_at"].astimezone(ZoneInfo(tz)).replace(tzinfo=None)
        if not keep(row, local):
            continue
        key = (*(dimension(row, name, tz) for name in group_by), row["currency"])
        groups.setdefault(key, []).append(row)
    return {key: totals_of(members) for key, members in groups.items()}
