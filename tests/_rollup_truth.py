"""The rollup contract, checked in SQL: ``usage_rollup_1m`` equals the sums of ``usage_events``.

The raw side is written here, independently of the sink: one GROUP BY over the stored events by
(tenant, UTC minute, provider, model), the model as the processor names it (canonical, else
response model, else request model, else deployment, else ``unknown``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = ["RollupCheck", "check_rollups"]

_MEASURES = (
    "requests",
    "failures",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_total",
    "unpriced_count",
    "latency_ms_sum",
    "latency_ms_max",
)
_RAW = """
SELECT tenant_id, date_trunc('minute', occurred_at, 'UTC') AS window_start, provider,
    coalesce(nullif(canonical_model, ''), nullif(response_model, ''), nullif(request_model, ''),
        nullif(deployment, ''), 'unknown') AS model,
    count(*), count(*) FILTER (WHERE NOT success), sum(input_tokens),
    sum(cache_read_input_tokens), sum(cache_write_input_tokens), sum(output_tokens),
    sum(reasoning_tokens), coalesce(sum(cost_total), 0)::numeric(38,12),
    count(*) FILTER (WHERE pricing_status = 'unpriced'), sum(latency_ms), max(latency_ms)
FROM usage_events GROUP BY 1, 2, 3, 4
"""
_ROLLUP = (
    "SELECT tenant_id, window_start, provider, model, "
    + ", ".join(_MEASURES)
    + " FROM usage_rollup_1m"
)


_COST = _MEASURES.index("cost_total")


def _normal(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Counts as int (PostgreSQL sums bigints as numeric), the cost as the Decimal it is."""
    return tuple(v if i == _COST else int(v) for i, v in enumerate(values))


@dataclass(frozen=True)
class RollupCheck:
    """What was compared: windows and events on each side, and the keys that differ."""

    windows: int
    events: int
    distinct_events: int
    rollup_requests: int
    differing: list[tuple[Any, ...]]

    @property
    def exact(self) -> bool:
        """Every window equal to its raw sums and every event stored once."""
        return not self.differing and self.events == self.distinct_events


def check_rollups(database_url: str) -> RollupCheck:
    """Compare every ``usage_rollup_1m`` row with the raw sums of its events."""
    with psycopg.connect(database_url) as conn:
        raw = {tuple(r[:4]): _normal(r[4:]) for r in conn.execute(_RAW)}
        stored = {tuple(r[:4]): _normal(r[4:]) for r in conn.execute(_ROLLUP)}
        events, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM usage_events"
        ).fetchone() or (0, 0)
    differing = [
        (key, raw.get(key), stored.get(key))
        for key in sorted(raw.keys() | stored.keys())
        if raw.get(key) != stored.get(key)
    ]
    return RollupCheck(
        windows=len(raw),
        events=int(events),
        distinct_events=int(distinct),
        rollup_requests=sum(int(v[0]) for v in stored.values()),
        differing=differing,
    )
