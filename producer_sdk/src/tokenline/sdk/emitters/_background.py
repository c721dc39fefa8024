"""Moves all sending work off the caller's thread.

The caller's cost of ``emit`` is one ``deque.append`` (atomic under the GIL, no lock, no
wake-up). A daemon thread, started lazily in the process that emits (so a pre-fork server gets
one in every worker), wakes every ``poll_s`` (or at once when a flush asks), drains what has
queued up, hands each event to the inner emitter and polls it for callbacks and housekeeping.
Draining in batches keeps the sender from waking, and contending for the GIL, once per call:
each wake takes the GIL from whichever thread holds it, most often a caller in the middle of
parsing its LLM response, so ``poll_s`` is the main term of the latency the SDK adds.

``emit_later(build)`` queues a function that makes the event, so building it (ids, sequence
number, the record itself) happens on the sender thread too; events are built in queue order.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import TYPE_CHECKING

from tokenline.sdk.emitters._counters import Counters

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenline.schemas import UsageEvent
    from tokenline.sdk.emitters._base import Emitter

__all__ = ["BackgroundEmitter"]

log = logging.getLogger(__name__)

_YIELD_AFTER_S = 0.001


class BackgroundEmitter:
    """Wraps an emitter so that ``emit`` never waits on it."""

    def __init__(
        self,
        inner: Emitter,
        *,
        max_queue: int = 100_000,
        poll_s: float = 0.05,
        counters: Counters | None = None,
    ):
        self.inner = inner
        self._max_queue = max_queue
        self.poll_s = poll_s
        self.dropped = 0
        self.errors = 0
        self.counters = counters if counters is not None else Counters()
        self._reset()

    def after_fork(self) -> None:
        """In a forked child: no sender thread exists here; the parent sends what it queued."""
        self.dropped = self.errors = 0
        self._reset()
        after_fork = getattr(self.inner, "after_fork", None)
        if after_fork is not None:
            after_fork()

    def _reset(self) -> None:
        self._queue: collections.deque[UsageEvent | Callable[[], UsageEvent | None]] = (
            collections.deque()
        )
        self._busy = False  # the sender holds items taken off the queue, not yet handed over
        self._stop = threading.Event()  # one per sender thread
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def emit(self, event: UsageEvent) -> None:
        """Queue the event for the sender thread; count and drop it if the queue is full."""
        self.emit_later(event)

    def emit_later(self, item: UsageEvent | Callable[[], UsageEvent | None]) -> None:
        """Queue an event, or a function that makes it, for the sender thread.

        The sender calls a function and sends what it returns (if not None). An item that
        finds the queue full is counted and dropped.
        """
        if self._thread is None:
            self._start()
        if len(self._queue) >= self._max_queue:
            self.dropped += 1
            self.counters.add("queue_full")
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("tokenline send queue full: %d usage event(s) dropped", self.dropped)
            return
        self._queue.append(item)

    def start(self) -> None:
        """Start the sender thread now (it also starts with the first event)."""
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stop = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="tokenline-sender", daemon=True
                )
                thread.start()
                self._thread = thread

    def _run(self, stop: threading.Event) -> None:
        queue = self._queue
        while True:
            self._wake.wait(self.poll_s)
            self._wake.clear()
            self._busy = True
            held_since = time.perf_counter()
            while queue:
                item = queue.popleft()
                self.counters.taken += 1  # only this thread moves it
                try:
                    event = item() if callable(item) else item
                    if event is not None:
                        self.inner.emit(event)
                except Exception:
                    self.errors += 1
                    log.exception("tokenline sender failed on one usage event")
                if time.perf_counter() - held_since > _YIELD_AFTER_S:
                    # Let go of the GIL now and then: a caller whose response has arrived
                    # takes it, instead of waiting out the interpreter's switch interval.
                    # Not after every event: each time the sender wants the GIL back from
                    # a busy caller, the caller is made to switch.
                    time.sleep(0)
                    held_since = time.perf_counter()
            try:
                self.inner.poll()
            except Exception:
                self.errors += 1
                log.exception("tokenline sender failed to poll")
            self._busy = False
            if stop.is_set():
                return

    def _pending(self) -> int:
        return len(self._queue) + int(self._busy)

    def queue_depth(self) -> int:
        """Events waiting for the sender thread."""
        return len(self._queue)

    def poll(self) -> None:
        """The sender thread polls the inner emitter; nothing to do here."""

    def flush(self, timeout: float) -> int:
        """Wait until the queue is drained and the inner emitter flushed, within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._pending() and self._thread is not None and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.002)
        left = self._pending()
        return left + self.inner.flush(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float) -> None:
        """Hand everything queued to the inner emitter, then close it, within ``timeout``.

        The sender thread drains the queue on its last pass and stops; what is queued after
        that (by other threads) is handed over on this thread. The inner emitter gets the
        time left to deliver, and keeps the rest (the spool).
        """
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(max(0.0, deadline - time.monotonic()))
        if thread is None or not thread.is_alive():
            self._thread = None
            self._hand_over_rest()
        else:
            log.error(
                "tokenline sender did not finish in %.1f s: %d usage event(s) left in its queue",
                timeout, len(self._queue),
            )  # fmt: skip
        self.inner.close(max(0.0, deadline - time.monotonic()))

    def _hand_over_rest(self) -> None:
        while self._queue:
            item = self._queue.popleft()
            self.counters.taken += 1
            try:
                event = item() if callable(item) else item
                if event is not None:
                    self.inner.emit(event)
            except Exception:
                self.errors += 1
                log.exception("tokenline sender failed on one usage event")
