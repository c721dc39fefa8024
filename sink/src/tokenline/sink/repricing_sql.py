"""Re-pricing in one statement: the ``UPDATE`` and what it changes in the aggregates, in SQL.

A re-priced event takes its old contribution away from ``usage_rollup_1m`` and
``usage_tenant_daily`` and adds its new one (:mod:`tokenline.sink.rollups`,
:mod:`tokenline.sink.tenant_daily` say the rules). :data:`REPRICE_STAGED` does that without
sending the events' old and new rows to the client: a data-modifying CTE runs the ``UPDATE``
(:func:`tokenline.sink.store_sql.reprice`), signs its old (-1) and new (+1) rows, and sums them
into the two staging tables the store then adds (``ADD_ROLLUPS``, ``ADD_TENANT_DAILY``), with
the same keys and sums the Python functions make. It returns how many events it re-priced and
whether a rollup or daily key lost events (its maximum latency is then recomputed).
"""

from __future__ import annotations

from psycopg import sql

from tokenline.sink import tenant_daily
from tokenline.sink.batch import ROLLUP_COLUMNS
from tokenline.sink.columns import COST_COLUMNS, TOKEN_COLUMNS
from tokenline.sink.store_sql import (
    DAILY_STAGING,
    ROLLUP_STAGING,
    SOURCE_COLUMNS,
    daily_model,
    reprice,
    rollup_model,
)

__all__ = ["reprice_staged"]

_EPOCH = "timestamptz '1970-01-01 00:00:00+00'"
_UNPRICED = "(m.pricing_status = 'unpriced' OR m.cost_total IS NULL)"

#: ``usage_rollup_1m``'s columns from the signed rows ``m`` (a key, or a sum per key).
_ROLLUP = {
    "tenant_id": "m.tenant_id",
    "window_start": f"date_bin('60 seconds', m.occurred_at, {_EPOCH})",
    "provider": "m.provider",
    "model": rollup_model("m"),
    "window_seconds": "60",
    "requests": "sum(m.sign)",
    "failures": "coalesce(sum(m.sign) FILTER (WHERE NOT m.success), 0)",
    **{c: f"sum(m.sign * m.{c})" for c in TOKEN_COLUMNS},
    "cost_total": f"coalesce(sum(m.sign * m.cost_total) FILTER (WHERE NOT {_UNPRICED}), 0)",
    "unpriced_count": f"coalesce(sum(m.sign) FILTER (WHERE {_UNPRICED}), 0)",
    "latency_ms_sum": "sum(m.sign * m.latency_ms)",
    "latency_ms_max": "coalesce(max(m.latency_ms) FILTER (WHERE m.sign > 0), 0)",
    "currency": "coalesce(max(m.currency) FILTER (WHERE m.sign > 0), 'USD')",
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

#: ``tl_staging_tenant_daily``'s columns (:data:`tokenline.sink.tenant_daily.COLUMNS`).
_DAILY = {
    "tenant_id": "m.tenant_id",
    "quarter": f"date_bin('15 minutes', m.occurred_at, {_EPOCH})",
    "provider": "m.provider",
    "model": daily_model("m"),
    "project": "m.project",
    "team": "coalesce(m.attributed_team, m.team)",
    "currency": "m.currency",
    "requests": "sum(m.sign)",
    "failures": "coalesce(sum(m.sign) FILTER (WHERE NOT m.success), 0)",
    "unpriced_count": "coalesce(sum(m.sign) FILTER (WHERE m.pricing_status = 'unpriced'), 0)",
    **{c: f"sum(m.sign * m.{c})" for c in TOKEN_COLUMNS},
    **{c: f"coalesce(sum(m.sign * m.{c}), 0)" for c in COST_COLUMNS},
    "latency_ms_sum": "sum(m.sign * m.latency_ms)",
    "latency_ms_max": "coalesce(max(m.latency_ms) FILTER (WHERE m.sign > 0), 0)",
}
_DAILY_GROUPED = tenant_daily.KEY


def _staged(
    table: str,
    columns: tuple[str, ...],
    exprs: dict[str, str],
    keys: tuple[str, ...],
    sums: tuple[str, ...],
) -> sql.Composed:
    """``INSERT INTO table`` the signed rows' sums per key, leaving out keys that sum to zero."""
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM (SELECT {exprs} FROM moves AS m "
        "GROUP BY {keys}) AS g WHERE ({sums}) IS DISTINCT FROM ({zeros}) RETURNING requests"
    ).format(
        table=sql.Identifier(table),
        cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
        exprs=sql.SQL(", ").join(
            sql.SQL("{} AS {}").format(sql.SQL(exprs[c]), sql.Identifier(c)) for c in columns
        ),
        keys=sql.SQL(", ").join(sql.SQL(str(columns.index(k) + 1)) for k in keys),
        sums=sql.SQL(", ").join(map(sql.Identifier, sums)),
        zeros=sql.SQL(", ").join(sql.SQL("0") for _ in sums),
    )


def reprice_staged(staging: str) -> sql.Composed:
    """Re-price the stored events of ``staging`` and stage what that changes in the aggregates.

    Returns one row: the events re-priced, whether a rollup key lost events, whether a daily
    key did.
    """
    width = len(SOURCE_COLUMNS)
    old = [sql.Identifier(f"o{i}") for i in range(width)]
    new = [sql.Identifier(f"n{i}") for i in range(width)]
    names = sql.SQL(", ").join(map(sql.Identifier, SOURCE_COLUMNS))

    def signed(sign: int, cols: list[sql.Identifier]) -> sql.Composed:
        return sql.SQL("SELECT {} AS sign, {} FROM changed").format(
            sql.SQL(str(sign)), sql.SQL(", ").join(cols)
        )

    return sql.SQL(
        "WITH changed ({returned}) AS ({update}), moves (sign, {names}) AS ({minus} UNION ALL "
        "{plus}), r AS ({rollup}), d AS ({daily}) SELECT (SELECT count(*) FROM changed), "
        "coalesce((SELECT bool_or(requests < 0) FROM r), false), "
        "coalesce((SELECT bool_or(requests < 0) FROM d), false)"
    ).format(
        returned=sql.SQL(", ").join([*old, *new]),
        update=reprice(staging),
        names=names,
        minus=signed(-1, old),
        plus=signed(1, new),
        rollup=_staged(ROLLUP_STAGING, ROLLUP_COLUMNS, _ROLLUP, _ROLLUP_GROUPED, _ROLLUP_SUMS),
        daily=_staged(
            DAILY_STAGING, tenant_daily.COLUMNS, _DAILY, _DAILY_GROUPED, tenant_daily.SUMS
        ),
    )
