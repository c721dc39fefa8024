"""Where the sink's rows go: the :class:`UsageStore` interface and its PostgreSQL implementation.

:class:`PostgresUsageStore` writes with psycopg 3 and binary COPY (no ORM on the hot path):

- **Fresh events** (the common case) are copied straight into ``usage_events`` inside a
  savepoint: they pay nothing for conflict handling but a two-key probe per batch.
- A batch whose first or last event is stored already (a replay, a crash's redelivery, a
  re-pricing pass), or whose COPY hits a unique violation, takes the **re-pricing path**: the
  key and pricing columns are binary-copied into a narrow temporary table, one ``UPDATE ...
  FROM`` replaces the cost and pricing columns only when the pricing *differs* (a cost, the
  status, the reason, the model, the price entry or the currency) *and* the incoming
  ``priced_at`` is later, and the events not stored yet are then copied in. A re-pricing
  whose result for an event is what is stored leaves that row as it is, its
  ``pricing_version`` and ``priced_at`` included: a replay after a change of one tenant's
  terms touches that tenant's rows only. The same batch twice changes nothing; an older
  pricing never overwrites a newer one.
- When even that fails (a refused row, or another worker inserting the same event at the same
  moment), the **staging upsert** takes over: binary COPY of whole rows into a temporary
  table, the same ``UPDATE`` for stored events, then ``INSERT ... SELECT ... ON CONFLICT
  (event_id, occurred_at) DO NOTHING`` for the others.
- **Rollups** (``usage_rollup_1m``) are added to in the same transaction: every path above
  returns which events it inserted and which it re-priced (their old and new rows, from
  ``RETURNING``), and :mod:`tokenline.sink.rollups` turns that into per-window deltas, added
  with one ``INSERT ... ON CONFLICT DO UPDATE SET requests = requests + EXCLUDED.requests``
  and so on. An event stored already with the same pricing adds nothing, so a redelivered
  batch, a duplicate event or a crash before the commit never counts twice; a window is
  never replaced, so a late event adds to it whenever it comes.
- A row PostgreSQL refuses (a check constraint, a value out of range) is found by bisecting
  the batch inside the same transaction with savepoints; it is returned as :class:`Rejected`
  and everything else lands.

Cross-cutting behaviour wraps the interface: :class:`RetryingStore` here, the metrics in
:mod:`tokenline.sink.metrics`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from tokenline.schemas.rollup import ROLLUP_SUMS
from tokenline.sink.batch import (
    EVENT_COLUMNS,
    EVENT_KEY,
    ROLLUP_COLUMNS,
    ROLLUP_KEY,
    backoff_ms,
    dedupe_events,
    split,
)
from tokenline.sink.errors import DatabaseUnavailable
from tokenline.sink.rollups import SOURCE_COLUMNS, WINDOW_SECONDS, Delta, RollupKey, deltas

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["PostgresUsageStore", "Rejected", "RetryingStore", "Row", "UsageStore"]

log = logging.getLogger(__name__)

Row = dict[str, Any]
"""A flattened row: column name to value."""

#: Columns a newer pricing of the same event replaces.
PRICING_COLUMNS = (
    "canonical_model",
    "pricing_status",
    "unpriced_reason",
    "cost_input",
    "cost_cache_read",
    "cost_cache_write",
    "cost_output",
    "cost_reasoning",
    "cost_total",
    "currency",
    "price_entry_id",
    "pricing_version",
    "priced_at",
)
#: The pricing columns that say what an event costs; a new pricing replaces a stored one only
#: when one of them differs (a new ``pricing_version`` with the same result changes nothing).
PRICED_VALUE_COLUMNS = tuple(
    c for c in PRICING_COLUMNS if c not in ("pricing_version", "priced_at")
)


@dataclass(frozen=True)
class Rejected:
    """A row PostgreSQL refused: which table, the row itself, and why (SQLSTATE and message)."""

    table: str
    row: Row
    reason: str


class UsageStore(Protocol):
    """Lands flattened priced events and rollups; one call is one transaction."""

    def write(self, priced_rows: Sequence[Row]) -> list[Rejected]:
        """Land the events, and what they add to the rollups, in one transaction.

        Return the rows the database refused.

        Raises :class:`~tokenline.sink.errors.DatabaseUnavailable` when nothing could be
        written (the call may then be repeated: writes are idempotent).
        """
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@dataclass
class _Landed:
    """What landing a batch did: events inserted, events re-priced (old, new), rows refused."""

    inserted: list[Row] = field(default_factory=list)
    repriced: list[tuple[Row, Row]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def __add__(self, other: _Landed) -> _Landed:
        return _Landed(
            [*self.inserted, *other.inserted],
            [*self.repriced, *other.repriced],
            [*self.rejected, *other.rejected],
        )


@dataclass(frozen=True)
class _Target:
    table: str
    staging: str
    columns: tuple[str, ...]
    upsert: sql.Composed


def _differs(stored: str, incoming: str) -> sql.Composed:
    """``(stored.<value columns>) IS DISTINCT FROM (incoming.<value columns>)``."""

    def row(alias: str) -> sql.Composed:
        return sql.SQL("({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}.{}").format(sql.SQL(alias), sql.Identifier(c))
                for c in PRICED_VALUE_COLUMNS
            )
        )

    return sql.SQL("{} IS DISTINCT FROM {}").format(row(stored), row(incoming))


_EVENTS = _Target(
    "usage_events",
    "tl_staging_usage_events",
    EVENT_COLUMNS,
    sql.SQL(
        "INSERT INTO usage_events ({cols}) SELECT {cols} FROM tl_staging_usage_events "
        "ON CONFLICT (event_id, occurred_at) DO NOTHING RETURNING {returned}"
    ).format(
        cols=sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS)),
        returned=sql.SQL(", ").join(map(sql.Identifier, SOURCE_COLUMNS)),
    ),
)
_ROLLUP_STAGING = "tl_staging_usage_rollup_1m"

#: The narrow staging table of the re-pricing path: batch position, key, pricing columns.
_PRICING = "tl_staging_pricing"
_PRICING_COLUMNS = ("n", *EVENT_KEY, *PRICING_COLUMNS)
_CREATE_PRICING = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS {staging} AS SELECT 0::int AS n, {cols} FROM usage_events "
    "WITH NO DATA"
).format(
    staging=sql.Identifier(_PRICING),
    cols=sql.SQL(", ").join(map(sql.Identifier, (*EVENT_KEY, *PRICING_COLUMNS))),
)
# The same rule as the ON CONFLICT upsert, as an UPDATE. The planner has no statistics on the
# temporary table: joins are limited to nested loops (over the primary key), so a batch never
# scans usage_events whatever the estimate; JIT is off (it costs more than the statement).
_NESTED_LOOP_ONLY = ("enable_hashjoin", "enable_mergejoin", "jit")


# The stored rows of the batch are locked first: the UPDATE's own snapshot then sees their
# latest version both as the row it changes (``u``) and as the old value it returns (``o``),
# so the returned (old, new) pairs are exactly what the statement changed.
def _lock(staging: str) -> sql.Composed:
    return sql.SQL(
        "SELECT count(*) FROM (SELECT 1 FROM usage_events AS u JOIN {staging} AS s "
        "ON u.event_id = s.event_id AND u.occurred_at = s.occurred_at "
        "ORDER BY u.event_id FOR UPDATE OF u) AS locked"
    ).format(staging=sql.Identifier(staging))


def _reprice_sql(staging: str) -> sql.Composed:
    def returned(alias: str) -> sql.Composed:
        return sql.SQL(", ").join(
            sql.SQL("{}.{}").format(sql.SQL(alias), sql.Identifier(c)) for c in SOURCE_COLUMNS
        )

    return sql.SQL(
        "UPDATE usage_events AS u SET {sets} FROM {staging} AS s, usage_events AS o "
        "WHERE u.event_id = s.event_id AND u.occurred_at = s.occurred_at "
        "AND o.event_id = u.event_id AND o.occurred_at = u.occurred_at "
        "AND {differs} AND s.priced_at > u.priced_at RETURNING {old}, {new}"
    ).format(
        sets=sql.SQL(", ").join(
            sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in PRICING_COLUMNS
        ),
        staging=sql.Identifier(staging),
        differs=_differs("u", "s"),
        old=returned("o"),
        new=returned("u"),
    )


#: The additive measures of a rollup row (``latency_ms_max`` is kept with greatest()).
_DELTA_SUMS = ROLLUP_SUMS

_ADD_ROLLUPS = sql.SQL(
    "INSERT INTO usage_rollup_1m ({cols}) SELECT {cols} FROM {staging} ORDER BY {key} "
    "ON CONFLICT ({key}) DO UPDATE SET {sums}, "
    "latency_ms_max = greatest(usage_rollup_1m.latency_ms_max, EXCLUDED.latency_ms_max), "
    "currency = CASE WHEN EXCLUDED.requests > 0 THEN EXCLUDED.currency "
    "ELSE usage_rollup_1m.currency END, updated_at = EXCLUDED.updated_at"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, ROLLUP_COLUMNS)),
    staging=sql.Identifier(_ROLLUP_STAGING),
    key=sql.SQL(", ").join(map(sql.Identifier, ROLLUP_KEY)),
    sums=sql.SQL(", ").join(
        sql.SQL("{0} = usage_rollup_1m.{0} + EXCLUDED.{0}").format(sql.Identifier(c))
        for c in _DELTA_SUMS
    ),
)
_SAME_ROLLUP = (
    "r.tenant_id = s.tenant_id AND r.window_start = s.window_start "
    "AND r.provider = s.provider AND r.model = s.model"
)
# A window that lost events (a re-pricing moved them to another model): its maximum latency is
# recomputed from the events it still has, and a window left with none is removed.
_REMAX_ROLLUPS = sql.SQL(
    "UPDATE usage_rollup_1m AS r SET latency_ms_max = coalesce((SELECT max(e.latency_ms) "
    "FROM usage_events AS e WHERE e.tenant_id = r.tenant_id AND e.provider = r.provider "
    "AND e.occurred_at >= r.window_start "
    "AND e.occurred_at < r.window_start + make_interval(secs => r.window_seconds) "
    "AND coalesce(nullif(e.canonical_model, ''), nullif(e.response_model, ''), "
    "nullif(e.request_model, ''), nullif(e.deployment, ''), 'unknown') = r.model), 0) "
    "FROM {staging} AS s WHERE {same} AND s.requests < 0"
).format(staging=sql.Identifier(_ROLLUP_STAGING), same=sql.SQL(_SAME_ROLLUP))
_DROP_EMPTY_ROLLUPS = sql.SQL(
    "DELETE FROM usage_rollup_1m AS r USING {staging} AS s "
    "WHERE {same} AND s.requests < 0 AND r.requests = 0"
).format(staging=sql.Identifier(_ROLLUP_STAGING), same=sql.SQL(_SAME_ROLLUP))
_PROBE = (
    "SELECT EXISTS (SELECT 1 FROM usage_events "
    "WHERE (event_id, occurred_at) IN ((%s, %s), (%s, %s)))"
)
_MISSING = sql.SQL(
    "SELECT s.n FROM {staging} AS s WHERE NOT EXISTS (SELECT 1 FROM usage_events AS u "
    "WHERE u.event_id = s.event_id AND u.occurred_at = s.occurred_at)"
).format(staging=sql.Identifier(_PRICING))

#: SQLSTATE classes 22 (data exception) and 23 (integrity violation): the row is at fault.
_ROW_ERRORS = (pg_errors.DataError, pg_errors.IntegrityError)


class PostgresUsageStore:
    """A :class:`UsageStore` on one psycopg 3 connection, (re)opened lazily."""

    def __init__(
        self,
        database_url: str,
        *,
        connect_timeout_s: int = 5,
    ) -> None:
        self._url = database_url
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self._types: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ connection
    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            # prepare_threshold=None: never server-prepare (see DESIGN "Traps"); the hot path
            # is COPY, and the upserts are planned once per batch.
            conn = psycopg.connect(
                self._url,
                prepare_threshold=None,
                connect_timeout=self._connect_timeout_s,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                application_name="tokenline-sink",
                options="-c jit=off",
            )
            try:
                with conn.transaction():
                    for staging, table, columns in (
                        (_EVENTS.staging, _EVENTS.table, EVENT_COLUMNS),
                        (_ROLLUP_STAGING, "usage_rollup_1m", ROLLUP_COLUMNS),
                    ):
                        conn.execute(
                            sql.SQL(
                                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)"
                            ).format(sql.Identifier(staging), sql.Identifier(table))
                        )
                        self._types[table] = self._column_types(conn, table, columns)
                    conn.execute(_CREATE_PRICING)
                    events = dict(zip(EVENT_COLUMNS, self._types[_EVENTS.table], strict=True))
                    self._types[_PRICING] = ["int4", *(events[c] for c in _PRICING_COLUMNS[1:])]
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @staticmethod
    def _column_types(
        conn: psycopg.Connection[Any], table: str, columns: Sequence[str]
    ) -> list[str]:
        found = dict(
            conn.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (table,),
            ).fetchall()
        )
        return [str(found[c]) for c in columns]

    def close(self) -> None:
        """Close the connection (a later write opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ writing
    def write(self, priced_rows: Sequence[Row]) -> list[Rejected]:
        """Land the events and what they add to the rollups in one transaction.

        Returns the rows PostgreSQL refused.
        """
        events = dedupe_events(priced_rows)
        try:
            conn = self._connection()
            with conn.transaction():
                landed = self._land_events(conn, events)
                self._add_rollups(conn, deltas(landed.inserted, landed.repriced))
        except psycopg.Error as exc:
            # Anything but a row's fault (those are handled below the transaction): the
            # server is gone, restarting, or misconfigured. Nothing was committed; retry.
            self.close()
            msg = f"cannot write to PostgreSQL: {type(exc).__name__}: {exc}".strip()
            raise DatabaseUnavailable(msg) from exc
        return landed.rejected

    def _land_events(self, conn: psycopg.Connection[Any], rows: list[Row]) -> _Landed:
        if not rows:
            return _Landed()
        if not self._known(conn, rows):
            try:
                with conn.transaction():
                    self._copy(
                        conn, EVENT_COLUMNS, self._types[_EVENTS.table], "usage_events", rows
                    )
            except pg_errors.UniqueViolation:
                pass  # some events are there already: the re-pricing path below
            except _ROW_ERRORS:
                return self._upsert_or_bisect(conn, rows)  # finds the refused rows
            else:
                return _Landed(inserted=rows)
        try:
            with conn.transaction():
                landed = self._reprice(conn, rows)
        except _ROW_ERRORS:
            # A refused row, or an event inserted meanwhile by another worker (unique
            # violation): the full staging upsert copes with both.
            return self._upsert_or_bisect(conn, rows)
        return landed

    @staticmethod
    def _known(conn: psycopg.Connection[Any], rows: list[Row]) -> bool:
        """Tell whether the first or last event of the batch is stored already.

        Two index lookups that send a replayed batch or a re-pricing pass (every row
        conflicts) straight to :meth:`_reprice`, instead of a COPY that would fail.
        """
        first, last = rows[0], rows[-1]
        found = conn.execute(
            _PROBE, (first["event_id"], first["occurred_at"], last["event_id"], last["occurred_at"])
        ).fetchone()
        return bool(found and found[0])

    @staticmethod
    def _update_stored(conn: psycopg.Connection[Any], staging: str) -> _Landed:
        """Re-price the stored events of ``staging``; return the (old, new) rows it changed."""
        conn.execute(_lock(staging))
        width = len(SOURCE_COLUMNS)
        pairs = [
            (
                dict(zip(SOURCE_COLUMNS, r[:width], strict=True)),
                dict(zip(SOURCE_COLUMNS, r[width:], strict=True)),
            )
            for r in conn.execute(_reprice_sql(staging)).fetchall()
        ]
        return _Landed(repriced=pairs)

    def _reprice(self, conn: psycopg.Connection[Any], rows: list[Row]) -> _Landed:
        """Update the events that exist, then copy in the ones that do not.

        Cheaper than the full staging upsert when most rows conflict (a re-pricing pass): only
        the key and pricing columns of stored events are sent, and no tuple is speculatively
        inserted. Rows the UPDATE's rule leaves alone (the same or an older pricing) stay
        untouched.
        """
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(_PRICING)))
        narrow = [
            {"n": n, **{c: row[c] for c in _PRICING_COLUMNS[1:]}} for n, row in enumerate(rows)
        ]
        self._copy(conn, _PRICING_COLUMNS, self._types[_PRICING], _PRICING, narrow)
        for setting in _NESTED_LOOP_ONLY:
            conn.execute(sql.SQL("SET LOCAL {} = off").format(sql.Identifier(setting)))
        landed = self._update_stored(conn, _PRICING)
        missing = [rows[n] for (n,) in conn.execute(_MISSING)]
        for setting in _NESTED_LOOP_ONLY:
            conn.execute(sql.SQL("RESET {}").format(sql.Identifier(setting)))
        if missing:
            self._copy(conn, EVENT_COLUMNS, self._types[_EVENTS.table], "usage_events", missing)
        return landed + _Landed(inserted=missing)

    def _upsert_or_bisect(self, conn: psycopg.Connection[Any], rows: Sequence[Row]) -> _Landed:
        """Land ``rows`` through the full staging table; bisect to find the refused ones.

        Stored events are re-priced, the others inserted (``ON CONFLICT DO NOTHING``, so one
        inserted meanwhile by another worker is skipped, then re-priced by the second UPDATE).
        """
        try:
            with conn.transaction():
                staging = _EVENTS.staging
                conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(staging)))
                self._copy(conn, EVENT_COLUMNS, self._types[_EVENTS.table], staging, rows)
                for setting in _NESTED_LOOP_ONLY:
                    conn.execute(sql.SQL("SET LOCAL {} = off").format(sql.Identifier(setting)))
                landed = self._update_stored(conn, staging)
                inserted = [
                    dict(zip(SOURCE_COLUMNS, r, strict=True))
                    for r in conn.execute(_EVENTS.upsert).fetchall()
                ]
                landed += _Landed(inserted=inserted)
                if len(inserted) < len(rows):
                    landed += self._update_stored(conn, staging)
                for setting in _NESTED_LOOP_ONLY:
                    conn.execute(sql.SQL("RESET {}").format(sql.Identifier(setting)))
        except _ROW_ERRORS as exc:
            if len(rows) == 1:
                reason = f"{exc.sqlstate}: {str(exc).strip()}"
                return _Landed(rejected=[Rejected(_EVENTS.table, rows[0], reason)])
            first, second = split(rows)
            return self._upsert_or_bisect(conn, first) + self._upsert_or_bisect(conn, second)
        return landed

    def _add_rollups(self, conn: psycopg.Connection[Any], found: dict[RollupKey, Delta]) -> None:
        """Add the deltas to ``usage_rollup_1m`` (in key order, so concurrent writers queue)."""
        if not found:
            return
        now = datetime.now(UTC)
        rows = [
            {
                "tenant_id": tenant_id,
                "window_start": start,
                "provider": provider,
                "model": model,
                "window_seconds": WINDOW_SECONDS,
                **{c: getattr(delta, c) for c in _DELTA_SUMS},
                "latency_ms_max": delta.latency_ms_max,
                "currency": delta.currency,
                "source_partition": -1,
                "max_source_offset": -1,
                "updated_at": now,
            }
            for (tenant_id, start, provider, model), delta in sorted(found.items())
        ]
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(_ROLLUP_STAGING)))
        self._copy(conn, ROLLUP_COLUMNS, self._types["usage_rollup_1m"], _ROLLUP_STAGING, rows)
        conn.execute(_ADD_ROLLUPS)
        if any(delta.requests < 0 for delta in found.values()):
            conn.execute(_REMAX_ROLLUPS)
            conn.execute(_DROP_EMPTY_ROLLUPS)

    @staticmethod
    def _copy(
        conn: psycopg.Connection[Any],
        columns: Sequence[str],
        types: Sequence[str],
        into: str,
        rows: Sequence[Row],
    ) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(into), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        values = itemgetter(*columns)
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(values(row))


