"""The replay's own small SQL against the sink's tables (it never imports the sink).

The sink owns those tables (its migrations create them); what the replay reads and writes of
them is declared once, :data:`SINK_SCHEMA`, and a contract test holds it to the sink's models
and this module's SQL to it (``tests/unit/processor/test_sink_contract.py``), so a change on
either side fails there instead of in a replay.

Reads what the database holds for the range before anything is sent (costs per tenant and
model, pricing versions, stored windows, the copies of events the sink refused), records the
``repricing_runs`` row, and tells how many re-priced events and windows have landed
(``--wait-landed``). Statements are never server-prepared (``prepare_threshold=None``, see
DESIGN "Traps").

A run's row is leased: :func:`start_run` takes a session advisory lock keyed by the run's id,
which PostgreSQL releases when the replay's connection ends, however it ends (a SIGKILL, a
lost host once the server notices). :func:`close_abandoned`, called when a replay starts,
marks ``failed`` every ``running`` row whose lock nobody holds: its replay is gone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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
    "MODEL_OF_SQL",
    "SINK_SCHEMA",
    "AbandonedRun",
    "before_costs",
    "close_abandoned",
    "connect",
    "events_landed",
    "finish_run",
    "load_event_keys",
    "refused_copies",
    "start_run",
    "stored_rollups",
]

#: The sink's relations and the columns of each that this module names in its SQL.
SINK_SCHEMA: dict[str, tuple[str, ...]] = {
    "usage_events": (
        "event_id",
        "occurred_at",
        "tenant_id",
        "canonical_model",
        "response_model",
        "request_model",
        "deployment",
        "cost_total",
        "pricing_version",
    ),
    "usage_rollup_1m": ("tenant_id", "window_start", "provider", "model"),
    "usage_event_duplicates": ("event_id", "occurred_at", "tenant_id"),
    "repricing_runs": (
        "id",
        "range_from",
        "range_to",
        "tenants",
        "new_pricing_version",
        "old_pricing_versions",
        "dry_run",
        "status",
        "started_at",
        "finished_at",
        "cost_before",
        "cost_after",
        "events_count",
        "error",
    ),
}

#: ``windows.model_of`` in SQL: the first non-empty of the event's model names (a test,
#: ``tests/integration/processor/test_replay_model_sql.py``, evaluates both on the same rows).
MODEL_OF_SQL = (
    "COALESCE(NULLIF(canonical_model, ''), NULLIF(response_model, ''), "
    "NULLIF(request_model, ''), NULLIF(deployment, ''), 'unknown')"
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


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
        "SELECT tenant_id, " + MODEL_OF_SQL + ", count(*), COALESCE(sum(cost_total), 0), "
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


#: Advisory lock keys of run leases: this base plus the run's id ("tlrp" in the high half).
_LEASE_BASE = 0x746C7270 << 32


def start_run(
    conn: psycopg.Connection[Any],
    scope: ReplayScope,
    *,
    new_pricing_version: str,
    dry_run: bool,
) -> int:
    """Insert the run's row (status ``running``) and hold its lease; return its id.

    The lease is taken in the transaction that inserts the row, so no other replay ever sees
    the row ``running`` without its lease held.
    """
    with conn.transaction():
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
        run_id = int(row[0])
        conn.execute("SELECT pg_advisory_lock(%s)", (_LEASE_BASE + run_id,))
    return run_id


@dataclass(frozen=True)
class AbandonedRun:
    """A run left ``running`` by a replay that stopped without closing it, now ``failed``."""

    run_id: int
    started_at: datetime
    range_from: datetime
    range_to: datetime


def close_abandoned(conn: psycopg.Connection[Any]) -> list[AbandonedRun]:
    """Mark ``failed`` every ``running`` run whose lease nobody holds; return them."""
    running = conn.execute(
        "SELECT id, started_at, range_from, range_to FROM repricing_runs "
        "WHERE status = 'running' ORDER BY id"
    ).fetchall()
    closed: list[AbandonedRun] = []
    for run_id, started_at, range_from, range_to in running:
        key = _LEASE_BASE + int(run_id)
        taken = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not (taken and taken[0]):
            continue  # its replay is still running
        try:
            done = conn.execute(
                "UPDATE repricing_runs SET status = 'failed', finished_at = now(), "
                "error = 'abandoned: the replay running it stopped without closing it "
                "(found by a later replay)' WHERE id = %s AND status = 'running'",
                (run_id,),
            )
            if done.rowcount:
                closed.append(AbandonedRun(int(run_id), started_at, range_from, range_to))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    return closed


def refused_copies(conn: psycopg.Connection[Any], scope: ReplayScope) -> frozenset[tuple[int, int]]:
    """The copies of events the sink refused (another copy is stored), in the range.

    As ``(event_id as int, occurred_at in microseconds since the epoch)``: a replay skips them,
    re-pricing the stored copy only (the sink's "first stored copy wins").
    """
    found = conn.execute("SELECT to_regclass('usage_event_duplicates') IS NOT NULL").fetchone()
    if not (found and found[0]):
        return frozenset()  # a schema before revision 0004: nothing was ever refused
    where, params = _where(scope, "occurred_at")
    rows = conn.execute(
        sql.SQL("SELECT event_id, occurred_at FROM usage_event_duplicates WHERE {}").format(where),
        params,
    ).fetchall()
    return frozenset((event_id.int, (at - _EPOCH) // _MICRO) for event_id, at in rows)


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
