"""`tokenline replay` on the real broker and database, with the real sink worker landing it.

One module world: fresh topics (2 partitions) and a fresh migrated database, a sink worker
subprocess, raw events of two tenants over six minutes (one model unknown to every table, one
event sent twice). The first replay, with table A, plays the live processor and seeds the
priced state; the next ones re-price with table B, where only Sonnet's output price differs.
Each stage is a module fixture that the tests ask for (``seeded``, then ``repriced``), so the
tests hold in any order and each runs what it needs.
"""

from __future__ import annotations

import subprocess
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from tests._daily_truth import check_daily
from tests._rollup_truth import check_rollups
from tests.integration.processor import _replay_env as env
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import Normalizer, price_event
from tokenline.processor.replay import ReplayRequest, RetentionError, run_replay
from tokenline.processor.windows import window_start

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tokenline.processor.replay import ReplayReport


pytestmark = pytest.mark.integration

FROM = env.T0 + timedelta(minutes=1)
TO = env.T0 + timedelta(minutes=5)
BOOK_A = PriceBook(env.TABLE_A)
BOOK_B = PriceBook(env.TABLE_B)


@pytest.fixture(scope="module")
def world(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[env.World]:
    records = env.events(["acme", "globex"], windows=7, per_window=6)
    duplicate = [e for e in records if FROM <= e["occurred_at"] < TO][3]
    tmp = tmp_path_factory.mktemp("replay")
    with env.open_world(
        kafka_bootstrap, database_url, tmp, records, (FROM, TO), also_send=[duplicate]
    ) as handle:
        handle.add_book("a", BOOK_A)
        handle.add_book("b", BOOK_B)
        yield handle


Costs = dict[uuid.UUID, tuple[Any, ...]]


@pytest.fixture(scope="module")
def seeded(world: env.World) -> tuple[ReplayReport, Costs]:
    """The first replay, with table A (it seeds the priced state), and the costs it left."""
    report = world.replay(world.prices["a"], wait_landed_s=60)
    return report, costs(world.url)


@pytest.fixture(scope="module")
def repriced(world: env.World, seeded: tuple[ReplayReport, Costs]) -> tuple[Costs, ReplayReport]:
    """The costs after the seeding, and the replay with table B that re-prices them."""
    _report, before = seeded
    return before, world.replay(world.prices["b"], wait_landed_s=60)


def costs(url: str) -> Costs:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id, cost_input, cost_cache_read, cost_cache_write, cost_output, "
            "cost_reasoning, cost_total, pricing_version, priced_at FROM usage_events"
        ).fetchall()
    return {r[0]: r[1:] for r in rows}


def expected_total(event: Any, book: PriceBook) -> Decimal | None:
    result = price_event(event, book.table, Normalizer())
    return None if result.cost is None else result.cost["total"]


def test_seed_with_table_a(world: env.World, seeded: tuple[ReplayReport, Costs]) -> None:
    report, stored = seeded

    assert report.landed is True
    in_range = world.in_range()
    assert report.counts.replayed == len(in_range)
    assert report.counts.duplicates == 1
    assert sum(report.counts.dead_lettered.values()) == 0
    assert report.counts.unpriced == sum(e["request_model"] == "gpt-unknown-9" for e in in_range)
    assert set(stored) == {e["event_id"] for e in in_range}  # nothing outside the range
    for event in in_range:
        assert stored[event["event_id"]][5] == expected_total(event, BOOK_A)
        assert stored[event["event_id"]][6] == BOOK_A.pricing_version


def test_reprice_with_table_b_changes_exactly_sonnet(
    world: env.World, repriced: tuple[Costs, ReplayReport]
) -> None:
    before, report = repriced

    after = costs(world.url)
    changed = {k for k in after if after[k][:6] != before[k][:6]}
    sonnet = {e["event_id"] for e in world.in_range() if e["provider"] == "anthropic"}
    assert changed == sonnet
    for event in world.in_range():
        stored = after[event["event_id"]]
        assert stored[5] == expected_total(event, BOOK_B)
        if event["event_id"] in sonnet:
            assert stored[6] == BOOK_B.pricing_version
        else:  # the same result under B: the row is left as it was, version and priced_at too
            assert stored == before[event["event_id"]]
    old_total = sum((v[5] for v in before.values() if v[5] is not None), Decimal(0))
    new_total = sum((v[5] for v in after.values() if v[5] is not None), Decimal(0))
    assert (report.summary.before, report.summary.after) == (old_total, new_total)
    assert report.summary.after > report.summary.before
    assert report.old_pricing_versions == [BOOK_A.pricing_version]

    with psycopg.connect(world.url) as conn:
        run = conn.execute(
            "SELECT status, range_from, range_to, old_pricing_versions, new_pricing_version, "
            "cost_before, cost_after, events_count, dry_run, error, finished_at IS NOT NULL "
            "FROM repricing_runs WHERE id = %s",
            (report.run_id,),
        ).fetchone()
    assert run == (
        "succeeded",
        FROM,
        TO,
        [BOOK_A.pricing_version],
        BOOK_B.pricing_version,
        old_total,
        new_total,
        len(world.in_range()),
        False,
        None,
        True,
    )


