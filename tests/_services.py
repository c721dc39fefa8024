"""Where the tests' Kafka and PostgreSQL come from.

In order: URLs from the environment (``TOKENLINE_TEST_KAFKA_BOOTSTRAP``,
``TOKENLINE_TEST_DATABASE_URL``); testcontainers when a Docker engine answers a ping; else the
local stack of ``tokenline.dev.stack`` (reused when it already runs). Only what this module
started is stopped again.
"""

from __future__ import annotations

import gc
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

KAFKA_ENV = "TOKENLINE_TEST_KAFKA_BOOTSTRAP"
DATABASE_ENV = "TOKENLINE_TEST_DATABASE_URL"
KAFKA_IMAGE = "apache/kafka:3.9.1"
TIMESCALE_IMAGE = "timescale/timescaledb:latest-pg16"


def docker_available(timeout: float = 2.0) -> bool:
    """Tell whether a Docker engine answers a ping within ``timeout`` seconds."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    # docker-py leaks its socket when the engine does not answer; collect it here, silently,
    # rather than in some later test running under filterwarnings=error.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            return _ping(timeout)
        finally:
            gc.collect()


def _ping(timeout: float) -> bool:
    try:
        import docker

        client = docker.from_env(timeout=timeout)
    except Exception:  # noqa: BLE001 - no client, no engine
        return False
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - the engine did not answer
        return False
    finally:
        client.close()


def _kafka_container() -> tuple[str, Callable[[], None]]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    from tokenline.dev._proc import free_port

    # testcontainers' KafkaContainer scripts the Confluent image; apache/kafka is configured
    # by environment, so a generic container with a fixed host port does it.
    port = free_port()
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, port)
        .with_env("KAFKA_NODE_ID", "1")
        .with_env("KAFKA_PROCESS_ROLES", "broker,controller")
        .with_env("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
        .with_env("KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://127.0.0.1:{port}")
        .with_env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
        .with_env(
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        )
        .with_env("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
        .with_env("KAFKA_NUM_PARTITIONS", "4")
        .with_env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    container.start()
    LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(90).wait_until_ready(
        container
    )
    return f"127.0.0.1:{port}", container.stop


def _postgres_container() -> tuple[str, Callable[[], None]]:
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(TIMESCALE_IMAGE, dbname="tokenline", driver=None)
    container.start()
    return str(container.get_connection_url()), container.stop


@dataclass
class Services:
    """Resolves each service once per session and remembers how to release it."""

    state_dir: str | None = None
    _kafka: str | None = None
    _database: str | None = None
    _docker: bool | None = None
    _cleanups: list[Callable[[], None]] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def _use_docker(self) -> bool:
        if self._docker is None:
            self._docker = docker_available()
        return self._docker

    def kafka_bootstrap(self) -> str:
        """Return a Kafka bootstrap address, starting a broker if needed."""
        if self._kafka is None:
            self._kafka = os.environ.get(KAFKA_ENV) or None
            if self._kafka:
                self.sources["kafka"] = "env"
            elif self._use_docker():
                self._kafka, stop = _kafka_container()
                self._cleanups.append(stop)
                self.sources["kafka"] = "testcontainers"
            else:
                self._local()
        assert self._kafka is not None
        return self._kafka

    def database_url(self) -> str:
        """Return a PostgreSQL URL, starting a database if needed."""
        if self._database is None:
            self._database = os.environ.get(DATABASE_ENV) or None
            if self._database:
                self.sources["postgres"] = "env"
            elif self._use_docker():
                self._database, stop = _postgres_container()
                self._cleanups.append(stop)
                self.sources["postgres"] = "testcontainers"
            else:
                self._local()
        assert self._database is not None
        return self._database

    def _local(self) -> None:
        """Bring up, in one parallel call, every service the environment does not provide."""
        from tokenline.dev import stack

        wanted = []
        if self._kafka is None and not os.environ.get(KAFKA_ENV):
            wanted.append("kafka")
        if self._database is None and not os.environ.get(DATABASE_ENV):
            wanted.append("postgres")
        info = stack.up(self.state_dir, services=wanted)
        if "kafka" in wanted:
            self._kafka = info.kafka_bootstrap
            self.sources["kafka"] = "local"
        if "postgres" in wanted:
            self._database = info.database_url
            self.sources["postgres"] = "local"
        if info.started:
            started = info.started
            self._cleanups.append(lambda: stack.down(self.state_dir, services=started))

    def close(self) -> None:
        """Stop what this object started, newest first."""
        while self._cleanups:
            cleanup = self._cleanups.pop()
            try:
                cleanup()
            except Exception:
                log.exception("stopping a test service failed")


def timescale_available(database_url: str) -> bool:
    """Tell whether the TimescaleDB extension is (or can be made) active in the database."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            found = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
            if found.fetchone():
                return True
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error:
        return False
    return True
