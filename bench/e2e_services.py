"""What the end-to-end benchmark starts and owns: a database, topics, processors and sinks.

Everything is created under names of its own (a fresh database, a fresh topic prefix that the
processor's Faust topics share through the app id) and released by :class:`Owned`, newest
first, whatever happens: only what this run made is stopped, dropped or deleted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from sqlalchemy.engine import make_url

from tokenline.dev import kafka
from tokenline.dev._proc import free_port

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

TOKENLINE = str(Path(sys.executable).parent / "tokenline")


class Owned(ExitStack):
    """An exit stack that also turns SIGTERM into a clean unwinding (Ctrl-C already does)."""

    def __enter__(self) -> Owned:
        super().__enter__()
        previous = signal.signal(signal.SIGTERM, _interrupt)
        self.callback(signal.signal, signal.SIGTERM, previous)
        return self


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@dataclass
class Child:
    """A subprocess of the benchmark, its log file and its Prometheus port."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    metrics_port: int = 0

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.proc.poll() is None

    def cpu_ticks(self) -> int:
        """utime + stime of the process so far, in clock ticks (0 once it is gone)."""
        return cpu_ticks(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s; always waits for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        """The end of its log."""
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The given broker, or a private one started for this run and stopped after it."""
    if bootstrap:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="tl-bench-kafka-") as home:
        node = kafka.start(Path(home) / "broker")
        try:
            yield node.bootstrap
        finally:
            kafka.stop(node)


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks, 0 when unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def start(owned: ExitStack, name: str, argv: list[str], env: dict[str, str], logs: Path) -> Child:
    """Start ``argv`` with ``env`` over this environment; ``owned`` stops it."""
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out, stderr=out)
    child = Child(name, proc, log, int(env.get("TOKENLINE_METRICS_PORT", "0")))
    owned.callback(child.stop)
    return child


@dataclass(frozen=True)
class Pipeline:
    """Names shared by the processors and sinks of one run."""

    bootstrap: str
    database_url: str
    prefix: str
    partitions: int
    logs: Path
    sink_batch_rows: int
    sink_batch_ms: int
    processors: list[Child] = field(default_factory=list)
    sinks: list[Child] = field(default_factory=list)

    def topic(self, name: str) -> str:
        """A topic of this run."""
        return f"{self.prefix}llm-usage.{name}"

    def start_processor(self, owned: ExitStack) -> Child:
        """One more ``tokenline processor`` in the run's consumer group."""
        n = len(self.processors)
        env = {
            "TOKENLINE_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOKENLINE_TOPIC_PREFIX": self.prefix,
            "TOKENLINE_TOPIC_PARTITIONS": str(self.partitions),
            "TOKENLINE_APP_ID": f"{self.prefix}processor",  # Faust's topics share the prefix
            "TOKENLINE_WORKER_NAME": f"{self.prefix}processor-{n}",
            "TOKENLINE_METRICS_PORT": str(free_port()),
            "TOKENLINE_DATA_DIR": str(self.logs / f"processor-{n}-data"),
            "TOKENLINE_LOG_LEVEL": "warning",
        }
        child = start(owned, f"processor-{n}", [TOKENLINE, "processor"], env, self.logs)
        self.processors.append(child)
        return child

    def start_sink(self, owned: ExitStack) -> Child:
        """One more ``tokenline sink run`` in the run's consumer group."""
        n = len(self.sinks)
        env = {
            "TOKENLINE_DATABASE_URL": self.database_url,
            "TOKENLINE_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOKENLINE_TOPIC_PREFIX": self.prefix,
            "TOKENLINE_GROUP_ID": f"{self.prefix}sink",
            "TOKENLINE_WORKER_NAME": f"{self.prefix}sink-{n}",
            "TOKENLINE_METRICS_PORT": str(free_port()),
            "TOKENLINE_BATCH_MAX_ROWS": str(self.sink_batch_rows),
            "TOKENLINE_BATCH_MAX_MS": str(self.sink_batch_ms),
        }
        child = start(owned, f"sink-{n}", [TOKENLINE, "sink", "run"], env, self.logs)
        self.sinks.append(child)
        return child


def fresh_database(owned: ExitStack, server_url: str) -> str:
    """Create a database of this run, migrate it with ``tokenline sink migrate``; owned drops it."""
    name = f"tl_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    owned.callback(_drop_database, server_url, name)
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    subprocess.run(
        [TOKENLINE, "sink", "migrate", "--database-url", url, "--storage", "postgresql"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return url


def _drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def own_topics(owned: ExitStack, bootstrap: str, prefix: str) -> None:
    """At the end, delete every topic whose name starts with this run's ``prefix``."""
    owned.callback(_delete_topics, bootstrap, prefix)


def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=30)


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The samples of a Prometheus endpoint: name → labels → value."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as response:
        text = response.read().decode()
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def wait_until(what: str, ready: Callable[[], bool], timeout_s: float, *kids: Child) -> None:
    """Poll ``ready`` until it holds; fail with the children's logs if one dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        for kid in kids:
            if not kid.alive():
                raise SystemExit(f"{kid.name} exited while waiting for {what}:\n{kid.tail()}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {k.name}\n{k.tail()}" for k in kids)
            raise SystemExit(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.5)