@pytest.mark.usefixtures("repriced")
def test_windows_match_the_events(world: env.World) -> None:
    exact = check_rollups(world.url)
    assert exact.exact, exact.differing[:5]
    daily = check_daily(world.url)  # the re-priced events' tenant-local days too
    assert daily.exact, daily.differing[:3]
    with psycopg.connect(world.url) as conn:
        rollups = conn.execute(
            "SELECT tenant_id, window_start, provider, model, requests, cost_total, "
            "unpriced_count, input_tokens, output_tokens, latency_ms_sum, latency_ms_max "
            "FROM usage_rollup_1m"
        ).fetchall()
    stored = costs(world.url)
    expected: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, Decimal(0), 0, 0, 0, 0, 0])
    for event in world.in_range():
        model = (
            event["request_model"]
            if event["request_model"] == "gpt-unknown-9"
            else {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4o"}[event["provider"]]
        )
        key = (event["tenant_id"], window_start(event["occurred_at"]), event["provider"], model)
        acc = expected[key]
        total = stored[event["event_id"]][5]
        acc[0] += 1
        acc[1] += total or 0
        acc[2] += total is None
        acc[3] += event["usage"]["input_tokens"]
        acc[4] += event["usage"]["output_tokens"]
        acc[5] += event["latency_ms"]
        acc[6] = max(acc[6], event["latency_ms"])
    assert {r[:4]: list(r[4:]) for r in rollups} == dict(expected)


@pytest.mark.usefixtures("repriced")
def test_the_same_replay_again_changes_nothing(world: env.World) -> None:
    env.wait_caught_up(world.settings, world.group)
    first = env.snapshot(world.url)
    report = world.replay(world.prices["b"], wait_landed_s=60)
    env.wait_caught_up(world.settings, world.group)

    assert env.snapshot(world.url) == first
    assert report.summary.before == report.summary.after
    assert report.rollups_sent == 0
    assert report.rollups_unchanged > 0


def test_the_raw_topic_keeps_dated_records_whatever_the_retention_timer(world: env.World) -> None:
    """The events are hours old by their timestamps: the test topic never deletes by time."""
    from confluent_kafka.admin import ConfigResource

    admin = AdminClient({"bootstrap.servers": world.settings.bootstrap_servers})
    raw = world.settings.topic(world.settings.raw_topic)
    (future,) = admin.describe_configs([ConfigResource("topic", raw)]).values()
    assert future.result(timeout=30)["retention.ms"].value == "-1"


@pytest.mark.usefixtures("repriced")
def test_dry_run_sends_nothing_and_is_recorded(world: env.World) -> None:
    env.wait_caught_up(world.settings, world.group)
    first = env.snapshot(world.url)
    topics = [world.settings.topic(t) for t in ("llm-usage.priced", "llm-usage.rollup-1m")]
    marks = [env.high_watermarks(world.settings.bootstrap_servers, t) for t in topics]
    result = subprocess.run(
        [
            env.tokenline(),
            "replay",
            "--from",
            FROM.isoformat(),
            "--to",
            TO.isoformat(),
            "--tenant",
            "acme",
            "--prices",
            str(world.prices["a"]),
            "--dry-run",
        ],
        env={
            **env.sink_env(world.settings, world.url, "unused"),
            "TOKENLINE_WINDOW_GRACE_S": "120",
        },
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "dry run: nothing sent" in result.stdout
    assert "acme" in result.stdout
    assert "globex" not in result.stdout
    assert [env.high_watermarks(world.settings.bootstrap_servers, t) for t in topics] == marks
    assert env.snapshot(world.url) == first
    with psycopg.connect(world.url) as conn:
        row = conn.execute(
            "SELECT dry_run, status, tenants, cost_after < cost_before FROM repricing_runs "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert row == (True, "succeeded", ["acme"], True)


def test_truncated_retention_is_reported(kafka_bootstrap: str, database_url: str) -> None:
    settings = env.settings(kafka_bootstrap, f"rt-{uuid.uuid4().hex[:8]}-", partitions=1)
    env.create_topics(settings)
    url = env.new_database(database_url)
    try:
        records = env.events(["acme"], windows=6, per_window=3)
        env.produce_raw(settings, records)
        raw = settings.topic(settings.raw_topic)
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        futures = admin.delete_records([TopicPartition(raw, 0, 6)])
        for future in futures.values():
            future.result(timeout=30)
        request = ReplayRequest(start=FROM, end=TO, database_url=url, dry_run=True)

        with pytest.raises(RetentionError) as caught:
            run_replay(request, settings)
        assert caught.value.earliest == {0: env.T0 + timedelta(minutes=2)}
        assert "partition 0 starts at" in str(caught.value)
        assert "--allow-truncated" in str(caught.value)

        allowed = ReplayRequest(
            start=FROM, end=TO, database_url=url, dry_run=True, allow_truncated=True
        )
        report = run_replay(allowed, settings)
        assert report.scope.start == env.T0 + timedelta(minutes=3)
        assert report.counts.replayed == 6  # minutes 3 and 4
        with psycopg.connect(url) as conn:
            rows = conn.execute("SELECT status, error FROM repricing_runs ORDER BY id").fetchall()
        assert rows[0][0] == "failed"
        assert "RetentionError" in rows[0][1]
        assert rows[1][0] == "succeeded"
        assert rows[1][1].startswith("truncated by retention: partition 0 from")
    finally:
        env.drop_database(database_url, url)
