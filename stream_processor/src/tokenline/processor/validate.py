"""Semantic validation of a decoded UsageEvent: what Avro cannot check.

:func:`validate_event` returns ``None`` for a valid event or a :class:`Violation`
``(reason_code, detail)``; the reason code is ``invalid_event`` and the detail names the rule
first (``negative_tokens: ...``) so the dead-letter record says exactly what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from datetime import datetime

    from tokenline.schemas import UsageEvent

__all__ = ["BUCKETS", "INVALID_EVENT", "ValidationLimits", "Violation", "validate_event"]

INVALID_EVENT = "invalid_event"
BUCKETS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
)
_SPLIT = ("cache_write_5m_input_tokens", "cache_write_1h_input_tokens")


class Violation(NamedTuple):
    """Why an event is rejected: a stable reason code and a human-readable detail."""

    reason_code: str
    detail: str

    @property
    def rule(self) -> str:
        """The rule that failed (the detail's prefix)."""
        return self.detail.split(":", 1)[0]


@dataclass(frozen=True, slots=True)
class ValidationLimits:
    """Bounds an event must respect.

    ``mismatch_tolerance`` is the largest relative difference between the summed buckets and
    the provider's own total that is accepted when the SDK flagged a mismatch.
    """

    max_tokens_per_bucket: int = 10_000_000
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=7)
    mismatch_tolerance: Decimal = Decimal("0.05")


def _invalid(rule: str, detail: str) -> Violation:
    return Violation(INVALID_EVENT, f"{rule}: {detail}")


def _token_violation(event: UsageEvent, limits: ValidationLimits) -> Violation | None:
    usage = event["usage"]
    counts: dict[str, int | None] = {name: usage[name] for name in BUCKETS}  # type: ignore[literal-required]
    counts.update({name: usage[name] for name in _SPLIT})  # type: ignore[literal-required]
    counts["provider_total_tokens"] = usage["provider_total_tokens"]
    for name, count in counts.items():
        if count is None:
            continue
        if count < 0:
            return _invalid("negative_tokens", f"{name} = {count}")
        if name in BUCKETS and count > limits.max_tokens_per_bucket:
            return _invalid("absurd_tokens", f"{name} = {count} > {limits.max_tokens_per_bucket}")
    if event["latency_ms"] < 0:
        return _invalid("negative_latency", f"latency_ms = {event['latency_ms']}")
    return None


def _mismatch_violation(event: UsageEvent, limits: ValidationLimits) -> Violation | None:
    usage = event["usage"]
    total = usage["provider_total_tokens"]
    if not usage["mismatch"] or total is None:
        return None
    summed = sum(usage[name] for name in BUCKETS)  # type: ignore[literal-required]
    difference = abs(summed - total)
    if difference <= limits.mismatch_tolerance * max(total, 1):
        return None
    return _invalid(
        "usage_mismatch",
        f"buckets sum to {summed}, provider total {total} ({usage['mismatch']})",
    )


def validate_event(
    event: UsageEvent, now: datetime, limits: ValidationLimits | None = None
) -> Violation | None:
    """The first rule ``event`` breaks, or ``None`` when it is valid at ``now``."""
    limits = limits or ValidationLimits()
    if not event["tenant_id"].strip():
        return _invalid("empty_tenant", "tenant_id is empty")
    found = _token_violation(event, limits)
    if found is not None:
        return found
    occurred_at = event["occurred_at"]
    if occurred_at > now + limits.max_future:
        return _invalid(
            "occurred_in_future",
            f"occurred_at {occurred_at.isoformat()} is more than {limits.max_future} ahead",
        )
    if occurred_at < now - limits.max_age:
        return _invalid(
            "occurred_too_long_ago",
            f"occurred_at {occurred_at.isoformat()} is older than {limits.max_age}",
        )
    return _mismatch_violation(event, limits)
