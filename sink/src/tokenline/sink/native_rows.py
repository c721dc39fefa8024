"""Priced events from their Avro bodies straight to ``usage_events`` binary COPY rows.

With ``tokenline_native`` installed, the worker reads a batch with its ``CopyRows``
(:func:`tokenline.schemas._native.copy_rows`): each message becomes, in Rust, the binary COPY
row :func:`~tokenline.sink.rows.event_row` and psycopg's adaptation would make (costs as
NUMERIC from the Avro decimal's digits, never a float), returned under :data:`COPY_ROW` in a
dict of the few values the store itself reads (:data:`KEEP`: the key, what the rollups and
``usage_tenant_daily`` are computed from, the pricing a re-pricing stages, the source of a
refused copy), with the event's UTC minute and quarter-hour made too (the rollup and daily
keys; consecutive events of one minute share one object), and the re-pricing path's staging
row under :data:`PRICING_ROW`, its ``usage_event_ids`` guard row under :data:`GUARD_ROW`,
and the batch's rollup and tenant-daily sums (:mod:`tokenline.sink.native_sums`).
The store sends the rows' bytes as they are and reads only those values.

Whatever the native reader refuses (a body it does not read exactly as the Python reader
does, an ``integer`` column out of range, a string holding NUL) is read by the Python path,
so it lands, or is refused or dead-lettered, as it always was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.dialects import postgresql

from tokenline.schemas import catalog
from tokenline.schemas._native import copy_rows
from tokenline.sink.batch import EVENT_COLUMNS, EVENT_KEY
from tokenline.sink.models import UsageEvent
from tokenline.sink.native_sums import ROLES, SUMS
from tokenline.sink.rollups import MINUTE
from tokenline.sink.rows import EVENT_PATHS
from tokenline.sink.store_sql import (
    DUPLICATE_COLUMNS,
    GUARD_COLUMNS,
    PRICING_COLUMNS,
    PRICING_STAGING_COLUMNS,
    SOURCE_COLUMNS,
)
from tokenline.sink.tenant_daily import QUARTER

if TYPE_CHECKING:
    from tokenline.schemas._native import CopyRows

__all__ = [
    "COPY_ROW",
    "EVENT_TYPES",
    "GUARD_ROW",
    "KEEP",
    "PRICING_ROW",
    "PRICING_ROW_COLUMNS",
    "NativeRows",
    "encoded",
]

#: The key a native row's ``usage_events`` COPY row is under (not a column name).
COPY_ROW = "__copy_row__"
#: The key of its ``usage_event_ids`` guard row (:data:`GUARD_COLUMNS`).
GUARD_ROW = "__guard_row__"
#: The key of its re-pricing staging row: :data:`PRICING_ROW_COLUMNS` but the last, ``n`` (the
#: row's place in the batch), which the store appends.
PRICING_ROW = "__pricing_row__"
#: The columns of the re-pricing staging row, in COPY order.
PRICING_ROW_COLUMNS = (*PRICING_STAGING_COLUMNS[1:], PRICING_STAGING_COLUMNS[0])

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
_PRICED_LEAVES = PRICING_ROW_COLUMNS[:-1]


def encoded(row: dict[str, Any]) -> bytes | None:
    """The COPY row of a native row, or ``None`` for a row made by ``event_row``."""
    return row.get(COPY_ROW)


class NativeRows:
    """Reads batches of priced events into native rows (``None`` where it refuses one)."""

    def __init__(self, reader: CopyRows) -> None:
        self._reader = reader
        #: Messages read into native rows so far (the rest went to the Python path).
        self.made = 0

    @classmethod
    def load(cls) -> NativeRows | None:
        """The native reader of PricedUsageEvents, or ``None`` (not installed, not covered)."""
        reader = copy_rows(
            catalog(),
            "tokenline.PricedUsageEvent",
            [
                (COPY_ROW, [(list(EVENT_PATHS[c]), _TYPES[c]) for c in EVENT_COLUMNS], 0),
                (PRICING_ROW, [(list(EVENT_PATHS[c]), _TYPES[c]) for c in _PRICED_LEAVES], 1),
                (GUARD_ROW, [(list(EVENT_PATHS[c]), _TYPES[c]) for c in GUARD_COLUMNS], 0),
            ],
            [
                *((c, list(EVENT_PATHS[c]), 0) for c in KEEP),
                (MINUTE, list(EVENT_PATHS["occurred_at"]), 60_000_000),
                (QUARTER, list(EVENT_PATHS["occurred_at"]), 900_000_000),
            ],
            (SUMS, [list(EVENT_PATHS[c]) for c in ROLES]),
        )
        return None if reader is None else cls(reader)

    def rows(self, values: list[bytes]) -> list[dict[str, Any] | None]:
        """Each message's native row, or ``None`` where the Python path must read it."""
        rows = self._reader.rows(values)
        self.made += len(rows) - rows.count(None)
        return rows

    def refusal(self, value: bytes) -> str | None:
        """Why :meth:`rows` refuses ``value``, or ``None``."""
        return self._reader.refusal(value)
