"""Spooling: wraps a transport (Kafka, HTTP) so nothing is lost while its far end is away."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Protocol

from tokenline.sdk.emitters._counters import Counters

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenline.schemas import UsageEvent
    from tokenline.sdk.emitters._spool import DiskSpool, Segment

__all__ = ["SpoolingEmitter", "Transport"]


class Transport(Protocol):
    """What the spool needs of a sender: ``KafkaEmitter`` and ``HttpEmitter`` are ones.

    Records are the transport's own encoding (Avro for Kafka, JSON for HTTP), so a spool
    directory serves one transport.
    """

    on_undelivered: Callable[[bytes | None, bytes], None] | None
    delivered: int

    @property
    def healthy(self) -> bool:
        """Whether the far end took records (or answered a probe) since the last failure."""

    def emit(self, event: UsageEvent) -> None:
        """Encode and send one event."""

    def produce(
        self,
        key: bytes | None,
        value: bytes,
        timestamp_ms: int = 0,
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        """Send one encoded record; ``on_result`` learns whether it was delivered."""

    def probe(self, timeout: float) -> bool:
        """Whether the far end answers now."""

    def poll(self) -> None:
        """Serve callbacks and send what waits."""

    def flush(self, timeout: float) -> int:
        """Wait for records in flight; return how many remain."""

    def close(self, timeout: float) -> None:
        """Deliver within ``timeout``; hand the rest to ``on_undelivered``."""

    def after_fork(self) -> None:
        """Start clean in a forked child."""


log = logging.getLogger(__name__)

_RESCAN_S = 5.0


class _Drain:
    """A segment being re-sent: released once every record in it has a result."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.outstanding = 0
        self.handed_over = False

    def done(self) -> bool:
        return self.handed_over and self.outstanding == 0


class SpoolingEmitter:
    """Spools records the transport could not deliver (queue full, delivery failed, far end away).

    Spooled records are re-sent from ``poll`` once the broker answers again: a record that
    fails again is spooled again, so a segment is deleted only when each of its records was
    delivered or is safely back on disk.
    """

    def __init__(
        self,
        inner: Transport,
        spool: DiskSpool,
        *,
        probe_interval_s: float = 2.0,
        counters: Counters | None = None,
    ):
        self.inner = inner
        self.spool = spool
        self._counters = counters if counters is not None else Counters()
        self._probe_interval_s = probe_interval_s
        self._last_probe = 0.0
        self._last_scan = time.monotonic()
        self._draining: _Drain | None = None
        # The sender thread polls, and so does a caller's flush(): one at a time may release
        # or claim a segment (else both release the same one, or each claims one).
        self._poll_lock = threading.RLock()
        inner.on_undelivered = self._to_spool

    def _to_spool(self, key: bytes | None, value: bytes) -> None:
        self.spool.append(key, value)

    def emit(self, event: UsageEvent) -> None:
        """Send through the transport; the spool catches what it cannot deliver."""
        self.inner.emit(event)

    def poll(self) -> None:
        """Serve callbacks, sync the spool, and re-send spooled records when the far end is back."""
        self.inner.poll()
        with self._poll_lock:
            self.spool.sync_if_due()
            if self._draining is not None and self._draining.done():
                self.spool.release(self._draining.segment)
                self._draining = None
            if not self.spool.pending() and time.monotonic() - self._last_scan >= _RESCAN_S:
                self._last_scan = time.monotonic()
                self.spool.rescan()
            if self._draining is None and self.spool.pending() and self._broker_answers():
                segment = self.spool.claim()
                if segment is not None:
                    self._resend(segment)

    def _broker_answers(self) -> bool:
        if self.inner.healthy and self.inner.delivered:
            return True
        now = time.monotonic()
        if now - self._last_probe < self._probe_interval_s:
            return False
        self._last_probe = now
        return self.inner.probe(timeout=0.5)

    def _resend(self, segment: Segment) -> None:
        drain = _Drain(segment)
        self._draining = drain

        def result(ok: bool) -> None:
            drain.outstanding -= 1
            if ok:
                self._counters.add("resent")

        count = 0
        for key, value in self.spool.records(segment):
            drain.outstanding += 1
            count += 1
            self.inner.produce(key, value, 0, result)
        drain.handed_over = True
        log.info("tokenline: re-sending %d spooled usage event(s) from %s", count, segment.path)

    def flush(self, timeout: float) -> int:
        """Deliver what is queued and what is spooled, within ``timeout``.

        Returns the records still in Kafka's queue, plus one while anything is left on disk
        (the broker did not answer in time; the spool keeps it for a later process).
        """
        deadline = time.monotonic() + timeout
        remaining = self.inner.flush(timeout)
        while (self._draining is not None or self.spool.pending()) and time.monotonic() < deadline:
            self.poll()
            remaining = self.inner.flush(max(0.0, min(0.1, deadline - time.monotonic())))
        self.spool.sync()
        return remaining + int(self.spool.pending() or self._draining is not None)

    def backlog(self) -> bool:
        """Whether spooled records wait to be re-sent."""
        return self.spool.pending()

    def close(self, timeout: float) -> None:
        """Wait for Kafka within ``timeout``; spool and fsync what it did not acknowledge.

        Records librdkafka still holds are purged into the spool (``KafkaEmitter.close``). A
        segment being re-sent is deleted only when each of its records was acknowledged or
        spooled again; otherwise it stays, and the next process re-sends it.
        """
        self.inner.close(timeout)
        with self._poll_lock:
            if self._draining is not None and self._draining.done():
                self.spool.release(self._draining.segment)
                self._draining = None
            self.spool.close()

    def after_fork(self) -> None:
        """In a forked child: the parent re-sends and writes its own segments, not the child."""
        self._poll_lock = threading.RLock()  # a parent's thread may have held it at the fork
        if self._draining is not None:
            self._draining.segment.handle.close()  # the child's copy; the parent's lock stays
            self._draining = None
        self._last_probe = 0.0
        self.inner.after_fork()
        self.spool.after_fork()
