"""Which recomputed windows to re-emit on the rollup topic: those that differ from the stored.

The rollup topic is a live feed for other consumers; the sink does not read it (it changes
``usage_rollup_1m`` itself, in the transaction that stores the re-priced events). Windows whose
totals equal the stored row are not re-sent, so a second identical replay sends nothing. A
stored window of the range that the replay found no event for (its events now count under
another model, say) is re-sent empty, so the feed's windows add up to the events again.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokenline.processor.windows import to_rollup

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.processor.replay.state import WindowKey
    from tokenline.processor.windows import WindowValue
    from tokenline.schemas import UsageRollup

__all__ = ["COMPARED", "StoredKey", "rollups_to_emit"]

StoredKey = tuple[str, datetime, str, str]
"""``(tenant_id, window_start, provider, model)``: the primary key of ``usage_rollup_1m``."""

#: The columns whose values make a window; ``updated_at`` and the source offsets do not.
COMPARED = (
    "window_seconds",
    "requests",
    "failures",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_total",
    "currency",
    "unpriced_count",
    "latency_ms_sum",
    "latency_ms_max",
)


def _same(rollup: UsageRollup, stored: Mapping[str, Any]) -> bool:
    return all(rollup[c] == stored[c] for c in COMPARED)  # type: ignore[literal-required]


def _empty(key: StoredKey, stored: Mapping[str, Any], updated_at: datetime) -> UsageRollup:
    tenant_id, start, provider, model = key
    return {
        "tenant_id": tenant_id,
        "window_start": start,
        "window_seconds": int(stored["window_seconds"]),
        "provider": provider,  # type: ignore[typeddict-item]
        "model": model,
        "requests": 0,
        "failures": 0,
        "input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cost_total": Decimal(0),
        "currency": str(stored["currency"]),
        "unpriced_count": 0,
        "latency_ms_sum": 0,
        "latency_ms_max": 0,
        "source_partition": int(stored["source_partition"]),
        "max_source_offset": int(stored["max_source_offset"]),
        "updated_at": updated_at,
    }


def rollups_to_emit(
    windows: Mapping[WindowKey, WindowValue],
    stored: Mapping[StoredKey, Mapping[str, Any]],
    *,
    updated_at: datetime,
) -> tuple[list[UsageRollup], int]:
    """The rollups to send (changed, new, or emptied) and how many windows were unchanged."""
    out: list[UsageRollup] = []
    unchanged = 0
    recomputed: set[StoredKey] = set()
    for (series, _), value in sorted(windows.items()):
        rollup = to_rollup(series, value)
        key: StoredKey = (
            rollup["tenant_id"],
            rollup["window_start"],
            rollup["provider"],
            rollup["model"],
        )
        recomputed.add(key)
        old = stored.get(key)
        if old is not None and _same(rollup, old):
            unchanged += 1
        else:
            out.append(rollup)
    for gone in sorted(set(stored) - recomputed):
        old = stored[gone]
        if old["requests"] == 0 and old["cost_total"] == 0:
            unchanged += 1
        else:
            out.append(_empty(gone, old, updated_at))
    return out, unchanged
