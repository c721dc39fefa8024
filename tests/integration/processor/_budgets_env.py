"""The budget tests' world: fresh topics and database, the evaluator as a subprocess."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests import factories
from tests._db import drop_database
from tests._kafka import KEEP
from tests.integration.processor._replay_env import new_database, stop, tokenline
from tokenline.processor.budgets.follow import read_to_end, reader
from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

PARTITIONS = 2
PRICED = AvroCodec[Any]("tokenline.PricedUsageEvent")
ALERT = AvroCodec[Any]("tokenline.BudgetAlert")
STATUS = AvroCodec[Any]("tokenline.BudgetStatus")


@dataclass
class BudgetWorld:
    """Topics under a fresh prefix, a migrated database, and the evaluator's runs."""

    bootstrap: str
    url: str
    tmp: Path
    prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:8]}.")
    runs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "TOKENLINE_BOOTSTRAP_SERVERS": self.bootstrap,
            "TOKENLINE_TOPIC_PREFIX": self.prefix,
            "TOKENLINE_TOPIC_PARTITIONS": str(PARTITIONS),
            "TOKENLINE_DATABASE_URL": self.url,
            "TOKENLINE_WORKER_NAME": "budgets-1",
            "TOKENLINE_METRICS_PORT": "0",
            "TOKENLINE_HEARTBEAT_S": "1",
            "TOKENLINE_BUDGETS_METRICS_PORT": "0",
            "TOKENLINE_SPEND_RATE_FACTOR": "0",  # on in its own test only
            "TOKENLINE_BUDGETS_GROUP": f"{self.prefix}budgets",
            **more,
        }

    def topic(self, name: str) -> str:
        return f"{self.prefix}llm-usage.{name}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tokenline(), *args], env=self.env(), capture_output=True, text=True, check=False
        )

    def tenant(self, tenant_id: str, timezone: str) -> None:
        with psycopg.connect(self.url) as conn:
            conn.execute(
                "INSERT INTO tenants (tenant_id, timezone) VALUES (%s, %s)", [tenant_id, timezone]
            )

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        """Start ``tokenline budgets run`` (its log under tmp)."""
        with (self.tmp / f"budgets-{len(self.runs)}.log").open("wb") as log:
            proc = subprocess.Popen(
                [tokenline(), "budgets", "run"], env=self.env(**env), stdout=log, stderr=log
            )
        self.runs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.runs:
            if proc.poll() is None:
                stop(proc)

    def log(self, n: int) -> str:
        return (self.tmp / f"budgets-{n}.log").read_text(errors="replace")

    def send(self, *events: Any) -> None:
        """Produce priced events, keyed by tenant as the processor keys them."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "acks": "all"})
        for e in events:
            producer.produce(
                self.topic("priced"), key=e["event"]["tenant_id"], value=PRICED.encode(e)
            )
        assert producer.flush(30) == 0

    def alerts(self) -> list[Any]:
        """Every committed alert."""
        return [v for _k, v in self._read("alerts")]

    def statuses(self) -> dict[str, Any]:
        """The latest status per key."""
        return dict(self._read("budget-status"))

    def _read(self, name: str) -> list[tuple[str, Any]]:
        codec = ALERT if name == "alerts" else STATUS
        out: list[tuple[str, Any]] = []

        def keep(_p: int, key: bytes | None, value: bytes | None) -> None:
            if value is not None:
                out.append(((key or b"").decode(), codec.decode(value)))

        consumer = reader({"bootstrap.servers": self.bootstrap}, f"test-{uuid.uuid4().hex[:6]}")
        try:
            read_to_end(consumer, self.topic(name), [0], keep)
        finally:
            consumer.close()
        return out

    def wait_status(
        self, budget_id: str, check: Callable[[Any], bool], timeout_s: float = 90.0
    ) -> Any:
        """The budget's status once ``check`` holds for it (fails after ``timeout_s``)."""
        seen: list[Any] = [None]

        def matched() -> bool:
            seen[0] = self.statuses().get(budget_id)
            return seen[0] is not None and check(seen[0])

        self.wait(matched, lambda: f"status of {budget_id} matching; last {seen[0]}", timeout_s)
        return seen[0]

    def wait(
        self, done: Callable[[], bool], what: Callable[[], str], timeout_s: float = 90.0
    ) -> None:
        """Until ``done()``, failing after ``timeout_s`` or when an evaluator died unkilled."""
        deadline = time.monotonic() + timeout_s
        while not done():
            for n, proc in enumerate(self.runs):
                assert proc.poll() is None or proc.returncode == -9, self.log(n)
            assert time.monotonic() < deadline, f"never happened: {what()}"
            time.sleep(0.2)


def create_priced_topic(world: BudgetWorld) -> None:
    admin = AdminClient({"bootstrap.servers": world.bootstrap})
    name = world.topic("priced")
    admin.create_topics([NewTopic(name, PARTITIONS, 1, config=KEEP)])[name].result(30)


@contextmanager
def budget_world(bootstrap: str, server_url: str, tmp: Path) -> Iterator[BudgetWorld]:
    """A fresh world; its evaluators stopped and its database dropped afterwards."""
    world = BudgetWorld(bootstrap, new_database(server_url), tmp)
    create_priced_topic(world)
    try:
        yield world
    finally:
        world.stop()
        drop_database(server_url, world.url.rsplit("/", 1)[-1])


def priced(
    n: int, cost: str, *, tenant: str = "acme", at: datetime | None = None, **kw: Any
) -> Any:
    """A priced event ``n`` of ``tenant`` costing ``cost`` USD (at ``at``, default now)."""
    event = factories.usage_event(
        event_id=uuid.UUID(int=n), tenant_id=tenant, occurred_at=at or datetime.now(UTC), **kw
    )
    total = {**factories.priced_event()["cost"], "total": Decimal(cost)}
    return factories.priced_event(event=event, cost=total, team=None)
