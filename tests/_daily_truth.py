"""``usage_tenant_daily`` checked against the raw events, summed in Python with zoneinfo.

The truth is computed here, independently of the sink and of SQL: every stored event is read
back, its local day taken with :mod:`zoneinfo` in its tenant's timezone (``tenants``; UTC for a
tenant without a row), and its measures added under (tenant, day, provider, model, project,
team, currency), model and team as QUERIES.md defines them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

__all__ = ["DailyCheck", "check_daily", "daily_truth"]

_TOKENS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
)
_COSTS = (
    "cost_input",
    "cost_cache_read",
    "cost_cache_write",
    "cost_output",
    "cost_reasoning",
    "cost_total",
)
MEASURES = (
    "requests",
    "failures",
    "unpriced_count",
    *_TOKENS,
    *_COSTS,
    "latency_ms_sum",
    "latency_ms_max",
)
_KEY = ("tenant_id", "day", "provider", "model", "project", "team", "currency")


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def daily_truth(
    events: list[dict[str, Any]], zones: dict[str, str]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Sum ``events`` (usage_events rows) per tenant-local day and key."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for e in events:
        zone = ZoneInfo(zones.get(e["tenant_id"], "UTC"))
        key = (
            e["tenant_id"],
            e["occurred_at"].astimezone(zone).date(),
            e["provider"],
            _first(e["canonical_model"], e["response_model"], e["request_model"]),
            e["project"],
            _first(e["attributed_team"], e["team"]),
            e["currency"],
        )
        acc = out.setdefault(key, dict.fromkeys(MEASURES, 0) | dict.fromkeys(_COSTS, Decimal(0)))
        acc["requests"] += 1
        acc["failures"] += 0 if e["success"] else 1
        acc["unpriced_count"] += 1 if e["pricing_status"] == "unpriced" else 0
        for name in _TOKENS:
            acc[name] += e[name]
        for name in _COSTS:
            acc[name] += e[name] if e[name] is not None else Decimal(0)
        acc["latency_ms_sum"] += e["latency_ms"]
        acc["latency_ms_max"] = max(acc["latency_ms_max"], e["latency_ms"])
    return out


@dataclass(frozen=True)
class DailyCheck:
    """Rows on each side, events summed, and the keys that differ (key, truth, stored)."""

    rows: int
    events: int
    differing: list[tuple[Any, ...]]

    @property
    def exact(self) -> bool:
        """Every stored row equal to the raw sums, and no row missing or extra."""
        return not self.differing


def check_daily(database_url: str) -> DailyCheck:
    """Compare the whole of ``usage_tenant_daily`` with the zoneinfo sums of ``usage_events``."""
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        events = conn.execute("SELECT * FROM usage_events").fetchall()
        zones = {
            r["tenant_id"]: r["timezone"]
            for r in conn.execute("SELECT tenant_id, timezone FROM tenants")
        }
        stored = {
            tuple(r[k] for k in _KEY): {m: r[m] for m in MEASURES}
            for r in conn.execute("SELECT * FROM usage_tenant_daily")
        }
    truth = daily_truth(events, zones)
    differing = [
        (key, truth.get(key), stored.get(key))
        for key in truth.keys() | stored.keys()
        if truth.get(key) != stored.get(key)
    ]
    return DailyCheck(len(stored), len(events), differing)
