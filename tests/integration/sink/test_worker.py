"""The sink worker end to end on the real broker and database (in-process)."""

from __future__ import annotations

import gc
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests._rollup_truth import check_rollups
from tests.integration.sink import _flow
from tests.integration.sink.conftest import settings_for
from tokenline.schemas import AvroCodec
from tokenline.sink.migrate import upgrade
from tokenline.sink.worker import SinkWorker, consumer_config

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration


@pytest.fixture
def url(new_database: Callable[[], str]) -> str:
    made = new_database()
    upgrade(settings_for(made, "postgresql"))
    return made


def _read_all(bootstrap: str, topic: str, expected: int) -> list[Any]:
    codec = AvroCodec[Any]("tokenline.DeadLetter")
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"dlq-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    found: list[Any] = []
    try:
        for _ in range(100):
            found.extend(
                codec.decode(m.value() or b"")
                for m in consumer.consume(100, timeout=0.3)
                if m.error() is None
            )
            if len(found) >= expected:
                break
    finally:
        consumer.close()
    return found


def _committed_and_ends(
    bootstrap: str, group: str, topic: str
) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offset and the end offset of each partition of ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        asked = [TopicPartition(topic, p) for p in partitions]
        committed = {tp.partition: tp.offset for tp in consumer.committed(asked, timeout=10)}
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in asked}
    finally:
        consumer.close()
    return committed, ends


def test_events_and_rollups_land_with_exact_totals_and_bad_records_are_dead_lettered(
    kafka_bootstrap: str, url: str
) -> None:
    names = _flow.topics(kafka_bootstrap)
    settings = _flow.settings(kafka_bootstrap, url, names, worker_name="sink-e2e")
    values, expected_total = _flow.encoded_events(3_000)
    corrupt = b"\xc3\x01not-an-event"
    refused = _flow.event(99_999)
    refused["cost"] = None  # priced, but no cost: PostgreSQL's check constraint refuses it
    codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
    _flow.produce(kafka_bootstrap, names["priced_topic"], [*values[:1500], corrupt])
    _flow.produce(kafka_bootstrap, names["priced_topic"], [codec.encode(refused), *values[1500:]])
    # The processor's rollup feed is not read by the sink: these change nothing.
    _flow.produce(kafka_bootstrap, names["rollup_topic"], _flow.encoded_rollups(40))

    worker = SinkWorker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    collector = gc.get_threshold()
    thread.start()
    try:
        count, total = _flow.wait_for_rows(url, 3_000, timeout_s=60)
        running = gc.get_threshold()  # the worker's, while it lands batches
        dead = _read_all(kafka_bootstrap, names["dlq_topic"], 2)
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    # Offsets are committed asynchronously while the worker runs, and its last ones
    # synchronously when it stops: every record is committed, so a restart replays none.
    committed, ends = _committed_and_ends(
        kafka_bootstrap, settings.group_id, settings.topic(names["priced_topic"])
    )
    assert committed == ends
    assert sum(ends.values()) == 3_002
    assert running == (50_000, *collector[1:])
    assert gc.get_threshold() == collector  # restored when the worker returns
    assert (count, total) == (3_000, expected_total)
    # All but the corrupt record straight into native COPY rows (a redelivered batch may be
    # read twice); the corrupt one through the decoder, which refuses it too.
    assert worker._native_rows is not None
    assert worker._native_rows.made >= 3_001
    assert worker._codec.decoded_natively == 0
    result = check_rollups(url)
    assert result.exact, result.differing
    assert result.rollup_requests == 3_000

    by_reason = {d["reason_code"]: d for d in dead}
    assert set(by_reason) == {"unknown_fingerprint", "rejected_by_database"}
    assert by_reason["unknown_fingerprint"]["value"] == corrupt
    assert by_reason["unknown_fingerprint"]["stage"] == "decode"
    assert by_reason["unknown_fingerprint"]["source_topic"] == names["priced_topic"]
    assert by_reason["rejected_by_database"]["value"] == codec.encode(refused)
    assert "23514" in by_reason["rejected_by_database"]["reason"]
    assert by_reason["rejected_by_database"]["worker"] == "sink-e2e"

    metrics = worker.metrics.registry
    assert metrics.get_sample_value(
        "tokenline_sink_rows_landed_total", {"table": "usage_events"}
    ) == pytest.approx(3_000)
    assert metrics.get_sample_value(
        "tokenline_sink_dead_letters_total", {"reason_code": "rejected_by_database"}
    ) == pytest.approx(1)
    assert total == expected_total
    assert isinstance(total, Decimal)


