"""Priced events from their Avro bodies straight to ``usage_events`` binary COPY rows.

With ``tokenline_native`` installed, the worker reads a batch with its ``CopyRows``
(:func:`tokenline.schemas._native.copy_rows`): each message becomes, in Rust, the binary COPY
row :func:`~tokenline.sink.rows.event_row` and psycopg's adaptation would make (costs as
NUMERIC from the Avro decimal's digits, never a float), returned under :data:`COPY_ROW` in a
dict with its ``usage_event_ids`` guard row under :data:`GUARD_ROW`, the batch's rollup and
tenant-daily sums (:mod:`tokenline.sink.native_sums`), the message itself (:data:`BODY`) and
the few values a batch that lands whole needs (:data:`LEAN`). The store sends the rows' bytes
as they are.

A batch that does not land whole (copies of stored events, a re-pricing) needs the rest:
:func:`complete` reads it from the messages again, in place: the values of :data:`KEEP` (what
the rollups and ``usage_tenant_daily`` are computed from, the pricing a re-pricing stages, the
source of a refused copy), the event's UTC minute and quarter-hour (the rollup and daily keys;
consecutive events of one minute share one object) and the re-pricing staging row under
:data:`PRICING_ROW`. The batch read next is then read whole, as such batches come in runs.

Whatever the native reader refuses (a body it does not read exactly as the Python reader
does, an ``integer`` column out of range, a string holding NUL) is read by the Python path,
so it lands, or is refused or dead-lettered, as it always was.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.dialects import postgresql

from tokenline.schemas import AvroCodec, catalog
from tokenline.schemas._native import copy_rows
from tokenline.sink.batch import EVENT_COLUMNS, EVENT_KEY
from tokenline.sink.models import UsageEvent
from tokenline.sink.native_sums import ROLES, SUMS
from tokenline.sink.rollups import MINUTE
from tokenline.sink.rows import EVENT_PATHS, event_row
from tokenline.sink.store_sql import (
    DUPLICATE_COLUMNS,
    GUARD_COLUMNS,
    PRICING_COLUMNS,
    PRICING_STAGING_COLUMNS,
    SOURCE_COLUMNS,
)
from tokenline.sink.tenant_daily import QUARTER

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tokenline.schemas import PricedUsageEvent
    from tokenline.schemas._native import CopyRows

__all__ = [
    "BODY",
    "COPY_ROW",
    "EVENT_TYPES",
    "GUARD_ROW",
    "KEEP",
    "LEAN",
    "PRICING_ROW",
    "PRICING_ROW_COLUMNS",
    "NativeRows",
    "complete",
    "encoded",
    "priced",
]

#: The key a native row's ``usage_events`` COPY row is under (not a column name).
COPY_ROW = "__copy_row__"
#: The key of its ``usage_event_ids`` guard row (:data:`GUARD_COLUMNS`).
GUARD_ROW = "__guard_row__"
#: The key of the message it was read from (the bytes object), for :func:`complete`.
BODY = "__body__"
#: The key of its re-pricing staging row (:data:`PRICING_ROW_COLUMNS`).
PRICING_ROW = "__pricing_row__"
#: The columns of the re-pricing staging row, in COPY order.
PRICING_ROW_COLUMNS = PRICING_STAGING_COLUMNS

#: The values of a native row the store reads.
KEEP: tuple[str, ...] = tuple(
    dict.fromkeys((*EVENT_KEY, *SOURCE_COLUMNS, *PRICING_COLUMNS, *DUPLICATE_COLUMNS[3:]))
)

_TYPE_NAMES = {
    "UUID": "uuid",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "VARCHAR": "varchar",
    "TEXT": "text",
    "SMALLINT": "int2",
    "INTEGER": "int4",
    "BIGINT": "int8",
    "BOOLEAN": "bool",
    "JSONB": "jsonb",
}


_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy


def _type_name(column: str) -> str:
    compiled = UsageEvent.__table__.columns[column].type.compile(dialect=_DIALECT)
    base = compiled.split("(", 1)[0]
    return "numeric" if base == "NUMERIC" else _TYPE_NAMES.get(base, compiled)


#: ``usage_events``' type names (``pg_type.typname``) per :data:`EVENT_COLUMNS`, by the model;
#: the store checks them against the database's before it sends a native row.
EVENT_TYPES: tuple[str, ...] = tuple(_type_name(c) for c in EVENT_COLUMNS)
_TYPES = dict(zip(EVENT_COLUMNS, EVENT_TYPES, strict=True))


def encoded(row: dict[str, Any]) -> bytes | None:
    """The COPY row of a native row, or ``None`` for a row made by ``event_row``."""
    return row.get(COPY_ROW)


#: The values every native row holds as it is read: what the store reads of a batch that lands
#: whole (its key, for duplicates within the batch and the probe; ``priced_at``, for the newest
#: copy; and for the freshness metric).
LEAN: tuple[str, ...] = ("event_id", "occurred_at", "priced_at")


def _paths(columns: tuple[str, ...]) -> list[tuple[list[str], str]]:
    return [(list(EVENT_PATHS[c]), _TYPES[c]) for c in columns]


_MINUTES = [
    (MINUTE, list(EVENT_PATHS["occurred_at"]), 60_000_000),
    (QUARTER, list(EVENT_PATHS["occurred_at"]), 900_000_000),
]


Reading = Literal["lean", "priced", "all"]


def _reader(values: Literal["lean", "priced", "all", "rest", "pricing"]) -> CopyRows | None:
    """A reader of native rows: ``lean``, ``priced``, ``all``, ``rest`` or ``pricing``.

    ``lean``: what a batch landing whole needs; ``priced``: that and the re-pricing staging
    row; ``rest``: what :func:`complete` adds to a lean row; ``all``: lean and rest;
    ``pricing``: the re-pricing staging row alone (what :func:`priced` adds).
    """
    copy = (COPY_ROW, _paths(EVENT_COLUMNS), 0)
    guard = (GUARD_ROW, _paths(GUARD_COLUMNS), 0)
    pricing = (PRICING_ROW, _paths(PRICING_ROW_COLUMNS), 0)
    rest = [*((c, list(EVENT_PATHS[c]), 0) for c in KEEP), *_MINUTES]
    name = "tokenline.PricedUsageEvent"
    if values == "rest":
        return copy_rows(catalog(), name, [pricing], rest)
    if values == "pricing":
        return copy_rows(catalog(), name, [pricing], [])
    tables = [copy, guard] if values == "lean" else [copy, guard, pricing]
    keep = rest if values == "all" else [(c, list(EVENT_PATHS[c]), 0) for c in LEAN]
    sums = (SUMS, [list(EVENT_PATHS[c]) for c in ROLES])
    return copy_rows(catalog(), name, tables, keep, sums=sums, body=BODY)


@dataclass
class _Wanted:
    """What the store wanted of native rows since a batch was read (process-wide).

    The next batch is read that way: batches that do not land whole come in runs (a replay, a
    re-pricing pass), and reading what they need while the previous batch lands costs nothing.
    ``priced``: the re-pricing staging row (:func:`priced`); ``all``: every value
    (:func:`complete`).
    """

    reading: Reading = "lean"

    def want(self, reading: Reading) -> None:
        if reading == "all" or self.reading == "lean":
            self.reading = reading


_WANTED = _Wanted()


@cache
def _rest() -> tuple[CopyRows | None, AvroCodec[PricedUsageEvent]]:
    return _reader("rest"), AvroCodec("tokenline.PricedUsageEvent")


@cache
def _pricing() -> CopyRows | None:
    return _reader("pricing")


def complete(rows: Iterable[dict[str, Any]]) -> None:
    """Give the native rows among ``rows`` read lean the rest of their values, in place.

    Every value of :data:`KEEP`, the minute and quarter-hour, and the re-pricing staging row,
    read from each row's message again; what the reader refuses (no body the lean reader took
    should be) gets ``event_row``'s values.
    """
    native = [row for row in rows if BODY in row]
    if native:  # read the next batch whole, even if these were (see _Wanted)
        _WANTED.want("all")
    lean = [row for row in native if "tenant_id" not in row]  # not in LEAN, in KEEP
    if not lean:
        return
    reader, codec = _rest()
    bodies = [row[BODY] for row in lean]
    made = reader.rows(bodies) if reader is not None else [None] * len(lean)
    for row, body, full in zip(lean, bodies, made, strict=True):
        row.update(full if full is not None else event_row(codec.decode(body)))


def priced(rows: Iterable[dict[str, Any]]) -> None:
    """Give the native rows among ``rows`` their re-pricing staging row, in place.

    What re-pricing events that are all stored needs (:meth:`PostgresUsageStore._reprice`):
    the rest of their values only if some are not (:func:`complete`). A row the reader refuses
    (none the lean reader took should be) is completed instead.
    """
    rows = list(rows)
    if any(BODY in row for row in rows):  # read the next batch with its pricing rows (_Wanted)
        _WANTED.want("priced")
    bare = [row for row in rows if PRICING_ROW not in row and BODY in row]
    reader = _pricing()
    made = reader.rows([row[BODY] for row in bare]) if reader is not None and bare else []
    refused = []
    for row, pricing in zip(bare, made or [None] * len(bare), strict=True):
        if pricing is None:
            refused.append(row)
        else:
            row[PRICING_ROW] = pricing[PRICING_ROW]
    complete(refused)


class NativeRows:
    """Reads batches of priced events into native rows (``None`` where it refuses one).

    The rows are lean (:data:`LEAN`, the COPY and guard rows, the batch's sums, the message):
    :func:`complete` gives them the rest when the store needs it (a batch that does not land
    whole), and the batch read after that is read whole.
    """

    def __init__(self, readers: dict[Reading, CopyRows]) -> None:
        self._readers = readers
        #: Messages read into native rows so far (the rest went to the Python path).
        self.made = 0

    @classmethod
    def load(cls) -> NativeRows | None:
        """The native reader of PricedUsageEvents, or ``None`` (not installed, not covered)."""
        readings: tuple[Reading, ...] = ("lean", "priced", "all")
        readers = {reading: _reader(reading) for reading in readings}
        made = {reading: reader for reading, reader in readers.items() if reader is not None}
        return cls(made) if len(made) == len(readers) else None

    def rows(self, values: list[bytes]) -> list[dict[str, Any] | None]:
        """Each message's native row, or ``None`` where the Python path must read it.

        Lean, unless the store wanted more of native rows since a batch was read
        (:class:`_Wanted`).
        """
        reading, _WANTED.reading = _WANTED.reading, "lean"
        rows = self._readers[reading].rows(values)
        self.made += len(rows) - rows.count(None)
        return rows

    def refusal(self, value: bytes) -> str | None:
        """Why :meth:`rows` refuses ``value``, or ``None``."""
        return self._readers["lean"].refusal(value)
