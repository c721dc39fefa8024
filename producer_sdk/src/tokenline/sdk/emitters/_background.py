"""Moves all sending work off the caller's thread.

The caller's cost of ``emit`` is one ``put_nowait`` on a bounded queue. A daemon thread,
started lazily in the process that emits (so a pre-fork server gets one in every worker),
hands events to the inner emitter and polls it for callbacks and housekeeping.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenline.schemas import UsageEvent
    from tokenline.sdk.emitters._base import Emitter

__all__ = ["BackgroundEmitter"]

log = logging.getLogger(__name__)

_STOP = object()


class BackgroundEmitter:
    """Wraps an emitter so that ``emit`` never waits on it."""

    def __init__(self, inner: Emitter, *, max_queue: int = 100_000, poll_s: float = 0.05):
        self.inner = inner
        self._max_queue = max_queue
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self.dropped = 0
        self.errors = 0
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue(self._max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def emit(self, event: UsageEvent) -> None:
        """Queue the event for the sender thread; count and drop it if the queue is full."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("tokenline send queue full: %d usage event(s) dropped", self.dropped)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="tokenline-sender", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._poll_s)
            except queue.Empty:
                item = None
            try:
                if item is _STOP:
                    self._queue.task_done()
                    return
                if item is not None:
                    self.inner.emit(item)  # type: ignore[arg-type]
                    self._queue.task_done()
                self.inner.poll()
            except Exception:
                self.errors += 1
                if item is not None:
                    self._queue.task_done()
                log.exception("tokenline sender failed on one usage event")

    def poll(self) -> None:
        """The sender thread polls the inner emitter; nothing to do here."""

    def flush(self, timeout: float) -> int:
        """Wait until the queue is drained and the inner emitter flushed, within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        left = self._queue.unfinished_tasks
        return left + self.inner.flush(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float) -> None:
        """Flush, stop the sender thread, close the inner emitter."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        self.inner.close(max(0.0, deadline - time.monotonic()))
