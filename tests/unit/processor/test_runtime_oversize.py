"""Nothing the processor produces is too large to send: oversized records are dead letters.

The measure is aiokafka's own estimate of a record's size (what its producer compares with
``max_request_size``, where Faust's ``MessageSizeTooLargeError`` came from).
"""

from __future__ import annotations

import os
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from tests.factories import usage_event
from tests.unit.processor.test_pipeline import BOOK
from tokenline.processor.metrics import Metrics
from tokenline.processor.runtime import ProcessorRuntime
from tokenline.processor.settings import ProcessorSettings
from tokenline.schemas import AvroCodec

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)
USAGE = AvroCodec[Any]("tokenline.UsageEvent")
DLQ = AvroCodec[Any]("tokenline.DeadLetter")
SOURCE: Any = {"topic": "llm-usage.raw", "partition": 2, "offset": 4242}


def _runtime(max_message_bytes: int = 1_000_000) -> ProcessorRuntime:
    settings = ProcessorSettings(worker_name="w", max_message_bytes=max_message_bytes)
    return ProcessorRuntime(settings=settings, metrics=Metrics(), book=BOOK)


def _fits(key: bytes | None, value: bytes, limit: int) -> bool:
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])) <= limit


def test_a_megabyte_model_string_is_dead_lettered_cut_to_fit() -> None:
    event = usage_event(occurred_at=NOW, request_model="m" * 1_000_000)
    raw = USAGE.encode(event)
    handled = _runtime().handle(raw, key=b"acme", source=SOURCE, timestamp_ms=None, now=NOW)
    assert handled.priced is None
    assert handled.priced_value is None
    assert handled.dlq_value is not None
    assert _fits(b"acme", handled.dlq_value, 1_000_000)
    dead = DLQ.decode(handled.dlq_value)
    assert dead["reason_code"] == "invalid_event"
    assert dead["reason"].startswith("text_too_long: request_model has 1000000 characters")
    assert f"value truncated from {len(raw)} to " in dead["reason"]
    assert raw.startswith(dead["value"])
    assert (dead["source_topic"], dead["source_partition"], dead["source_offset"]) == (
        "llm-usage.raw",
        2,
        4242,
    )


@pytest.mark.parametrize("key", [None, b"acme"])
def test_a_megabyte_of_random_bytes_is_dead_lettered_cut_to_fit(key: bytes | None) -> None:
    raw = b"\xc3\x02" + os.urandom(1_000_000)  # never a single-object header
    handled = _runtime().handle(raw, key=key, source=SOURCE, timestamp_ms=None, now=NOW)
    assert handled.dlq_value is not None
    assert _fits(key, handled.dlq_value, 1_000_000)
    dead = DLQ.decode(handled.dlq_value)
    assert dead["reason_code"] == "wrong_magic"
    assert raw.startswith(dead["value"])
    assert dead["key"] == key


def test_a_valid_event_whose_priced_record_is_too_large_is_dead_lettered_whole_or_cut() -> None:
    """The widest valid event is about 200 kB; with a 60 kB limit its priced record is over."""
    rng = random.Random(7)
    wide = {
        f"k{n}": "".join(chr(rng.randrange(0x10000, 0x10FFFE)) for _ in range(400))
        for n in range(60)
    }
    event = usage_event(occurred_at=NOW - timedelta(seconds=1), tags=wide)
    raw = USAGE.encode(event)
    limit = 60_000
    assert len(raw) > limit
    rt = _runtime(limit)
    handled = rt.handle(raw, key=b"acme", source=SOURCE, timestamp_ms=None, now=NOW)
    assert handled.priced is None  # no window counts it either
    assert handled.window_key is None
    assert handled.dlq_value is not None
    assert _fits(b"acme", handled.dlq_value, limit)
    dead = DLQ.decode(handled.dlq_value)
    assert dead["reason_code"] == "oversize"
    assert dead["stage"] == "encode"
    assert "over the producer's 60000-byte limit" in dead["reason"]
    assert raw.startswith(dead["value"])
    # with the default limit the same event is priced
    priced = _runtime().handle(raw, key=b"acme", source=SOURCE, timestamp_ms=None, now=NOW)
    assert priced.priced_value is not None
    assert _fits(b"acme", priced.priced_value, 1_000_000)


def test_the_guard_and_the_producers_agree_on_the_limit() -> None:
    from pydantic import SecretStr

    from tokenline.processor.hotpath import producer_config
    from tokenline.sink.settings import SinkSettings
    from tokenline.sink.worker import producer_config as sink_producer_config

    processor = ProcessorSettings(worker_name="w", max_message_bytes=60_000)
    assert producer_config(processor)["message.max.bytes"] == 60_000
    sink = SinkSettings(database_url=SecretStr("postgresql://x/y"), max_message_bytes=70_000)
    assert sink_producer_config(sink)["message.max.bytes"] == 70_000
    # the defaults are the clients' own: 1,000,000 bytes
    assert ProcessorSettings().max_message_bytes == 1_000_000
