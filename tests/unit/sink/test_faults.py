"""Every write error is sorted: transient (retry the batch) or about a row (dead-letter it).

The exceptions are psycopg's own classes for each SQLSTATE (``psycopg.errors.lookup``) and the
Python errors a value conversion raises; the integration tests provoke each on the server.
"""

from __future__ import annotations

import struct

import psycopg
import pytest
from psycopg import errors as pg_errors

from tokenline.sink.faults import Fault, classify, describe, reason_code

pytestmark = pytest.mark.unit


def _server(sqlstate: str, message: str = "boom") -> psycopg.Error:
    """The exception psycopg raises for ``sqlstate`` (its class carries the SQLSTATE)."""
    exc: psycopg.Error = pg_errors.lookup(sqlstate)(message)
    assert exc.sqlstate == sqlstate
    return exc


@pytest.mark.parametrize(
    ("sqlstate", "fault"),
    [
        ("08006", Fault.TRANSIENT),  # connection failure
        ("25006", Fault.TRANSIENT),  # read-only transaction: a standby after failover
        ("28P01", Fault.TRANSIENT),  # bad password
        ("3D000", Fault.TRANSIENT),  # no such database
        ("40001", Fault.TRANSIENT),  # serialization failure
        ("40P01", Fault.TRANSIENT),  # deadlock
        ("42P01", Fault.TRANSIENT),  # undefined table: not migrated
        ("42501", Fault.TRANSIENT),  # insufficient privilege
        ("53100", Fault.TRANSIENT),  # disk full
        ("53300", Fault.TRANSIENT),  # too many connections
        ("55P03", Fault.TRANSIENT),  # lock not available
        ("57014", Fault.TRANSIENT),  # statement timeout
        ("57P01", Fault.TRANSIENT),  # admin shutdown
        ("58030", Fault.TRANSIENT),  # I/O error
        ("XX000", Fault.TRANSIENT),  # internal error
        ("22003", Fault.ROW),  # numeric value out of range
        ("22021", Fault.ROW),  # NUL in text
        ("22P05", Fault.ROW),  # \u0000 in jsonb
        ("23502", Fault.ROW),  # not null
        ("23514", Fault.ROW),  # check
        ("54000", Fault.ROW),  # index row too large: a ProgrammingLimit, an OperationalError
        ("54001", Fault.ROW),  # statement too complex
        ("P0001", Fault.UNKNOWN),  # a trigger's RAISE
        ("21000", Fault.UNKNOWN),  # cardinality violation
        ("0A000", Fault.UNKNOWN),  # feature not supported
    ],
)
def test_server_errors_by_sqlstate_class(sqlstate: str, fault: Fault) -> None:
    exc = _server(sqlstate)
    assert classify(exc) is fault
    assert describe(exc) == f"{sqlstate}: boom"
    if fault is not Fault.TRANSIENT:
        assert reason_code(exc) == "rejected_by_database"


def test_program_limit_exceeded_is_an_operational_error_yet_a_rows_fault() -> None:
    """Why the class, not the type, decides: psycopg files 54000 under OperationalError."""
    exc = _server("54000")
    assert isinstance(exc, psycopg.OperationalError)
    assert classify(exc) is Fault.ROW


@pytest.mark.parametrize(
    ("exc", "fault"),
    [
        (OverflowError("int too big to convert"), Fault.ROW),
        (ValueError("bad value"), Fault.ROW),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), Fault.ROW),
        (TypeError("expected int"), Fault.ROW),
        (struct.error("argument out of range"), Fault.ROW),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), Fault.ROW),
        (psycopg.OperationalError("connection refused"), Fault.TRANSIENT),
        (psycopg.InterfaceError("the connection is closed"), Fault.TRANSIENT),
        (ConnectionResetError("reset by peer"), Fault.TRANSIENT),
        (KeyError("tenant_id"), Fault.UNKNOWN),
        (RuntimeError("?"), Fault.UNKNOWN),
    ],
)
def test_client_errors_by_type(exc: BaseException, fault: Fault) -> None:
    assert classify(exc) is fault
    code = reason_code(exc)
    assert code == {Fault.ROW: "unstorable_value"}.get(fault, "write_error")
    assert describe(exc).startswith(type(exc).__name__)


def test_a_reason_is_one_bounded_line() -> None:
    exc = _server("22021", "invalid byte sequence\nCONTEXT:  COPY usage_events " + "x" * 5_000)
    text = describe(exc)
    assert "\n" not in text
    assert len(text) <= 1_100
