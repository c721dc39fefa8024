"""Budget alerts through ``tokenline replay`` as a user runs it (a subprocess), on the real
broker and database: a replay that lowers spend below a crossed threshold sends nothing
again, one that raises it sends each newly crossed threshold once, and the same replay again
sends nothing.

The raw events are Sonnet calls without cache tokens, so each one costs input tokens times
the input price plus output tokens times the output price (Anthropic's documented
arithmetic); the test sums that itself, per price table, and derives from the sums which
thresholds must have been alerted. The first replay (table A) plays the live processor.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.factories import usage_event
from tests.integration.processor import _replay_env as replay_env
from tests.integration.processor._budgets_env import BudgetWorld, budget_world
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import PriceTable

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

#: Input and output USD per million tokens of each table: lower, then higher than A.
TABLES = {"a": ("3", "15"), "low": ("1.5", "7.5"), "high": ("6", "30")}
AMOUNT, HARD = Decimal(3), Decimal("3.3")
THRESHOLDS = (50, 80, 100)
#: All events in one whole minute: one month, whatever the day the test runs.
START = replay_env.T0
END = START + timedelta(minutes=1)


@pytest.fixture
def world(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> Iterator[BudgetWorld]:
    with budget_world(kafka_bootstrap, database_url, tmp_path) as w:
        yield w


def sonnet_call(n: int) -> Any:
    return usage_event(
        event_id=uuid.UUID(int=n),
        producer_seq=n,
        tenant_id="acme",
        occurred_at=START + timedelta(seconds=7 * n),
        provider="anthropic",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5",
        usage={
            "input_tokens": 100_000 + 1_000 * n,
            "cache_read_input_tokens": 0,
            "cache_write_input_tokens": 0,
            "cache_write_5m_input_tokens": None,
            "cache_write_1h_input_tokens": None,
            "output_tokens": 10_000 + 100 * n,
            "reasoning_tokens": 0,
            "provider_total_tokens": None,
            "mismatch": None,
        },
    )


def spend(calls: list[Any], table: str) -> Decimal:
    """What ``calls`` cost under ``table``: tokens times the per-million prices."""
    inp, out = (Decimal(p) / 1_000_000 for p in TABLES[table])
    return sum(
        (c["usage"]["input_tokens"] * inp + c["usage"]["output_tokens"] * out for c in calls),
        Decimal(0),
    )


def crossed(*spends: Decimal) -> Counter[int | None]:
    """Once each, the thresholds (None: the hard limit) that any of ``spends`` reached."""
    lines: dict[int | None, Decimal] = {p: AMOUNT * p / 100 for p in THRESHOLDS}
    lines[None] = HARD
    return Counter(key for key, line in lines.items() if any(s >= line for s in spends))


def replay(world: BudgetWorld, table: str) -> None:
    book = world.tmp / f"{table}.json"
    inp, out = TABLES[table]
    entry = replay_env.entry("anthropic", "claude-sonnet-4-5", inp, out)
    book.write_text(PriceBook(PriceTable([entry])).to_json(), encoding="utf-8")
    done = world.cli(
        "replay", "--from", START.isoformat(), "--to", END.isoformat(), "--prices", str(book),
        "--readers", "1",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def wait_counted(world: BudgetWorld) -> None:
    """Until the evaluator has committed every priced record (its alerts are committed too)."""
    topic = world.topic("priced")
    ends = replay_env.high_watermarks(world.bootstrap, topic)
    consumer = Consumer(
        {"bootstrap.servers": world.bootstrap, "group.id": f"{world.prefix}budgets"}
    )
    try:

        def behind() -> list[int]:
            held = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=10)
            # An empty partition has nothing to count (and no committed offset).
            return [
                tp.partition for tp in held if ends[tp.partition] and tp.offset < ends[tp.partition]
            ]

        world.wait(lambda: not behind(), lambda: f"{topic} counted by the evaluator: {behind()}")
    finally:
        consumer.close()


def alerted(world: BudgetWorld) -> Counter[int | None]:
    return Counter(a["threshold_pct"] for a in world.alerts())


def test_replays_send_only_the_thresholds_not_yet_alerted_and_each_once(
    world: BudgetWorld,
) -> None:
    world.tenant("acme", "UTC")
    made = world.cli(
        "budgets", "set", "acme-m", "--tenant", "acme", "--amount", str(AMOUNT),
        "--hard-limit", str(HARD), "--thresholds", ",".join(map(str, THRESHOLDS)),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    calls = [sonnet_call(n) for n in range(1, 5)]
    replay_env.create_topics(replay_env.settings(world.bootstrap, world.prefix))
    replay_env.produce_raw(replay_env.settings(world.bootstrap, world.prefix), calls)
    a, low, high = (spend(calls, t) for t in ("a", "low", "high"))
    # The sums sit where this test needs them: A over 50% only, low under it, high over all.
    assert crossed(a) == Counter({50: 1})
    assert crossed(low) == Counter()
    assert crossed(high) == Counter({50: 1, 80: 1, 100: 1, None: 1})
    # The stream's clock: the status of the events' month is published whatever today is.
    world.start(TOKENLINE_BUDGETS_CLOCK="events")

    replay(world, "a")
    wait_counted(world)
    assert world.statuses()["acme-m"]["spend"] == a
    assert alerted(world) == crossed(a)

    replay(world, "low")  # spend falls under 50%: nothing is sent again
    wait_counted(world)
    assert world.statuses()["acme-m"]["spend"] == low
    assert alerted(world) == crossed(a, low)

    replay(world, "high")  # 80%, 100% and the hard limit, once each; not 50% again
    wait_counted(world)
    assert world.statuses()["acme-m"]["spend"] == high
    assert alerted(world) == crossed(a, low, high)

    replay(world, "high")  # the same replay again changes nothing
    wait_counted(world)
    alerts = world.alerts()
    assert Counter(x["threshold_pct"] for x in alerts) == crossed(a, low, high)
    for alert in alerts:
        assert alert["threshold_amount"] <= alert["spend"] <= high
