"""Readiness follows Kafka: /readyz fails while the broker is stopped and recovers after it.

The processor and the sink run as their real commands against a private broker (never the
shared one) and a database of their own. Liveness (/healthz) stays green throughout: a
worker waiting for Kafka is alive, only not ready.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import pytest

from tests._db import drop_database
from tokenline.dev import kafka
from tokenline.dev.demo.prices import write_initial_prices
from tokenline.dev.demo.services import DemoPipeline, create_database

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

PARTS = ("processor", "sink")


@pytest.fixture
def pipeline(
    tmp_path: Path, database_url: str
) -> Iterator[tuple[DemoPipeline, list[kafka.KafkaNode]]]:
    nodes = [kafka.start(tmp_path / "broker")]
    run = uuid.uuid4().hex[:6]
    name = f"ready_{run}"
    pipe = DemoPipeline(
        bootstrap=nodes[0].bootstrap,
        database_url=create_database(database_url, name),
        prefix=f"ready-{run}.",
        work_dir=tmp_path,
        prices_file=write_initial_prices(tmp_path / "prices.yaml"),
    )
    try:
        pipe.migrate()
        pipe.create_topics()
        pipe.start()
        yield pipe, nodes
    finally:
        pipe.stop()
        for node in nodes:
            kafka.stop(node)
        drop_database(database_url, name)


def wait_for(pipe: DemoPipeline, part: str, status: int, timeout_s: float) -> str:
    """Poll /readyz of ``part`` until it answers ``status``; its body."""
    deadline = time.monotonic() + timeout_s
    while True:
        pipe.check_running()
        got, body = pipe.probe(part)
        if got == status:
            return body
        if time.monotonic() > deadline:
            msg = f"{part} /readyz still {got} after {timeout_s:.0f} s:\n{body}"
            raise AssertionError(msg)
        time.sleep(1.0)


def test_readiness_fails_without_the_broker_and_recovers_when_it_is_back(
    pipeline: tuple[DemoPipeline, list[kafka.KafkaNode]],
) -> None:
    pipe, nodes = pipeline
    for part in PARTS:
        body = wait_for(pipe, part, 200, timeout_s=120)
        assert body.startswith("ready\n"), body
        assert "kafka: ok" in body
        assert "partitions: 4 assigned (0, 1, 2, 3)" in body, body
    assert "database: ok" in pipe.probe("sink")[1]

    kafka.stop(nodes[0])
    for part in PARTS:
        body = wait_for(pipe, part, 503, timeout_s=60)
        assert body.startswith("not ready\n"), body
        assert f"kafka: Kafka at {nodes[0].bootstrap} did not answer" in body, body
        assert pipe.probe(part, "/healthz")[0] == 200  # alive: waiting is not stalling
    assert "database: ok" in pipe.probe("sink")[1]  # only Kafka is named

    nodes.append(kafka.restart(nodes[0]))
    for part in PARTS:
        body = wait_for(pipe, part, 200, timeout_s=180)
        assert "kafka: ok" in body
