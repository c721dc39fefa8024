"""The local stack: one Kafka broker and one PostgreSQL cluster, tracked in a JSON state file.

``up`` starts both services in parallel, or reuses those that still run and answer; ``down``
stops them and deletes everything under the state directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenline.dev import kafka, postgres

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)

SERVICES = ("kafka", "postgres")
STATE_FILE = "state.json"
_LOCK_FILE = "stack.lock"


@dataclass(frozen=True)
class StackInfo:
    """Where the local services are and how to reach them."""

    state_dir: Path
    kafka: kafka.KafkaNode | None
    postgres: postgres.PostgresCluster | None
    started: tuple[str, ...] = ()
    elapsed: float = 0.0

    @property
    def kafka_bootstrap(self) -> str | None:
        """Return the broker's ``host:port``."""
        return self.kafka.bootstrap if self.kafka else None

    @property
    def database_url(self) -> str | None:
        """Return the ``tokenline`` database URL."""
        return self.postgres.database_url if self.postgres else None

    @property
    def timescale(self) -> bool:
        """Tell whether the TimescaleDB extension is active in the database."""
        return bool(self.postgres and self.postgres.timescale)

    @property
    def kafka_pid(self) -> int | None:
        """Return the broker's process id."""
        return self.kafka.pid if self.kafka else None

    @property
    def postgres_pid(self) -> int | None:
        """Return the postmaster's process id."""
        return self.postgres.pid if self.postgres else None

    @property
    def reused(self) -> tuple[str, ...]:
        """Return the services that were already running."""
        present = [name for name in SERVICES if getattr(self, name) is not None]
        return tuple(name for name in present if name not in self.started)


@dataclass(frozen=True)
class StackStatus:
    """What the state file records and whether each service still runs and answers."""

    info: StackInfo
    kafka_running: bool
    postgres_running: bool

    @property
    def running(self) -> bool:
        """Tell whether both services run and answer."""
        return self.kafka_running and self.postgres_running


def default_state_dir() -> Path:
    """Return ``$TOKENLINE_STACK_DIR`` or ``~/.local/state/tokenline/stack``."""
    override = os.environ.get("TOKENLINE_STACK_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "tokenline" / "stack"


def _resolve(state_dir: Path | str | None) -> Path:
    return Path(state_dir).expanduser().absolute() if state_dir else default_state_dir()


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / _LOCK_FILE).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load(state_dir: Path) -> StackInfo:
    path = state_dir / STATE_FILE
    data: dict[str, Any] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        data = json.loads(path.read_text(encoding="utf-8"))
    kafka_data, pg_data = data.get("kafka"), data.get("postgres")
    return StackInfo(
        state_dir=state_dir,
        kafka=kafka.KafkaNode.from_json(kafka_data) if kafka_data else None,
        postgres=postgres.PostgresCluster.from_json(pg_data) if pg_data else None,
    )


def _save(info: StackInfo) -> None:
    data = {
        "kafka": info.kafka.to_json() if info.kafka else None,
        "postgres": info.postgres.to_json() if info.postgres else None,
    }
    path = info.state_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _check(services: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(services)
    unknown = set(chosen) - set(SERVICES)
    if unknown:
        msg = f"unknown services: {sorted(unknown)}"
        raise ValueError(msg)
    return chosen


def up(state_dir: Path | str | None = None, services: Iterable[str] = SERVICES) -> StackInfo:
    """Start the stack's services in parallel, reusing those that still run and answer."""
    began = time.monotonic()
    wanted = _check(services)
    root = _resolve(state_dir)
    with _locked(root):
        info = _load(root)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tokenline-dev") as pool:
            kafka_job = pg_job = None
            if "kafka" in wanted and not (info.kafka and kafka.is_running(info.kafka)):
                if info.kafka:
                    kafka.stop(info.kafka, timeout=5)
                kafka_job = pool.submit(kafka.start, root / "kafka")
            if "postgres" in wanted and not (info.postgres and postgres.is_running(info.postgres)):
                if info.postgres:
                    postgres.stop(info.postgres, timeout=5)
                pg_job = pool.submit(postgres.start, root / "postgres")
            started: list[str] = []
            errors: list[BaseException] = []
            node, cluster = info.kafka, info.postgres
            if kafka_job is not None:
                try:
                    node = kafka_job.result()
                    started.append("kafka")
                except Exception as exc:  # noqa: BLE001 - re-raised below after bookkeeping
                    errors.append(exc)
                    node = None
            if pg_job is not None:
                try:
                    cluster = pg_job.result()
                    started.append("postgres")
                except Exception as exc:  # noqa: BLE001 - re-raised below after bookkeeping
                    errors.append(exc)
                    cluster = None
        info = StackInfo(root, node, cluster, tuple(started), time.monotonic() - began)
        _save(info)
    if errors:
        raise errors[0]
    log.info("stack up in %.1f s (started: %s)", info.elapsed, ", ".join(started) or "none")
    return info


def status(state_dir: Path | str | None = None) -> StackStatus:
    """Report what the state file records and whether each service runs and answers."""
    info = _load(_resolve(state_dir))
    return StackStatus(
        info=info,
        kafka_running=bool(info.kafka and kafka.is_running(info.kafka)),
        postgres_running=bool(info.postgres and postgres.is_running(info.postgres)),
    )


def down(state_dir: Path | str | None = None, services: Iterable[str] = SERVICES) -> None:
    """Stop the given services and delete their data; with all services, remove the state dir."""
    wanted = _check(services)
    root = _resolve(state_dir)
    if not root.exists():
        return
    with _locked(root):
        info = _load(root)
        if "kafka" in wanted:
            if info.kafka:
                kafka.stop(info.kafka)
            postgres.remove(root / "kafka")
            info = StackInfo(root, None, info.postgres)
        if "postgres" in wanted:
            if info.postgres:
                postgres.stop(info.postgres)
                postgres.remove(Path(info.postgres.cluster_dir))
            postgres.remove(root / "postgres")
            info = StackInfo(root, info.kafka, None)
        if info.kafka or info.postgres:
            _save(info)
        else:
            (root / STATE_FILE).unlink(missing_ok=True)
            (root / _LOCK_FILE).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        root.rmdir()
    log.info("stack down: %s", ", ".join(wanted))
