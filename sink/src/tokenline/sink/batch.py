"""Pure batch arithmetic of the sink: duplicates, column order, offsets to commit, backoff.

Nothing here touches Kafka or PostgreSQL, so all of it is unit-tested without services.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenline.sink.models import UsageEvent, UsageRollup1m

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "EVENT_COLUMNS",
    "EVENT_KEY",
    "ROLLUP_COLUMNS",
    "ROLLUP_KEY",
    "backoff_ms",
    "dedupe_events",
    "first_copies",
    "offsets_to_commit",
    "split",
]

Row = dict[str, Any]

#: Columns the sink writes to ``usage_events`` (``ingested_at`` is left to the database).
EVENT_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in UsageEvent.__table__.columns if c.name != "ingested_at"
)
#: Columns of ``usage_rollup_1m``, all written.
ROLLUP_COLUMNS: tuple[str, ...] = tuple(c.name for c in UsageRollup1m.__table__.columns)
EVENT_KEY = ("event_id", "occurred_at")
ROLLUP_KEY = ("tenant_id", "window_start", "provider", "model")


def dedupe_events(rows: Iterable[Row]) -> list[Row]:
    """Keep one row per ``(event_id, occurred_at)``: the newest ``priced_at`` (last on ties).

    One ``INSERT ... ON CONFLICT DO UPDATE`` cannot touch the same row twice, so a batch
    holding an event twice (a producer retry, a replay) is reduced here, in arrival order.
    """
    kept: dict[tuple[Any, Any], Row] = {}
    for row in rows:
        event_id = row["event_id"]
        # UUID.__hash__ is Python code; its 128-bit int hashes in C (the hot path's cost).
        key = (getattr(event_id, "int", event_id), row["occurred_at"])
        seen = kept.setdefault(key, row)
        if seen is not row and row["priced_at"] >= seen["priced_at"]:
            kept[key] = row
    return list(kept.values())


def first_copies(rows: Iterable[Row]) -> tuple[list[Row], list[Row]]:
    """Split rows into the first copy of each ``event_id`` and the later copies, in order.

    After :func:`dedupe_events` two rows with one ``event_id`` differ in ``occurred_at``: the
    store lands the first ones, then the rest, which meet the first's identity and are refused
    (or land, when the first one was refused itself).
    """
    first: list[Row] = []
    later: list[Row] = []
    seen: set[Any] = set()
    for row in rows:
        event_id = row["event_id"]
        key = getattr(event_id, "int", event_id)
        if key in seen:
            later.append(row)
        else:
            seen.add(key)
            first.append(row)
    return first, later


def offsets_to_commit(positions: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """Return the offset to commit per ``(topic, partition)``: the highest seen plus one."""
    commit: dict[tuple[str, int], int] = {}
    for topic, partition, offset in positions:
        key = (topic, partition)
        if offset + 1 > commit.get(key, -1):
            commit[key] = offset + 1
    return commit


def backoff_ms(attempt: int, initial_ms: int, max_ms: int) -> int:
    """Return the capped exponential wait before retry ``attempt`` (1 for the first retry)."""
    return int(min(max_ms, initial_ms * 2 ** min(max(attempt - 1, 0), 30)))


def split(items: Sequence[Any]) -> tuple[Sequence[Any], Sequence[Any]]:
    """Halve ``items`` (the first half gets the smaller part when odd)."""
    middle = len(items) // 2
    return items[:middle], items[middle:]
