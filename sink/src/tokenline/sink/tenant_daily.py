"""What landed events add to ``usage_tenant_daily``: pure arithmetic, no database.

``usage_tenant_daily`` (migration 0006) holds a tenant's sums per local day, provider, model,
project, team and currency. The local day needs the tenant's timezone, which the database
holds (``tenants``); so the sink sums here per *UTC quarter-hour* and the store turns the
quarter-hours into local days in SQL, joined with ``tenants`` in the same statement that adds
them. Every UTC offset in use since 1980 is a multiple of 15 minutes (+05:30, +05:45, +12:45,
DST shifts of 30 or 60 minutes), so a quarter-hour lies inside one local day of every tenant
and the sums are exact.

As for ``usage_rollup_1m`` (:mod:`tokenline.sink.rollups`): a new event adds its contribution,
a re-priced event takes its old one away and adds its new one (its model or currency, hence its
key, may change), an event stored already with the same pricing adds nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import MAX_PREC, Decimal, localcontext
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from tokenline.sink.columns import COST_COLUMNS, TOKEN_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "COLUMNS",
    "KEY",
    "QUARTER",
    "SOURCE_COLUMNS",
    "SUMS",
    "QuarterKey",
    "deltas",
    "quarter_key",
]

#: The staging key: the table's key with the UTC quarter-hour in place of the local day.
KEY = ("tenant_id", "quarter", "provider", "model", "project", "team", "currency")
#: Additive measures, in the table's order; ``latency_ms_max`` follows them.
SUMS = (
    "requests",
    "failures",
    "unpriced_count",
    *TOKEN_COLUMNS,
    *COST_COLUMNS,
    "latency_ms_sum",
)
COLUMNS = (*KEY, *SUMS, "latency_ms_max")
_TOKENS = SUMS[3:8]
_COSTS = SUMS[8:14]

#: The columns of a stored event a contribution is computed from.
SOURCE_COLUMNS = (
    "tenant_id",
    "occurred_at",
    "provider",
    "canonical_model",
    "response_model",
    "request_model",
    "project",
    "team",
    "attributed_team",
    "currency",
    "success",
    "pricing_status",
    *_TOKENS,
    *_COSTS,
    "latency_ms",
)

#: A row may bring its UTC quarter-hour made already (native rows do), under this key.
QUARTER = "__quarter__"

QuarterKey = tuple[str, datetime, str, str | None, str | None, str | None, str]


_KEY_VALUES = itemgetter(
    "tenant_id",
    "provider",
    "canonical_model",
    "response_model",
    "request_model",
    "project",
    "attributed_team",
    "team",
    "currency",
)


def quarter_key(row: Mapping[str, Any]) -> QuarterKey:
    """The staging key of an event row (model and team as the aggregates of 0002 take them)."""
    quarter = row.get(QUARTER)
    if quarter is None:
        moment = row["occurred_at"]
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        quarter = moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)
    tenant, provider, canonical, response, request, project, attributed, team, currency = (
        _KEY_VALUES(row)
    )
    # SQL's coalesce, written out (this runs for every landed event).
    model = canonical if canonical is not None else response if response is not None else request
    return (
        tenant,
        quarter,
        provider,
        model,
        project,
        attributed if attributed is not None else team,
        currency,
    )


_TOKEN_AT = tuple(enumerate(_TOKENS, 3))
_COST_AT = tuple(enumerate(_COSTS, 8))


_NEW_FIELDS: tuple[str, ...] = ("success", "pricing_status", *_TOKENS, *_COSTS, "latency_ms")
_NEW_VALUES = itemgetter(*_NEW_FIELDS)


def _add_new(acc: list[Any], row: Mapping[str, Any]) -> None:
    """:func:`_add` with ``sign`` 1, without the multiplications (a new event's case).

    Written out column by column: it runs for every landed event.
    """
    (success, status, t0, t1, t2, t3, t4, c0, c1, c2, c3, c4, c5, latency) = _NEW_VALUES(row)
    acc[0] += 1
    if not success:
        acc[1] += 1
    acc[3] += t0
    acc[4] += t1
    acc[5] += t2
    acc[6] += t3
    acc[7] += t4
    if status == "unpriced":
        acc[2] += 1
    if c0 is not None:
        acc[8] += c0
    if c1 is not None:
        acc[9] += c1
    if c2 is not None:
        acc[10] += c2
    if c3 is not None:
        acc[11] += c3
    if c4 is not None:
        acc[12] += c4
    if c5 is not None:
        acc[13] += c5
    acc[14] += latency
    acc[15] = max(acc[15], latency)


def _add(acc: list[Any], row: Mapping[str, Any], sign: int) -> None:
    acc[0] += sign
    if not row["success"]:
        acc[1] += sign
    if row["pricing_status"] == "unpriced":
        acc[2] += sign
    for i, name in _TOKEN_AT:
        acc[i] += sign * row[name]
    for i, name in _COST_AT:
        value = row[name]
        if value is not None:
            acc[i] += sign * value
    latency = row["latency_ms"]
    acc[14] += sign * latency
    if sign > 0 and latency > acc[15]:
        acc[15] = latency


def _reprice(acc: list[Any], old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Add what a re-pricing that keeps the key changes: the unpriced count and the costs."""
    acc[2] += (new["pricing_status"] == "unpriced") - (old["pricing_status"] == "unpriced")
    for i, name in enumerate(_COSTS, 8):
        before, after = old[name], new[name]
        if before is not None:
            acc[i] -= before
        if after is not None:
            acc[i] += after


def _zero() -> list[Any]:
    return [0] * 8 + [Decimal(0)] * 6 + [0, 0]


def deltas(
    inserted: Iterable[Mapping[str, Any]],
    repriced: Iterable[tuple[Mapping[str, Any], Mapping[str, Any]]] = (),
) -> dict[QuarterKey, list[Any]]:
    """Per staging key, the sums to add (:data:`SUMS`, then the largest latency added).

    Keys whose sums are all zero (a re-pricing that changed nothing counted here) are left out.
    A negative ``requests`` means the key lost events: the store recomputes its maximum.
    """
    with localcontext(prec=MAX_PREC):  # exact: the default 28 digits would round
        out: dict[QuarterKey, list[Any]] = {}
        for row in inserted:
            key = quarter_key(row)
            acc = out.get(key)
            if acc is None:
                acc = out[key] = _zero()
            _add_new(acc, row)
        for old, new in repriced:
            if (
                old["canonical_model"] == new["canonical_model"]
                and old["currency"] == new["currency"]
            ):
                # The key stays (a re-pricing changes only pricing columns): the cost difference.
                acc = out.get(key := quarter_key(new))
                if acc is None:
                    acc = out[key] = _zero()
                _reprice(acc, old, new)
                continue
            for row, sign in ((old, -1), (new, 1)):
                _add(out.setdefault(quarter_key(row), _zero()), row, sign)
        return {key: acc for key, acc in out.items() if any(acc[:15])}
