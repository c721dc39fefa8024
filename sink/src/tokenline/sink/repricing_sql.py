"""Re-pricing in one statement: the ``UPDATE`` and what it changes in the aggregates, in SQL.

A re-priced event takes its old contribution away from ``usage_rollup_1m`` and
``usage_tenant_daily`` and adds its new one (:mod:`tokenline.sink.rollups`,
:mod:`tokenline.sink.tenant_daily` say the rules). The statements here do that without sending
the events' old and new rows to the client: a data-modifying CTE ``changed`` runs the
``UPDATE`` and returns each changed event's old (``o_``) and new (``n_``) columns; they become
moves, contributions summed once per fine key (``g``) and from there into the two staging
tables the store then adds (``ADD_ROLLUPS``, ``ADD_TENANT_DAILY``), with the same keys and sums
the Python functions make.

A re-pricing rarely moves an event to another key (its model or currency would change): an
event whose keys stay is one move, the difference of its new and old costs and unpriced
counts (nothing else can change); one whose keys change is two, the old taken away (-1) and
the new added (+1).

What is taken away is staged apart from what is added, never netted with it: a key some event
left gets a staged row with negative requests even when another event entered it in the same
batch, and that row is what has the key's maximum latency recomputed (a maximum cannot be taken
back). Netted, an event moving out while another moved in left the key the maximum of the one
gone.

Two statements share this: :func:`reprice_seen_staged` (one lookup an event, no lock; the
store's first choice on plain PostgreSQL) and :func:`reprice_staged` (after
:func:`tokenline.sink.store_sql.lock`; always correct, the fallback). Each returns how many
events it re-priced and whether a rollup or daily key lost events (its maximum latency is then
recomputed).
"""

from __future__ import annotations

from functools import cache

from psycopg import sql

from tokenline.sink import tenant_daily
from tokenline.sink.batch import ROLLUP_COLUMNS
from tokenline.sink.columns import COST_COLUMNS, TOKEN_COLUMNS
from tokenline.sink.store_sql import (
    DAILY_STAGING,
    REPRICED_COLUMNS,
    ROLLUP_STAGING,
    SOURCE_COLUMNS,
    daily_model,
    reprice,
    reprice_seen,
    rollup_model,
)

__all__ = ["reprice_seen_staged", "reprice_staged"]

_EPOCH = "timestamptz '1970-01-01 00:00:00+00'"

# ---------------------------------------------------------------- one side's contribution
# Each contribution is a SQL expression of one side of a row of ``changed`` (alias ``c``): the
# new row (``n_`` + column) or the old one (``o_`` + column for what a re-pricing can change,
# :data:`REPRICED_COLUMNS`; the rest it shares with the new row).


def _col(side: str, column: str) -> str:
    return f"c.o_{column}" if side == "old" and column in REPRICED_COLUMNS else f"c.n_{column}"


def _unpriced(side: str) -> str:
    """The rollups' unpriced rule: unpriced, or no total cost."""
    return f"({_col(side, 'pricing_status')} = 'unpriced' OR {_col(side, 'cost_total')} IS NULL)"


def _contributions(side: str, sign: int) -> dict[str, str]:
    """What one side of an event adds (``sign`` 1) to or takes away (-1) from each sum.

    A value taken away is negated and one added is taken as it is: multiplied by the sign, the
    NUMERIC costs cost 1-1.6 µs more a re-priced row (``bench/sink.py``'s statement alone).
    """
    s = str(sign)

    def signed(value: str) -> str:
        return value if sign == 1 else f"-{value}"

    return {
        "requests": s,
        "failures": f"CASE WHEN {_col(side, 'success')} THEN 0 ELSE {s} END",
        "unpriced_r": f"CASE WHEN {_unpriced(side)} THEN {s} ELSE 0 END",
        "unpriced_d": f"CASE WHEN {_col(side, 'pricing_status')} = 'unpriced' THEN {s} ELSE 0 END",
        **{c: signed(_col(side, c)) for c in TOKEN_COLUMNS},
        "cost_r": f"CASE WHEN {_unpriced(side)} THEN 0 ELSE {signed(_col(side, 'cost_total'))} END",
        **{f"d_{c}": signed(f"coalesce({_col(side, c)}, 0)") for c in COST_COLUMNS},
        "latency_ms_sum": signed(_col(side, "latency_ms")),
    }


#: The sums a re-pricing in place can change: whether the event is unpriced, and its costs.
_CHANGES = ("unpriced_r", "unpriced_d", "cost_r", *(f"d_{c}" for c in COST_COLUMNS))


