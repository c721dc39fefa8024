"""Rollup and tenant-daily sums of newly stored events, made in native code.

:func:`sums` gives what :func:`tokenline.sink.rollups.deltas` and
:func:`tokenline.sink.tenant_daily.deltas` give for events stored for the first time, read by
``tokenline_native.Sums`` straight from the Avro bodies the native rows were made from
(:data:`~tokenline.sink.native_rows.BODY`), with the GIL released while it sums. Only the
groups' keys and sums become Python values: a few hundred a batch, against a dict lookup and
some twenty additions a row in Python.

Rows made by the Python path have no body: a batch holding one is summed by Python, as is a
batch the native summer refuses (a value of a type it does not expect, an overflow).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokenline.sink.columns import COST_COLUMNS, TOKEN_COLUMNS
from tokenline.sink.rollups import Delta, RollupKey

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenline.sink.tenant_daily import QuarterKey

__all__ = ["ROLES", "SUMS", "distinct", "sums"]

#: The key under which a native row holds its batch's sums: ``(rows, minutes, days, distinct)``
#: (``distinct``: no two of the batch's rows share an ``event_id``).
SUMS = "__sums__"

#: The columns the sums are made from, in the order of ``native/src/sums.rs``' ``Role``.
ROLES = (
    "tenant_id",
    "occurred_at",
    "provider",
    "canonical_model",
    "response_model",
    "request_model",
    "deployment",
    "project",
    "team",
    "attributed_team",
    "currency",
    "success",
    "pricing_status",
    *TOKEN_COLUMNS,
    "cost_total",
    *COST_COLUMNS,
    "latency_ms",
    "event_id",  # not summed: it tells ``distinct``
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _decimal(cost: tuple[int, int] | None) -> Decimal:
    """A summed cost as Python's ``Decimal`` additions leave it (``Decimal(0)`` for none)."""
    if cost is None:
        return Decimal(0)
    unscaled, exponent = cost
    return Decimal(f"{unscaled}E{exponent}")


def _batch(rows: Sequence[dict[str, Any]]) -> tuple[Any, ...] | None:
    """The sums of the batch ``rows`` are, when they are its native rows, each one once."""
    summed = rows[0].get(SUMS) if rows else None
    if summed is None or summed[0] != len(rows) or any(row.get(SUMS) is not summed for row in rows):
        return None
    return summed  # type: ignore[no-any-return]


def distinct(rows: Sequence[dict[str, Any]]) -> bool:
    """Whether ``rows`` are known to hold each ``event_id`` once (``False``: not known)."""
    summed = _batch(rows)
    return summed is not None and summed[3] is True


def sums(
    rows: Sequence[dict[str, Any]],
) -> tuple[dict[RollupKey, Delta], dict[QuarterKey, list[Any]]] | None:
    """The rollup deltas and quarter-hour sums of ``rows``, or ``None`` (sum them in Python)."""
    summed = _batch(rows)
    if summed is None:
        return None
    _, minutes, days, _distinct = summed
    moments: dict[int, datetime] = {}

    def moment(micros: int) -> datetime:
        found = moments.get(micros)
        if found is None:
            found = moments[micros] = _EPOCH + timedelta(microseconds=micros)
        return found

    rollups: dict[RollupKey, Delta] = {}
    for (tenant, start, provider, model), counts, cost, currency in minutes:
        requests, failures, unpriced, t0, t1, t2, t3, t4, latency_sum, latency_max = counts
        rollups[(tenant, moment(start), provider, model)] = Delta(
            requests=requests,
            failures=failures,
            input_tokens=t0,
            cache_read_input_tokens=t1,
            cache_write_input_tokens=t2,
            output_tokens=t3,
            reasoning_tokens=t4,
            cost_total=_decimal(cost),
            unpriced_count=unpriced,
            latency_ms_sum=latency_sum,
            latency_ms_max=latency_max,
            currency=currency,
        )
    daily: dict[QuarterKey, list[Any]] = {}
    for (tenant, quarter, *rest), counts, costs in days:
        *measures, latency_sum, latency_max = counts
        daily[(tenant, moment(quarter), *rest)] = [
            *measures,
            *map(_decimal, costs),
            latency_sum,
            latency_max,
        ]
    return rollups, daily
