"""``usage_rollup_1m`` equals the sums of ``usage_events`` whatever happens on the way.

One pipeline (processor and sink as subprocesses) goes through the cases in order, each ending
with every rollup row equal to the raw sums of its events (a GROUP BY written in
``tests._rollup_truth``) and every event stored once:

- a backlog older than window + grace, produced before the processor starts;
- an event three hours late, into a window that has landed already;
- the same raw records produced a second time;
- the processor SIGKILLed five times and the sink twice while events flow, and a second
  processor worker added, the first killed and a third added while events flow;
- a replay of the backlog's range with a changed price while live events still arrive in it.

``TOKENLINE_E2E_ROLLUP_EVENTS`` sets the backlog's size (20,000 by default, to keep CI short;
the flowing phase sends the same number).
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from confluent_kafka import Consumer, Producer

from tests._rollup_truth import check_rollups
from tests.e2e._truth import PRICES, price_file
from tests.factories import usage_event
from tokenline.dev.demo.services import DemoPipeline, create_database, tokenline_command
from tokenline.schemas import AvroCodec
from tokenline.schemas.rollup import ROLLUP_MAX, ROLLUP_SUMS

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

EVENTS = int(os.environ.get("TOKENLINE_E2E_ROLLUP_EVENTS", "20000"))
TENANTS = ("t-a", "t-b", "t-c")
#: Priced models, and one the price book does not know (those events land unpriced).
MODELS = [*PRICES, ("openai", "gpt-e2e-unknown")]
_CODEC = AvroCodec[Any]("tokenline.UsageEvent")


Record = tuple[bytes, bytes, int]
"""Key, value and timestamp (ms; ``occurred_at``, as the SDK sets it) of one raw record."""


def _raw(n: int, occurred_at: datetime, rng: random.Random) -> Record:
    provider, model = MODELS[n % len(MODELS)]
    tenant = TENANTS[n % len(TENANTS)]
    event = usage_event(
        event_id=uuid.uuid4(),
        producer_id=uuid.UUID(int=1 + n % 4),
        producer_seq=n,
        occurred_at=occurred_at,
        tenant_id=tenant,
        provider=provider,
        request_model=model,
        response_model=model,
        latency_ms=rng.randint(50, 5_000),
        success=rng.random() > 0.05,
    )
    event["usage"] = {
        **event["usage"],
        "input_tokens": rng.randint(1, 5_000),
        "output_tokens": rng.randint(1, 2_000),
    }
    return tenant.encode(), _CODEC.encode(event), int(occurred_at.timestamp() * 1000)


def _produce(bootstrap: str, topic: str, records: list[Record], pace_per_s: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "acks": "all"})
    began = time.monotonic()
    for n, (key, value, timestamp) in enumerate(records):
        while True:
            try:
                producer.produce(topic, key=key, value=value, timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.1)
        if pace_per_s and n % 500 == 0:
            ahead = n / pace_per_s - (time.monotonic() - began)
            if ahead > 0:
                producer.flush(30)
                time.sleep(ahead)
    assert producer.flush(60) == 0


def _wait_events(pipeline: DemoPipeline, expected: int, timeout_s: float = 400) -> None:
    """Wait until ``usage_events`` holds ``expected`` rows (never more)."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        while True:
            pipeline.check_running()
            row = conn.execute("SELECT count(*) FROM usage_events").fetchone()
            assert row is not None
            assert row[0] <= expected
            if row[0] == expected:
                return
            assert time.monotonic() < deadline, f"{row[0]} of {expected} rows landed"
            time.sleep(1)


def _assert_exact(pipeline: DemoPipeline, events: int) -> None:
    result = check_rollups(pipeline.database_url)
    assert result.differing == [], result.differing[:5]
    assert (result.events, result.distinct_events, result.rollup_requests) == (
        events,
        events,
        events,
    )


class _State:
    def __init__(self, pipeline: DemoPipeline, backlog: list[Record], start: datetime) -> None:
        self.pipeline = pipeline
        self.backlog = backlog
        self.start = start
        self.landed = 0


