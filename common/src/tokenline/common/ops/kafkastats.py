"""The lag of every assigned partition, from librdkafka's statistics.

A consumer with ``statistics.interval.ms`` set hands its ``stats_cb`` a JSON document every
interval; for each assigned partition it holds the last stable offset (``ls_offset``: the
high watermark a ``read_committed`` consumer may read up to) and the application's position
(``app_offset``, or ``next_offset`` before the first message). Their difference is the lag,
known for partitions that never delivered a message too, without asking the broker.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["STATS_INTERVAL_MS", "assigned_lags"]

STATS_INTERVAL_MS = 3000


def assigned_lags(stats: str | bytes, topic: str) -> dict[int, int]:
    """Partition to lag, for ``topic``'s partitions this consumer fetches (assigned)."""
    try:
        doc: Any = json.loads(stats)
        partitions = doc["topics"][topic]["partitions"]
    except (ValueError, KeyError, TypeError):
        return {}
    lags: dict[int, int] = {}
    for key, part in partitions.items():
        partition = int(key)
        if partition < 0 or part.get("fetch_state") in (None, "none", "stopped"):
            continue
        end = part.get("ls_offset", -1)
        position = part.get("app_offset", -1)
        if position < 0:
            position = part.get("next_offset", -1)
        if end >= 0 and position >= 0:
            lags[partition] = max(end - position, 0)
    return lags
