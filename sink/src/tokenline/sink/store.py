"""Where the sink's rows go: the :class:`UsageStore` interface and its PostgreSQL implementation.

:class:`PostgresUsageStore` writes with psycopg 3 and binary COPY (no ORM on the hot path):

- **Fresh events** (the common case) are copied straight into ``usage_events``, and their
  ``event_id`` into ``usage_event_ids``, inside a savepoint: they pay nothing for conflict
  handling but a two-key probe per batch.
- A batch whose first or last event is stored already (a replay, a crash's redelivery, a
  re-pricing pass), or whose COPY hits a unique violation, takes the **re-pricing path**: the
  key and pricing columns are binary-copied into a narrow temporary table and one statement
  replaces the cost and pricing columns of the stored events only when the pricing *differs*
  (a cost, the status, the reason, the model, the price entry or the currency) *and* the
  incoming ``priced_at`` is later. On plain PostgreSQL it finds each stored row once and
  updates it by its ctid, without a lock, while it is still the version it read; a row
  another worker re-priced meanwhile is left to a second statement that locks the rows first
  (TimescaleDB's only one). Only when some events are not stored are their ids claimed in
  ``usage_event_ids`` and those events copied in. A re-pricing whose result for an event is
  what is stored leaves that row as it is, its ``pricing_version`` and ``priced_at`` included.
  The same batch twice changes nothing; an older pricing never overwrites a newer one.
- When even that fails (another worker inserting the same event at the same moment), the
  **staging upsert** takes over: binary COPY of whole rows into a temporary table, the same
  claim and ``UPDATE``, then ``INSERT ... SELECT ... ON CONFLICT (event_id, occurred_at) DO
  NOTHING`` for the others.
- **One identity per event**: an ``event_id`` is stored once, whatever its ``occurred_at``.
  The first copy stored wins; a later copy with another ``occurred_at`` is taken out of the
  batch, recorded in ``usage_event_duplicates`` and returned as :class:`Rejected`
  (``duplicate_event_id``). Copies within one batch are landed in turns (the first copy of
  each id first), so the same rule holds between them.
- **Rollups** (``usage_rollup_1m``) are added to in the same transaction: every path above
  returns which events it inserted, and :mod:`tokenline.sink.rollups` turns them into
  per-window deltas in a staging table; the ``UPDATE`` that re-prices events stages their
  changes there itself, in SQL (:mod:`tokenline.sink.repricing_sql`: the old row taken away,
  the new one added, no row sent back to the client). The staged deltas are added with one
  ``INSERT ... ON CONFLICT DO UPDATE SET requests = requests + EXCLUDED.requests`` and so on.
  An event stored already with the same pricing adds nothing, so a redelivered batch, a
  duplicate event or a crash before the commit never counts twice; a window is never
  replaced, so a late event adds to it whenever it comes.
- **Tenant-local days** (``usage_tenant_daily``) are added to the same way, in the same
  transaction: :mod:`tokenline.sink.tenant_daily` sums the changes per UTC quarter-hour and one
  ``INSERT ... SELECT`` joined with ``tenants`` adds them to each tenant's local day.
- **Errors** are sorted by :mod:`tokenline.sink.faults`: one about a row (a check, a value out
  of range, an index row too large, a value the client cannot convert) or of an unknown kind
  is isolated by bisecting the batch inside the transaction with savepoints (events and their
  rollup deltas together, so a rollup sum that overflows finds its event too); the row is
  returned as :class:`Rejected` and everything else lands. Transient errors (the connection,
  resources, a shutdown, a missing table) raise
  :class:`~tokenline.sink.errors.DatabaseUnavailable`, and the write is retried. ``integer``
  columns are range-checked before the COPY: binary COPY would silently wrap them.

Cross-cutting behaviour wraps the interface: :class:`RetryingStore` here, the metrics in
:mod:`tokenline.sink.metrics`. The statements are in :mod:`tokenline.sink.store_sql`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from tokenline.sink import native_sums, tenant_daily
from tokenline.sink import store_sql as q
from tokenline.sink.batch import (
    EVENT_COLUMNS,
    ROLLUP_COLUMNS,
    backoff_ms,
    dedupe_events,
    first_copies,
    split,
)
from tokenline.sink.errors import DatabaseUnavailable
from tokenline.sink.faults import Fault, classify, describe, reason_code
from tokenline.sink.native_rows import (
    COPY_ROW,
    EVENT_TYPES,
    GUARD_ROW,
    PRICING_ROW,
    PRICING_ROW_COLUMNS,
    complete,
    priced,
)
from tokenline.sink.repricing_sql import reprice_seen_staged, reprice_staged
from tokenline.sink.rollups import WINDOW_SECONDS, Delta, RollupKey, deltas
from tokenline.sink.store_sql import PRICED_VALUE_COLUMNS, PRICING_COLUMNS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

_T = TypeVar("_T")

__all__ = [
    "PRICED_VALUE_COLUMNS",
    "PRICING_COLUMNS",
    "PostgresUsageStore",
    "Rejected",
    "RetryingStore",
    "Row",
    "UsageStore",
]

log = logging.getLogger(__name__)

Row = dict[str, Any]
"""A flattened row: column name to value."""

_INT4 = (-(2**31), 2**31 - 1)
#: PostgreSQL's binary COPY header (signature, flags, no extension) and trailer.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
#: The key of a native row's COPY row, by the columns it holds (those very tuples).
_MADE = {id(EVENT_COLUMNS): COPY_ROW, id(q.GUARD_COLUMNS): GUARD_ROW}


@dataclass(frozen=True)
class Rejected:
    """A row the database refused: which table, the row itself, and why.

    ``reason`` starts with the SQLSTATE or the exception type; ``reason_code`` is the dead
    letter's: ``rejected_by_database``, ``unstorable_value`` (the client could not convert a
    value), ``duplicate_event_id`` or ``write_error`` (an error of no known kind).
    """

    table: str
    row: Row
    reason: str
    reason_code: str = "rejected_by_database"


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
    """What landing a batch did: events inserted, rows refused, and what re-pricing staged.

    Re-priced events leave their aggregate changes in the staging tables
    (:mod:`tokenline.sink.repricing_sql`): ``staged`` says some did, ``rollup_lost`` and
    ``daily_lost`` that a rollup or daily key lost events.
    """

    inserted: list[Row] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    staged: bool = False
    rollup_lost: bool = False
    daily_lost: bool = False
    #: What ``inserted`` adds to the rollups and to ``usage_tenant_daily``, when it was worked
    #: out while PostgreSQL took the rows in (:meth:`PostgresUsageStore._land_events`).
    sums: _Sums | None = None

    def __add__(self, other: _Landed) -> _Landed:
        return _Landed(
            [*self.inserted, *other.inserted],
            [*self.rejected, *other.rejected],
            self.staged or other.staged,
            self.rollup_lost or other.rollup_lost,
            self.daily_lost or other.daily_lost,
        )


@dataclass(frozen=True)
class _Sums:
    """What some inserted events add to ``usage_rollup_1m`` and to ``usage_tenant_daily``."""

    rollups: dict[RollupKey, Delta]
    daily: dict[tenant_daily.QuarterKey, list[Any]]

    @classmethod
    def of(cls, inserted: Sequence[Row]) -> _Sums:
        summed = native_sums.sums(inserted)  # a whole native batch, summed as it was read
        if summed is not None:
            return cls(*summed)
        complete(inserted)
        return cls(deltas(inserted), tenant_daily.deltas(inserted))


def _one(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The one row a statement returns."""
    row = cursor.fetchone()
    assert row is not None, "the statement returns one row"
    return tuple(row)