def _difference() -> dict[str, str]:
    """What an event re-priced in place changes: the new side less the old, :data:`_CHANGES`.

    Only pricing columns change (the UPDATE sets nothing else): the count, failures, tokens
    and latency of the event stay, so their differences are zero, and its latency is in the
    key's maximum already.
    """
    new, old = _contributions("new", 1), _contributions("old", 1)
    return {c: f"({new[c]}) - ({old[c]})" for c in _CHANGES}


#: The key columns of a move: what the rollup and daily keys are computed from (the returned
#: columns but those summed).
_MEASURED = frozenset(("success", "pricing_status", "latency_ms", *TOKEN_COLUMNS, *COST_COLUMNS))
_KEYED = tuple(c for c in SOURCE_COLUMNS if c not in _MEASURED)
_SUMMED = tuple(_contributions("new", 1))


def _move(side: str, sums: dict[str, str], adds: bool | None) -> sql.Composed:
    """A branch of the moves: the key of ``side`` and ``sums``.

    Then, unless ``adds`` is None (a difference), the latency a maximum may take and whether
    the move adds (else it takes away).
    """
    tail = ""
    if adds is not None:
        latency = _col(side, "latency_ms") if adds else "NULL::int"
        tail = f", {latency} AS latency_max, {'true' if adds else 'false'} AS adds"
    return sql.SQL("SELECT {keys}, {sums}{tail} FROM changed AS c").format(
        keys=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.SQL(_col(side, k)), sql.Identifier(k)) for k in _KEYED
        ),
        sums=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.SQL(e), sql.Identifier(c)) for c, e in sums.items()
        ),
        tail=sql.SQL(tail),
    )


# ---------------------------------------------------------------- summed once, staged twice
#: ``g``: the moves summed per key fine enough for both staging tables (a minute, both models,
#: project, team, currency).
_FINE = {
    "tenant_id": "m.tenant_id",
    "minute": f"date_bin('60 seconds', m.occurred_at, {_EPOCH})",
    "provider": "m.provider",
    "r_model": rollup_model("m"),
    "d_model": daily_model("m"),
    "project": "m.project",
    "team": "coalesce(m.attributed_team, m.team)",
    "currency": "m.currency",
}
_FINE_SUMS = {
    **{c: f"sum(m.{c})" for c in _SUMMED},
    "latency_max": "max(m.latency_max)",
}

#: ``usage_rollup_1m``'s columns from ``g``.
_ROLLUP = {
    "tenant_id": "g.tenant_id",
    "window_start": "g.minute",
    "provider": "g.provider",
    "model": "g.r_model",
    "window_seconds": "60",
    "requests": "sum(g.requests)",
    "failures": "sum(g.failures)",
    **{c: f"sum(g.{c})" for c in TOKEN_COLUMNS},
    "cost_total": "sum(g.cost_r)",
    "unpriced_count": "sum(g.unpriced_r)",
    "latency_ms_sum": "sum(g.latency_ms_sum)",
    "latency_ms_max": "coalesce(max(g.latency_max), 0)",
    "currency": "coalesce(max(g.currency) FILTER (WHERE g.adds), 'USD')",
    "source_partition": "-1",
    "max_source_offset": "-1",
    "updated_at": "now()",
}
_ROLLUP_GROUPED = ("tenant_id", "window_start", "provider", "model")
_ROLLUP_SUMS = (
    "requests",
    "failures",
    *TOKEN_COLUMNS,
    "cost_total",
    "unpriced_count",
    "latency_ms_sum",
)

#: ``tl_staging_tenant_daily``'s columns (:data:`tokenline.sink.tenant_daily.COLUMNS`) from ``g``.
_DAILY = {
    "tenant_id": "g.tenant_id",
    "quarter": f"date_bin('15 minutes', g.minute, {_EPOCH})",
    "provider": "g.provider",
    "model": "g.d_model",
    "project": "g.project",
    "team": "g.team",
    "currency": "g.currency",
    "requests": "sum(g.requests)",
    "failures": "sum(g.failures)",
    "unpriced_count": "sum(g.unpriced_d)",
    **{c: f"sum(g.{c})" for c in TOKEN_COLUMNS},
    **{c: f"sum(g.d_{c})" for c in COST_COLUMNS},
    "latency_ms_sum": "sum(g.latency_ms_sum)",
    "latency_ms_max": "coalesce(max(g.latency_max), 0)",
}
_DAILY_GROUPED = tenant_daily.KEY


