"""What the emitters did with the events they were given, counted for ``sdk.stats()``.

One ``Counters`` is shared by the emitters of a runtime. Counts move on the sender thread and
in Kafka's delivery callbacks (served by whichever thread polls or flushes), so each update
takes a lock; none is taken on the caller's path except when an event is dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

__all__ = ["DROP_REASONS", "Counters"]

DROP_REASONS = ("queue_full", "spool_full", "build_failed", "no_spool", "refused")
"""Why an event was dropped: the send queue was full, the spool was full, the event could not be
built from the call, Kafka did not take it and no spool is configured, or the HTTP API refused
it as invalid (logged with the reason)."""


@dataclass
class Counters:
    """Running totals since the runtime was configured (a forked child starts from zero)."""

    taken: int = 0
    """Events the sender took off the send queue (``queued`` = this + what still waits)."""
    sent: int = 0
    """Events Kafka (or the HTTP API) acknowledged, re-sent ones included."""
    spooled: int = 0
    """Records written to the disk spool (a record spooled again after a failed re-send counts
    again)."""
    resent: int = 0
    """Records re-sent from the spool that Kafka acknowledged."""
    send_errors: int = 0
    """Records Kafka refused or did not deliver in time (each then went to the spool)."""
    queue_full: int = 0
    spool_full: int = 0
    build_failed: int = 0
    no_spool: int = 0
    refused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the total ``name``."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def reset(self) -> None:
        """Zero every total (in a forked child, whose parent keeps its own)."""
        self._lock = threading.Lock()
        for f in fields(self):
            if f.name != "_lock":
                setattr(self, f.name, 0)
