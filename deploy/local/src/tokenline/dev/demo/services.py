"""The demo's own pipeline: a fresh database, fresh topics, the processor and the sink.

Both parts run as the same ``tokenline processor`` and ``tokenline sink run`` commands users
run, in subprocesses whose output goes to log files under the demo's work directory.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from tokenline.common.kafka_security import librdkafka_config
from tokenline.dev._proc import free_port
from tokenline.processor.settings import load_settings
from tokenline.processor.topics import ensure_topics, topic_specs

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["DemoPipeline", "PipelineError", "create_database", "tokenline_command"]


class PipelineError(RuntimeError):
    """A part of the demo's pipeline did not start or stopped early."""


def tokenline_command() -> str:
    """The ``tokenline`` executable next to the running interpreter."""
    return str(Path(sys.executable).parent / "tokenline")


def create_database(admin_url: str, name: str) -> str:
    """Drop and create database ``name`` on ``admin_url``'s server; return its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


@dataclass
class _Part:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int
    command: list[str]
    env: dict[str, str]

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())

    def probe(self, path: str) -> tuple[int, str]:
        """``GET path`` on the part's metrics port (``/readyz``, ``/healthz``): status, body."""
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status), str(response.read().decode())
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code), str(exc.read().decode())

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass
class DemoPipeline:
    """Topics under ``prefix``, the processor and the sink, for ``database_url``."""

    bootstrap: str
    database_url: str
    prefix: str
    work_dir: Path
    prices_file: Path
    _parts: list[_Part] = field(default_factory=list)

    def topic(self, name: str) -> str:
        """The full name of one of the pipeline's topics (``raw``, ``priced``, ...)."""
        return f"{self.prefix}llm-usage.{name}"

    def env(self) -> dict[str, str]:
        """The ``TOKENLINE_*`` settings both parts (and replay) share."""
        return {
            "TOKENLINE_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOKENLINE_TOPIC_PREFIX": self.prefix,
            "TOKENLINE_DATABASE_URL": self.database_url,
        }

    def migrate(self) -> None:
        """Create the sink's schema (``tokenline sink migrate``)."""
        self._run([tokenline_command(), "sink", "migrate"], "migrate")

    def create_topics(self) -> None:
        """Create the pipeline's topics before anyone produces to them."""
        settings = load_settings(bootstrap_servers=self.bootstrap, topic_prefix=self.prefix)
        ensure_topics(
            self.bootstrap, topic_specs(settings), client_config=librdkafka_config(settings)
        )

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the processor and the sink; return once both serve their metrics."""
        group = self.prefix.rstrip(".-")
        self._spawn(
            "processor",
            [tokenline_command(), "processor"],
            {
                "TOKENLINE_APP_ID": f"{group}-processor",
                "TOKENLINE_DATA_DIR": str(self.work_dir / "processor-data"),
                "TOKENLINE_PRICES_FILE": str(self.prices_file),
            },
        )
        self._spawn(
            "sink",
            [tokenline_command(), "sink", "run"],
            {"TOKENLINE_GROUP_ID": f"{group}-sink", "TOKENLINE_BATCH_MAX_MS": "200"},
        )
        deadline = time.monotonic() + timeout_s
        for part in self._parts:
            self._wait_ready(part, deadline)

    def metrics_port(self, name: str) -> int:
        """The port part ``name`` serves /metrics, /healthz and /readyz on."""
        return next(p for p in self._parts if p.name == name).metrics_port

    def probe(self, name: str, path: str = "/readyz") -> tuple[int, str]:
        """``GET path`` on part ``name``'s port (``/readyz`` by default): status and body."""
        return next(p for p in self._parts if p.name == name).probe(path)

    def check_running(self) -> None:
        """Raise :class:`PipelineError` with the log's tail when a part has stopped."""
        for part in self._parts:
            if part.process.poll() is not None:
                msg = f"{part.name} stopped (exit {part.process.returncode}):\n{part.tail()}"
                raise PipelineError(msg)

    def add_processor(self, name: str, timeout_s: float = 90.0) -> None:
        """Start one more processor worker (same group, own state directory and ports)."""
        first = next(p for p in self._parts if p.name.startswith("processor"))
        port = free_port()
        env = {
            **first.env,
            "TOKENLINE_DATA_DIR": str(self.work_dir / f"{name}-data"),
            "TOKENLINE_METRICS_PORT": str(port),
            "TOKENLINE_WORKER_NAME": name,  # its own group membership and transactional id
        }
        log = self.work_dir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(first.command, env=env, stdout=out, stderr=subprocess.STDOUT)
        part = _Part(name, process, log, port, first.command, env)
        self._parts.append(part)
        self._wait_ready(part, time.monotonic() + timeout_s)

    def kill(self, name: str, *, restart: bool = True, timeout_s: float = 30.0) -> None:
        """SIGKILL one part (``processor``, ``sink``, or an added worker's name).

        With ``restart`` (the default) it is started again at once.
        """
        part = next(p for p in self._parts if p.name == name)
        part.process.kill()
        part.process.wait(timeout=timeout_s)
        self._parts.remove(part)
        if not restart:
            return
        with part.log.open("ab") as out:
            process = subprocess.Popen(
                part.command, env=part.env, stdout=out, stderr=subprocess.STDOUT
            )
        self._parts.append(
            _Part(name, process, part.log, part.metrics_port, part.command, part.env)
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop both parts (SIGTERM, then SIGKILL after ``timeout_s``)."""
        for part in self._parts:
            if part.process.poll() is None:
                part.process.terminate()
        for part in self._parts:
            try:
                part.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                part.process.kill()
                part.process.wait()
        self._parts.clear()

    # ------------------------------------------------------------------ internals
    def environment(self, extra: Mapping[str, str] = {}) -> dict[str, str]:
        """This process's environment with the pipeline's settings (and ``extra``)."""
        return {**os.environ, **self.env(), **extra}

    def _run(self, command: Iterable[str], label: str) -> None:
        done = subprocess.run(
            list(command), env=self.environment(), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            msg = f"{label} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}"
            raise PipelineError(msg)

    def _spawn(self, name: str, command: list[str], extra: Mapping[str, str]) -> None:
        port = free_port()
        log = self.work_dir / f"{name}.log"
        env = self.environment({**extra, "TOKENLINE_METRICS_PORT": str(port)})
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self._parts.append(_Part(name, process, log, port, command, env))

    def _wait_ready(self, part: _Part, deadline: float) -> None:
        while True:
            self.check_running()
            with contextlib.suppress(OSError):
                part.metrics()
                return
            if time.monotonic() > deadline:
                msg = f"{part.name} did not start in time:\n{part.tail()}"
                raise PipelineError(msg)
            time.sleep(0.3)