def _aliased(exprs: dict[str, str]) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.SQL(e), sql.Identifier(c)) for c, e in exprs.items()
    )


def _staged(
    table: str,
    columns: tuple[str, ...],
    exprs: dict[str, str],
    keys: tuple[str, ...],
    sums: tuple[str, ...],
) -> sql.Composed:
    """``INSERT INTO table`` ``g``'s sums per key, what is taken away apart from what is added.

    Rows whose sums are all zero are left out.
    """
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM (SELECT {exprs} FROM g "
        "GROUP BY {keys}, g.adds) AS s WHERE ({sums}) IS DISTINCT FROM ({zeros}) "
        "RETURNING requests"
    ).format(
        table=sql.Identifier(table),
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        exprs=_aliased({c: exprs[c] for c in columns}),
        keys=sql.SQL(", ").join(sql.SQL(str(columns.index(k) + 1)) for k in keys),
        sums=sql.SQL(", ").join(map(sql.Identifier, sums)),
        zeros=sql.SQL(", ").join(sql.SQL("0") for _ in sums),
    )


def _staging_ctes() -> sql.Composed:
    """``g``, ``r`` and ``d``: from ``changed`` into the two staging tables.

    ``g`` sums the events re-priced in place (one difference each, only what it can change)
    apart from those moved to other keys (taken away, added).
    """
    lean = {c: (e if c in _CHANGES else "0") for c, e in _FINE_SUMS.items()}
    return sql.SQL(
        "g AS (SELECT {fine}, true AS adds, {lean} FROM ({diff} WHERE c.stays) AS m "
        "GROUP BY {fine_keys} UNION ALL SELECT {fine}, m.adds, {sums} FROM ({old} WHERE NOT "
        "c.stays UNION ALL {new} WHERE NOT c.stays) AS m GROUP BY {fine_keys}, m.adds), "
        "r AS ({rollup}), d AS ({daily})"
    ).format(
        fine=_aliased(_FINE),
        lean=_aliased(lean | {"latency_max": "NULL::int"}),
        sums=_aliased(_FINE_SUMS),
        diff=_move("new", _difference(), adds=None),
        old=_move("old", _contributions("old", -1), adds=False),
        new=_move("new", _contributions("new", 1), adds=True),
        fine_keys=sql.SQL(", ").join(sql.SQL(str(n + 1)) for n in range(len(_FINE))),
        rollup=_staged(ROLLUP_STAGING, ROLLUP_COLUMNS, _ROLLUP, _ROLLUP_GROUPED, _ROLLUP_SUMS),
        daily=_staged(
            DAILY_STAGING, tenant_daily.COLUMNS, _DAILY, _DAILY_GROUPED, tenant_daily.SUMS
        ),
    )


_LOST = sql.SQL(
    "coalesce((SELECT bool_or(requests < 0) FROM r), false), "
    "coalesce((SELECT bool_or(requests < 0) FROM d), false)"
)


@cache
def reprice_staged(staging: str) -> bytes:
    """Re-price the stored events of ``staging`` (locked by :func:`lock`); stage the changes.

    Returns one row: the events re-priced, whether a rollup key lost events, whether a daily
    key did.
    """
    return (
        sql.SQL(
            "WITH changed AS ({update}), {staging} SELECT (SELECT count(*) FROM changed), {lost}"
        )
        .format(update=reprice(staging), staging=_staging_ctes(), lost=_LOST)
        .as_bytes(None)
    )


@cache
def reprice_seen_staged(staging: str) -> bytes:
    """Re-price the stored events of ``staging`` as one snapshot sees them; stage the changes.

    No lock first (:func:`tokenline.sink.store_sql.reprice_seen`). Returns one row: the events
    found stored, those due a new pricing, those re-priced (fewer than due: some were re-priced
    by another transaction meanwhile and left alone), whether a rollup key lost events, whether
    a daily key did.
    """
    seen, update = reprice_seen(staging)
    return (
        sql.SQL(
            "WITH x AS MATERIALIZED ({seen}), changed AS ({update}), {staging}, "
            "seen AS (SELECT count(*) AS found, count(*) FILTER (WHERE x.due) AS due FROM x) "
            "SELECT seen.found, seen.due, (SELECT count(*) FROM changed), {lost} FROM seen"
        )
        .format(seen=seen, update=update, staging=_staging_ctes(), lost=_LOST)
        .as_bytes(None)
    )
