"""The process-wide runtime: settings, the emitter, producer identity and host metadata."""

from __future__ import annotations

import atexit
import logging
import threading
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
    from collections.abc import Mapping

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
    return BackgroundEmitter(inner, max_queue=settings.queue_max_messages)


class Runtime:
    """Turns finished calls into UsageEvents and hands them to the emitter, never raising."""

    def __init__(self, settings: Settings, emitter: Emitter | None = None) -> None:
        self.settings = settings
        self.emitter = emitter if emitter is not None else default_emitter(settings)
        self.identity = ProducerIdentity()
        self.host = HostDetector(service_name=settings.service_name, enabled=settings.detect_host)
        self.host.start()
        self.errors = 0
        self._base: dict[str, Any] = {"tenant_id": settings.tenant_id, "project": settings.project}

    def attribution(self, wrap_attribution: Mapping[str, Any]) -> dict[str, Any]:
        """Settings, then ``wrap()`` keywords, then the ``context()`` in force (innermost wins)."""
        merged = {**self._base, **{k: v for k, v in wrap_attribution.items() if v is not None}}
        block = current_attribution()
        if block:
            tags = {**merged.get("tags", {}), **block.get("tags", {})}
            merged.update(block)
            if tags:
                merged["tags"] = tags
        return merged

    def finish(self, call: Call) -> None:
        """Emit the call's event. A failure here is logged and counted, never raised."""
        try:
            event = build_event(
                call, self.identity, self.host.host, call.attribution, self.settings.max_tags
            )
            self.emitter.emit(event)
        except Exception:
            self.errors += 1
            log.exception("tokenline could not record a usage event")
            if self.settings.strict:
                raise

    def guard(self, what: str) -> _Guard:
        """A context manager that keeps the SDK's own errors away from the caller."""
        return _Guard(self, what)

    def flush(self, timeout: float) -> int:
        """Wait up to ``timeout`` s for pending events; return how many remain."""
        return self.emitter.flush(timeout)

    def close(self, timeout: float) -> None:
        """Flush within ``timeout`` and release the emitter."""
        self.emitter.close(timeout)


class _Guard:
    def __init__(self, runtime: Runtime, what: str) -> None:
        self._runtime = runtime
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        self._runtime.errors += 1
        log.warning("tokenline: %s failed; the call goes on untracked", self._what, exc_info=exc)
        return not self._runtime.settings.strict


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
