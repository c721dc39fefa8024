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
  table and one ``INSERT ... SELECT ... ON CONFLICT (event_id, occurred_at) DO UPDATE`` with
  the same rule.
- **Rollups** always go through their staging table and replace a window only when the
  incoming value is newer (``max_source_offset`` greater, or ``updated_at`` later).
- A row PostgreSQL refuses (a check constraint, a value out of range) is found by bisecting
  the batch inside the same transaction with savepoints; it is returned as :class:`Rejected`
  and everything else lands.

Cross-cutting behaviour wraps the interface: :class:`RetryingStore` here, the metrics in
:mod:`tokenline.sink.metrics`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from tokenline.sink.batch import (
    EVENT_COLUMNS,
    EVENT_KEY,
    ROLLUP_COLUMNS,
    ROLLUP_KEY,
    backoff_ms,
    dedupe_events,
    dedupe_rollups,
    split,
)
from tokenline.sink.errors import DatabaseUnavailable

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

    def write(self, priced_rows: Sequence[Row], rollup_rows: Sequence[Row]) -> list[Rejected]:
        """Land the rows in one transaction; return the rows the database refused.

        Raises :class:`~tokenline.sink.errors.DatabaseUnavailable` when nothing could be
        written (the call may then be repeated: writes are idempotent).
        """
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


@dataclass(frozen=True)
class _Target:
    table: str
    staging: str
    columns: tuple[str, ...]
    upsert: sql.Composed


def _upsert_sql(
    table: str, staging: str, columns: Sequence[str], key: Sequence[str], replace: Sequence[str]
) -> sql.Composed:
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    sets = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in replace
    )
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} "
        "ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE "
    ).format(
        table=sql.Identifier(table),
        cols=cols,
        staging=sql.Identifier(staging),
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        sets=sets,
    )


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
    _upsert_sql(
        "usage_events", "tl_staging_usage_events", EVENT_COLUMNS, EVENT_KEY, PRICING_COLUMNS
    )
    + sql.SQL("{} AND EXCLUDED.priced_at > usage_events.priced_at").format(
        _differs("usage_events", "EXCLUDED")
    ),
)
_ROLLUPS = _Target(
    "usage_rollup_1m",
    "tl_staging_usage_rollup_1m",
    ROLLUP_COLUMNS,
    _upsert_sql(
        "usage_rollup_1m",
        "tl_staging_usage_rollup_1m",
        ROLLUP_COLUMNS,
        ROLLUP_KEY,
        [c for c in ROLLUP_COLUMNS if c not in ROLLUP_KEY],
    )
    + sql.SQL(
        "EXCLUDED.max_source_offset > usage_rollup_1m.max_source_offset "
        "OR EXCLUDED.updated_at > usage_rollup_1m.updated_at"
    ),
)

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
_REPRICE = sql.SQL(
    "UPDATE usage_events AS u SET {sets} FROM {staging} AS s "
    "WHERE u.event_id = s.event_id AND u.occurred_at = s.occurred_at "
    "AND {differs} AND s.priced_at > u.priced_at"
).format(
    sets=sql.SQL(", ").join(
        sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in PRICING_COLUMNS
    ),
    staging=sql.Identifier(_PRICING),
    differs=_differs("u", "s"),
)
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
                    for target in (_EVENTS, _ROLLUPS):
                        conn.execute(
                            sql.SQL(
                                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS)"
                            ).format(sql.Identifier(target.staging), sql.Identifier(target.table))
                        )
                        self._types[target.table] = self._column_types(conn, target)
                    conn.execute(_CREATE_PRICING)
                    events = dict(zip(EVENT_COLUMNS, self._types[_EVENTS.table], strict=True))
                    self._types[_PRICING] = ["int4", *(events[c] for c in _PRICING_COLUMNS[1:])]
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @staticmethod
    def _column_types(conn: psycopg.Connection[Any], target: _Target) -> list[str]:
        found = dict(
            conn.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a "
                "JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                (target.table,),
            ).fetchall()
        )
        return [str(found[c]) for c in target.columns]

    def close(self) -> None:
        """Close the connection (a later write opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ writing
    def write(self, priced_rows: Sequence[Row], rollup_rows: Sequence[Row]) -> list[Rejected]:
        """Land both kinds of rows in one transaction; return the rows PostgreSQL refused."""
        events = dedupe_events(priced_rows)
        rollups = dedupe_rollups(rollup_rows)
        try:
            conn = self._connection()
            with conn.transaction():
                rejected = self._land_events(conn, events)
                if rollups:
                    rejected += self._upsert_or_bisect(conn, _ROLLUPS, rollups)
        except psycopg.Error as exc:
            # Anything but a row's fault (those are handled below the transaction): the
            # server is gone, restarting, or misconfigured. Nothing was committed; retry.
            self.close()
            msg = f"cannot write to PostgreSQL: {type(exc).__name__}: {exc}".strip()
            raise DatabaseUnavailable(msg) from exc
        return rejected

    def _land_events(self, conn: psycopg.Connection[Any], rows: list[Row]) -> list[Rejected]:
        if not rows:
            return []
        if not self._known(conn, rows):
            try:
                with conn.transaction():
                    self._copy(
                        conn, EVENT_COLUMNS, self._types[_EVENTS.table], "usage_events", rows
                    )
            except pg_errors.UniqueViolation:
                pass  # some events are there already: the re-pricing path below
            except _ROW_ERRORS:
                return self._upsert_or_bisect(conn, _EVENTS, rows)  # finds the refused rows
            else:
                return []
        try:
            with conn.transaction():
                self._reprice(conn, rows)
        except _ROW_ERRORS:
            # A refused row, or an event inserted meanwhile by another worker (unique
            # violation): the full staging upsert copes with both.
            return self._upsert_or_bisect(conn, _EVENTS, rows)
        return []

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

    def _reprice(self, conn: psycopg.Connection[Any], rows: list[Row]) -> None:
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
        conn.execute(_REPRICE)
        missing = [rows[n] for (n,) in conn.execute(_MISSING)]
        for setting in _NESTED_LOOP_ONLY:
            conn.execute(sql.SQL("RESET {}").format(sql.Identifier(setting)))
        if missing:
            self._copy(conn, EVENT_COLUMNS, self._types[_EVENTS.table], "usage_events", missing)

    def _upsert_or_bisect(
        self, conn: psycopg.Connection[Any], target: _Target, rows: Sequence[Row]
    ) -> list[Rejected]:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(target.staging)))
                self._copy(conn, target.columns, self._types[target.table], target.staging, rows)
                conn.execute(target.upsert)
        except _ROW_ERRORS as exc:
            if len(rows) == 1:
                reason = f"{exc.sqlstate}: {str(exc).strip()}"
                return [Rejected(target.table, rows[0], reason)]
            first, second = split(rows)
            return self._upsert_or_bisect(conn, target, first) + self._upsert_or_bisect(
                conn, target, second
            )
        return []

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

    def write(self, priced_rows: Sequence[Row], rollup_rows: Sequence[Row]) -> list[Rejected]:
        """Write through the inner store, retrying while the database is unavailable."""
        attempt = 0
        while True:
            try:
                return self._inner.write(priced_rows, rollup_rows)
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
