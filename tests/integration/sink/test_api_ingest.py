"""``POST /v1/usage`` against the real broker: every accepted event is on the raw topic once.

The topic is read to its end offsets after the 202 (which means Kafka acknowledged), so the
count is exact and no wait is involved.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from tests._kafka import new_topic
from tests.integration.sink._api import TIMEZONES, Keys, api_settings, bearer, make_keys
from tests.integration.sink._data import insert_rows
from tokenline.schemas import AvroCodec
from tokenline.sink.api.app import create_app
from tokenline.sink.api.keys import KeyStore

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

TENANT = "t-kolkata"


@pytest.fixture(scope="module")
def topic(kafka_bootstrap: str) -> str:
    return new_topic(kafka_bootstrap, "api-raw", partitions=3)


@pytest.fixture(scope="module")
def keys(plain_url: str) -> Keys:
    insert_rows(plain_url, [], tenants=TIMEZONES)
    return make_keys(plain_url)


@pytest.fixture(scope="module")
def client(plain_url: str, kafka_bootstrap: str, topic: str) -> Iterator[TestClient]:
    settings = api_settings(plain_url, bootstrap_servers=kafka_bootstrap, raw_topic=topic)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def _event(i: int, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "tenant_id": TENANT,
        "occurred_at": f"2026-12-01T10:{i % 60:02d}:00+05:30",
        "provider": "anthropic",
        "operation": "chat",
        "request_model": "claude-sonnet-4",
        "usage": {"input_tokens": 100 + i, "output_tokens": 7, "cache_read_input_tokens": 3},
        "usage_source": "reported",
        "streamed": True,
        "latency_ms": 250,
        "time_to_first_token_ms": 40,
        "success": True,
        "tags": {"route": "/chat"},
        "host": {"hostname": "lambda-1", "language": "javascript"},
    }
    event.update(changes)
    return event


def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes, Any]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"t-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    codec = AvroCodec[Any]("tokenline.UsageEvent")
    found = []
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                parts.append((p, low, high))
        consumer.assign([TopicPartition(topic, p, low) for p, low, _ in parts])
        left = {p: high for p, _, high in parts}
        while left:
            msg = consumer.poll(10)
            assert msg is not None, f"partitions {sorted(left)} not read to their end"
            assert msg.error() is None, msg.error()
            found.append((msg.key(), codec.decode(msg.value())))
            if msg.offset() + 1 >= left[msg.partition()]:
                del left[msg.partition()]
    finally:
        consumer.close()
    return found


def test_a_batch_lands_on_the_raw_topic_once(
    client: TestClient, keys: Keys, kafka_bootstrap: str, topic: str
) -> None:
    given_id = str(uuid.uuid4())
    batch = [_event(i) for i in range(120)] + [_event(120, event_id=given_id)]
    response = client.post("/v1/usage", json=batch, headers=bearer(keys.kolkata))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 121
    assert body["event_ids"][-1] == given_id
    single = client.post("/v1/usage", json=_event(7), headers=bearer(keys.kolkata_ingest_only))
    assert single.status_code == 202, single.text
    ids = [*body["event_ids"], *single.json()["event_ids"]]

    landed = _read_all(kafka_bootstrap, topic)
    counts = Counter(str(event["event_id"]) for _, event in landed)
    assert counts == Counter(ids)  # every event once, nothing else
    assert {key for key, _ in landed} == {TENANT.encode()}
    by_id = {str(event["event_id"]): event for _, event in landed}
    sent = by_id[given_id]
    assert sent["usage"]["input_tokens"] == 220
    assert sent["occurred_at"].isoformat() == "2026-12-01T04:30:00+00:00"
    assert sent["tags"] == {"route": "/chat"}
    assert sent["host"]["language"] == "javascript"
    seqs = sorted(e["producer_seq"] for _, e in landed if str(e["event_id"]) != given_id)
    assert len(set(seqs)) == len(seqs)  # the API's own producer sequence has no repeats


def test_every_problem_is_listed_and_nothing_is_sent(
    client: TestClient, keys: Keys, kafka_bootstrap: str, topic: str
) -> None:
    before = len(_read_all(kafka_bootstrap, topic))
    bad = [
        _event(1),
        _event(2, provider="openia", latency_ms="fast", extra=1),
        _event(3, usage={"input_tokens": 1.5}, occurred_at="2026-12-01T10:00:00"),
    ]
    response = client.post("/v1/usage", json=bad, headers=bearer(keys.kolkata))
    assert response.status_code == 422
    problems = response.json()["problems"]
    assert sorted(problems) == sorted(
        [
            "$[1].extra: unknown field",
            "$[1].provider: must be one of openai, azure_openai, anthropic, bedrock, gemini, "
            "other, vertex_ai",
            "$[1].latency_ms: must be an integer in [-9223372036854775808, 9223372036854775807]",
            "$[2].occurred_at: must be an ISO 8601 time with an offset, e.g. 2026-10-01T09:30:00Z",
            "$[2].usage.input_tokens: must be an integer in [-9223372036854775808, "
            "9223372036854775807]",
        ]
    )
    assert len(_read_all(kafka_bootstrap, topic)) == before


def test_a_read_only_key_cannot_ingest(client: TestClient, plain_url: str) -> None:
    with psycopg.connect(plain_url, row_factory=dict_row, autocommit=True) as conn:
        made = KeyStore().create(conn, tenant_id=TENANT, scopes=("read",))
    response = client.post("/v1/usage", json=_event(1), headers=bearer(made.text))
    assert response.status_code == 403
