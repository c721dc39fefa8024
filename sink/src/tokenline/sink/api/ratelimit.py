"""A token bucket per key: ``limit`` requests a minute, bursts up to ``limit``.

Pure: the clock is passed in (monotonic seconds), so tests need no waiting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Per-key token buckets, safe across the server's threads."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str, limit_per_minute: int, now: float) -> float | None:
        """Take one request from ``key_id``'s bucket; None when allowed, else seconds to wait."""
        rate = limit_per_minute / 60.0
        with self._lock:
            bucket = self._buckets.get(key_id)
            if bucket is None:
                bucket = self._buckets[key_id] = _Bucket(float(limit_per_minute), now)
            bucket.tokens = min(float(limit_per_minute), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / rate
