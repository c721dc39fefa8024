"""The process-wide runtime: settings, the emitter, producer identity and host metadata."""

from __future__ import annotations

import atexit
import functools
import logging
import threading
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from tokenline.sdk._call import ProducerIdentity, build_event
from tokenline.sdk._context import current_attribution
from tokenline.sdk._host import HostDetector
from tokenline.sdk._settings import Settings, kafka_config, load_settings
from tokenline.sdk.emitters import (
    BackgroundEmitter,
    DiskSpool,
    KafkaEmitter,
    SpoolingEmitter,
)
from tokenline.sdk.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from tokenline.schemas import UsageEvent
    from tokenline.sdk._call import Call
    from tokenline.sdk.emitters import Emitter

__all__ = ["Runtime", "current_runtime", "default_emitter", "install_runtime"]

log = logging.getLogger(__name__)


def default_emitter(settings: Settings) -> Emitter:
    """Kafka behind a disk spool, behind the background sender: nothing waits, nothing is lost."""
    kafka_config(settings)  # fails early, listing the problem, when Kafka is not configured
    kafka = KafkaEmitter(settings)
    inner: Emitter = kafka
    if settings.spool_enabled:
        inner = SpoolingEmitter(kafka, DiskSpool(settings.spool_dir, settings.spool_max_bytes))
    return BackgroundEmitter(
        inner, max_queue=settings.queue_max_messages, poll_s=settings.send_interval_ms / 1000
    )


class Runtime:
    """Turns finished calls into UsageEvents and hands them to the emitter, never raising."""

    def __init__(self, settings: Settings, emitter: Emitter | None = None) -> None:
        self.settings = settings
        self.emitter = emitter if emitter is not None else default_emitter(settings)
        self.identity = ProducerIdentity()
        self.host = HostDetector(service_name=settings.service_name, enabled=settings.detect_host)
        self.host.start()
        self.errors = 0
        self._guards: dict[str, _Guard] = {}
        self._base: dict[str, Any] = {"tenant_id": settings.tenant_id, "project": settings.project}

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
        """Flush within ``timeout`` and release the emitter."""
        self.emitter.close(timeout)

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
    return previous


def current_runtime(**overrides: Any) -> Runtime:
    """The process's runtime, configured from ``TOKENLINE_*`` on first use."""
    global _runtime  # noqa: PLW0603 - the one process-wide runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime(load_settings(**overrides))
            atexit.register(_flush_at_exit)
        return _runtime


def _flush_at_exit() -> None:
    runtime = _runtime
    if runtime is not None:
        left = runtime.flush(runtime.settings.flush_timeout_s)
        if left:
            log.warning("tokenline: %d usage event(s) not sent at exit (still spooled)", left)


def require_tenant(settings: Settings, tenant_id: str | None) -> None:
    """Fail when no tenant is known for a client."""
    if not (tenant_id or settings.tenant_id):
        raise ConfigError(["tenant_id: required (wrap(..., tenant_id=...) or TOKENLINE_TENANT_ID)"])
