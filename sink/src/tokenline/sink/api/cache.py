"""A short-lived, single-flight cache of report results, per API process.

A tenant's dashboard asks the same question many times a second; the answer may be up to
``ttl_s`` old (the responses already allow clients to keep it ``api_cache_max_age_s``). A miss
is computed once: concurrent requests for the same report wait for that one computation rather
than each running the query. ``ttl_s`` 0 turns it off. Keys are the report layer's frozen specs,
so what is cached is exactly what ``tokenline report`` computes for that spec.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

__all__ = ["ReportCache"]

T = TypeVar("T")


class ReportCache:
    """Results by key for ``ttl_s`` seconds, at most ``max_entries`` of them."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 1_024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._flights: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """Return the cached value of ``key``, or compute it (once, whoever else asks)."""
        if self._ttl_s <= 0:
            return compute()
        found = self._fresh(key)
        if found is not None:
            return found[1]  # type: ignore[no-any-return]
        with self._lock:
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:
            found = self._fresh(key)  # computed while this request waited
            if found is not None:
                return found[1]  # type: ignore[no-any-return]
            value = compute()
            with self._lock:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[key] = (self._clock(), value)
                self._flights.pop(key, None)
            return value

    def peek(self, key: Hashable) -> Any:
        """The fresh cached value of ``key``, or None (never computes, never waits long)."""
        if self._ttl_s <= 0:
            return None
        found = self._fresh(key)
        return None if found is None else found[1]

    def _fresh(self, key: Hashable) -> tuple[float, Any] | None:
        with self._lock:
            found = self._entries.get(key)
        if found is None or self._clock() - found[0] >= self._ttl_s:
            return None
        return found
