from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from tests.factories import EPOCH, priced_event, rollup
from tokenline.sink.batch import (
    EVENT_COLUMNS,
    ROLLUP_COLUMNS,
    backoff_ms,
    dedupe_events,
    first_copies,
    offsets_to_commit,
    split,
)
from tokenline.sink.rows import event_row, rollup_row
from tokenline.sink.settings import SinkSettings
from tokenline.sink.worker import consumer_config, producer_config

pytestmark = pytest.mark.unit


def _row(n: int, version: str, priced_s: int) -> dict[str, Any]:
    return event_row(
        priced_event(pricing_version=version, priced_at=EPOCH + timedelta(seconds=priced_s))
    ) | {"event_id": uuid.UUID(int=n)}


def test_the_columns_written_are_exactly_the_rows_keys() -> None:
    assert set(EVENT_COLUMNS) == set(event_row(priced_event()))
    assert "ingested_at" not in EVENT_COLUMNS
    assert set(ROLLUP_COLUMNS) == set(rollup_row(rollup()))


def test_duplicate_events_keep_the_newest_pricing_in_arrival_order() -> None:
    rows = [_row(1, "a", 5), _row(2, "x", 1), _row(1, "c", 9), _row(1, "b", 7)]
    kept = dedupe_events(rows)
    assert [(r["event_id"].int, r["pricing_version"]) for r in kept] == [(1, "c"), (2, "x")]
    same = [_row(3, "p", 1), _row(3, "q", 1)]
    assert [r["pricing_version"] for r in dedupe_events(same)] == ["q"]


def test_copies_of_one_event_at_other_times_are_landed_in_turns() -> None:
    def at(n: int, minute: int) -> dict[str, Any]:
        return _row(n, "v", 1) | {"occurred_at": EPOCH + timedelta(minutes=minute)}

    rows = [at(1, 0), at(2, 0), at(1, 5), at(3, 0), at(1, 9), at(2, 1)]
    turns = []
    while rows:
        first, rows = first_copies(rows)
        turns.append([(r["event_id"].int, r["occurred_at"].minute) for r in first])
    assert turns == [[(1, 0), (2, 0), (3, 0)], [(1, 5), (2, 1)], [(1, 9)]]


def test_offsets_to_commit_are_the_highest_plus_one_per_partition() -> None:
    seen = [("a", 0, 5), ("a", 0, 3), ("a", 1, 0), ("b", 0, 10)]
    assert offsets_to_commit(seen) == {("a", 0): 6, ("a", 1): 1, ("b", 0): 11}


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff_ms(a, 200, 1_000) for a in range(1, 6)] == [200, 400, 800, 1_000, 1_000]
    assert backoff_ms(10_000, 1, 50) == 50


def test_split_halves() -> None:
    assert split([1, 2, 3]) == ([1], [2, 3])


def test_the_kafka_configs_never_auto_commit_and_use_static_membership_when_named() -> None:
    settings = SinkSettings(database_url=SecretStr("postgresql://db/x"), worker_name="sink-1")
    config = consumer_config(settings)
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["group.instance.id"] == "sink-1"
    assert "group.instance.id" not in consumer_config(
        SinkSettings(database_url=SecretStr("postgresql://db/x"))
    )
    assert producer_config(settings)["enable.idempotence"] is True


def test_default_topics_match_the_processor() -> None:
    settings = SinkSettings(database_url=SecretStr("postgresql://db/x"), topic_prefix="dev.")
    assert settings.topic(settings.priced_topic) == "dev.llm-usage.priced"
    assert settings.dlq_topic == "llm-usage.dlq"
