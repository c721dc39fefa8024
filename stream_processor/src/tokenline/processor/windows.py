"""Tumbling-window arithmetic and the per-window aggregates, free of any framework.

A window is half-open, ``[window_start, window_start + size)``, with ``window_start`` the
event's ``occurred_at`` floored to the window size (UTC).

The processor sums each batch of events into :class:`Deltas`: integer counters (and an exact
Decimal cost) per (tenant, provider, model, window), sent as ``UsageRollup`` records that
*add* to their window (see the processor README: the rollup topic carries deltas, in the
transaction that commits the batch's offsets, so each counts exactly once). No window state
is kept between batches, so none can expire early or be lost.

The replay job rebuilds whole windows with :func:`apply`, each as the ``UsageRollup`` record of
the window's total: it remembers the highest source offset it has applied
(``max_source_offset``, per ``source_partition``), and an event at or below it is skipped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenline.schemas import PricedUsageEvent, UsageRollup

__all__ = [
    "WINDOW_SECONDS",
    "Deltas",
    "apply",
    "model_of",
    "parse_key",
    "rollup_key",
    "window_end",
    "window_start",
]

WINDOW_SECONDS = 60
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(occurred_at: datetime, size_s: int = WINDOW_SECONDS) -> datetime:
    """The start of the tumbling window holding ``occurred_at`` (floored, UTC)."""
    if occurred_at.tzinfo is None:
        msg = "occurred_at must be timezone-aware"
        raise ValueError(msg)
    micros = (occurred_at - _EPOCH) // timedelta(microseconds=1)
    size_us = size_s * 1_000_000
    return _EPOCH + timedelta(microseconds=micros - micros % size_us)


def window_end(start: datetime, size_s: int = WINDOW_SECONDS) -> datetime:
    """The exclusive end of the window starting at ``start``."""
    return start + timedelta(seconds=size_s)


def rollup_key(tenant_id: str, provider: str, model: str) -> str:
    """The table key of a (tenant, provider, model) series: unambiguous JSON text."""
    return json.dumps([tenant_id, provider, model], separators=(",", ":"))


def parse_key(key: str) -> tuple[str, str, str]:
    """Inverse of :func:`rollup_key`."""
    tenant_id, provider, model = json.loads(key)
    return str(tenant_id), str(provider), str(model)


def model_of(priced: PricedUsageEvent) -> str:
    """The model a rollup is grouped by: canonical when known, else what the event named."""
    event = priced["event"]
    return (
        priced["canonical_model"]
        or event["response_model"]
        or event["request_model"]
        or event["deployment"]
        or "unknown"
    )


def _empty(priced: PricedUsageEvent, start: datetime, size_s: int) -> UsageRollup:
    event = priced["event"]
    return {
        "tenant_id": event["tenant_id"],
        "window_start": start,
        "window_seconds": size_s,
        "provider": event["provider"],
        "model": model_of(priced),
        "requests": 0,
        "failures": 0,
        "input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "cost_total": _ZERO,
        "currency": "USD",
        "unpriced_count": 0,
        "latency_ms_sum": 0,
        "latency_ms_max": 0,
        "source_partition": -1,
        "max_source_offset": -1,
        "updated_at": start,
    }


def apply(
    value: UsageRollup | None,
    priced: PricedUsageEvent,
    partition: int,
    offset: int,
    size_s: int = WINDOW_SECONDS,
) -> UsageRollup | None:
    """The window's total with ``priced`` added, or ``None`` when it was already applied.

    ``value`` is the current total of the event's window, ``None`` for a new one (the window
    is the event's, its series that of ``value``: the caller keys windows by series). An event
    from the same source partition at or below ``max_source_offset`` is a redelivery and is
    skipped. The input value is not modified.
    """
    event = priced["event"]
    if value is None:
        current = _empty(priced, window_start(event["occurred_at"], size_s), size_s)
    else:
        if value["source_partition"] == partition and offset <= value["max_source_offset"]:
            return None
        current = value.copy()
    usage = event["usage"]
    current["requests"] += 1
    current["failures"] += 0 if event["success"] else 1
    current["input_tokens"] += usage["input_tokens"]
    current["cache_read_input_tokens"] += usage["cache_read_input_tokens"]
    current["cache_write_input_tokens"] += usage["cache_write_input_tokens"]
    current["output_tokens"] += usage["output_tokens"]
    current["reasoning_tokens"] += usage["reasoning_tokens"]
    cost = priced["cost"]
    if cost is None:
        current["unpriced_count"] += 1
    else:
        current["cost_total"] += cost["total"]
        current["currency"] = priced["currency"]
    current["latency_ms_sum"] += event["latency_ms"]
    current["latency_ms_max"] = max(current["latency_ms_max"], event["latency_ms"])
    current["source_partition"] = partition
    current["max_source_offset"] = offset
    current["updated_at"] = priced["priced_at"]
    return current


_SUMS = 10  # requests, failures, the five token buckets, unpriced, latency sum, latency max


class Deltas:
    """What one batch of priced events adds to each window: counters, an exact cost, a max."""

    __slots__ = ("_cost", "_size", "_sums", "_where")

    def __init__(self, size_s: int = WINDOW_SECONDS) -> None:
        self._size = timedelta(seconds=size_s)
        self._sums: dict[tuple[str, str, str, int], list[int]] = {}
        self._cost: dict[tuple[str, str, str, int], tuple[Decimal, str]] = {}
        self._where: dict[tuple[str, str, str, int], tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self._sums)

    def add(self, priced: PricedUsageEvent, partition: int, offset: int) -> None:
        """Count one event in its window (``partition``/``offset``: where it was read)."""
        event = priced["event"]
        key = (
            event["tenant_id"],
            event["provider"],
            model_of(priced),
            (event["occurred_at"] - _EPOCH) // self._size,  # exact integer floor
        )
        sums = self._sums.get(key)
        if sums is None:
            sums = self._sums[key] = [0] * _SUMS
        usage = event["usage"]
        latency = event["latency_ms"]
        sums[0] += 1
        sums[1] += 0 if event["success"] else 1
        sums[2] += usage["input_tokens"]
        sums[3] += usage["cache_read_input_tokens"]
        sums[4] += usage["cache_write_input_tokens"]
        sums[5] += usage["output_tokens"]
        sums[6] += usage["reasoning_tokens"]
        sums[8] += latency
        sums[9] = max(sums[9], latency)
        cost = priced["cost"]
        if cost is None:
            sums[7] += 1
        else:
            total, _ = self._cost.get(key, (_ZERO, ""))
            self._cost[key] = (total + cost["total"], priced["currency"])
        self._where[key] = (partition, offset)

    def rollups(self, updated_at: datetime) -> list[UsageRollup]:
        """One ``UsageRollup`` delta per window the batch touched."""
        size_s = int(self._size.total_seconds())
        out: list[UsageRollup] = []
        for key, sums in self._sums.items():
            tenant_id, provider, model, index = key
            cost, currency = self._cost.get(key, (_ZERO, "USD"))
            partition, offset = self._where[key]
            out.append(
                {
                    "tenant_id": tenant_id,
                    "window_start": _EPOCH + index * self._size,
                    "window_seconds": size_s,
                    "provider": provider,  # type: ignore[typeddict-item]
                    "model": model,
                    "requests": sums[0],
                    "failures": sums[1],
                    "input_tokens": sums[2],
                    "cache_read_input_tokens": sums[3],
                    "cache_write_input_tokens": sums[4],
                    "output_tokens": sums[5],
                    "reasoning_tokens": sums[6],
                    "cost_total": cost,
                    "currency": currency,
                    "unpriced_count": sums[7],
                    "latency_ms_sum": sums[8],
                    "latency_ms_max": sums[9],
                    "source_partition": partition,
                    "max_source_offset": offset,
                    "updated_at": updated_at,
                }
            )
        return out


_ZERO = Decimal(0)
