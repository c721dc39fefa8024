"""One metered call, as the wrappers fill it in, and how it becomes a UsageEvent."""

from __future__ import annotations

import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from uuid6 import uuid7

if TYPE_CHECKING:
    from collections.abc import Mapping
    from uuid import UUID

    from tokenline.schemas import Host, Operation, Provider, Usage, UsageEvent, UsageSource

__all__ = ["Call", "ProducerIdentity", "build_event", "empty_usage"]

_ERROR_MESSAGE_MAX = 500
#: Tag keys and values are cut to what the processor's contract accepts (its contract.py), so a
#: long tag never costs the event (a refused event is dead-lettered, not billed).
_TAG_KEY_MAX = 128
_TAG_VALUE_MAX = 512


def empty_usage() -> Usage:
    """A usage vector with nothing counted."""
    return {
        "input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_write_input_tokens": 0,
        "cache_write_5m_input_tokens": None,
        "cache_write_1h_input_tokens": None,
        "output_tokens": 0,
        "reasoning_tokens": 0,
        "provider_total_tokens": None,
        "mismatch": None,
    }


@dataclass(slots=True)
class Call:
    """What a wrapper learned about one call. Times are ``time.perf_counter_ns`` readings."""

    provider: Provider
    operation: Operation
    request_model: str | None = None
    response_model: str | None = None
    deployment: str | None = None
    region: str | None = None
    batch: bool = False
    streamed: bool = False
    usage: Usage | None = None
    usage_source: UsageSource = "none"
    occurred_ns: int = field(default_factory=time.time_ns)
    """When the call started, read cheaply on the caller's path; ``occurred_at`` from it."""
    occurred_at: datetime | None = None
    """Set only where the time is known otherwise (batch results, record())."""
    started_ns: int = field(default_factory=time.perf_counter_ns)
    ended_ns: int | None = None
    first_token_ns: int | None = None
    success: bool = True
    error_type: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    provider_request_id: str | None = None
    attribution: Mapping[str, Any] = field(default_factory=dict)
    event_id: UUID | None = None
    """Set only where the same call may be recorded again (batch results): a fresh UUIDv7
    otherwise."""

    def failed(self, exc: BaseException, http_status: int | None = None) -> None:
        """Record a provider error (the exception itself is re-raised by the wrapper)."""
        self.success = False
        self.error_type = type(exc).__name__
        message = str(exc)
        self.error_message = message[:_ERROR_MESSAGE_MAX] if message else None
        self.http_status = http_status if http_status is not None else _status_of(exc)


def _utc(ns: int) -> datetime:
    """A ``time.time_ns()`` reading as an aware UTC datetime, to the microsecond, exactly."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def _status_of(exc: BaseException) -> int | None:
    """The HTTP status of a provider error, when it has one (100-599; else None).

    ``code`` is an HTTP status on some SDKs' errors and something else on others (a gRPC or
    errno number): only a real status is kept, so the event stays within the processor's
    contract and is billed, not dead-lettered.
    """
    status = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    if not isinstance(status, int):
        response = getattr(exc, "response", None)
        if not isinstance(response, dict):  # botocore ClientError
            return None
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) and 100 <= status <= 599 else None


class ProducerIdentity:
    """``producer_id`` (one per process, renewed in a forked child) and ``producer_seq``."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self.producer_id = uuid7()
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def next_seq(self) -> int:
        """The next sequence number of this producer, from 0, without gaps."""
        with self._lock:
            return next(self._seq)


def build_event(
    call: Call,
    identity: ProducerIdentity,
    host: Host,
    attribution: Mapping[str, Any],
    max_tags: int,
) -> UsageEvent:
    """The UsageEvent for a finished call. ``attribution`` is wrap() + context(), merged."""
    ended = call.ended_ns if call.ended_ns is not None else time.perf_counter_ns()
    ttft = call.first_token_ns
    tags = attribution.get("tags") or {}
    if len(tags) > max_tags:
        tags = dict(sorted(tags.items())[:max_tags])
    return {
        "event_id": call.event_id if call.event_id is not None else uuid7(),
        "producer_id": identity.producer_id,
        "producer_seq": identity.next_seq(),
        "occurred_at": call.occurred_at or _utc(call.occurred_ns),
        "tenant_id": attribution["tenant_id"],
        "project": attribution.get("project"),
        "user_id": attribution.get("user_id"),
        "session_id": attribution.get("session_id"),
        "team": attribution.get("team"),
        "tags": {str(k)[:_TAG_KEY_MAX]: str(v)[:_TAG_VALUE_MAX] for k, v in tags.items()},
        "provider": call.provider,
        "operation": call.operation,
        "request_model": call.request_model,
        "response_model": call.response_model,
        "deployment": call.deployment,
        "region": call.region,
        "batch": call.batch,
        "usage": call.usage if call.usage is not None else empty_usage(),
        "usage_source": call.usage_source if call.usage is not None else "none",
        "streamed": call.streamed,
        "latency_ms": max(0, (ended - call.started_ns) // 1_000_000),
        "time_to_first_token_ms": (
            max(0, (ttft - call.started_ns) // 1_000_000) if ttft is not None else None
        ),
        "success": call.success,
        "error_type": call.error_type,
        "error_message": call.error_message,
        "http_status": call.http_status,
        "provider_request_id": call.provider_request_id,
        "host": host,
    }
