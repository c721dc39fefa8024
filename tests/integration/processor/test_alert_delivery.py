"""``tokenline alerts`` against local receivers: signatures checked with hmac here, retries
after 500s, and a dead letter once the last try failed."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Producer

from tests import factories
from tests.integration.processor._budgets_env import ALERT, BudgetWorld, budget_world
from tests.integration.processor._replay_env import tokenline
from tokenline.processor.budgets.follow import read_to_end, reader

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

SECRET = "s3cret-for-tests"


class Receiver:
    """An HTTP server that answers 500 to the first ``fail`` requests, then 200."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), data))
                failing = len(receiver.requests) <= receiver.fail
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> Iterator[BudgetWorld]:
    with budget_world(kafka_bootstrap, database_url, tmp_path) as w:
        yield w


def test_signed_retried_and_dead_lettered(world: BudgetWorld) -> None:
    flaky, down = Receiver(fail=2), Receiver(fail=10**6)
    env = world.env(
        TOKENLINE_WEBHOOK_URLS=json.dumps([flaky.url, down.url]),
        TOKENLINE_WEBHOOK_SECRET=SECRET,
        TOKENLINE_WEBHOOK_ATTEMPTS="3",
        TOKENLINE_WEBHOOK_BACKOFF_MS="10",
        TOKENLINE_ALERTS_METRICS_PORT="0",
        TOKENLINE_ALERTS_GROUP=f"{world.prefix}alerts",
    )
    log = world.tmp / "alerts.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([tokenline(), "alerts"], env=env, stdout=out, stderr=out)
    try:
        alert = factories.budget_alert()
        producer = Producer({"bootstrap.servers": world.bootstrap})
        producer.produce(world.topic("alerts"), key=b"b", value=ALERT.encode(alert))
        assert producer.flush(30) == 0
        dead = _wait_dead_letters(world, proc, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        flaky.close()
        down.close()
    # The flaky receiver: two 500s, then taken; every try signed over its exact body.
    assert [h["X-Tokenline-Attempt"] for h, _ in flaky.requests] == ["1", "2", "3"]
    for headers, data in flaky.requests:
        expected = "sha256=" + hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
        assert headers["X-Tokenline-Signature"] == expected
        assert headers["X-Tokenline-Alert-Id"] == alert["alert_id"]
    doc = json.loads(flaky.requests[-1][1])
    assert doc["spend"] == "80.250000000000"  # exact, as a string
    assert doc["threshold_pct"] == 80
    assert doc["period_start"] == "2026-10-31T18:30:00+00:00"
    # The receiver that is down: three tries, then one dead letter naming it.
    assert len(down.requests) == 3
    assert len(dead) == 1
    assert dead[0]["url"] == down.url
    assert dead[0]["statuses"] == [500, 500, 500]
    assert dead[0]["alert"]["alert_id"] == alert["alert_id"]


def _wait_dead_letters(
    world: BudgetWorld, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 90.0
) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        found = _dead_letters(world)
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(log.read_text())


def _dead_letters(world: BudgetWorld) -> list[Any]:
    found: list[Any] = []
    consumer = reader({"bootstrap.servers": world.bootstrap}, "test-dlq")
    try:
        read_to_end(
            consumer,
            world.topic("alerts-dlq"),
            [0],
            lambda _p, _k, v: found.append(json.loads(v or b"null")),
        )
    except Exception:  # noqa: BLE001 - the topic may not exist yet
        return []
    finally:
        consumer.close()
    return found
