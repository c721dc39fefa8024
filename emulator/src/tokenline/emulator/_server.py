"""The HTTP server: routing, fault injection, streaming and the record of served calls."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tokenline.emulator import _anthropic, _bedrock, _gemini, _openai
from tokenline.emulator._core import Call, EmulatorState, Reply, Request, RouteSpec

if TYPE_CHECKING:
    from types import TracebackType

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Reply]
ErrorFactory = Callable[[int, str], Reply]

PROVIDERS: dict[str, tuple[list[RouteSpec], ErrorFactory]] = {
    "openai": (_openai.ROUTES, _openai.error_reply),
    "azure_openai": (_openai.AZURE_ROUTES, _openai.error_reply),
    "anthropic": (_anthropic.ROUTES, _anthropic.error_reply),
    "bedrock": (_bedrock.ROUTES, _bedrock.error_reply),
    "gemini": (_gemini.ROUTES, _gemini.error_reply),
}


@dataclass(frozen=True)
class _Route:
    provider: str
    method: str
    name: str
    pattern: re.Pattern[str]
    handler: Handler
    error: ErrorFactory


def _compile_routes() -> list[_Route]:
    routes = []
    for provider, (table, error) in PROVIDERS.items():
        for method, name, pattern, handler in table:
            routes.append(_Route(provider, method, name, re.compile(pattern), handler, error))
    return routes


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up (timeouts, cut streams) is normal here, not an error."""
        logger.debug("emulator connection from %s ended abruptly", client_address)


@dataclass
class _Fault:
    kind: str  # "fail", "delay", "cut", "drop_usage" or "headers"
    provider: str | None
    remaining: int
    status: int = 0
    seconds: float = 0.0
    after_events: int = 0
    headers: dict[str, str | None] = field(default_factory=dict)