def test_poison_priced_records_cost_one_dead_letter_each_and_fit_the_dlq(
    kafka_bootstrap: str, url: str
) -> None:
    """Records written straight to the priced topic, past any processor: canaries on both sides.

    A priced record of nearly a megabyte that PostgreSQL refuses has a dead letter larger than
    the producer's limit: it goes out with the value cut, never as a crash. A second copy of an
    event at another time is refused as a duplicate; a long too wide for Avro is undecodable.
    """
    from confluent_kafka import Producer

    names = _flow.topics(kafka_bootstrap, partitions=1)
    settings = _flow.settings(kafka_bootstrap, url, names, worker_name="sink-poison")
    codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
    canaries = [_flow.event(n) for n in range(400)]
    huge = _flow.event(1_000)
    huge["event"]["request_model"] = "\x00" + "m" * 999_000
    copy = _flow.event(5)
    copy["event"]["occurred_at"] = copy["event"]["occurred_at"] + timedelta(hours=1)
    wide_latency = _flow.event(1_002)
    wide_latency["event"]["latency_ms"] = 2**64 + 7
    poisons = [codec.encode(huge), codec.encode(copy), codec.encode(wide_latency)]
    assert len(poisons[0]) > 999_000
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 1_048_000})
    for value in [*map(codec.encode, canaries[:200]), *poisons, *map(codec.encode, canaries[200:])]:
        producer.produce(names["priced_topic"], value=value)
    assert producer.flush(30) == 0

    worker = SinkWorker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        count, total = _flow.wait_for_rows(url, 400, timeout_s=60)
        dead = _read_all(kafka_bootstrap, names["dlq_topic"], 3)
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert (count, total) == (400, sum(c["cost"]["total"] for c in canaries))
    assert check_rollups(url).exact
    by_offset = {d["source_offset"]: d for d in dead}
    assert sorted(by_offset) == [200, 201, 202]
    cut = by_offset[200]
    assert cut["reason_code"] == "rejected_by_database"
    assert cut["reason"].startswith(("22021:", "54000:"))
    assert "[value truncated from " in cut["reason"]
    assert poisons[0].startswith(cut["value"])
    assert by_offset[201]["reason_code"] == "duplicate_event_id"
    assert by_offset[201]["value"] == poisons[1]
    assert by_offset[202]["reason_code"] == "schema_mismatch"


def test_offsets_of_a_partition_moved_to_another_worker_are_left_to_it(
    kafka_bootstrap: str, url: str
) -> None:
    """A batch landed across a rebalance commits only the partitions the worker still owns.

    Its offset commit runs after the landing (a chore), and the rebalance may have moved one of
    its partitions meanwhile: that partition's offset is its new owner's to commit, and one
    committed here could rewind it. Read back from the broker: the partition kept is committed,
    the one moved is not.
    """
    names = _flow.topics(kafka_bootstrap)
    settings = _flow.settings(kafka_bootstrap, url, names, worker_name="sink-moved")
    topic = settings.topic(names["priced_topic"])
    worker = SinkWorker(settings)
    consumer = Consumer(
        {**consumer_config(settings), "on_commit": worker._committed}  # the worker's own
    )
    worker._consumer = consumer
    kept, moved = TopicPartition(topic, 0), TopicPartition(topic, 1)
    try:
        worker._on_assign(consumer, [kept, moved])
        worker._on_revoke(consumer, [moved])  # the rebalance, before the batch's commit
        worker._commit({(topic, 0): 7, (topic, 1): 9})
        worker._commit_last()
    finally:
        consumer.close()
    committed, _ends = _committed_and_ends(kafka_bootstrap, settings.group_id, topic)
    assert committed[0] == 7
    assert committed[1] < 0  # none: OFFSET_INVALID
