"""What a replay adds to the rollup feed: per window, the recomputed totals minus the stored.

The rollup topic is a live feed of *deltas* for other consumers (the processor sends what each
batch adds to each window); the sink does not read it (it changes ``usage_rollup_1m`` itself,
in the transaction that stores the re-priced events). A replay sends, for each window of its
range whose recomputed totals differ from the stored row, the difference: a re-priced window
gets its cost change, a window whose events now count under another model (say) gets their
removal, and the new key their addition. Windows that did not change send nothing, so a second
identical replay sends nothing. ``latency_ms_max`` is a maximum, not a sum: a delta carries the
recomputed one. The feed adds up to ``usage_rollup_1m`` again when no events arrived in the
range while the replay ran (those are in both the stored rows and the recomputed windows).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from tokenline.schemas.rollup import ROLLUP_MAX, ROLLUP_SUMS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.processor.replay.state import WindowKey
    from tokenline.schemas import UsageRollup

__all__ = ["COMPARED", "StoredKey", "rollups_to_emit"]

StoredKey = tuple[str, datetime, str, str]
"""``(tenant_id, window_start, provider, model)``: the primary key of ``usage_rollup_1m``."""

#: The columns whose values make a window; ``updated_at`` and the source offsets do not.
COMPARED = ("window_seconds", *ROLLUP_SUMS, "currency", ROLLUP_MAX)


def _same(rollup: UsageRollup, stored: Mapping[str, Any]) -> bool:
    return all(rollup[c] == stored[c] for c in COMPARED)  # type: ignore[literal-required]


def _minus(rollup: UsageRollup, stored: Mapping[str, Any] | None) -> UsageRollup:
    if stored is None:
        return rollup
    delta = dict(rollup)
    for column in ROLLUP_SUMS:
        delta[column] = rollup[column] - stored[column]  # type: ignore[literal-required]
    return delta  # type: ignore[return-value]


def _removed(key: StoredKey, stored: Mapping[str, Any], updated_at: datetime) -> UsageRollup:
    tenant_id, start, provider, model = key
    removal: dict[str, Any] = {
        "tenant_id": tenant_id,
        "window_start": start,
        "window_seconds": int(stored["window_seconds"]),
        "provider": provider,
        "model": model,
        "currency": str(stored["currency"]),
        "latency_ms_max": 0,
        "source_partition": int(stored["source_partition"]),
        "max_source_offset": int(stored["max_source_offset"]),
        "updated_at": updated_at,
    }
    for column in ROLLUP_SUMS:
        removal[column] = -stored[column]
    return removal  # type: ignore[return-value]


def rollups_to_emit(
    windows: Mapping[WindowKey, UsageRollup],
    stored: Mapping[StoredKey, Mapping[str, Any]],
    *,
    updated_at: datetime,
) -> tuple[list[UsageRollup], int]:
    """The deltas to send (changed, new, or emptied windows) and how many were unchanged."""
    out: list[UsageRollup] = []
    unchanged = 0
    recomputed: set[StoredKey] = set()
    for _, rollup in sorted(windows.items()):
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
            out.append(_minus(rollup, old))
    for gone in sorted(set(stored) - recomputed):
        old = stored[gone]
        if old["requests"] == 0 and old["cost_total"] == 0:
            unchanged += 1
        else:
            out.append(_removed(gone, old, updated_at))
    return out, unchanged
