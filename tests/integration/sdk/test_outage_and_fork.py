"""The SDK across a broker outage and a fork: every event arrives; a second copy only by a re-send.

A record whose delivery times out while in flight may have reached the topic all the same; the
spool sends it again, so Kafka holds it twice and the sink's ``event_id`` upsert keeps one
(``tests/integration/sink/test_store.py``). The outage test holds each copy beyond the first
to a spooled record re-sent, and to the same event.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tests._kafka import new_topic, read_events
from tokenline import sdk
from tokenline.dev import kafka
from tokenline.emulator import ProviderEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

CALLS = 10_000


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[list[kafka.KafkaNode]]:
    nodes = [kafka.start(tmp_path / "broker")]  # the test appends the restarted process
    try:
        yield nodes
    finally:
        for node in nodes:
            kafka.stop(node)


def test_broker_outage_loses_nothing(private_broker: list[kafka.KafkaNode], tmp_path: Path) -> None:
    """10,000 wrapped OpenAI calls while the broker stops and comes back: each event once."""
    node = private_broker[0]
    topic = new_topic(node.bootstrap, "outage")
    sdk.configure(
        tenant_id="acme",
        bootstrap_servers=node.bootstrap,
        topic=topic,
        spool_dir=tmp_path / "spool",
        message_timeout_ms=2_000,  # short: undelivered events go through the spool too
        detect_host=False,
        strict=True,
    )
    done = 0

    with ProviderEmulator() as emulator:
        client = sdk.wrap(openai.OpenAI(base_url=f"{emulator.url}/v1", api_key="k", max_retries=0))

        def calls(n: int) -> None:
            nonlocal done
            for _ in range(n):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=4
                )
                done += 1

        calls(CALLS // 5)
        kafka.stop(node)
        assert not kafka.is_running(node)
        calls(CALLS * 2 // 5)  # broker away: every call returns as usual
        # No call waits on Kafka: these returned while the broker was stopped, before anything
        # started it again (no timing involved, so a busy machine cannot fail this).
        assert done == CALLS * 3 // 5
        assert not kafka.is_running(node)
        time.sleep(3)  # long enough for queued events to time out and go to the spool
        restarter = threading.Thread(target=lambda: private_broker.append(kafka.restart(node)))
        restarter.start()
        calls(CALLS - done)  # part of these while the broker comes back
        restarter.join()
        served = len(emulator.calls)
    assert done == served == CALLS
    assert sdk.flush(120) == 0
    resent = sdk.stats().resent
    sdk.close(10)
    received = read_events(node.bootstrap, topic, CALLS, timeout_s=120)
    counts = Counter(e["event_id"] for e in received)
    assert len(counts) == CALLS  # nothing lost
    # A second copy comes only from a spooled record sent again (delivery timed out in flight, yet
    # it had reached the topic), and it is the same event.
    assert len(received) - CALLS <= resent
    copies: dict[Any, Any] = {}
    for event in received:
        assert copies.setdefault(event["event_id"], event) == event
    assert sorted(e["producer_seq"] for e in copies.values()) == list(range(CALLS))
    assert {(e["provider"], e["operation"], e["request_model"]) for e in received} == {
        ("openai", "chat", "gpt-4o-mini")
    }


def test_a_producer_made_before_fork_works_in_the_child(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_bootstrap, "fork")
    sdk.configure(
        tenant_id="acme",
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        spool_dir=tmp_path / "spool",
        detect_host=False,
    )
    sdk.record(provider="openai", model="gpt-4o", input_tokens=1, user_id="parent")
    assert sdk.flush(30) == 0  # the parent's producer and sender thread exist now
    pid = os.fork()
    if pid == 0:  # the child: a pre-fork server's worker
        code = 1
        try:
            sdk.record(provider="openai", model="gpt-4o", input_tokens=2, user_id="child")
            code = 0 if sdk.flush(30) == 0 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sdk.record(provider="openai", model="gpt-4o", input_tokens=3, user_id="parent-after")
    assert sdk.flush(30) == 0
    sdk.close(5)
    events: list[Any] = read_events(kafka_bootstrap, topic, 3)
    by_user = {e["user_id"]: e for e in events}
    assert set(by_user) == {"parent", "child", "parent-after"}
    assert by_user["child"]["producer_id"] != by_user["parent"]["producer_id"]
    assert by_user["parent-after"]["producer_id"] == by_user["parent"]["producer_id"]