def _staged(changed: int, rollup_lost: bool, daily_lost: bool) -> _Landed:
    """What a re-pricing statement that changed ``changed`` events left in the staging tables."""
    if not changed:
        return _Landed()
    return _Landed(staged=True, rollup_lost=bool(rollup_lost), daily_lost=bool(daily_lost))


def _refused(row: Row, exc: BaseException) -> Rejected:
    return Rejected(q.EVENTS.table, row, describe(exc), reason_code(exc))


class PostgresUsageStore:
    """A :class:`UsageStore` on one psycopg 3 connection, (re)opened lazily."""

    def __init__(
        self,
        database_url: str,
        *,
        connect_timeout_s: int = 5,
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        """Connect lazily to ``database_url``.

        ``meanwhile`` is called at most once a write, when the server has the batch's bulk work:
        the events' COPY sent and not yet ended, or (re-pricing) the statement that updates the
        stored events sent and not yet answered. It is meant to start work elsewhere and return
        (the worker lets its decoding thread read the next batch then), so that work runs
        beside the server's rather than after it.
        """
        self._url = database_url
        self._meanwhile = meanwhile
        self._meanwhile_due: Callable[[], None] | None = None
        self._connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[Any] | None = None
        self._types: dict[str, list[str]] = {}
        self._int4: tuple[str, ...] = ()
        self._native_ok = False
        #: Whether re-pricing finds and updates rows in one statement (plain PostgreSQL).
        self._seen_first = False
        #: Whether a landing in the open transaction may have left rows in the staging tables.
        self._staging_used = False

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
                        (q.EVENTS.staging, q.EVENTS.table, EVENT_COLUMNS),
                        (q.ROLLUP_STAGING, "usage_rollup_1m", ROLLUP_COLUMNS),
                    ):
                        conn.execute(
                            sql.SQL(
                                "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {} INCLUDING DEFAULTS) "
                                + q.TEMPORARY
                            ).format(sql.Identifier(staging), sql.Identifier(table))
                        )
                        self._types[table] = self._column_types(conn, table, columns)
                    conn.execute(q.CREATE_PRICING)
                    conn.execute(q.CREATE_DAILY_STAGING)
                    events = dict(zip(EVENT_COLUMNS, self._types[q.EVENTS.table], strict=True))
                    self._types[q.PRICING] = [events[c] for c in q.PRICING_STAGING_COLUMNS]
                    self._types["usage_event_ids"] = [events[c] for c in q.GUARD_COLUMNS]
                    self._int4 = tuple(c for c, t in events.items() if t == "int4")
                    self._native_ok = tuple(self._types[q.EVENTS.table]) == EVENT_TYPES
                    self._seen_first = not _one(conn.execute(q.TIMESCALEDB))[0]
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

        Returns the rows PostgreSQL refused (and copies of stored events, refused here).
        """
        # A whole native batch whose reader met each event_id once needs no de-duplication.
        distinct = native_sums.distinct(priced_rows)
        events = list(priced_rows) if distinct else dedupe_events(priced_rows)
        try:
            conn = self._connection()
            if not self._native_ok and any(COPY_ROW in row for row in events):
                # Rows made natively follow the model's types (EVENT_TYPES): a database whose
                # usage_events differs is not at this sink's migration head.
                msg = "usage_events' column types are not the sink model's: migrate to head"
                raise RuntimeError(msg)
            # A whole native batch is range-checked already (as each row was made).
            events, rejected = (events, []) if distinct else self._in_range(events)
            landed = _Landed(rejected=rejected)
            self._meanwhile_due = self._meanwhile
            self._staging_used = False  # the staging tables are empty (q.CLEAR_STAGING)
            with conn.transaction():
                # Copies of one event_id in this batch land in turns: the first copy of every
                # id, then the next, ... so a later copy meets the guard row of an earlier one.
                while events:
                    first, events = (events, []) if distinct else first_copies(events)
                    landed += self._land(conn, first)
        except Exception as exc:
            # Only what is not a row's fault gets here (those are isolated below the
            # transaction): the server is gone, restarting, or misconfigured. Nothing was
            # committed; retry.
            self.close()
            kind = classify(exc).value
            msg = f"cannot write to PostgreSQL ({kind}): {type(exc).__name__}: {exc}".strip()
            raise DatabaseUnavailable(msg) from exc
        return landed.rejected

    def _in_range(self, rows: list[Row]) -> tuple[list[Row], list[Rejected]]:
        """Refuse rows whose ``integer`` columns hold what binary COPY would wrap silently."""
        low, high = _INT4
        kept: list[Row] = []
        refused: list[Rejected] = []
        for row in rows:
            if COPY_ROW in row:  # a native row: its integers were range-checked as it was made
                kept.append(row)
                continue
            wide = next(
                (c for c in self._int4 if row[c] is not None and not low <= row[c] <= high), None
            )
            if wide is None:
                kept.append(row)
                continue
            reason = f"22003: {wide} = {row[wide]} is out of range for type integer"
            refused.append(Rejected(q.EVENTS.table, row, reason, "unstorable_value"))
        return kept, refused

    def _land(self, conn: psycopg.Connection[Any], rows: Sequence[Row]) -> _Landed:
        """Land ``rows`` and their rollup deltas in a savepoint; bisect on an error of a row.

        Transient errors propagate (the whole write is retried); any other error splits the
        rows in halves, each landed on its own, down to the single rows that fail alone.
        """
        if not rows:
            return _Landed()
        try:
            with conn.transaction():
                if self._staging_used:  # by an earlier landing in this transaction
                    conn.execute(q.CLEAR_STAGING)
                self._staging_used = True
                landed = self._land_events(conn, list(rows))
                sums = landed.sums or _Sums.of(landed.inserted)
                self._add_rollups(conn, sums.rollups, landed)
                self._add_daily(conn, sums.daily, landed)
        except Exception as exc:
            if classify(exc) is Fault.TRANSIENT:
                raise
            if len(rows) == 1:
                log.warning("row refused: %s", describe(exc))
                return _Landed(rejected=[_refused(rows[0], exc)])
            first, second = split(rows)
            return self._land(conn, first) + self._land(conn, second)
        return landed

    def _land_events(self, conn: psycopg.Connection[Any], rows: list[Row]) -> _Landed:
        if not self._known(conn, rows):
            try:
                with conn.transaction():
                    self._copy(
                        conn,
                        q.GUARD_COLUMNS,
                        self._types["usage_event_ids"],
                        "usage_event_ids",
                        rows,
                    )
                    sums = self._copy(
                        conn,
                        EVENT_COLUMNS,
                        self._types[q.EVENTS.table],
                        "usage_events",
                        rows,
                        meanwhile=lambda: self._while_copying(rows),
                    )
            except pg_errors.UniqueViolation:
                pass  # some events (or copies of them) are there already: the paths below
            else:
                return _Landed(inserted=rows, sums=sums)
        priced(rows)  # not landing whole: the re-pricing staging rows are read now
        try:
            with conn.transaction():
                return self._reprice(conn, rows)
        except pg_errors.UniqueViolation:
            # An event inserted meanwhile by another worker: the full staging upsert copes.
            complete(rows)
            with conn.transaction():
                return self._upsert(conn, rows)

    def _while_copying(self, rows: list[Row]) -> _Sums:
        """While PostgreSQL takes ``rows`` in: the caller's ``meanwhile``, then their sums.

        The sums are used if the COPY succeeds (every row inserted), dropped otherwise.
        """
        self._call_meanwhile()
        return _Sums.of(rows)

    def _call_meanwhile(self) -> None:
        """Call ``meanwhile`` if this write has not called it yet."""
        meanwhile, self._meanwhile_due = self._meanwhile_due, None
        if meanwhile is not None:
            meanwhile()

    @staticmethod
    def _known(conn: psycopg.Connection[Any], rows: list[Row]) -> bool:
        """Tell whether the first or last event of the batch is stored already.

        Two index lookups that send a replayed batch or a re-pricing pass (every row
        conflicts) straight to :meth:`_reprice`, instead of a COPY that would fail.
        """
        first, last = rows[0], rows[-1]
        found = conn.execute(
            q.PROBE,
            (first["event_id"], first["occurred_at"], last["event_id"], last["occurred_at"]),
        ).fetchone()
        return bool(found and found[0])

    @staticmethod
    def _claim(conn: psycopg.Connection[Any], staging: str, rows: Sequence[Row]) -> _Landed:
        """Claim the staged events' ids; take copies of events stored at another time out.

        Returns the refused copies (recorded in ``usage_event_duplicates``) as rejected rows.
        """
        conn.execute(q.claim(staging))
        refused = conn.execute(q.refuse(staging)).fetchall()
        if not refused:
            return _Landed()
        by_key = {(r["event_id"], r["occurred_at"]): r for r in rows}
        landed = _Landed()
        records = []
        for event_id, occurred_at, kept in refused:
            row = by_key[(event_id, occurred_at)]
            records.append(
                (event_id, occurred_at, kept, *itemgetter(*q.DUPLICATE_COLUMNS[3:])(row))
            )
            reason = (
                f"event_id {event_id} is stored with occurred_at {kept.isoformat()}; "
                f"this copy says {occurred_at.isoformat()} (the first stored copy wins)"
            )
            landed.rejected.append(Rejected(q.EVENTS.table, row, reason, "duplicate_event_id"))
        with conn.cursor() as cur:
            cur.executemany(q.RECORD_DUPLICATE, records)
        return landed

    def _update_stored(self, conn: psycopg.Connection[Any], staging: str) -> tuple[_Landed, int]:
        """Re-price the stored events of ``staging``; stage what that changes in the aggregates.

        Returns what was staged and how many of the staged events are stored. The changes are
        summed in SQL into the rollup and daily staging tables
        (:mod:`tokenline.sink.repricing_sql`): no event row travels back to the client. On
        plain PostgreSQL the rows are found and updated in one statement, without a lock;
        if another transaction re-priced some of them meanwhile (fewer changed than were due),
        or on TimescaleDB (a compressed chunk refuses ctid and xmin: "transparent
        decompression only supports tableoid system column"), the stored rows are
        locked first and re-priced by a statement that reads each twice.
        """
        landed = _Landed()
        if self._seen_first:
            found, due, changed, rollup_lost, daily_lost = self._bulk(
                conn, reprice_seen_staged(staging)
            )
            landed = _staged(changed, rollup_lost, daily_lost)
            if changed == due:
                return landed, int(found)
        (found,) = _one(conn.execute(q.lock(staging)))
        changed, rollup_lost, daily_lost = self._bulk(conn, reprice_staged(staging))
        return landed + _staged(changed, rollup_lost, daily_lost), int(found)

    def _bulk(self, conn: psycopg.Connection[Any], statement: bytes) -> tuple[Any, ...]:
        """Run a batch's bulk statement and return its one row.

        ``meanwhile`` (if this write has not called it yet) runs while the server works on it:
        the statement is sent in pipeline mode, and its result waited for after.
        """
        if self._meanwhile_due is None:
            return _one(conn.execute(statement))
        with conn.pipeline():
            cursor = conn.execute(statement)
            self._call_meanwhile()
            return _one(cursor)

    @staticmethod
    def _nested_loops(conn: psycopg.Connection[Any], on: bool) -> None:
        conn.execute(q.NESTED_LOOPS_ON if on else q.NESTED_LOOPS_OFF)

    def _reprice(self, conn: psycopg.Connection[Any], rows: list[Row]) -> _Landed:
        """Update the events that exist, then copy in the ones that do not.

        Cheaper than the full staging upsert when most rows conflict (a re-pricing pass): only
        the key and pricing columns of stored events are sent, and no tuple is speculatively
        inserted. Rows the UPDATE's rule leaves alone (the same or an older pricing) stay
        untouched.
        """
        # Joins limited to nested loops from here on (the staging is empty: see CLEAR_STAGING).
        conn.execute(q.NESTED_LOOPS_ON)
        made = [row[PRICING_ROW] for row in rows if PRICING_ROW in row]  # native rows' own
        if made:
            self._copy_made(conn, PRICING_ROW_COLUMNS, q.PRICING, made)
        if len(made) < len(rows):
            narrow = [row for row in rows if PRICING_ROW not in row]
            columns, types = q.PRICING_STAGING_COLUMNS, self._types[q.PRICING]
            self._copy(conn, columns, types, q.PRICING, narrow)
        landed, found = self._update_stored(conn, q.PRICING)
        missing: list[Row] = []
        if found < len(rows):
            # Some are not stored (or are copies of events stored at another time): their ids
            # are claimed, and any another worker stored meanwhile are re-priced too. The rows'
            # other values are read now (a refused copy is recorded with them).
            complete(rows)
            landed += self._claim(conn, q.PRICING, rows)
            landed += self._update_stored(conn, q.PRICING)[0]
            by_key = {(row["event_id"], row["occurred_at"]): row for row in rows}
            missing = [by_key[key] for key in conn.execute(q.MISSING)]
        self._nested_loops(conn, False)
        if missing:
            self._copy(conn, EVENT_COLUMNS, self._types[q.EVENTS.table], "usage_events", missing)
        return landed + _Landed(inserted=missing)

    def _upsert(self, conn: psycopg.Connection[Any], rows: Sequence[Row]) -> _Landed:
        """Land ``rows`` through the full staging table.

        Stored events are re-priced, the others inserted (``ON CONFLICT DO NOTHING``, so one
        inserted meanwhile by another worker is skipped, then re-priced by the second UPDATE).
        """
        staging = q.EVENTS.staging
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(staging)))
        self._copy(conn, EVENT_COLUMNS, self._types[q.EVENTS.table], staging, rows)
        self._nested_loops(conn, True)
        landed = self._claim(conn, staging, rows)
        landed += self._update_stored(conn, staging)[0]
        inserted = [
            dict(zip(q.SOURCE_COLUMNS, r, strict=True))
            for r in conn.execute(q.EVENTS.upsert).fetchall()
        ]
        landed += _Landed(inserted=inserted)
        if len(inserted) < len(rows) - len(landed.rejected):
            landed += self._update_stored(conn, staging)[0]
        self._nested_loops(conn, False)
        return landed

    def _add_rollups(
        self, conn: psycopg.Connection[Any], found: dict[RollupKey, Delta], landed: _Landed
    ) -> None:
        """Add the deltas and what re-pricing staged to ``usage_rollup_1m``, in key order.

        In key order, so concurrent writers queue.
        """
        if found:
            self._stage_rollups(conn, found)
        elif not landed.staged:
            return
        conn.execute(q.ADD_ROLLUPS)
        if landed.rollup_lost or any(delta.requests < 0 for delta in found.values()):
            conn.execute(q.REMAX_ROLLUPS)
            conn.execute(q.DROP_EMPTY_ROLLUPS)

    def _stage_rollups(self, conn: psycopg.Connection[Any], found: dict[RollupKey, Delta]) -> None:
        now = datetime.now(UTC)
        rows = [
            {
                "tenant_id": tenant_id,
                "window_start": start,
                "provider": provider,
                "model": model,
                "window_seconds": WINDOW_SECONDS,
                **{c: getattr(delta, c) for c in q.DELTA_SUMS},
                "latency_ms_max": delta.latency_ms_max,
                "currency": delta.currency,
                "source_partition": -1,
                "max_source_offset": -1,
                "updated_at": now,
            }
            for (tenant_id, start, provider, model), delta in sorted(found.items())
        ]
        self._copy(conn, ROLLUP_COLUMNS, self._types["usage_rollup_1m"], q.ROLLUP_STAGING, rows)

    def _add_daily(
        self,
        conn: psycopg.Connection[Any],
        found: dict[tenant_daily.QuarterKey, list[Any]],
        landed: _Landed,
    ) -> None:
        """Add the quarter-hour sums and what re-pricing staged to ``usage_tenant_daily``.

        The quarter-hours are summed into each tenant's local day.
        """
        if not found and not landed.staged:
            return
        conn.execute(q.LOCK_DAILY)
        if found:
            self._stage_daily(conn, found)
        conn.execute(q.ADD_TENANT_DAILY)
        if landed.daily_lost or any(sums[0] < 0 for sums in found.values()):
            conn.execute(q.REMAX_DAILY)
            conn.execute(q.DROP_EMPTY_DAILY)

    @staticmethod
    def _stage_daily(
        conn: psycopg.Connection[Any], found: dict[tenant_daily.QuarterKey, list[Any]]
    ) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.Identifier(q.DAILY_STAGING),
            sql.SQL(", ").join(map(sql.Identifier, tenant_daily.COLUMNS)),
        )
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(q.DAILY_STAGING_TYPES)
            for key, sums in found.items():
                copy.write_row((*key, *sums))

    @staticmethod
    def _copy_made(
        conn: psycopg.Connection[Any],
        columns: Sequence[str],
        into: str,
        made: list[bytes],
        *,
        meanwhile: Callable[[], _T] | None = None,
    ) -> _T | None:
        """Binary-copy rows made natively (:mod:`tokenline.sink.native_rows`) as they are."""
        with conn.cursor() as cur, cur.copy(_copy_statement(into, tuple(columns))) as copy:
            # The whole binary COPY data: signature, the rows, the trailer.
            copy.write(_COPY_SIGNATURE + b"".join(made) + _COPY_TRAILER)
            # The data is on its way (in the socket's buffers): PostgreSQL reads and inserts
            # it while ``meanwhile`` runs; leaving the block ends the COPY and waits for it.
            return meanwhile() if meanwhile is not None else None

    def _copy(
        self,
        conn: psycopg.Connection[Any],
        columns: Sequence[str],
        types: Sequence[str],
        into: str,
        rows: Sequence[Row],
        *,
        meanwhile: Callable[[], _T] | None = None,
    ) -> _T | None:
        """Binary-copy ``rows``; ``meanwhile()`` runs once they are sent, before the COPY ends.

        Returns what ``meanwhile`` returned (``None`` without it). A COPY that fails raises
        when it ends, after ``meanwhile`` ran: its result is then dropped with the rows.
        """
        statement = _copy_statement(into, tuple(columns))
        key = _MADE.get(id(columns))  # the rows made natively for these columns, if any
        if key is not None:
            made = [row[key] for row in rows if key in row]
            if made:
                if len(made) == len(rows):
                    return self._copy_made(conn, columns, into, made, meanwhile=meanwhile)
                self._copy_made(conn, columns, into, made)
                rows = [row for row in rows if key not in row]
        values = itemgetter(*columns)
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(values(row))
            return meanwhile() if meanwhile is not None else None


@cache
def _copy_statement(into: str, columns: tuple[str, ...]) -> bytes:
    """The binary COPY of ``columns`` into ``into`` (rendered once: composing it cost more)."""
    return (
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)")
        .format(sql.Identifier(into), sql.SQL(", ").join(map(sql.Identifier, columns)))
        .as_bytes(None)
    )


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
