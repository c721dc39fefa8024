"""A short-lived, single-flight cache of report results, per API process.

A tenant's dashboard asks the same question many times a second; the answer may be up to
``ttl_s`` old (the responses already allow clients to keep it ``api_cache_max_age_s``), plus
the time one computation takes. Computations are single-flight: the first request for a key
runs the query; requests that come while it runs wait for it when there is nothing cached, and
are answered with the expired value when there is one (stale while revalidating), so an
expiry never stalls a busy report. ``ttl_s`` 0 turns it off. Keys hold the report layer's
frozen specs (and the page asked), and values are the answers rendered from what ``tokenline
report`` computes for that spec, so a cached request costs no rendering either.
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
        with self._lock:
            entry = self._entries.get(key)
            flight = self._flights.setdefault(key, threading.Lock())
        if entry is not None and self._clock() - entry[0] < self._ttl_s:
            return entry[1]  # type: ignore[no-any-return]
        if entry is not None and not flight.acquire(blocking=False):
            return entry[1]  # type: ignore[no-any-return] # being refreshed: the last value
        if entry is None:
            flight.acquire()
        try:
            found = self.peek(key, stale=False)  # computed while this request waited
            if found is not None:
                return found  # type: ignore[no-any-return]
            value = compute()
            with self._lock:
                if len(self._entries) >= self._max:
                    self._entries.clear()
                self._entries[key] = (self._clock(), value)
            return value
        finally:
            flight.release()

    def peek(self, key: Hashable, *, stale: bool = True) -> Any:
        """The cached value of ``key`` without computing or waiting, or None.

        A fresh value; or, with ``stale``, an expired one that another request is refreshing.
        """
        if self._ttl_s <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            flight = self._flights.get(key)
        if entry is None:
            return None
        if self._clock() - entry[0] < self._ttl_s:
            return entry[1]
        if stale and flight is not None and flight.locked():
            return entry[1]
        return None
