"""Liveness, readiness and metrics over HTTP, on the port of each part's metrics.

* ``GET /healthz``: 200 while the worker's loop turns (it calls :meth:`Health.beat` each turn;
  no beat for ``stall_after_s`` is 503): restart me if this fails.
* ``GET /readyz``: 200 when every check passes, else 503; the body lists each check, one line
  each (``kafka: ok``, ``database: ... did not answer``, ``partitions: 4 assigned``,
  ``lag: 12 (at most 100000)``). Checks are reported by the worker (partitions, lag) or run by
  a background thread every ``probe_every_s`` (Kafka and the database answer).
* ``GET /metrics``: the part's Prometheus registry.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from prometheus_client import CollectorRegistry

__all__ = ["Check", "Health", "HealthServer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Check:
    """The latest result of one readiness check."""

    ok: bool
    detail: str


class Health:
    """What the worker reports about itself; read by the HTTP handler."""

    def __init__(
        self, *, stall_after_s: float = 120.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._stall_after = stall_after_s
        self._beat = clock()
        self._checks: dict[str, Check] = {}
        self._lock = threading.Lock()
        self._probes: list[tuple[str, Callable[[], str | None]]] = []

    def beat(self) -> None:
        """The worker's loop turned (call it each turn, also while waiting for a retry)."""
        self._beat = self._clock()

    def expect(self, *names: str) -> None:
        """Checks that must report ok before the part is ready ("not checked yet" until then)."""
        with self._lock:
            for name in names:
                self._checks.setdefault(name, Check(ok=False, detail="not checked yet"))

    def report(self, name: str, *, ok: bool, detail: str = "ok") -> None:
        """Set the result of check ``name``."""
        with self._lock:
            previous = self._checks.get(name)
            self._checks[name] = Check(ok=ok, detail=detail)
        if previous is not None and previous.ok != ok:
            log.log(
                logging.INFO if ok else logging.WARNING,
                "readiness: %s %s",
                name,
                "ok" if ok else f"failing: {detail}",
            )

    def add_probe(self, name: str, probe: Callable[[], str | None]) -> None:
        """Run ``probe`` on the server's probe thread; its answer is check ``name``.

        A probe returns None when what it checks answers, else the reason (one line).
        """
        self.expect(name)
        self._probes.append((name, probe))

    def run_probes(self) -> None:
        """Run every probe once (the server's thread calls this every ``probe_every_s``)."""
        for name, probe in self._probes:
            try:
                problem = probe()
            except Exception as exc:  # noqa: BLE001 - a probe that fails is a failing check
                problem = f"{type(exc).__name__}: {exc}"
            self.report(name, ok=problem is None, detail=problem or "ok")

    def alive(self) -> tuple[bool, str]:
        """Whether the worker's loop turned within ``stall_after_s``."""
        idle = self._clock() - self._beat
        if idle > self._stall_after:
            return False, f"stalled: the worker's loop has not turned for {idle:.0f} s"
        return True, "alive"

    def ready(self) -> tuple[bool, list[str]]:
        """Whether the part is alive and every check passes; one line per check."""
        alive, why = self.alive()
        with self._lock:
            checks = dict(self._checks)
        lines = [] if alive else [f"alive: {why}"]
        lines += [f"{name}: {c.detail}" for name, c in sorted(checks.items())]
        return alive and all(c.ok for c in checks.values()), lines


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``port``, in background threads."""

    def __init__(
        self,
        health: Health,
        registry: CollectorRegistry,
        port: int,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - probes and scrapers come from outside the pod
        probe_every_s: float = 5.0,
    ) -> None:
        self.health = health
        self._registry = registry
        self._stop = threading.Event()
        self._every = probe_every_s
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True),
            threading.Thread(target=self._probe_loop, name="health-probes", daemon=True),
        ]

    def start(self) -> HealthServer:
        """Serve and probe from now on."""
        for thread in self._threads:
            thread.start()
        return self

    def close(self) -> None:
        """Stop serving and probing."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _probe_loop(self) -> None:
        while not self._stop.is_set():
            self.health.run_probes()
            self._stop.wait(self._every)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        health = self.health
        registry = self._registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok, why = health.alive()
                    self._send(200 if ok else 503, why + "\n")
                elif path == "/readyz":
                    ok, lines = health.ready()
                    head = "ready" if ok else "not ready"
                    self._send(200 if ok else 503, "\n".join([head, *lines]) + "\n")
                elif path == "/metrics":
                    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, "not found: /healthz, /readyz, /metrics\n")

            def _send(self, status: int, body: str | bytes, content_type: str = "") -> None:
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", content_type or "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Probes every few seconds would flood the log: say nothing."""

        return Handler
