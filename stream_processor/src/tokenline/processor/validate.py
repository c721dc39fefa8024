"""Semantic validation of a decoded UsageEvent: what Avro cannot check.

:func:`validate_event` returns ``None`` for a valid event or a :class:`Violation`
``(reason_code, detail)``; the reason code is ``invalid_event`` and the detail names the rule
first (``negative_tokens: ...``) so the dead-letter record says exactly what is wrong. The
bounds of every field are :func:`tokenline.processor.contract.contract`'s; the rules, in the
order they are checked:

================================  ==========================================================
``empty_tenant``                  ``tenant_id`` is empty or blank
``negative_tokens``               a token count below 0
``absurd_tokens``                 a token count above its bound (``max_tokens_per_bucket``)
``split_exceeds_total``           the 5m + 1h cache-write split exceeds the cache writes
``negative_latency``              ``latency_ms`` below 0
``out_of_range``                  any other number outside its bound (time to first token,
                                  latency, ``http_status`` 100-599, ``producer_seq``)
``text_too_long``                 a string longer than its bound (tags: keys and values)
``text_not_storable``             a string holding NUL or a lone surrogate
``too_many_tags``                 more tags than the bound
``occurred_in_future``            ``occurred_at`` more than ``max_future`` ahead
``occurred_too_long_ago``         ``occurred_at`` older than ``max_age``
``usage_mismatch``                flagged buckets too far from the provider's own total
================================  ==========================================================

A detail never quotes a string it refuses (it may be megabytes long): it gives the field, the
length or the position of the bad character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from tokenline.processor.contract import Count, FieldPath, Tags, Text, contract

if TYPE_CHECKING:
    from collections.abc import Mapping
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
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_BITS = 96


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


def _show(value: int) -> str:
    """An integer for a reason: digits, or its size when it is absurdly long."""
    if value.bit_length() > _SHOWN_BITS:
        return f"a {value.bit_length()}-bit {'negative ' if value < 0 else ''}integer"
    return str(value)


def _dotted(path: FieldPath) -> str:
    return ".".join(path)


@dataclass(frozen=True, slots=True)
class _Plan:
    """The contract of one set of limits, laid out for a fast walk over an event.

    ``counts`` and ``texts`` hold, per record (the event itself, ``usage``, ``host``), the
    fields and their bounds: ``(record, ((field, low, high), ...))``.
    """

    counts: tuple[tuple[str | None, tuple[tuple[str, int, int], ...]], ...]
    texts: tuple[tuple[str | None, tuple[tuple[str, int], ...]], ...]
    tags: Tags


def _by_record(paths: Mapping[FieldPath, tuple[int, ...]]) -> tuple[Any, ...]:
    grouped: dict[str | None, list[tuple[Any, ...]]] = {}
    for path, bounds in paths.items():
        record, name = (None, path[0]) if len(path) == 1 else path
        grouped.setdefault(record, []).append((name, *bounds))
    return tuple((record, tuple(fields)) for record, fields in grouped.items())


@cache
def _plan(limits: ValidationLimits) -> _Plan:
    fields = contract(limits)
    counts = {p: (b.low, b.high) for p, b in fields.items() if isinstance(b, Count)}
    texts = {p: (b.max_chars,) for p, b in fields.items() if isinstance(b, Text)}
    tags = next(b for b in fields.values() if isinstance(b, Tags))
    return _Plan(_by_record(counts), _by_record(texts), tags)


def _count_rule(path: FieldPath, value: int, low: int) -> str:
    if path[0] == "usage":
        return "negative_tokens" if value < low else "absurd_tokens"
    if path == ("latency_ms",) and value < low:
        return "negative_latency"
    return "out_of_range"


def _count_violation(event: UsageEvent, plan: _Plan) -> Violation | None:
    for record, fields in plan.counts:
        values: Any = event if record is None else event[record]  # type: ignore[literal-required]
        for name, low, high in fields:
            value = values[name]
            if value is None or low <= value <= high:
                continue
            path = (name,) if record is None else (record, name)
            rule = _count_rule(path, value, low)
            if rule == "absurd_tokens":
                return _invalid(rule, f"{_dotted(path)} = {_show(value)} > {high}")
            if rule in ("negative_tokens", "negative_latency"):
                return _invalid(rule, f"{_dotted(path)} = {_show(value)}")
            return _invalid(rule, f"{_dotted(path)} = {_show(value)} is outside [{low}, {high}]")
    usage = event["usage"]
    split = (usage["cache_write_5m_input_tokens"] or 0) + (
        usage["cache_write_1h_input_tokens"] or 0
    )
    if split > usage["cache_write_input_tokens"]:
        return _invalid(
            "split_exceeds_total",
            f"cache_write_5m + cache_write_1h = {split} > cache_write_input_tokens = "
            f"{usage['cache_write_input_tokens']}",
        )
    return None


def _text_problem(value: str, max_chars: int) -> tuple[str, str] | None:
    """``(rule, what)`` when ``value`` breaks its bound, else ``None``."""
    if len(value) > max_chars:
        return "text_too_long", f"has {len(value)} characters, more than {max_chars}"
    if "\x00" in value:
        return "text_not_storable", f"holds NUL (U+0000) at character {value.index(chr(0))}"
    if not value.isascii():
        found = _SURROGATE.search(value)
        if found is not None:
            return (
                "text_not_storable",
                f"holds a lone surrogate U+{ord(found.group()):04X} at character {found.start()}",
            )
    return None


def _text_violation(event: UsageEvent, plan: _Plan) -> Violation | None:
    for record, fields in plan.texts:
        values: Any = event if record is None else event[record]  # type: ignore[literal-required]
        for name, max_chars in fields:
            value = values[name]
            if value is None:
                continue
            if len(value) <= max_chars and value.isascii() and "\x00" not in value:
                continue
            problem = _text_problem(value, max_chars)
            if problem is not None:
                where = name if record is None else f"{record}.{name}"
                return _invalid(problem[0], f"{where} {problem[1]}")
    tags = event["tags"]
    bound = plan.tags
    if len(tags) > bound.max_entries:
        return _invalid(
            "too_many_tags", f"tags has {len(tags)} entries, more than {bound.max_entries}"
        )
    for n, (key, value) in enumerate(tags.items()):
        problem = _text_problem(key, bound.key.max_chars)
        if problem is not None:
            return _invalid(problem[0], f"tags key #{n} {problem[1]}")
        problem = _text_problem(value, bound.value.max_chars)
        if problem is not None:
            return _invalid(problem[0], f"tags value #{n} {problem[1]}")
    return None


def _time_violation(event: UsageEvent, now: datetime, limits: ValidationLimits) -> Violation | None:
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
    plan = _plan(limits)
    if not event["tenant_id"].strip():
        return _invalid("empty_tenant", "tenant_id is empty")
    return (
        _count_violation(event, plan)
        or _text_violation(event, plan)
        or _time_violation(event, now, limits)
        or _mismatch_violation(event, limits)
    )
