"""A real ``tokenline api serve`` process, its database and keys, for the HTTP transport tests.

Everything goes through the ``tokenline`` command as an operator would run it: ``sink
migrate``, ``api keys create``, ``api serve``.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from tokenline.dev._proc import free_port
from tokenline.dev.demo.services import create_database, tokenline_command

if TYPE_CHECKING:
    from pathlib import Path

_READY_S = 120.0  # a readiness wait, not a measure: a loaded machine starts slowly


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLINE_")}
    env.update({f"TOKENLINE_{k.upper()}": v for k, v in settings.items()})
    return env


def migrated_database(server_url: str) -> str:
    """A fresh database on ``server_url``'s server with the sink's schema."""
    url = create_database(server_url, f"http_sdk_{uuid.uuid4().hex[:8]}")
    subprocess.run(
        [tokenline_command(), "sink", "migrate"],
        env=_env(database_url=url),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return url


def create_key(database_url: str, tenant: str, *extra: str) -> str:
    """``tokenline api keys create --tenant TENANT --scope ingest ...``: the key's text."""
    done = subprocess.run(
        [tokenline_command(), "api", "keys", "create", "--tenant", tenant, "--scope", "ingest",
         "--database-url", database_url, *extra],
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    return done.stdout.strip()


class ApiServer:
    """``tokenline api serve`` on a fixed port, producing to ``topic``; stopped and restarted."""

    def __init__(self, database_url: str, bootstrap: str, topic: str, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._env = _env(
            database_url=database_url,
            bootstrap_servers=bootstrap,
            raw_topic=topic,
            api_port=str(self.port),
            api_rate_limit_per_minute="1000000",
        )
        self._log_dir = log_dir
        self._starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process and wait until ``/readyz`` answers 200."""
        self._starts += 1
        log = self._log_dir / f"api-{self._starts}.log"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [tokenline_command(), "api", "serve"], env=self._env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + _READY_S
        while True:
            assert self.process.poll() is None, log.read_text(errors="replace")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM, and wait for the process to end."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.process = None


def read_to_end(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` up to its end offsets now, as (key, value) bytes.

    After a 202 (Kafka acknowledged) the records are below the end offsets, so reading to
    them is exact and involves no waiting for stragglers.
    """
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    found: list[tuple[bytes | None, bytes]] = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        left: dict[int, int] = {}
        starts = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                left[p] = high
                starts.append(TopicPartition(topic, p, low))
        consumer.assign(starts)
        while left:
            msg = consumer.poll(10)
            assert msg is not None, f"partitions {sorted(left)} not read to their end"
            assert msg.error() is None, msg.error()
            found.append((msg.key(), msg.value() or b""))
            if msg.offset() + 1 >= left[msg.partition()]:
                del left[msg.partition()]
    finally:
        consumer.close()
    return found


def counts(events: list[Any]) -> Counter[str]:
    """How many times each event_id is there."""
    return Counter(str(e["event_id"]) for e in events)
