"""``record_batch_results``: meter the result file of an OpenAI or Anthropic batch.

A batch's calls run on the provider's side, so no wrapper sees them: their usage is in the
result file (JSON Lines), one line per request. Each line becomes one usage event with
``batch = true`` (priced at the provider's batch rates), read by the same adapter code as a
wrapped client's response (the JSON is read through attribute views, as the adapters read the
provider SDKs' models).

Recording a file again counts nothing twice: an event's ``event_id`` is derived from the
provider, the batch, the request's ``custom_id`` and the batch's completion time, and the sink
keeps one event per ``(event_id, occurred_at)``.
"""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from tokenline.sdk._api import _runtime_for
from tokenline.sdk._call import Call
from tokenline.sdk.providers._anthropic import _finish as _finish_message
from tokenline.sdk.providers._openai import _finish_chat, _finish_responses

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from datetime import datetime

    from tokenline.schemas import Operation

__all__ = ["batch_event_id", "record_batch_results"]

BatchProvider = Literal["openai", "azure_openai", "anthropic"]

#: An OpenAI body's ``object`` → the operation and the adapter's reader for it.
_OPENAI_BODIES: Mapping[str, tuple[Operation, Callable[[Call, Any], None]]] = {
    "chat.completion": ("chat", _finish_chat),
    "response": ("responses", _finish_responses),
    "text_completion": ("completion", _finish_chat),
    "list": ("embedding", _finish_chat),  # an embeddings response
}

_ERROR_MESSAGE_MAX = 500


def batch_event_id(provider: str, batch_id: str, request_key: str, completed_at: datetime) -> UUID:
    """A UUIDv7 that is the same every time for the same batch request.

    The 48-bit timestamp is ``completed_at`` in unix milliseconds; the version and variant
    bits are those of RFC 9562; the other 74 bits are the start of the SHA-256 of the
    identity (provider, batch, request, ``completed_at``).
    """
    unix_ms = int(completed_at.timestamp() * 1000) & ((1 << 48) - 1)
    identity = "\x1f".join((provider, batch_id, request_key, completed_at.isoformat()))
    digest = int.from_bytes(hashlib.sha256(identity.encode()).digest()[:10])  # 80 bits
    rand_a = digest >> 68  # 12 bits
    rand_b = digest & ((1 << 62) - 1)  # 62 bits
    return UUID(int=unix_ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b)


def record_batch_results(
    lines_or_path: str | os.PathLike[str] | Iterable[str | bytes],
    *,
    provider: BatchProvider,
    batch_id: str,
    completed_at: datetime,
    tenant_id: str | None = None,
    **attribution: Any,
) -> int:
    """Record one ``batch = true`` usage event per line of a batch result file; return how many.

    ``lines_or_path``: the file's path, or its lines (``str`` or ``bytes``), e.g. what
    ``client.files.content(batch.output_file_id)`` (OpenAI) or
    ``client.messages.batches.results(batch_id)`` serialized gives. ``provider``: ``openai``
    (or ``azure_openai``) for Batch API output and error files, ``anthropic`` for Message
    Batches results. ``completed_at``: the batch's ``completed_at`` (OpenAI) or ``ended_at``
    (Anthropic), timezone-aware; it is every event's ``occurred_at``. Tags ``batch_id`` and
    ``custom_id`` are added to ``attribution``'s.

    A failed request (an error, a non-2xx status, an errored, canceled or expired result) is
    recorded as a failed call with no usage: the provider bills nothing for it. A line that
    cannot be read is logged and counted in the SDK's errors, never raised (unless ``strict``).
    Recording the same file again records the same event ids, which the sink keeps once.
    """
    if completed_at.tzinfo is None:
        msg = "completed_at must be timezone-aware (UTC)"
        raise ValueError(msg)
    runtime = _runtime_for(tenant_id)
    base = runtime.attribution({"tenant_id": tenant_id, **attribution})
    read = _read_anthropic if provider == "anthropic" else _read_openai
    recorded = 0
    for line in _lines(lines_or_path):
        with runtime.guard("reading a batch result line"):
            item = json.loads(line)
            call, custom_id = read(item)
            call.provider = provider
            call.batch = True
            call.occurred_at = completed_at
            call.ended_ns = call.started_ns  # the latency of a batch request is not known
            call.event_id = batch_event_id(provider, batch_id, custom_id, completed_at)
            tags = {**base.get("tags", {}), "batch_id": batch_id, "custom_id": custom_id}
            call.attribution = {**base, "tags": tags}
            runtime.finish(call)
            recorded += 1
    return recorded


def _lines(source: str | os.PathLike[str] | Iterable[str | bytes]) -> Iterator[str | bytes]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:
            yield from (line for line in file if line.strip())
        return
    yield from (line for line in source if line.strip())


def _view(value: Any) -> Any:
    """JSON as the provider SDKs' models read: objects become attribute namespaces."""
    if isinstance(value, dict):
        return SimpleNamespace(**{str(k): _view(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_view(v) for v in value]
    return value


def _key(item: Mapping[str, Any]) -> str:
    key = item.get("custom_id") or item.get("id")
    if not isinstance(key, str) or not key:
        msg = "a batch result line has neither custom_id nor id"
        raise ValueError(msg)
    return key


def _read_openai(item: Mapping[str, Any]) -> tuple[Call, str]:
    """One line of an OpenAI Batch API output or error file."""
    key = _key(item)
    response = item.get("response") or {}
    body = response.get("body") or {}
    operation, finish = _OPENAI_BODIES.get(str(body.get("object")), ("other", _finish_chat))
    model = body.get("model") if isinstance(body.get("model"), str) else None
    call = Call(provider="openai", operation=operation, request_model=model)
    status = response.get("status_code")
    call.http_status = status if isinstance(status, int) else None
    error = item.get("error") or body.get("error")
    if error or call.http_status is None or not 200 <= call.http_status < 300:
        _failed(call, error, "batch_request_failed")
    else:
        finish(call, _view(body))
    call.provider_request_id = response.get("request_id") or body.get("id") or item.get("id")
    return call, key


def _read_anthropic(item: Mapping[str, Any]) -> tuple[Call, str]:
    """One line of an Anthropic Message Batches results file."""
    key = _key(item)
    result = item.get("result") or {}
    kind = result.get("type")
    call = Call(provider="anthropic", operation="chat")
    if kind == "succeeded":
        message = result.get("message") or {}
        model = message.get("model")
        call.request_model = model if isinstance(model, str) else None
        _finish_message(call, _view(message))
    else:
        error = result.get("error") or {}
        _failed(call, error.get("error", error), str(kind or "unknown"))
    return call, key


def _failed(call: Call, error: Any, default_type: str) -> None:
    """Mark a request the provider did not complete: no usage, nothing billed."""
    call.success = False
    call.usage = None
    call.usage_source = "none"
    if isinstance(error, dict):
        kind = error.get("code") or error.get("type")
        call.error_type = str(kind) if kind else default_type
        message = error.get("message")
        call.error_message = str(message)[:_ERROR_MESSAGE_MAX] if message else None
    else:
        call.error_type = default_type
