"""The process-wide runtime: settings, the emitter, producer identity and host metadata.

The process hooks are installed once, whatever the number of ``configure()`` calls: an exit
hook (``atexit``, and SIGTERM when the application leaves it at its default; see ``_exit``)
that closes the runtime in place at exit, and one fork hook that resets it in a child.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tokenline.sdk import _exit, _metrics
from tokenline.sdk._call import ProducerIdentity, build_event
from tokenline.sdk._context import current_attribution
from tokenline.sdk._host import HostDetector
from tokenline.sdk._limits import BudgetLimits
from tokenline.sdk._settings import Settings, load_settings, producer_config
from tokenline.sdk._stats import Stats, snapshot
from tokenline.sdk.emitters import (
    BackgroundEmitter,
    Counters,
    DiskSpool,
    HttpEmitter,
    KafkaEmitter,
    SpoolingEmitter,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tokenline.schemas import UsageEvent
    from tokenline.sdk._call import Call
    from tokenline.sdk.emitters import Emitter, Transport

__all__ = ["Runtime", "current_runtime", "default_emitter", "install_runtime"]

log = logging.getLogger(__name__)


def default_emitter(settings: Settings, counters: Counters | None = None) -> Emitter:
    """A transport behind a disk spool, behind the background sender: nothing waits or is lost.

    The transport is Kafka, or the HTTP API with ``transport="http"`` (its spool, of JSON
    records, is the ``http`` directory inside ``spool_dir``). When the spool holds records of
    an earlier process, the sender starts at once to re-send them, even if this process never
    records anything.
    """
    counters = counters if counters is not None else Counters()
    transport: Transport
    spool_dir = settings.spool_dir
    if settings.transport == "http":
        transport = HttpEmitter(settings, counters)
        spool_dir = spool_dir / "http"
    else:
        producer_config(settings)  # fails early, listing the problem, when Kafka is not configured
        transport = KafkaEmitter(settings, counters)
    inner: Emitter = transport
    spooling = None
    if settings.spool_enabled:
        spool = DiskSpool(spool_dir, settings.spool_max_bytes, counters=counters)
        inner = spooling = SpoolingEmitter(transport, spool, counters=counters)
    sender = BackgroundEmitter(
        inner,
        max_queue=settings.queue_max_messages,
        poll_s=settings.send_interval_ms / 1000,
        counters=counters,
    )
    if spooling is not None and spooling.backlog():
        sender.start()
    return sender


class _Identity(ProducerIdentity):
    """The runtime's producer identity, renewed by the process's one fork hook."""

    def __init__(self) -> None:  # no fork hook of its own: hooks would grow per configure()
        self._reset()

    def after_fork(self) -> None:
        """A forked child is a new producer: new producer_id, sequence from 0."""
        self._reset()


class Runtime:
    """Turns finished calls into UsageEvents and hands them to the emitter, never raising."""

    def __init__(self, settings: Settings, emitter: Emitter | None = None) -> None:
        self.settings = settings
        if emitter is None:
            emitter = default_emitter(settings)
        self.counters = emitter.counters if isinstance(emitter, BackgroundEmitter) else Counters()
        self.emitter = emitter
        self.identity = _Identity()
        self.closed = False
        self.host = HostDetector(service_name=settings.service_name, enabled=settings.detect_host)
        self.host.start()
        self.errors = 0
        self._guards: dict[str, _Guard] = {}
        self._base: dict[str, Any] = {"tenant_id": settings.tenant_id, "project": settings.project}
        self.limits = self._limits()

    def _limits(self) -> BudgetLimits | None:
        """The hard-limit follower when ``budget_limits`` is on (started here)."""
        if not self.settings.budget_limits:
            return None
        limits = BudgetLimits(self.settings)
        limits.start()
        return limits

    def attribution(self, wrap_attribution: Mapping[str, Any]) -> Mapping[str, Any]:
        """Settings, then ``wrap()`` keywords, then the ``context()`` in force (innermost wins)."""
        return self.in_context(self.static_attribution(wrap_attribution))

    def static_attribution(self, wrap_attribution: Mapping[str, Any]) -> Mapping[str, Any]:
        """Settings, then ``wrap()`` keywords: what a wrapped client adds to every call."""
        merged = {**self._base, **{k: v for k, v in wrap_attribution.items() if v is not None}}
        return MappingProxyType(merged)

    @staticmethod
    def in_context(static: Mapping[str, Any]) -> Mapping[str, Any]:
        """``static`` (read-only, shared) with the ``context()`` in force laid over it."""
        block = current_attribution()
        if not block:
            return static
        merged = {**static}
        tags = {**merged.get("tags", {}), **block.get("tags", {})}
        merged.update(block)
        if tags:
            merged["tags"] = tags
        return merged

    def finish(
        self, call: Call, read: Callable[[Call, Any], None] | None = None, result: Any = None
    ) -> None:
        """Emit the call's event, after ``read(call, result)`` filled it in from the response.

        Behind the background sender, reading and building the event happen on the sender's
        thread, off the caller's path. A failure is logged and counted, never raised to the
        caller (re-raised under ``strict`` only when it happens on the caller's thread).
        """
        emitter = self.emitter
        if isinstance(emitter, BackgroundEmitter):
            emitter.emit_later(functools.partial(self._event_or_none, call, read, result))
            return
        try:
            if read is not None:
                read(call, result)
            emitter.emit(self._event(call))
        except Exception:
            self.errors += 1
            self.counters.add("build_failed")
            log.exception("tokenline could not record a usage event")
            if self.settings.strict:
                raise

    def _event(self, call: Call) -> UsageEvent:
        return build_event(
            call, self.identity, self.host.host, call.attribution, self.settings.max_tags
        )

    def _event_or_none(
        self, call: Call, read: Callable[[Call, Any], None] | None, result: Any
    ) -> UsageEvent | None:
        """The call's event, on the sender thread; None, logged and counted, if that fails."""
        try:
            if read is not None:
                read(call, result)
            return self._event(call)
        except Exception:
            self.errors += 1
            self.counters.add("build_failed")
            log.exception("tokenline could not record a usage event")
            return None

    def guard(self, what: str) -> _Guard:
        """A context manager that keeps the SDK's own errors away from the caller."""
        guard = self._guards.get(what)
        if guard is None:  # made once per kind of work: guards hold no per-use state
            guard = self._guards[what] = _Guard(self, what)
        return guard

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for pending events; return how many remain."""
        return self.emitter.flush(timeout)

    def close(self, timeout: float) -> None:
        """Within ``timeout``: what Kafka acknowledges is sent, the rest goes to the spool.

        Idempotent. Queued events are handed to Kafka, acknowledgements awaited, and what
        Kafka still holds is purged into the fsync'd spool for the next process to re-send.
        """
        if self.closed:
            return
        self.closed = True
        if self.limits is not None:
            self.limits.close()
        with _exit.closing():
            self.emitter.close(timeout)

    def stats(self) -> Stats:
        """A snapshot of what happened to this runtime's events."""
        budget = self.limits.stats() if self.limits is not None else {"status": "off"}
        return snapshot(self.counters, self.emitter, budget)

    def after_fork(self) -> None:
        """In a forked child: a new producer identity, fresh sender and spool state."""
        self.identity.after_fork()
        self.counters.reset()
        if self.limits is not None:  # the follower thread did not survive the fork
            self.limits = self._limits()
        after_fork = getattr(self.emitter, "after_fork", None)
        if after_fork is not None:
            after_fork()

    def swallowed(self, what: str, exc: Exception) -> bool:
        """Log and count the SDK's own failure at ``what``; False when it must be re-raised."""
        self.errors += 1
        log.warning("tokenline: %s failed; the call goes on untracked", what, exc_info=exc)
        return not self.settings.strict


class _Guard:
    def __init__(self, runtime: Runtime, what: str) -> None:
        self._runtime = runtime
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        return self._runtime.swallowed(self._what, exc)


_lock = threading.Lock()
_runtime: Runtime | None = None


def install_runtime(runtime: Runtime | None) -> Runtime | None:
    """Make ``runtime`` the process's runtime (closing none); return the previous one."""
    global _runtime
    with _lock:
        previous, _runtime = _runtime, runtime
    if runtime is not None:
        _process_hooks(runtime)
    return previous


def replace_runtime(runtime: Runtime | None, timeout: float | None = None) -> None:
    """Install ``runtime`` and close the previous one (within ``timeout``, or its setting).

    A SIGTERM meanwhile waits until both are done, then runs the exit path for ``runtime``.
    """
    with _exit.closing():
        previous = install_runtime(runtime)
        if previous is not None:
            previous.close(previous.settings.flush_timeout_s if timeout is None else timeout)


def current_runtime(**overrides: Any) -> Runtime:
    """The process's runtime, configured from ``TOKENLINE_*`` on first use."""
    global _runtime  # noqa: PLW0603 - the one process-wide runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(load_settings(**overrides))
            _process_hooks(_runtime)
        return _runtime


def installed_runtime() -> Runtime | None:
    """The process's runtime if one is in place, else None: no lock, nothing configured.

    For the per-call path: a wrapped call reads this reference and takes the lock (through
    ``current_runtime``) only when no runtime exists yet.
    """
    return _runtime


def _process_hooks(runtime: Runtime) -> None:
    """The exit hook, and the metrics exporters the application uses (each installed once)."""
    _exit.install(_close_at_exit, handle_sigterm=runtime.settings.handle_sigterm)
    _metrics.export(installed_stats)


def installed_stats() -> Stats | None:
    """The process's runtime's ``stats()``, or None when none is configured."""
    runtime = _runtime
    return runtime.stats() if runtime is not None else None


def _close_at_exit() -> None:
    """The exit path: close the runtime in place (no lock: a signal may interrupt its holder)."""
    runtime = _runtime
    if runtime is None or runtime.closed:
        return
    before = runtime.stats()
    runtime.close(runtime.settings.flush_timeout_s)
    after = runtime.stats()
    spooled = after.spooled - before.spooled
    lost = after.in_queue + after.in_kafka + sum(after.dropped.values())
    lost -= sum(before.dropped.values())
    if spooled:
        log.warning(
            "tokenline: %d usage event(s) not acknowledged by Kafka at exit, written to the "
            "spool in %s (the next process using it re-sends them)",
            spooled, runtime.settings.spool_dir,
        )  # fmt: skip
    if lost > 0:
        log.error("tokenline: %d usage event(s) lost at exit", lost)


def _after_fork_in_child() -> None:
    global _lock  # noqa: PLW0603 - a thread of the parent may have held it at the fork
    _lock = threading.Lock()
    _exit.after_fork()
    runtime = _runtime
    if runtime is not None:
        runtime.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)  # once per process: at import
