"""Whose fault a write error is: the database's (retry the batch) or one row's (dead-letter it).

:func:`classify` sorts every exception a write can raise, first by its SQLSTATE class when the
server sent one, then by its type:

==========================  ===========================================================
``TRANSIENT``               nothing is wrong with the rows: retry the whole batch later
  08 connection exception   the server went away, refused or dropped the connection
  25 invalid transaction    e.g. 25006 read-only transaction (a standby after failover)
  28, 3D, 3F, 42            authorization, missing database or schema, undefined table or
                            privilege: the deployment is wrong and an operator fixes it
  40 transaction rollback   serialization failure, deadlock
  53 insufficient resources disk full, out of memory, too many connections
  55 object not ready       lock not available, object in use
  57 operator intervention  shutdown, crash recovery, statement timeout, cancel
  58, F0, XX                system, configuration file and internal errors
  no SQLSTATE               psycopg ``OperationalError`` / ``InterfaceError`` (the
                            connection itself), ``OSError``
``ROW``                     one row holds something the database refuses: dead-letter it
  22 data exception         out of range, bad encoding (NUL), invalid text representation
  23 integrity violation    check, not-null, foreign key (unique is handled by the store)
  54 program limit          an index row too large (54000), a statement too complex
  no SQLSTATE               ``OverflowError``, ``ValueError`` (and ``UnicodeError``),
                            ``TypeError``, ``struct.error``, psycopg ``DataError``: a value
                            the client cannot convert to its column
``UNKNOWN``                 any other class or type
==========================  ===========================================================

The store isolates ``ROW`` and ``UNKNOWN`` errors by bisecting the batch (a row that fails
alone is dead-lettered with the error as its reason, everything else lands) and raises
``TRANSIENT`` ones as :class:`~tokenline.sink.errors.DatabaseUnavailable`, which is retried.
So a poison record costs one dead letter, never a crash loop and never an endless retry.
"""

from __future__ import annotations

import enum
import struct

import psycopg

__all__ = ["Fault", "classify", "describe", "reason_code"]


class Fault(enum.Enum):
    """Whose fault an error is."""

    TRANSIENT = "transient"
    ROW = "row"
    UNKNOWN = "unknown"


_TRANSIENT_CLASSES = frozenset(
    {"08", "25", "28", "3D", "3F", "40", "42", "53", "55", "57", "58", "F0", "XX"}
)
_ROW_CLASSES = frozenset({"22", "23", "54"})
_ROW_TYPES = (OverflowError, ValueError, TypeError, struct.error, psycopg.DataError)
_TRANSIENT_TYPES = (psycopg.OperationalError, psycopg.InterfaceError, OSError)


def _sqlstate(exc: BaseException) -> str | None:
    if isinstance(exc, psycopg.Error):
        return exc.sqlstate
    return None


def classify(exc: BaseException) -> Fault:
    """Sort ``exc`` by SQLSTATE class when it has one, else by its type."""
    sqlstate = _sqlstate(exc)
    if sqlstate:
        family = sqlstate[:2]
        if family in _ROW_CLASSES:
            return Fault.ROW
        if family in _TRANSIENT_CLASSES:
            return Fault.TRANSIENT
        return Fault.UNKNOWN
    # Without a SQLSTATE the error is the client's: checked in this order because psycopg's
    # DataError is an Error like OperationalError, and UnicodeError is a ValueError.
    if isinstance(exc, _ROW_TYPES):
        return Fault.ROW
    if isinstance(exc, _TRANSIENT_TYPES):
        return Fault.TRANSIENT
    return Fault.UNKNOWN


def describe(exc: BaseException) -> str:
    """The reason a dead letter gives for ``exc``: SQLSTATE or type, then the message."""
    sqlstate = _sqlstate(exc)
    prefix = sqlstate if sqlstate else type(exc).__name__
    message = " ".join(str(exc).split())[:1_000]
    return f"{prefix}: {message}" if message else prefix


def reason_code(exc: BaseException) -> str:
    """The dead letter's reason code for a row refused by ``exc``."""
    if _sqlstate(exc):
        return "rejected_by_database"
    if classify(exc) is Fault.ROW:
        return "unstorable_value"
    return "write_error"
