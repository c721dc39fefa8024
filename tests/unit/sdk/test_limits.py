"""Hard budget limits in the SDK: which calls a status refuses, and failing open."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import factories
from tokenline.sdk import BudgetExceeded, Settings
from tokenline.sdk._limits import BudgetLimits

pytestmark = pytest.mark.unit

ACME = {"tenant_id": "acme", "team": "search", "project": "p", "user_id": "u-1"}


def limits(stale_s: float = 3600) -> BudgetLimits:
    out = BudgetLimits(Settings(budget_limits=True, budget_stale_s=stale_s))
    out.apply("__heartbeat__/budgets-1", None)
    return out


def status(**overrides: Any) -> Any:
    return factories.budget_status(
        **{"period_end": datetime.now(UTC) + timedelta(days=1), **overrides}
    )


def test_a_call_in_the_scope_of_an_exceeded_budget_is_refused() -> None:
    live = limits()
    live.apply("acme-search-monthly", status())
    with pytest.raises(BudgetExceeded, match=r"'acme-search-monthly' \(acme, team search\)") as e:
        live.check(ACME)
    assert e.value.budget_id == "acme-search-monthly"
    assert "spend 121.500000000000 of 120.000000000000 USD" in str(e.value)
    live.check({**ACME, "team": "ads"})  # another team
    live.check({**ACME, "tenant_id": "globex"})  # another tenant
    assert live.stats() == {"status": "live", "exceeded": 1, "refused": 1, "failed_open": 0}


@pytest.mark.parametrize(
    ("scope", "value", "attribute"),
    [("project", "p", "project"), ("user", "u-1", "user_id"), ("tenant", None, None)],
)
def test_each_scope_compares_its_attribute(scope: str, value: str | None, attribute: str) -> None:
    live = limits()
    live.apply("b", status(scope=scope, scope_value=value))
    with pytest.raises(BudgetExceeded):
        live.check(ACME)
    if attribute is not None:
        live.check({**ACME, attribute: "someone-else"})


def test_not_exceeded_deleted_and_ended_periods_refuse_nothing() -> None:
    live = limits()
    live.apply("a", status(exceeded=False))
    live.check(ACME)
    live.apply("a", status())
    live.apply("a", None)  # deleted
    live.check(ACME)
    # The period ended: the next one starts from zero, whatever the last status said.
    live.apply("a", status(period_end=datetime.now(UTC) - timedelta(seconds=1)))
    live.check(ACME)
    assert live.stats()["refused"] == 0


def test_fails_open_while_unknown_or_stale_and_says_so() -> None:
    unknown = BudgetLimits(Settings(budget_limits=True))
    unknown.apply("a", status())
    unknown.check(ACME)
    assert unknown.stats() == {"status": "unknown", "exceeded": 1, "refused": 0, "failed_open": 1}
    stale = limits(stale_s=1e-9)
    stale.apply("a", status())
    stale.check(ACME)
    assert stale.stats()["status"] == "stale"
    assert stale.stats()["failed_open"] == 1


def test_the_lookup_is_by_tenant() -> None:
    live = limits()
    live.apply("a", status())
    assert set(live.blocked) == {"acme"}