@pytest.fixture(scope="module")
def state(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[_State]:
    """A pipeline whose raw topic holds a backlog, hours old, before the processor starts."""
    work = tmp_path_factory.mktemp("rollups")
    prices = work / "prices.yaml"
    prices.write_text(price_file(PRICES), encoding="utf-8")
    run = uuid.uuid4().hex[:6]
    pipeline = DemoPipeline(
        bootstrap=kafka_bootstrap,
        database_url=create_database(database_url, f"rollups_{run}"),
        prefix=f"rollups-{run}.",
        work_dir=work,
        prices_file=prices,
    )
    pipeline.migrate()
    pipeline.create_topics()
    rng = random.Random(13)
    start = datetime.now(UTC) - timedelta(hours=3)
    # Spread over 30 minutes, three hours ago: far older than window + grace (11 minutes).
    backlog = [
        _raw(n, start + timedelta(milliseconds=rng.randrange(30 * 60_000)), rng)
        for n in range(EVENTS)
    ]
    _produce(kafka_bootstrap, pipeline.topic("raw"), backlog)
    pipeline.start()
    try:
        yield _State(pipeline, backlog, start)
    finally:
        pipeline.stop()


def test_a_backlog_older_than_window_and_grace_lands_exact(state: _State) -> None:
    _wait_events(state.pipeline, EVENTS)
    state.landed = EVENTS
    _assert_exact(state.pipeline, EVENTS)


def test_an_event_three_hours_late_adds_to_its_landed_window(state: _State) -> None:
    assert state.landed == EVENTS, "runs after the backlog"
    with psycopg.connect(state.pipeline.database_url) as conn:
        row = conn.execute(
            "SELECT window_start, sum(requests) FROM usage_rollup_1m WHERE tenant_id = 't-a' "
            "GROUP BY window_start ORDER BY window_start LIMIT 1"
        ).fetchone()
    assert row is not None
    window, before = row
    late = _raw(3, window + timedelta(seconds=30), random.Random(3))  # tenant t-a
    _produce(state.pipeline.bootstrap, state.pipeline.topic("raw"), [late])
    state.landed += 1
    _wait_events(state.pipeline, state.landed)
    _assert_exact(state.pipeline, state.landed)
    with psycopg.connect(state.pipeline.database_url) as conn:
        after = conn.execute(
            "SELECT sum(requests) FROM usage_rollup_1m WHERE tenant_id = 't-a' "
            "AND window_start = %s",
            (window,),
        ).fetchone()
    assert after is not None
    assert after[0] == before + 1


def test_the_same_raw_records_twice_count_once(state: _State) -> None:
    assert state.landed == EVENTS + 1, "runs after the late event"
    again = state.backlog[:2_000]
    marker = _raw(EVENTS + 7, datetime.now(UTC), random.Random(7))
    _produce(state.pipeline.bootstrap, state.pipeline.topic("raw"), [*again, marker])
    state.landed += 1  # the marker: once it is there, the duplicates before it were handled
    _wait_events(state.pipeline, state.landed)
    _assert_exact(state.pipeline, state.landed)


def test_processor_and_sink_sigkilled_while_events_flow_end_exact(state: _State) -> None:
    assert state.landed == EVENTS + 2, "runs after the duplicates"
    rng = random.Random(5)
    now = datetime.now(UTC)
    flowing = [
        _raw(EVENTS + 100 + n, now - timedelta(seconds=rng.randrange(120)), rng)
        for n in range(EVENTS)
    ]
    producer = threading.Thread(
        target=_produce,
        args=(state.pipeline.bootstrap, state.pipeline.topic("raw"), flowing),
        kwargs={"pace_per_s": max(EVENTS // 20, 1)},  # flowing for about 20 s
        daemon=True,
    )
    producer.start()
    for kill in range(7):
        time.sleep(rng.uniform(1.0, 3.0))
        state.pipeline.kill("sink" if kill in (2, 5) else "processor")
    producer.join(120)
    assert not producer.is_alive()
    state.landed += EVENTS
    _wait_events(state.pipeline, state.landed, timeout_s=600)
    _assert_exact(state.pipeline, state.landed)


def _flowing(
    state: _State, count: int, seed: int, within: tuple[datetime, datetime]
) -> threading.Thread:
    """A thread producing ``count`` raw events of ``within`` over about 20 seconds."""
    rng = random.Random(seed)
    low, high = within
    span_ms = int((high - low).total_seconds() * 1000)
    records = [
        _raw(seed * 1_000_000 + n, low + timedelta(milliseconds=rng.randrange(span_ms)), rng)
        for n in range(count)
    ]
    thread = threading.Thread(
        target=_produce,
        args=(state.pipeline.bootstrap, state.pipeline.topic("raw"), records),
        kwargs={"pace_per_s": max(count // 20, 1)},
        daemon=True,
    )
    thread.start()
    return thread


def test_workers_added_and_killed_mid_stream_end_exact(state: _State) -> None:
    assert state.landed == 2 * EVENTS + 2, "runs after the crashes"
    count = EVENTS // 2
    now = datetime.now(UTC)
    producer = _flowing(state, count, 11, (now - timedelta(minutes=2), now))
    state.pipeline.add_processor("processor-2")
    state.pipeline.kill("processor", restart=False)
    state.pipeline.add_processor("processor-3")
    producer.join(120)
    assert not producer.is_alive()
    state.landed += count
    _wait_events(state.pipeline, state.landed, timeout_s=600)
    _assert_exact(state.pipeline, state.landed)


def _live_feed(pipeline: DemoPipeline) -> dict[tuple[Any, ...], list[Any]]:
    """The rollup topic's deltas (committed transactions only) summed per window."""
    codec = AvroCodec[Any]("tokenline.UsageRollup")
    consumer = Consumer(
        {
            "bootstrap.servers": pipeline.bootstrap,
            "group.id": f"feed-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([pipeline.topic("rollup-1m")])
    sums: dict[tuple[Any, ...], list[Any]] = {}
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 10:
            for message in consumer.consume(1000, 1.0):
                if message.error() is not None:
                    continue
                idle_since = time.monotonic()
                r = codec.decode(message.value() or b"")
                key = (r["tenant_id"], r["window_start"], r["provider"], r["model"])
                row = sums.setdefault(key, [0] * len(ROLLUP_SUMS) + [0])
                for i, column in enumerate(ROLLUP_SUMS):
                    row[i] += r[column]
                row[-1] = max(row[-1], r[ROLLUP_MAX])
    finally:
        consumer.close()
    return sums


def test_the_live_rollup_feed_adds_up_to_the_stored_rollups(state: _State) -> None:
    """After the backlog, the late event, the duplicates, the crashes and the rebalances, the
    processor's window deltas (Kafka transactions: each counted once) sum to the stored rows."""
    assert state.landed == 2 * EVENTS + 2 + EVENTS // 2, "runs after the workers test"
    columns = ", ".join((*ROLLUP_SUMS, ROLLUP_MAX))
    with psycopg.connect(state.pipeline.database_url) as conn:
        stored = {
            (row[0], row[1], row[2], row[3]): list(row[4:])
            for row in conn.execute(
                f"SELECT tenant_id, window_start, provider, model, {columns} "
                "FROM usage_rollup_1m WHERE requests <> 0"
            )
        }
    feed = _live_feed(state.pipeline)
    differing = sorted(k for k in set(stored) | set(feed) if stored.get(k) != feed.get(k))
    assert differing == [], [(k, stored.get(k), feed.get(k)) for k in differing[:3]]
    assert sum(row[0] for row in feed.values()) == state.landed


def test_a_replay_while_live_events_arrive_in_its_range_ends_exact(
    state: _State, tmp_path: Path
) -> None:
    assert state.landed >= EVENTS + 2, "runs after the duplicates"
    changed = ("anthropic", "claude-e2e-sonnet")
    prices = tmp_path / "new-prices.yaml"
    raised = {**PRICES[changed], "output": PRICES[changed]["output"] * 3}
    prices.write_text(price_file({**PRICES, changed: raised}), encoding="utf-8")
    began, ended = state.start, state.start + timedelta(minutes=30)
    before = _model_cost(state.pipeline, changed[1])
    count = EVENTS // 4
    producer = _flowing(state, count, 17, (began, ended))  # late events, inside the range
    done = subprocess.run(
        [
            tokenline_command(),
            "replay",
            "--from",
            began.replace(tzinfo=None).isoformat(),
            "--to",
            ended.replace(tzinfo=None).isoformat(),
            "--prices",
            str(prices),
            "--wait-landed",
            "300",
        ],
        env=state.pipeline.environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    producer.join(120)
    assert not producer.is_alive()
    state.landed += count
    _wait_events(state.pipeline, state.landed, timeout_s=600)
    _assert_exact(state.pipeline, state.landed)
    assert _model_cost(state.pipeline, changed[1]) > before


def _model_cost(pipeline: DemoPipeline, model: str) -> Decimal:
    with psycopg.connect(pipeline.database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(cost_total), 0) FROM usage_rollup_1m WHERE model LIKE %s",
            (f"%{model}%",),
        ).fetchone()
    assert row is not None
    return Decimal(row[0])
