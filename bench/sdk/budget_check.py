"""The hard-limit check's cost on the call path (``budget_limits=True``), two ways.

- ``check()`` alone: ``BudgetLimits.check`` on a call's attribution, timed over batches of
  1,000 calls with ``perf_counter_ns`` (the empty loop's time taken off), median per call;
  for a tenant over no limit (the common case: one dict lookup) and for a tenant over a team
  budget that does not cover the call's team (the lookup, then one scope comparison).
- whole call: the same wrapped OpenAI chat call with the check on and off (``runtime.limits``
  set or None before each call, both sides alike), interleaved in blocks as the main
  benchmark does: the added median over a real call, noise included.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import measure

from tokenline import sdk
from tokenline.sdk._limits import BudgetLimits

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["GOAL_US", "check_alone", "whole_call"]

GOAL_US = 2.0
_BATCH = 1_000


def _status(tenant: str, team: str) -> Any:
    zero = Decimal("0E-12")
    return {
        "budget_id": f"{tenant}-{team}",
        "tenant_id": tenant,
        "scope": "team",
        "scope_value": team,
        "period_start": datetime.now(UTC),
        "period_end": datetime.now(UTC) + timedelta(days=1),
        "spend": zero + 2,
        "amount": zero + 1,
        "hard_limit": zero + 1,
        "exceeded": True,
        "currency": "USD",
        "updated_at": datetime.now(UTC),
    }


def _per_call_ns(run: Callable[[], None], batches: int) -> float:
    samples = []
    for _ in range(batches):
        started = time.perf_counter_ns()
        run()
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / _BATCH


def check_alone(settings: dict[str, Any], calls: int) -> dict[str, float]:
    """Median ns per ``check()``: unlimited tenant, and a tenant limited on another team."""
    limits = BudgetLimits(sdk.Settings(**settings))
    limits.apply("__heartbeat__/bench", None)
    for n in range(50):  # other tenants over their limits
        limits.apply(f"other-{n}", _status(f"other-{n}", "perf"))
    limits.apply("bench-ads", _status("bench", "ads"))
    free = {"tenant_id": "free", "project": "p", "team": "perf", "user_id": "u"}
    limited = {"tenant_id": "bench", "project": "p", "team": "perf", "user_id": "u"}
    batches = max(20, calls // 100)
    check, span = limits.check, range(_BATCH)

    def empty() -> None:
        for _ in span:
            pass

    def free_calls() -> None:
        for _ in span:
            check(free)

    def limited_calls() -> None:
        for _ in span:
            check(limited)

    base = _per_call_ns(empty, batches)
    return {
        "free_ns": _per_call_ns(free_calls, batches) - base,
        "other_scope_ns": _per_call_ns(limited_calls, batches) - base,
    }


def whole_call(url: str, settings: dict[str, Any], args: Any) -> dict[str, list[int]]:
    """Interleaved wrapped calls with the check on and off (times for ``summarize``)."""
    runtime = sdk.configure(**settings, budget_limits=True)
    limits = runtime.limits
    client, _ = measure.clients(url)
    wrapped = sdk.wrap(client, tenant_id="bench", project="sdk-overhead", team="perf")
    call = measure.call_of("openai chat", wrapped)

    def off() -> None:
        runtime.limits = None
        call()

    def on() -> None:
        runtime.limits = limits
        call()

    try:
        return measure.interleaved(off, on, calls=args.calls, block=args.block, warmup=args.warmup)
    finally:
        runtime.limits = limits
        sdk.close(10)