class RetryingStore:
    """Wraps a store: repeats a write that found the database unavailable until it lands.

    Waits grow exponentially from ``initial_ms`` up to ``max_ms``. ``wait(seconds)`` does the
    waiting (the worker pauses its partitions and keeps polling Kafka there); it may raise to
    give up, e.g. on shutdown. ``on_retry(attempt, error)`` is told about every retry.
    """

    def __init__(
        self,
        inner: UsageStore,
        *,
        initial_ms: int,
        max_ms: int,
        wait: Callable[[float], None] = time.sleep,
        on_retry: Callable[[int, DatabaseUnavailable], None] | None = None,
    ) -> None:
        self._inner = inner
        self._initial_ms = initial_ms
        self._max_ms = max_ms
        self._wait = wait
        self._on_retry = on_retry

    def write(self, priced_rows: Sequence[Row]) -> list[Rejected]:
        """Write through the inner store, retrying while the database is unavailable."""
        attempt = 0
        while True:
            try:
                return self._inner.write(priced_rows)
            except DatabaseUnavailable as exc:
                attempt += 1
                delay_ms = backoff_ms(attempt, self._initial_ms, self._max_ms)
                log.warning("database unavailable (retry %d in %d ms): %s", attempt, delay_ms, exc)
                if self._on_retry is not None:
                    self._on_retry(attempt, exc)
                self._wait(delay_ms / 1000)

    def close(self) -> None:
        """Close the inner store."""
        self._inner.close()
