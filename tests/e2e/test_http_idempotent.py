"""Ingest over HTTP is idempotent by ``event_id`` end to end: a batch sent twice is stored once.

The case is the SDK's HTTP transport re-sending a batch the API did take (its answer was lost,
or the request timed out on the client's side): the API produces what it is given, so the raw
topic holds each event twice; the processor and the sink must keep one row per event. All the
events have one tenant, so one partition: a marker sent after the duplicates is stored only
once they have gone through, and the row count is then exact.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.e2e._pipeline import running_pipeline, wait_rows
from tests.integration.sdk._api_server import ApiServer, create_key, read_to_end
from tokenline import sdk
from tokenline.schemas import AvroCodec
from tokenline.sdk._runtime import replace_runtime
from tokenline.sdk._settings import load_settings
from tokenline.sdk.emitters import HttpEmitter, InMemoryEmitter

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

N = 50


def _events(count: int, label: str) -> list[Any]:
    memory = InMemoryEmitter()
    sdk.configure(emitter=memory, tenant_id="acme", detect_host=False)
    for i in range(count):
        sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=i, user_id=label)
    replace_runtime(None, 5)
    return memory.events


def test_a_batch_sent_twice_is_stored_once(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    prices = "prices: []\n"
    with running_pipeline(kafka_bootstrap, database_url, tmp_path, prices, "httpidem") as pipeline:
        raw = pipeline.topic("raw")
        key = create_key(pipeline.database_url, "acme")
        api = ApiServer(pipeline.database_url, kafka_bootstrap, raw, tmp_path)
        api.start()
        try:
            settings = load_settings(
                transport="http", ingest_url=api.url, ingest_key=key, spool_dir=tmp_path / "s"
            )
            emitter = HttpEmitter(settings)
            batch = _events(N, "twice")
            for _ in range(2):  # the same events, as a re-sent batch
                for event in batch:
                    emitter.emit(event)
                assert emitter.flush(60) == 0
            for event in _events(1, "marker"):
                emitter.emit(event)
            assert emitter.flush(60) == 0
            assert (emitter.delivered, emitter.failed) == (2 * N + 1, 0)
            emitter.close(5)
        finally:
            api.stop()

        codec = AvroCodec[Any]("tokenline.UsageEvent")
        on_raw = Counter(
            str(codec.decode(v)["event_id"]) for _, v in read_to_end(kafka_bootstrap, raw)
        )
        assert sorted(on_raw.values()) == [1] + [2] * N  # the API does not deduplicate
        wait_rows(pipeline, N + 1)
        with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
            stored = conn.execute("SELECT event_id::text, count(*) FROM usage_events GROUP BY 1")
            rows = dict(stored.fetchall())
        assert set(rows) == set(on_raw)
        assert set(rows.values()) == {1}
