"""The replay's own small SQL against the sink's tables (it never imports the sink).

Reads what the database holds for the range before anything is sent (costs per tenant and
model, pricing versions, stored windows), records the ``repricing_runs`` row, and tells how
many re-priced events and windows have landed (``--wait-landed``). Statements are never
server-prepared (``prepare_threshold=None``, see DESIGN "Traps").
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from tokenline.processor.replay.landing import STORED_FINGERPRINT
from tokenline.processor.replay.state import CostLine

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenline.processor.replay.rollups import StoredKey
    from tokenline.processor.replay.scope import ReplayScope

__all__ = [
    "before_costs",
    "connect",
    "events_landed",
    "finish_run",
    "load_event_keys",
    "start_run",
    "stored_rollups",
]

#: ``windows.model_of`` in SQL: the first non-empty of the event's model names.
_MODEL = (
    "COALESCE(NULLIF(canonical_model, ''), NULLIF(response_model, ''), "
    "NULLIF(request_model, ''), NULLIF(deployment, ''), 'unknown')"
)


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection that never prepares statements on the server."""
    return psycopg.connect(
        url, autocommit=True, prepare_threshold=None, application_name="tokenline-replay"
    )


def _where(scope: ReplayScope, column: str) -> tuple[sql.Composable, list[Any]]:
    clause = sql.SQL("{col} >= %s AND {col} < %s").format(col=sql.Identifier(column))
    params: list[Any] = [scope.start, scope.end]
    if scope.tenants:
        clause = sql.SQL("{} AND tenant_id = ANY(%s)").format(clause)
        params.append(sorted(scope.tenants))
    return clause, params


def before_costs(
    conn: psycopg.Connection[Any], scope: ReplayScope
) -> tuple[dict[tuple[str, str], CostLine], list[str]]:
    """Stored events of the range per (tenant, model), and the pricing versions they carry."""
    where, params = _where(scope, "occurred_at")
    query = sql.SQL(
        "SELECT tenant_id, " + _MODEL + ", count(*), COALESCE(sum(cost_total), 0), "
        "count(*) FILTER (WHERE cost_total IS NULL), array_agg(DISTINCT pricing_version) "
        "FROM usage_events WHERE {} GROUP BY 1, 2"
    ).format(where)
    lines: dict[tuple[str, str], CostLine] = {}
    versions: set[str] = set()
    for tenant, model, events, cost, unpriced, seen in conn.execute(query, params):
        lines[(tenant, model)] = CostLine(int(events), Decimal(cost), int(unpriced))
        versions.update(seen)
    return lines, sorted(versions)


def stored_rollups(
    conn: psycopg.Connection[Any], scope: ReplayScope
) -> dict[StoredKey, dict[str, Any]]:
    """The stored windows of the range, by primary key."""
    where, params = _where(scope, "window_start")
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cur.execute(sql.SQL("SELECT * FROM usage_rollup_1m WHERE {}").format(where), params)
    return {
        (r["tenant_id"], r["window_start"], r["provider"], r["model"]): r for r in rows.fetchall()
    }


def start_run(
    conn: psycopg.Connection[Any],
    scope: ReplayScope,
    *,
    new_pricing_version: str,
    dry_run: bool,
) -> int:
    """Insert the run's row (status ``running``); return its id."""
    row = conn.execute(
        "INSERT INTO repricing_runs (range_from, range_to, tenants, new_pricing_version, "
        "dry_run, status) VALUES (%s, %s, %s, %s, %s, 'running') RETURNING id",
        (
            scope.start,
            scope.end,
            sorted(scope.tenants) or None,
            new_pricing_version,
            dry_run,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def finish_run(
    conn: psycopg.Connection[Any],
    run_id: int,
    *,
    status: str,
    range_from: datetime | None = None,
    old_pricing_versions: Sequence[str] | None = None,
    cost_before: Decimal | None = None,
    cost_after: Decimal | None = None,
    events_count: int | None = None,
    error: str | None = None,
) -> None:
    """Close the run's row: ``succeeded`` or ``failed`` with what is known."""
    conn.execute(
        "UPDATE repricing_runs SET finished_at = now(), status = %s, "
        "range_from = COALESCE(%s, range_from), "
        "old_pricing_versions = COALESCE(%s, old_pricing_versions), "
        "cost_before = COALESCE(%s, cost_before), cost_after = COALESCE(%s, cost_after), "
        "events_count = COALESCE(%s, events_count), error = %s WHERE id = %s",
        (
            status,
            range_from,
            None if old_pricing_versions is None else list(old_pricing_versions),
            cost_before,
            cost_after,
            events_count,
            error,
            run_id,
        ),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def load_event_keys(
    conn: psycopg.Connection[Any],
    event_ids: bytes,
    occurred_us: Sequence[int],
    fingerprints: Sequence[int],
) -> None:
    """Put the replayed events' keys and pricing fingerprints in ``tl_replay_keys``."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS tl_replay_keys "
        "(event_id uuid, occurred_at timestamptz, fingerprint bigint)"
    )
    conn.execute("TRUNCATE tl_replay_keys")
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY tl_replay_keys (event_id, occurred_at, fingerprint) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["uuid", "timestamptz", "int8"])
        for n, micros in enumerate(occurred_us):
            copy.write_row(
                (
                    uuid.UUID(bytes=bytes(event_ids[16 * n : 16 * n + 16])),
                    _EPOCH + timedelta(microseconds=micros),
                    fingerprints[n],
                )
            )
    conn.execute("ANALYZE tl_replay_keys")


def events_landed(conn: psycopg.Connection[Any]) -> int:
    """Take the events of ``tl_replay_keys`` now stored with their re-priced values; count them.

    An event has landed when its stored pricing values are the replay's (the sink replaced
    them, or they were equal and it left the row alone; see ``replay.landing``). Landed keys
    are deleted, so each poll looks only at what is still missing: sum the counts.
    """
    cur = conn.execute(
        sql.SQL(
            "DELETE FROM tl_replay_keys k USING usage_events u "
            "WHERE u.event_id = k.event_id AND u.occurred_at = k.occurred_at "
            "AND k.fingerprint = {}"
        ).format(sql.SQL(STORED_FINGERPRINT))  # a constant expression, no input in it
    )
    return max(cur.rowcount, 0)
