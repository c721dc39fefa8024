"""The HTTP transport: batches of usage events to the API's ``POST /v1/usage`` (httpx).

Where Kafka is out of reach (serverless functions, locked-down networks) the SDK sends the same
UsageEvent as JSON, in the form ``sink/openapi.json`` documents (the field names of
``tokenline.UsageEvent.avsc``, UUIDs as text, ``occurred_at`` in ISO 8601 with its offset), to
the API, which produces it to the raw topic with its idempotent producer and answers 202 once
Kafka acknowledged. Each event keeps the SDK's ``event_id``, ``producer_id`` and
``producer_seq``: a batch sent again (a timeout whose request did arrive) is the same events
again, and the sink keeps one row per ``event_id``.

Towards the spool it has the Kafka emitter's shape (``produce`` of encoded records with a result
callback, ``on_undelivered``, ``probe``), so ``SpoolingEmitter`` wraps it unchanged. What each
answer does to a batch:

- 2xx: delivered.
- no answer (refused, reset, timed out), 408, 429, 5xx: the batch goes to the spool, and nothing
  is sent before ``Retry-After`` (or a pause doubling from 1 s to 30 s) has passed.
- 401, or a 403 that names no event (the key lacks the ingest scope): the key is wrong. The
  batch goes to the spool, the error is logged and kept for ``stats().transport_error``, and
  sending pauses for a minute (a process started with the right key re-sends the spool).
- 422, or a 403 that names events (``$[3].tenant_id: ...``): those events are refused, counted
  (``dropped["refused"]``) and logged with the reasons, never retried; the rest of the batch is
  sent again at once. Another 4xx is halved until it names its event, which is then refused.

Requests are made on the thread that calls ``emit``, ``poll``, ``flush`` or ``close`` (the SDK's
background sender, or the exit path), never on a caller's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx

from tokenline.sdk._settings import ingest_config
from tokenline.sdk.emitters._counters import Counters

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenline.schemas import UsageEvent
    from tokenline.sdk._settings import Settings

__all__ = ["HttpEmitter", "event_json"]

log = logging.getLogger(__name__)

_INHERITED: list[httpx.Client] = []
_EVENT_PATH = re.compile(r"^\$\[(\d+)\]")
_PAUSE_MIN_S = 1.0
_PAUSE_MAX_S = 30.0
_KEY_PAUSE_S = 60.0
_RETRYABLE = {408, 425, 429}


def _json_default(value: Any) -> str:
    if hasattr(value, "isoformat"):  # occurred_at: aware UTC, so the offset is written
        return str(value.isoformat())
    return str(value)  # UUIDs


def event_json(event: UsageEvent) -> bytes:
    """One event as the JSON body item ``POST /v1/usage`` takes."""
    return json.dumps(event, default=_json_default, separators=(",", ":")).encode()


class _Record(NamedTuple):
    key: bytes | None
    value: bytes
    on_result: Callable[[bool], None] | None


class HttpEmitter:
    """Posts JSON usage events in batches; undeliverable ones go to ``on_undelivered``."""

    def __init__(
        self,
        settings: Settings,
        counters: Counters | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = ingest_config(settings)
        self._health_url = self.config.url.removesuffix("/v1/usage") + "/healthz"
        self._transport = transport
        self._counters = counters if counters is not None else Counters()
        self._lock = threading.RLock()
        self._client: httpx.Client | None = None
        self._pid = 0
        self.on_undelivered: Callable[[bytes | None, bytes], None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._batch: list[_Record] = []
        self._in_flight = 0
        self.delivered = 0
        self.failed = 0
        self.refused = 0
        self.last_success = 0.0
        self.last_failure = 0.0
        self.retry_at = 0.0
        self._pause = 0.0
        self.error: str | None = None
        """The last problem the endpoint or the network reported, until a batch is delivered."""

    def _client_here(self) -> httpx.Client:
        if self._client is None or self._pid != os.getpid():
            if self._client is not None:
                # A forked child: the parent's connections are not ours to close.
                _INHERITED.append(self._client)
            self._client = httpx.Client(transport=self._transport, headers=self.config.headers)
            self._pid = os.getpid()
        return self._client

    # ------------------------------------------------------------------ the emitter
    def emit(self, event: UsageEvent) -> None:
        """Add one event to the batch (sent when full, or at the next ``poll``)."""
        self.produce(event["tenant_id"].encode(), event_json(event))

    def produce(
        self,
        key: bytes | None,
        value: bytes,
        timestamp_ms: int = 0,
        on_result: Callable[[bool], None] | None = None,
    ) -> None:
        """Add one encoded record (JSON) to the batch; ``on_result`` learns its fate."""
        del timestamp_ms  # the API stamps the record; occurred_at is in the event
        with self._lock:
            self._batch.append(_Record(key, value, on_result))
            if len(self._batch) >= self.config.batch_max:
                self._send(self.config.timeout_s)

    def poll(self) -> None:
        """Send what the batch holds (the sender calls this after each drain of its queue)."""
        with self._lock:
            if self._batch:
                self._send(self.config.timeout_s)

    def flush(self, timeout: float) -> int:
        """Send the batch; return how many records are still unsent.

        A request is given its full ``ingest_timeout_ms`` whatever ``timeout`` is left: cut
        short, a request the API did take would be spooled and sent again. While the endpoint
        is paused (after a failure) nothing is sent: the wait is spent here, a slice at a time,
        so a caller's flush loop does not spin.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._batch and timeout > 0:
                self._send(self.config.timeout_s)
            left = len(self._batch) + self._in_flight
        pause = min(self.retry_at, deadline) - time.monotonic()
        if pause > 0:
            time.sleep(min(pause, 0.1))
        return left

    def close(self, timeout: float) -> None:
        """Send what is batched within ``timeout``; what is not sent goes to ``on_undelivered``.

        Here the request is cut at ``timeout`` (the exit path has that long): a batch the API
        took just then is also spooled, sent again by a later process, and stored once.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._batch:
                self._send(max(0.0, deadline - time.monotonic()))
            if self._batch:  # paused: straight to the spool
                rest, self._batch = self._batch, []
                self._undelivered(rest, "not sent before close")
            client = self._client
            if client is not None and self._pid == os.getpid():
                client.close()
                self._client = None

    def pending(self) -> int:
        """Records batched or in flight, not yet delivered, refused or spooled."""
        return len(self._batch) + self._in_flight

    @property
    def healthy(self) -> bool:
        """Whether the endpoint took a batch (or answered a probe) since the last failure."""
        return self.last_success >= self.last_failure

    def probe(self, timeout: float) -> bool:
        """After the pause: True when the API answers ``/healthz`` (the spool is re-sent then)."""
        if time.monotonic() < self.retry_at:
            return False
        try:
            answer = self._client_here().get(self._health_url, timeout=timeout)
        except httpx.HTTPError:
            return False
        if answer.status_code != 200:
            return False
        self.last_success = time.monotonic()
        return True

    def after_fork(self) -> None:
        """In a forked child: the parent sends what it batched; the child starts clean."""
        self._lock = threading.RLock()
        self._reset()

    # ------------------------------------------------------------------ sending
    def _send(self, timeout_s: float) -> None:
        """Post the batch in requests of ``batch_max`` (the lock is held)."""
        if timeout_s <= 0:
            return  # no time to send: the batch waits (``close`` spools what is left)
        while self._batch:
            size = self.config.batch_max
            records, self._batch = self._batch[:size], self._batch[size:]
            if time.monotonic() < self.retry_at:
                self._undelivered(records, self.error or "the endpoint is paused")
                continue
            self._post(records, min(self.config.timeout_s, timeout_s))

    def _post(self, records: list[_Record], timeout_s: float) -> None:
        body = b"[" + b",".join(r.value for r in records) + b"]"
        self._in_flight = len(records)
        try:
            answer = self._client_here().post(self.config.url, content=body, timeout=timeout_s)
        except httpx.HTTPError as exc:
            self._in_flight = 0
            self._failed(records, f"no answer from {self.config.url}: {exc!r}", None)
            return
        self._in_flight = 0
        self._answered(records, answer, timeout_s)

    def _answered(self, records: list[_Record], answer: httpx.Response, timeout_s: float) -> None:
        status = answer.status_code
        if 200 <= status < 300:
            self._delivered(records)
            return
        detail, problems = _reasons(answer)
        why = f"{status} {detail}"
        by_event = _by_event(problems, len(records))
        if status == 401 or (status == 403 and not by_event):
            self._key_refused(records, why)
        elif status in _RETRYABLE or status >= 500:
            self._failed(records, why, _retry_after(answer))
        elif by_event:
            self._refuse([records[i] for i in sorted(by_event)], _first(by_event))
            rest = [r for i, r in enumerate(records) if i not in by_event]
            if rest:
                self._post(rest, timeout_s)
        elif len(records) > 1:
            half = len(records) // 2
            self._post(records[:half], timeout_s)
            self._post(records[half:], timeout_s)
        else:
            self._refuse(records, [why, *problems])

    def _delivered(self, records: list[_Record]) -> None:
        self.delivered += len(records)
        self.last_success = time.monotonic()
        self._pause = 0.0
        if self.error is not None:
            log.info("tokenline: %s takes usage events again", self.config.url)
        self.error = None
        self._counters.add("sent", len(records))
        for record in records:
            if record.on_result is not None:
                record.on_result(True)

    def _failed(self, records: list[_Record], why: str, retry_after_s: float | None) -> None:
        """The endpoint is away or busy: pause, and hand the records to the spool."""
        self._pause = min(_PAUSE_MAX_S, max(_PAUSE_MIN_S, self._pause * 2))
        pause = retry_after_s if retry_after_s is not None else self._pause
        if self.error is None:
            log.warning(
                "tokenline: %s did not take %d usage event(s) (%s); spooling, next try in %.0f s",
                self.config.url, len(records), why, pause,
            )  # fmt: skip
        self._paused(why, pause)
        self._undelivered(records, why)

    def _key_refused(self, records: list[_Record], why: str) -> None:
        if self.error != why:
            log.error(
                "tokenline: %s refused the API key of TOKENLINE_INGEST_KEY (keyword "
                "'ingest_key'): %s. Usage events are kept in the spool until a process with a "
                "key of the ingest scope for this tenant sends them",
                self.config.url, why,
            )  # fmt: skip
        self._paused(why, _KEY_PAUSE_S)
        self._undelivered(records, why)

    def _paused(self, why: str, pause_s: float) -> None:
        self.error = why
        self.last_failure = time.monotonic()
        self.retry_at = self.last_failure + pause_s

    def _undelivered(self, records: list[_Record], why: str) -> None:
        self.failed += len(records)
        self._counters.add("send_errors", len(records))
        for record in records:
            if self.on_undelivered is not None:
                self.on_undelivered(record.key, record.value)
            else:
                self._counters.add("no_spool")
            if record.on_result is not None:
                record.on_result(False)
        if self.on_undelivered is None:
            log.error("tokenline: %d usage event(s) not sent and no spool: %s", len(records), why)

    def _refuse(self, records: list[_Record], reasons: list[str]) -> None:
        """Events the API will never take as they are: counted, logged, dropped."""
        self.refused += len(records)
        self._counters.add("refused", len(records))
        log.error(
            "tokenline: the API refused %d usage event(s) as invalid; they are dropped: %s",
            len(records), "; ".join(reasons[:20]),
        )  # fmt: skip
        for record in records:
            if record.on_result is not None:
                record.on_result(False)


def _reasons(answer: httpx.Response) -> tuple[str, list[str]]:
    """The answer's ``detail`` and ``problems`` (documented as ErrorOut and Invalid)."""
    try:
        body = answer.json()
    except ValueError:
        return answer.reason_phrase or "no JSON body", []
    if not isinstance(body, dict):
        return str(body)[:200], []
    detail = str(body.get("detail", answer.reason_phrase))
    problems = body.get("problems")
    if isinstance(problems, list):
        return detail, [str(p) for p in problems]
    return detail, [detail]  # a 403 names the event in its detail


def _by_event(problems: list[str], count: int) -> dict[int, list[str]]:
    """Problems by the index of the event they name (``$[3]...``); {} if any names none."""
    found: dict[int, list[str]] = {}
    for problem in problems:
        match = _EVENT_PATH.match(problem)
        if match is None or int(match[1]) >= count:
            return {}
        found.setdefault(int(match[1]), []).append(problem)
    return found


def _first(by_event: dict[int, list[str]]) -> list[str]:
    return [problem for index in sorted(by_event) for problem in by_event[index]]


def _retry_after(answer: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (the delay form; a date is ignored), capped at 5 minutes."""
    value = answer.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return min(300.0, float(value))
    return None
