"""What landed events add to ``usage_rollup_1m``: pure arithmetic, no database.

A row of ``usage_rollup_1m`` is keyed by (tenant, window start, provider, model) and holds the
sums of the events stored in ``usage_events`` for that key. The sink keeps it so by adding, in
the transaction that changes ``usage_events``, exactly what those changes make:

- an event stored for the first time adds its whole :func:`contribution`;
- a re-priced event takes its old contribution away and adds its new one (the cost, the
  priced status and even the model, hence the key, may change);
- an event already stored with the same pricing adds nothing.

The key is the processor's: the model is the canonical one when known, else the one the event
named (response model, request model, deployment), else ``unknown``; the window is the minute
of ``occurred_at`` in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import MAX_PREC, Decimal, localcontext
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from tokenline.sink.columns import TOKEN_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "MINUTE",
    "WINDOW_SECONDS",
    "Delta",
    "RollupKey",
    "contribution",
    "deltas",
    "model_of",
    "rollup_key",
]

WINDOW_SECONDS = 60
#: A row may bring its UTC minute made already (native rows do), under this key.
MINUTE = "__minute__"

RollupKey = tuple[str, datetime, str, str]
"""``(tenant_id, window_start, provider, model)``: the primary key of ``usage_rollup_1m``."""

#: The columns of a stored event the contribution is computed from.
SOURCE_COLUMNS = (
    "tenant_id",
    "occurred_at",
    "provider",
    "canonical_model",
    "response_model",
    "request_model",
    "deployment",
    "success",
    *TOKEN_COLUMNS,
    "pricing_status",
    "cost_total",
    "currency",
    "latency_ms",
)


def model_of(row: Mapping[str, Any]) -> str:
    """The model a rollup is grouped by, as the processor's ``windows.model_of`` gives it."""
    return str(
        row["canonical_model"]
        or row["response_model"]
        or row["request_model"]
        or row["deployment"]
        or "unknown"
    )


def rollup_key(row: Mapping[str, Any]) -> RollupKey:
    """The ``usage_rollup_1m`` key an event row counts under."""
    minute = row.get(MINUTE)
    if minute is None:
        moment = row["occurred_at"]
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        minute = moment.replace(second=0, microsecond=0)
    return (row["tenant_id"], minute, row["provider"], model_of(row))


_NEW_VALUES = itemgetter(
    "success",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "pricing_status",
    "cost_total",
    "latency_ms",
    "currency",
)


@dataclass
class Delta:
    """What to add to one rollup row. Counts may be negative (a re-priced event moved away).

    ``latency_ms_max`` is the largest latency added: a maximum cannot be taken back, so the
    store recomputes the maximum of a row that lost events (``requests`` below zero).
    """

    requests: int = 0
    failures: int = 0
    input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_total: Decimal = field(default_factory=Decimal)
    unpriced_count: int = 0
    latency_ms_sum: int = 0
    latency_ms_max: int = 0
    currency: str = "USD"

    def add(self, row: Mapping[str, Any], sign: int) -> None:
        """Add (``sign`` 1) or take away (``sign`` -1) one event's contribution."""
        if sign == 1:
            self._add(row)
            return
        self.requests += sign
        self.failures += 0 if row["success"] else sign
        self.input_tokens += sign * row["input_tokens"]
        self.cache_read_input_tokens += sign * row["cache_read_input_tokens"]
        self.cache_write_input_tokens += sign * row["cache_write_input_tokens"]
        self.output_tokens += sign * row["output_tokens"]
        self.reasoning_tokens += sign * row["reasoning_tokens"]
        if row["pricing_status"] == "unpriced" or row["cost_total"] is None:
            self.unpriced_count += sign
        else:
            self.cost_total += sign * row["cost_total"]
        self.latency_ms_sum += sign * row["latency_ms"]
        if sign > 0:
            self.latency_ms_max = max(self.latency_ms_max, row["latency_ms"])
            self.currency = row["currency"]

    def _add(self, row: Mapping[str, Any]) -> None:
        """:meth:`add` with ``sign`` 1, without the multiplications (a new event's case).

        The row's values in one call (:data:`_NEW_VALUES`): it runs for every landed event.
        """
        (success, t0, t1, t2, t3, t4, status, cost, latency, currency) = _NEW_VALUES(row)
        self.requests += 1
        if not success:
            self.failures += 1
        self.input_tokens += t0
        self.cache_read_input_tokens += t1
        self.cache_write_input_tokens += t2
        self.output_tokens += t3
        self.reasoning_tokens += t4
        if status == "unpriced" or cost is None:
            self.unpriced_count += 1
        else:
            self.cost_total += cost
        self.latency_ms_sum += latency
        self.latency_ms_max = max(self.latency_ms_max, latency)
        self.currency = currency

    def is_zero(self) -> bool:
        """Tell whether the sums are unchanged (the maximum of a re-priced event is stored)."""
        return self == Delta(latency_ms_max=self.latency_ms_max, currency=self.currency)


def contribution(row: Mapping[str, Any]) -> Delta:
    """The whole contribution of one event row."""
    delta = Delta()
    delta.add(row, 1)
    return delta


def deltas(
    inserted: Iterable[Mapping[str, Any]],
    repriced: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]] = (),
) -> dict[RollupKey, Delta]:
    """The deltas of newly stored events and of re-priced ``(old, new)`` event rows, per key.

    Keys whose delta is zero (a re-pricing that moved nothing) are left out.
    """
    with localcontext(prec=MAX_PREC):  # exact: the default 28 digits would round
        out: dict[RollupKey, Delta] = {}
        for row in inserted:  # every landed event: no Delta made for a key already there
            key = rollup_key(row)
            delta = out.get(key)
            if delta is None:
                delta = out[key] = Delta()
            delta._add(row)  # add(row, 1), without the sign's branch
        for old, new in repriced:
            out.setdefault(rollup_key(old), Delta()).add(old, -1)
            out.setdefault(rollup_key(new), Delta()).add(new, 1)
        return {key: delta for key, delta in out.items() if not delta.is_zero()}
