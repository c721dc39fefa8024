"""Hard limits end to end on the real broker: the evaluator's status refuses the SDK's calls
within seconds of the crossing, before the provider is called; a raised budget lets them
through again."""

from __future__ import annotations

import time
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


@pytest.fixture
def world(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> Iterator[BudgetWorld]:
    with budget_world(kafka_bootstrap, database_url, tmp_path) as w:
        yield w


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
            search, ads = sdk.wrap(raw, team="search"), sdk.wrap(raw, team="ads")

            def chat(client: Any) -> Any:
                return client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )

            def refused() -> bool:
                try:
                    chat(search)
                except sdk.BudgetExceeded:
                    return True
                return False

            until(lambda: sdk.stats().budget["status"] == "live")
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
    finally:
        sdk.close(5)