class ProviderEmulator:
    """A local HTTP server speaking the wire formats of the LLM providers.

    OpenAI, Azure OpenAI, Anthropic, Bedrock runtime and Gemini are served, so the real
    provider SDKs can be pointed at it.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Every served request is
    appended to :attr:`calls` with the usage exactly as the emulator reported it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        azure_deployments: dict[str, str] | None = None,
        default_azure_model: str = "gpt-4o-2024-08-06",
    ) -> None:
        self._host = host
        self._port = port
        self.state = EmulatorState(
            azure_models=dict(azure_deployments or {}), default_azure_model=default_azure_model
        )
        self._routes = _compile_routes()
        self._calls: list[Call] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ProviderEmulator:
        """Bind and serve in a background thread."""
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _make_handler(self))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="tokenline-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (used by the CLI)."""
        self.start()
        assert self._thread is not None
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=0.5)
        finally:
            self.stop()

    def __enter__(self) -> ProviderEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        if self._server is None:
            msg = "the emulator is not running"
            raise RuntimeError(msg)
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self._host}:{self.port}"

    # ------------------------------------------------------------------ record and faults
    @property
    def calls(self) -> list[Call]:
        """A copy of every call served so far, oldest first."""
        with self._lock:
            return list(self._calls)

    @property
    def last_call(self) -> Call:
        """The most recent call."""
        with self._lock:
            return self._calls[-1]

    def reset(self) -> None:
        """Forget recorded calls, pending faults and the prompt cache."""
        with self._lock:
            self._calls.clear()
            self._faults.clear()
        self.state.cache.clear()

    def fail_next(self, status: int = 500, times: int = 1, provider: str | None = None) -> None:
        """Answer the next ``times`` requests (of ``provider``) with an error ``status``."""
        with self._lock:
            self._faults.append(_Fault("fail", provider, times, status=status))

    def delay_next(self, seconds: float, times: int = 1, provider: str | None = None) -> None:
        """Wait ``seconds`` before answering the next ``times`` requests."""
        with self._lock:
            self._faults.append(_Fault("delay", provider, times, seconds=seconds))

    def cut_next_stream(self, after_events: int = 2, provider: str | None = None) -> None:
        """Close the connection of the next streamed answer after ``after_events`` events."""
        with self._lock:
            self._faults.append(_Fault("cut", provider, 1, after_events=after_events))

    def drop_next_usage(self, provider: str | None = None) -> None:
        """End the next streamed answer that reports usage cleanly but without that report.

        As a proxy that drops it, or a stream ended early, would: OpenAI's usage chunk (chat
        and completions with ``include_usage``), the Responses API's ``response.completed``
        event, Anthropic's ``message_delta``, Gemini's last chunk (its ``finishReason`` and
        final counts), Bedrock ConverseStream's ``metadata`` event. The record's usage is then
        empty.
        """
        with self._lock:
            self._faults.append(_Fault("drop_usage", provider, 1))

    def rewrite_next_headers(
        self, headers: dict[str, str | None], provider: str | None = None
    ) -> None:
        """Send the next answer with ``headers`` changed (None removes one), its body as is.

        For answers whose headers and body disagree, e.g. Bedrock's
        ``x-amzn-bedrock-*-token-count`` headers against the body's own usage. A Bedrock
        InvokeModelWithResponseStream answer carries those counts in its last chunk's
        ``amazon-bedrock-invocationMetrics`` instead: the same names change them there. The
        record keeps the usage the body reports.
        """
        with self._lock:
            self._faults.append(_Fault("headers", provider, 1, headers=dict(headers)))

    def _take_fault(self, kind: str, provider: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind == kind and fault.provider in (None, provider):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _record(self, call: Call) -> None:
        with self._lock:
            self._calls.append(call)

    # ------------------------------------------------------------------ dispatch
    def _dispatch(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[Reply, _Route | None, int | None]:
        split = urlsplit(raw_path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        for route in self._routes:
            if route.method != method:
                continue
            match = route.pattern.fullmatch(path)
            if match is None:
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            delay = self._take_fault("delay", route.provider)
            if delay is not None:
                time.sleep(delay.seconds)
            fail = self._take_fault("fail", route.provider)
            if fail is not None:
                return route.error(fail.status, "injected fault"), route, None
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return route.error(400, "request body is not valid JSON"), route, None
            rewrite = self._take_fault("headers", route.provider)
            changes = rewrite.headers if rewrite is not None else {}
            request = Request(method, path, params, query, headers, body, self.state, changes)
            try:
                reply = route.handler(request)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                logger.debug("emulator could not serve %s: %s", route.name, type(exc).__name__)
                return route.error(400, f"invalid request: {type(exc).__name__}"), route, None
            _rewrite_headers(reply, changes)
            cut = None
            if reply.streamed:
                fault = self._take_fault("cut", route.provider)
                cut = fault.after_events if fault is not None else None
                if reply.usage_event is not None:
                    _drop_usage(reply, self._take_fault("drop_usage", route.provider))
            return reply, route, cut
        reply = Reply(status=404, body=json.dumps({"error": f"no route {path}"}).encode())
        return reply, None, None


def _rewrite_headers(reply: Reply, changes: dict[str, str | None]) -> None:
    if not changes:
        return
    lowered = {name.lower() for name in changes}
    headers = {k: v for k, v in reply.headers.items() if k.lower() not in lowered}
    reply.headers = {**headers, **{k: v for k, v in changes.items() if v is not None}}


def _drop_usage(reply: Reply, fault: _Fault | None) -> None:
    if fault is None or reply.events is None or reply.usage_event is None:
        return
    del reply.events[reply.usage_event]
    reply.usage = {}
    reply.usage_event = None


def _make_handler(emulator: ProviderEmulator) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "TokenlineEmulator/0.1"
        # Headers and body leave in two writes. With Nagle's algorithm on, the body waits for
        # the ACK of the headers, which a keep-alive client delays (~40 ms on Linux): every
        # call on a reused connection stalled that long. TCP_NODELAY sends both at once.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Silence the default stderr access log (prompts never reach a log)."""

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply, route, cut = emulator._dispatch(method, self.path, headers, raw)
            completed = reply.events is None or cut is None or cut >= len(reply.events)
            # Recorded before answering, so a client that has its answer finds the record.
            if route is not None:
                emulator._record(
                    Call(
                        provider=route.provider,
                        route=route.name,
                        model=reply.model,
                        usage=reply.usage,
                        status=reply.status,
                        streamed=reply.streamed,
                        deployment=reply.deployment,
                        completed=completed,
                    )
                )
            self._write(reply, cut)

        def _write(self, reply: Reply, cut: int | None) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.events is None:
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            try:
                for index, event in enumerate(reply.events):
                    if cut is not None and index >= cut:
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True

    return _Handler
