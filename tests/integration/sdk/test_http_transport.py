"""The SDK's HTTP transport against a real ``tokenline api serve`` process and the real broker.

Events land on the raw topic once, as the same bytes the Kafka emitter produces; an API outage
spools them and they arrive once after it; a process that records and exits loses nothing; a
bad key and a refused event are reported, never raised into the caller.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tests._db import drop_database
from tests._kafka import new_topic
from tests.integration.sdk._api_server import (
    ApiServer,
    counts,
    create_key,
    migrated_database,
    read_to_end,
)
from tokenline import sdk
from tokenline.emulator import ProviderEmulator
from tokenline.schemas import AvroCodec
from tokenline.sdk._runtime import replace_runtime
from tokenline.sdk._settings import load_settings
from tokenline.sdk.emitters import HttpEmitter, InMemoryEmitter, KafkaEmitter

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenline.sdk import Stats

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

TENANT = "acme"
CHILD = Path(__file__).with_name("_child.py")
ROOT = Path(__file__).resolve().parents[3]
CODEC = AvroCodec[Any]("tokenline.UsageEvent")


@pytest.fixture(scope="module")
def api_database(database_url: str) -> Iterator[str]:
    url = migrated_database(database_url)
    yield url
    drop_database(database_url, url.rsplit("/", 1)[-1])


@pytest.fixture(scope="module")
def key(api_database: str) -> str:
    return create_key(api_database, TENANT, "--name", "sdk http transport tests")


@pytest.fixture
def api(api_database: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[tuple[ApiServer, str]]:
    """A running API producing to a fresh raw topic of its own."""
    topic = new_topic(kafka_bootstrap, "http-raw", partitions=3)
    server = ApiServer(api_database, kafka_bootstrap, topic, tmp_path)
    server.start()
    try:
        yield server, topic
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _no_runtime() -> Iterator[None]:
    yield
    replace_runtime(None, 5)


def _http(server: ApiServer, key: str, tmp_path: Path, **more: Any) -> dict[str, Any]:
    return {
        "transport": "http",
        "ingest_url": server.url,
        "ingest_key": key,
        "tenant_id": TENANT,
        "spool_dir": tmp_path / "spool",
        "detect_host": False,
        **more,
    }


def _made_events() -> list[Any]:
    """Events as the SDK makes them for a few calls (by hand; a wrapped OpenAI client against
    the emulator, plain and streamed), every kind of field filled in."""
    memory = InMemoryEmitter()
    sdk.configure(emitter=memory, tenant_id=TENANT, project="checkout", service_name="web")
    sdk.record(
        provider="anthropic", operation="chat", model="claude-sonnet-4", input_tokens=1200,
        output_tokens=70, cache_read_input_tokens=300, cache_write_input_tokens=20,
        reasoning_tokens=5, latency_ms=812, user_id="u-1", session_id="s-1", team="search",
        tags={"route": "/chat", "tier": "gold"},
    )  # fmt: skip
    sdk.record(provider="openai", model="gpt-4o", success=False, error_type="RateLimitError")
    sdk.record(provider="bedrock", operation="embedding", model="titan", batch=True)
    with ProviderEmulator() as emulator:
        client = sdk.wrap(openai.OpenAI(base_url=f"{emulator.url}/v1", api_key="k", max_retries=0))
        with sdk.context(user_id="u-2", tags={"feature": "rerank"}):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            for _chunk in client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            ):
                pass
    assert sdk.flush(30) == 0
    replace_runtime(None, 5)
    assert len(memory.events) == 5
    return memory.events


def _wait_for(read: Any, what: str, timeout_s: float = 120.0) -> None:
    """Wait (a readiness wait, not a measure) until ``read()`` is true."""
    deadline = time.monotonic() + timeout_s
    while not read():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_events_land_once_as_the_bytes_the_kafka_emitter_produces(
    api: tuple[ApiServer, str], key: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    server, http_topic = api
    events = _made_events()
    kafka_topic = new_topic(kafka_bootstrap, "http-twin", partitions=3)
    settings = load_settings(**_http(server, key, tmp_path), bootstrap_servers=kafka_bootstrap)
    over_http = HttpEmitter(settings)
    over_kafka = KafkaEmitter(settings.model_copy(update={"topic": kafka_topic}))
    for event in events:
        over_http.emit(event)
        over_kafka.emit(event)
    assert over_http.flush(60) == 0
    assert over_kafka.flush(60) == 0
    over_http.close(5)
    over_kafka.close(5)
    assert (over_http.delivered, over_http.failed, over_http.error) == (5, 0, None)

    landed = read_to_end(kafka_bootstrap, http_topic)
    twins = read_to_end(kafka_bootstrap, kafka_topic)
    assert counts([CODEC.decode(v) for _, v in landed]) == counts(events)  # each once
    assert {k for k, _ in landed} == {TENANT.encode()}
    by_id = {str(CODEC.decode(v)["event_id"]): v for _, v in landed}
    for _, value in twins:
        decoded = CODEC.decode(value)
        assert CODEC.decode(by_id[str(decoded["event_id"])]) == decoded
        assert by_id[str(decoded["event_id"])] == value  # byte for byte


def test_batches_through_the_sdk_each_event_once(
    api: tuple[ApiServer, str], key: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    server, topic = api
    sdk.configure(**_http(server, key, tmp_path, ingest_batch_max=40))
    for i in range(300):
        sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=i, user_id="batch")
    assert sdk.flush(60) == 0
    stats = sdk.stats()
    assert (stats.sent, stats.spooled, stats.transport_error) == (300, 0, None)
    landed = [CODEC.decode(v) for _, v in read_to_end(kafka_bootstrap, topic)]
    assert len(counts(landed)) == 300
    assert set(counts(landed).values()) == {1}
    assert sorted(e["usage"]["input_tokens"] for e in landed) == list(range(300))
    assert sorted(e["producer_seq"] for e in landed) == list(range(300))  # the SDK's own


def test_api_outage_spools_then_delivers_every_event_once(
    api: tuple[ApiServer, str], key: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    server, topic = api
    n = 250
    sdk.configure(**_http(server, key, tmp_path))
    sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=0, user_id="before")
    assert sdk.flush(60) == 0
    server.stop()
    for i in range(n):
        sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=i + 1, user_id="outage")
    _wait_for(lambda: sdk.stats().spooled == n, "every call of the outage spooled")
    stats: Stats = sdk.stats()
    assert (stats.sent, stats.in_queue, stats.in_kafka) == (1, 0, 0)
    assert stats.transport_error is not None
    assert "no answer from" in stats.transport_error
    assert not any(stats.dropped.values())

    server.start()
    assert sdk.flush(180) == 0
    stats = sdk.stats()
    assert (stats.sent, stats.resent, stats.transport_error) == (n + 1, n, None)
    landed = [CODEC.decode(v) for _, v in read_to_end(kafka_bootstrap, topic)]
    assert len(counts(landed)) == n + 1
    assert set(counts(landed).values()) == {1}
    outage = sorted(e["usage"]["input_tokens"] for e in landed if e["user_id"] == "outage")
    assert outage == list(range(1, n + 1))


@pytest.mark.parametrize("how", ["return", "sigterm"])
def test_a_process_that_records_and_exits_loses_nothing(
    how: str, api: tuple[ApiServer, str], key: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    server, topic = api
    n = 400
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLINE_")}
    env |= {
        "TOKENLINE_TRANSPORT": "http",
        "TOKENLINE_INGEST_URL": server.url,
        "TOKENLINE_INGEST_KEY": key,
    }
    spool = tmp_path / "spool"
    args = [sys.executable, str(CHILD), "record", "unused:9092", "unused", str(spool), str(n)]
    proc = subprocess.Popen(
        [*args, how, how],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "recorded", proc.communicate(timeout=60)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (0 if how == "return" else -signal.SIGTERM), err
    landed = [CODEC.decode(v) for _, v in read_to_end(kafka_bootstrap, topic)]
    assert len(counts(landed)) == n, err
    assert set(counts(landed).values()) == {1}
    assert sorted(e["usage"]["input_tokens"] for e in landed) == list(range(n))
    assert not list((spool / "http").glob("*.seg"))  # nothing left for a later process


def test_a_bad_key_is_a_stats_error_never_an_exception(
    api: tuple[ApiServer, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    server, topic = api
    sdk.configure(**_http(server, "tlk_nosuchkey_secret", tmp_path))
    for i in range(5):
        sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=i)  # never raises
    _wait_for(lambda: sdk.stats().spooled == 5, "the refused batch spooled")
    stats = sdk.stats()
    assert stats.transport_error == "401 unknown or revoked API key"
    assert (stats.sent, sum(stats.dropped.values())) == (0, 0)  # kept for a good key
    assert read_to_end(kafka_bootstrap, topic) == []


def test_events_the_api_refuses_are_dropped_with_the_reason_the_rest_delivered(
    api: tuple[ApiServer, str],
    key: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, topic = api
    sdk.configure(**_http(server, key, tmp_path, send_interval_ms=10_000))  # one batch
    sdk.record(provider="openai", model="gpt-4o", input_tokens=1)
    sdk.record(provider="openai", model="gpt-4o", input_tokens=2, tenant_id="globex")
    sdk.record(provider="openai", model="gpt-4o", input_tokens=3)
    with caplog.at_level("ERROR", logger="tokenline.sdk.emitters._http"):
        assert sdk.flush(60) == 0
    stats = sdk.stats()
    assert (stats.sent, stats.dropped["refused"], stats.spooled) == (2, 1, 0)
    assert "$[1].tenant_id: this key may not ingest that tenant" in caplog.text
    landed = [CODEC.decode(v) for _, v in read_to_end(kafka_bootstrap, topic)]
    assert sorted(e["usage"]["input_tokens"] for e in landed) == [1, 3]


def test_429_spools_and_waits_for_retry_after(
    api: tuple[ApiServer, str], api_database: str, tmp_path: Path
) -> None:
    server, _ = api
    one_a_minute = create_key(api_database, TENANT, "--rate-limit", "1")
    settings = load_settings(**_http(server, one_a_minute, tmp_path))
    emitter = HttpEmitter(settings)
    spooled: list[bytes] = []
    emitter.on_undelivered = lambda _key, value: spooled.append(value)
    event = _made_events()[0]
    emitter.emit(event)
    assert emitter.flush(60) == 0
    assert emitter.delivered == 1
    emitter.emit(event)
    emitter.poll()
    assert emitter.error is not None
    assert emitter.error.startswith("429 rate limit of 1 requests a minute")
    assert len(spooled) == 1
    assert emitter.retry_at - time.monotonic() > 30  # Retry-After was about 60 s
    assert emitter.probe(1) is False  # nothing is tried before then
    emitter.close(0)
