"""Log lines bounded in an outage: the first of a kind at once, then a count now and then.

A broker gone for a minute makes the Kafka clients report the same error many times a second.
:class:`RateLimitedLog` writes the first report of each kind, then at most one line per
``every_s`` saying how many more there were, so an outage costs a handful of lines.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging
    from collections.abc import Callable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """At most one line per kind per ``every_s`` seconds, with the count of those held back."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._every = every_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()  # librdkafka calls back on several threads

    def __call__(self, level: int, kind: str, message: str) -> None:
        """Log ``message`` (of ``kind``) unless one of that kind went out in the last period."""
        now = self._clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._every:
                self._held[kind] = self._held.get(kind, 0) + 1
                return
            held = self._held.pop(kind, 0)
            self._last[kind] = now
        suffix = f" ({held} more like it in the last {self._every:.0f} s)" if held else ""
        self._log.log(level, "%s%s", message, suffix)
