"""Budgets on the real broker and database: alerts exactly once through SIGKILLs, periods in
the tenant's timezone, and re-priced events (a replay's output) moving spend both ways.

Every expected spend is the sum of the costs the test sent; every expected period bound is
written out by hand in UTC (Asia/Kolkata is UTC+05:30 all year; New York's offsets are those
of its clock changes). The period tests run the evaluator on the stream's clock
(``TOKENLINE_BUDGETS_CLOCK=events``): their days are the events', whatever the wall clock says.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.processor._budgets_env import BudgetWorld, budget_world, priced
from tests.integration.processor._replay_env import tokenline
from tokenline.dev._proc import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture
def world(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> Iterator[BudgetWorld]:
    with budget_world(kafka_bootstrap, database_url, tmp_path) as w:
        yield w


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spent(total: str) -> Any:
    return lambda s: s["spend"] == Decimal(total)


def thresholds(alerts: list[Any]) -> Counter[tuple[str, Any, Any]]:
    return Counter((a["budget_id"], a["period_start"], a["threshold_pct"]) for a in alerts)


def test_cli_stores_and_publishes_budgets(world: BudgetWorld) -> None:
    world.tenant("acme", "Asia/Kolkata")
    done = world.cli(
        "budgets", "set", "acme-search", "--tenant", "acme", "--scope", "team:search",
        "--amount", "250.50", "--thresholds", "80,50,100", "--hard-limit", "300",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "version 1" in done.stdout
    again = world.cli("budgets", "set", "acme-search", "--tenant", "acme", "--amount", "300")
    assert "version 2" in again.stdout
    listed = world.cli("budgets", "list")
    assert "acme-search\tacme\ttenant\tmonth (Asia/Kolkata)\t300.000000000000 USD" in listed.stdout
    missing = world.cli("budgets", "set", "x", "--tenant", "nobody", "--amount", "1")
    assert missing.returncode == 6
    assert "no tenant 'nobody'" in missing.stderr
    bad = world.cli("budgets", "set", "x", "--tenant", "acme", "--amount", "-1")
    assert bad.returncode == 2
    removed = world.cli("budgets", "remove", "acme-search")
    assert removed.returncode == 0, removed.stderr
    assert world.cli("budgets", "remove", "acme-search").returncode == 6


def test_threshold_alerts_exactly_once_with_the_evaluator_killed_around_the_crossing(
    world: BudgetWorld,
) -> None:
    world.tenant("acme", "Asia/Kolkata")
    created = world.cli(
        "budgets", "set", "acme-m", "--tenant", "acme", "--amount", "10", "--hard-limit", "12"
    )
    assert created.returncode == 0, created.stderr
    # Killed before the commit of the transaction holding the 50% alert: it is aborted.
    first = world.start(TOKENLINE_BUDGETS_KILL_AT="before_commit:1")
    world.send(priced(1, "2.5"), priced(2, "3.25"))  # 5.75: 50%
    assert first.wait(timeout=120) == -9, world.log(0)
    # Killed right after committing it: nothing of it may come again.
    second = world.start(TOKENLINE_BUDGETS_KILL_AT="after_commit:1")
    assert second.wait(timeout=120) == -9, world.log(1)
    assert world.alerts() != []
    world.start()
    world.send(priced(3, "2.5"), priced(4, "1"), priced(2, "3.25"))  # 9.25 (2 redelivered)
    world.send(priced(5, "3.75"))  # 13.00: 80%, 100%, hard limit
    status = world.wait_status("acme-m", spent("13"))
    assert status["exceeded"] is True
    alerts = world.alerts()
    start = status["period_start"]
    assert thresholds(alerts) == Counter(
        {("acme-m", start, 50): 1, ("acme-m", start, 80): 1, ("acme-m", start, 100): 1,
         ("acme-m", start, None): 1}
    )  # fmt: skip
    fifty = next(a for a in alerts if a["threshold_pct"] == 50)
    assert fifty["spend"] == Decimal("5.75")


def test_periods_follow_the_tenants_timezone(world: BudgetWorld) -> None:
    world.tenant("acme", "Asia/Kolkata")
    created = world.cli(
        "budgets", "set", "acme-d", "--tenant", "acme", "--period", "day", "--amount", "10",
        "--thresholds", "50",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    # The stream's clock: "today" is the events' day whatever the wall clock says, so the
    # test holds when it runs across a Kolkata midnight too.
    today = utc(2026, 11, 15, 18, 30)  # 2026-11-16 00:00 in Kolkata (UTC+05:30)
    port = free_port()
    world.start(TOKENLINE_BUDGETS_METRICS_PORT=str(port), TOKENLINE_BUDGETS_CLOCK="events")
    world.send(
        priced(1, "4", at=today - timedelta(microseconds=1)),  # 23:59:59.999999 yesterday
        priced(2, "4", at=today),  # 00:00 today
        priced(3, "1.5", at=today - timedelta(hours=2)),
    )
    status = world.wait_status("acme-d", lambda s: s["period_start"] == today)
    assert status["spend"] == Decimal(4)
    assert status["period_end"] == today + timedelta(days=1)
    world.send(priced(4, "1", at=today + timedelta(seconds=1)))
    world.wait_status("acme-d", spent("5"))
    alerts = world.alerts()
    assert thresholds(alerts) == Counter(
        {("acme-d", today - timedelta(days=1), 50): 1, ("acme-d", today, 50): 1}
    )
    yesterday = next(a for a in alerts if a["period_start"] != today)
    assert yesterday["spend"] == Decimal("5.5")
    assert yesterday["period_end"] == today
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(f"{base}/readyz", timeout=10) as ready:
        assert b"budgets: 1 loaded" in ready.read()
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as metrics:
        assert b"tokenline_budgets_alerts_total 2.0" in metrics.read()


def test_repricing_moves_spend_and_sends_only_new_thresholds_once(world: BudgetWorld) -> None:
    world.tenant("acme", "UTC")
    created = world.cli(
        "budgets", "set", "acme-m", "--tenant", "acme", "--amount", "10", "--hard-limit", "8"
    )
    assert created.returncode == 0, created.stderr
    world.start()
    world.send(priced(1, "4"), priced(2, "2"))  # 6: 50%
    world.wait_status("acme-m", spent("6"))
    # A replay re-prices event 1 lower: spend 3, under 50%; nothing is sent again.
    world.send(priced(1, "1", pricing_version="v2"))
    assert world.wait_status("acme-m", spent("3"))["exceeded"] is False
    # Another raises it: 11 crosses 80% and 100% and the hard limit, each once.
    world.send(priced(1, "9", pricing_version="v3"))
    assert world.wait_status("acme-m", spent("11"))["exceeded"] is True
    # The same replay again changes nothing.
    world.send(priced(1, "9", pricing_version="v3"), priced(3, "0.5"))
    world.wait_status("acme-m", spent("11.5"))
    assert sorted((a["threshold_pct"] or 0, a["spend"]) for a in world.alerts()) == [
        (0, Decimal(11)),
        (50, Decimal(6)),
        (80, Decimal(11)),
        (100, Decimal(11)),
    ]


def test_alerts_exactly_once_across_a_rebalance_and_a_killed_worker(world: BudgetWorld) -> None:
    fast = {"TOKENLINE_SESSION_TIMEOUT_MS": "6000", "TOKENLINE_TRANSACTION_TIMEOUT_MS": "10000"}
    tenants = ("acme", "globex", "initech")
    for tenant in tenants:
        world.tenant(tenant, "UTC")
        made = world.cli("budgets", "set", f"{tenant}-m", "--tenant", tenant, "--amount", "10")
        assert made.returncode == 0, made.stderr
    first = world.start(**fast)
    world.send(*(priced(10 + i, "6", tenant=t) for i, t in enumerate(tenants)))  # 50%
    for t in tenants:
        world.wait_status(f"{t}-m", spent("6"))
    world.start(TOKENLINE_WORKER_NAME="budgets-2", **fast)  # the partitions are shared out
    world.send(*(priced(20 + i, "2.5", tenant=t) for i, t in enumerate(tenants)))  # 8.5: 80%
    for t in tenants:
        world.wait_status(f"{t}-m", spent("8.5"))
    first.kill()  # its partitions go to the other worker after the session timeout
    first.wait()
    world.send(*(priced(30 + i, "2", tenant=t) for i, t in enumerate(tenants)))  # 10.5: 100%
    world.send(*(priced(20 + i, "2.5", tenant=t) for i, t in enumerate(tenants)))  # again
    for t in tenants:
        world.wait_status(f"{t}-m", spent("10.5"), timeout_s=120)
    counted = Counter((a["budget_id"], a["threshold_pct"]) for a in world.alerts())
    assert counted == Counter({(f"{t}-m", p): 1 for t in tenants for p in (50, 80, 100)})


def test_spend_rate_alerts_once_per_hour(world: BudgetWorld) -> None:
    world.tenant("acme", "UTC")
    made = world.cli("budgets", "set", "acme-m", "--tenant", "acme", "--amount", "100000")
    assert made.returncode == 0, made.stderr
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    history = [priced(100 + h, "1", at=hour - timedelta(hours=h)) for h in range(1, 25)]
    world.send(*history)  # a mean of 1 USD an hour
    world.start(TOKENLINE_SPEND_RATE_FACTOR="3", TOKENLINE_SPEND_RATE_MIN="1")
    now = [priced(1, "2", at=hour), priced(2, "1.5", at=hour)]  # 3.5 this hour
    world.send(*now, *now, *history)  # everything again: redelivered
    month = hour.replace(day=1, hour=0)
    this_month = [e for e in history + now if e["event"]["occurred_at"] >= month]
    world.wait_status("acme-m", spent(str(sum(e["cost"]["total"] for e in this_month))))
    (alert,) = [a for a in world.alerts() if a["kind"] == "spend_rate"]
    assert alert["spend"] == Decimal("3.5")
    assert alert["budget_amount"] == Decimal(1)
    assert alert["period_start"] == hour


def test_a_state_topic_with_too_few_partitions_is_refused(world: BudgetWorld) -> None:
    name = world.topic("budget-state")
    admin = AdminClient({"bootstrap.servers": world.bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config={"cleanup.policy": "compact"})])[name].result(
        30
    )
    done = subprocess.run(
        [tokenline(), "budgets", "run"],
        env=world.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"{name} has 1 partitions, the priced topic 2" in done.stderr


def test_days_of_a_daylight_saving_change_are_25_and_23_hours(world: BudgetWorld) -> None:
    """New York's 2026-11-01 runs from 04:00 UTC (EDT) to 05:00 UTC the next day (EST);
    2027-03-14 from 05:00 UTC to 04:00 UTC the next day. The evaluator's now is the stream's
    (``TOKENLINE_BUDGETS_CLOCK=events``), so these days are judged as they happen."""
    world.tenant("acme", "America/New_York")
    created = world.cli(
        "budgets", "set", "acme-d", "--tenant", "acme", "--period", "day", "--amount", "10",
        "--thresholds", "50",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    # Periods are kept for 400 days after their end, as the stream's clock goes.
    world.start(TOKENLINE_BUDGETS_CLOCK="events", TOKENLINE_BUDGET_RETENTION_DAYS="400")
    world.send(
        priced(1, "3", at=utc(2026, 11, 1, 4)),  # 00:00 EDT
        priced(2, "3", at=utc(2026, 11, 2, 4, 59)),  # 23:59 EST, the 25th hour
        priced(3, "5", at=utc(2026, 11, 2, 5)),  # 00:00 EST, the next day
    )
    status = world.wait_status("acme-d", spent("5"))
    assert (status["period_start"], status["period_end"]) == (
        utc(2026, 11, 2, 5), utc(2026, 11, 3, 5)
    )  # fmt: skip
    world.send(
        priced(4, "3", at=utc(2027, 3, 14, 4, 59)),  # 23:59 EST, the day before
        priced(5, "3", at=utc(2027, 3, 14, 5)),  # 00:00 EST
        priced(6, "3", at=utc(2027, 3, 15, 3, 59)),  # 23:59 EDT, the 23rd hour
    )
    status = world.wait_status("acme-d", spent("6"))
    assert (status["period_start"], status["period_end"]) == (
        utc(2027, 3, 14, 5), utc(2027, 3, 15, 4)
    )  # fmt: skip
    world.send(priced(7, "1", at=utc(2027, 3, 15, 4)))  # 00:00 EDT: a new day, a new status
    status = world.wait_status("acme-d", spent("1"))
    assert status["period_start"] == utc(2027, 3, 15, 4)
    bounds = sorted((a["period_start"], a["period_end"], a["spend"]) for a in world.alerts())
    assert bounds == [
        (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5), Decimal(6)),
        (utc(2026, 11, 2, 5), utc(2026, 11, 3, 5), Decimal(5)),
        (utc(2027, 3, 14, 5), utc(2027, 3, 15, 4), Decimal(6)),
    ]
