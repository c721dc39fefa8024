"""Hard limits end to end on the real broker: the evaluator's status refuses the SDK's calls
within seconds of the crossing, before the provider is called; a raised budget, or the next
period, lets them through again."""

from __future__ import annotations

import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import openai
import pytest

from tests.integration.processor._budgets_env import BudgetWorld, budget_world, priced
from tokenline import sdk
from tokenline.emulator import ProviderEmulator

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration

#: Asia/Kathmandu is UTC+05:45 all year (no daylight saving time since 1986).
KATHMANDU = timedelta(hours=5, minutes=45)


@pytest.fixture
def world(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> Iterator[BudgetWorld]:
    with budget_world(kafka_bootstrap, database_url, tmp_path) as w:
        yield w


def chat(client: Any) -> Any:
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )


def refuses(client: Any) -> bool:
    try:
        chat(client)
    except sdk.BudgetExceeded:
        return True
    return False


@contextmanager
def limited_sdk(world: BudgetWorld) -> Iterator[tuple[ProviderEmulator, Any, Any]]:
    """The SDK with hard limits on, once it follows a live evaluator; the emulator it calls
    and OpenAI clients of acme's teams search and ads."""
    sdk.configure(
        tenant_id="acme",
        bootstrap_servers=world.bootstrap,
        emitter=sdk.InMemoryEmitter(),
        budget_limits=True,
        budget_status_topic=world.topic("budget-status"),
        detect_host=False,
    )
    try:
        with (
            ProviderEmulator() as emulator,
            openai.OpenAI(base_url=f"{emulator.url}/v1", api_key="k", max_retries=0) as raw,
        ):
            until(lambda: sdk.stats().budget["status"] == "live")
            yield emulator, sdk.wrap(raw, team="search"), sdk.wrap(raw, team="ads")
    finally:
        sdk.close(5)


def until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> float:
    """Seconds until ``predicate`` held (fails after ``timeout_s``)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s, "never happened"
        time.sleep(0.05)
    return time.monotonic() - started


def test_refused_within_seconds_and_let_through_when_raised(
    world: BudgetWorld, tmp_path: Path, summary_line: Callable[[str], None]
) -> None:
    world.tenant("acme", "UTC")
    set_budget = ["budgets", "set", "acme-m", "--tenant", "acme", "--scope", "team:search"]
    done = world.cli(*set_budget, "--amount", "10", "--hard-limit", "10")
    assert done.returncode == 0, done.stderr
    world.start()
    with limited_sdk(world) as (emulator, search, ads):

        def refused() -> bool:
            return refuses(search)

        assert not refused()
        world.send(priced(1, "6", team="search"), priced(2, "4.5", team="search"))
        took = until(refused)
        served = len(emulator.calls)
        with pytest.raises(sdk.BudgetExceeded, match="acme-m"):
            chat(search)
        assert len(emulator.calls) == served  # refused before the provider was called
        chat(ads)  # another team is not in the budget's scope
        assert sdk.stats().budget["refused"] >= 2
        summary_line(f"SDK refused a call {took:.2f} s after the crossing events were sent")
        raised = world.cli(*set_budget, "--amount", "100", "--hard-limit", "100")
        assert raised.returncode == 0, raised.stderr
        until(lambda: not refused())


def kathmandu_month_after_next(now: datetime) -> datetime:
    """Local midnight of the first of the month after next in Kathmandu, as UTC."""
    local = now + KATHMANDU
    month = local.month + 2
    year, month = local.year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC) - KATHMANDU


def test_the_next_period_lets_calls_through_again(world: BudgetWorld) -> None:
    """A day and a month budget crossed minutes before a Kathmandu midnight that is also a
    month's start; events after it roll both over. The evaluator's now is the stream's
    (``TOKENLINE_BUDGETS_CLOCK=events``), so the boundary passes with the events' times; it
    lies weeks ahead of the wall clock, so the SDK's own clock would still refuse the calls
    had the new periods' statuses not arrived."""
    world.tenant("acme", "Asia/Kathmandu")
    for budget_id, period, team in (("acme-day", "day", "search"), ("acme-month", "month", "ads")):
        done = world.cli(
            "budgets", "set", budget_id, "--tenant", "acme", "--scope", f"team:{team}",
            "--period", period, "--amount", "10", "--hard-limit", "10", "--thresholds", "100",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    boundary = kathmandu_month_after_next(datetime.now(UTC))
    world.start(TOKENLINE_BUDGETS_CLOCK="events")
    with limited_sdk(world) as (_emulator, search, ads):
        assert not refuses(search)
        assert not refuses(ads)
        world.send(
            priced(1, "6", team="search", at=boundary - timedelta(minutes=10)),
            priced(2, "4.5", team="search", at=boundary - timedelta(minutes=9)),
            priced(3, "11", team="ads", at=boundary - timedelta(microseconds=1)),
        )
        day = world.wait_status("acme-day", lambda s: s["exceeded"])
        assert day["period_start"] == boundary - timedelta(days=1)
        assert day["period_end"] == boundary
        assert day["spend"] == Decimal("10.5")
        month = world.wait_status("acme-month", lambda s: s["exceeded"])
        assert month["period_end"] == boundary
        until(lambda: refuses(search) and refuses(ads))
        # The first events of the new day and month: both budgets start again from them.
        world.send(
            priced(4, "1", team="search", at=boundary),
            priced(5, "0.5", team="ads", at=boundary + timedelta(minutes=1)),
        )
        day = world.wait_status("acme-day", lambda s: s["period_start"] == boundary)
        assert (day["spend"], day["exceeded"]) == (Decimal(1), False)
        assert day["period_end"] == boundary + timedelta(days=1)
        month = world.wait_status("acme-month", lambda s: s["period_start"] == boundary)
        assert (month["spend"], month["exceeded"]) == (Decimal("0.5"), False)
        # No budget over its limit any more (not a fail-open: that keeps the count).
        until(lambda: sdk.stats().budget["exceeded"] == 0)
        assert not refuses(search)
        assert not refuses(ads)
    alerts = world.alerts()
    assert sorted((a["budget_id"], a["kind"], a["period_end"]) for a in alerts) == [
        ("acme-day", "hard_limit", boundary),
        ("acme-day", "threshold", boundary),
        ("acme-month", "hard_limit", boundary),
        ("acme-month", "threshold", boundary),
    ]
