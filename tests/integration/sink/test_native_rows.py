"""Native COPY rows land exactly the rows of the Python path, on the real database.

The truth is independent of the native code: each message is read by fastavro's
``schemaless_reader``, flattened by ``event_row`` and sent by psycopg's own binary COPY
adaptation into one table; the same message's native row is sent as it is into a twin table.
Both tables are then read back as PostgreSQL's text of each row (NUMERIC with its scale, jsonb
normalized, timestamps in UTC): they must be equal, message by message. The values returned
beside the row must be ``event_row``'s, to the type and the Decimal exponent. A message the
native reader refuses must be one the Python path cannot land either as it is (an ``integer``
column out of range, a NUL in a string): the worker then reads it with Python, as before.

Then the store: batches mixing native rows and Python rows, landed fresh and re-priced,
give ``usage_events``, ``usage_rollup_1m`` and ``usage_tenant_daily`` equal to their raw-row
truths (tests._rollup_truth, tests._daily_truth).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import BytesIO
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from fastavro import schemaless_reader
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg import sql

from tests import factories
from tests._daily_truth import check_daily
from tests._native_rows import PRICED, frame, native_reader
from tests._rollup_truth import check_rollups
from tests.integration.sink.conftest import settings_for
from tokenline.schemas import catalog
from tokenline.sink import native_sums
from tokenline.sink.batch import EVENT_COLUMNS, EVENT_KEY
from tokenline.sink.migrate import upgrade
from tokenline.sink.native_rows import (
    COPY_ROW,
    EVENT_TYPES,
    GUARD_ROW,
    KEEP,
    PRICING_ROW,
    PRICING_ROW_COLUMNS,
    complete,
)
from tokenline.sink.rollups import MINUTE, rollup_key
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore
from tokenline.sink.tenant_daily import QUARTER, quarter_key

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_INT4 = (-(2**31), 2**31 - 1)


def _fastavro(data: bytes) -> Any:
    schema = catalog().latest(PRICED)
    buf = BytesIO(data[10:])
    record = schemaless_reader(buf, schema.parsed, schema.parsed)
    assert buf.tell() == len(data) - 10
    return record


@pytest.fixture(scope="module")
def conn(plain_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(plain_url, autocommit=True) as conn:
        for name in ("tl_test_native", "tl_test_python"):
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {} AS SELECT *, 0::int AS n FROM usage_events WITH NO DATA"
                ).format(sql.Identifier(name))
            )
        yield conn


def _copy_statement(table: str, columns: tuple[str, ...]) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )


def _as_text(conn: psycopg.Connection[Any], table: str) -> list[str]:
    query = sql.SQL("SELECT ROW({})::text FROM {} ORDER BY event_id").format(
        sql.SQL(", ").join(map(sql.Identifier, (*EVENT_COLUMNS, "n"))), sql.Identifier(table)
    )
    return [r[0] for r in conn.execute(query)]


def _unstorable(row: dict[str, Any]) -> bool:
    """What binary COPY cannot take as it is: an int4 out of range, a NUL in a string."""
    for column, kind in zip(EVENT_COLUMNS, EVENT_TYPES, strict=True):
        value = row[column]
        if kind == "int4" and value is not None and not _INT4[0] <= value <= _INT4[1]:
            return True
        texts = [*value.keys(), *value.values()] if isinstance(value, dict) else [value]
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            return True
    return False


def test_the_model_types_are_the_migrated_tables(plain_url: str) -> None:
    """The store sends native rows only when these agree; a migrated database must agree."""
    with psycopg.connect(plain_url) as conn:
        found = dict(
            conn.execute(
                "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t "
                "ON t.oid = a.atttypid WHERE a.attrelid = 'usage_events'::regclass "
                "AND a.attnum > 0 AND NOT a.attisdropped"
            ).fetchall()
        )
    assert tuple(found[c] for c in EVENT_COLUMNS) == EVENT_TYPES


_ints = st.integers(-(2**63), 2**63 - 1)
_nul_text = st.text(max_size=6) | st.just("a\x00b")


@st.composite
def _records(draw: st.DrawFn) -> Any:
    record = draw(factories.priced_events)
    if draw(st.integers(0, 9)) == 0:  # now and then, what binary COPY cannot take as it is
        where = draw(st.sampled_from(["latency", "first_token", "nul", "tag"]))
        if where == "latency":
            record["event"]["latency_ms"] = draw(_ints)
        elif where == "first_token":
            record["event"]["time_to_first_token_ms"] = draw(_ints)
        elif where == "nul":
            record["event"]["project"] = draw(_nul_text)
        else:
            record["event"]["tags"] = {draw(_nul_text): draw(_nul_text)}
    if record["cost"] is not None and draw(st.booleans()):
        # Any scale the schema holds, negative costs, zero with a scale.
        record["cost"]["input"] = draw(
            st.decimals(
                min_value=Decimal("-" + "9" * 26),
                max_value=Decimal("9" * 26),
                places=draw(st.integers(0, 12)),
                allow_nan=False,
            )
        )
        record["cost"]["output"] = Decimal("0E-12")
    return record


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(_records(), min_size=1, max_size=8, unique_by=lambda r: r["event"]["event_id"])
)
def test_native_rows_are_the_python_paths_rows(
    conn: psycopg.Connection[Any], records: list[Any]
) -> None:
    messages = [frame(r) for r in records]
    native = native_reader().rows(messages)
    complete(row for row in native if row is not None)  # the values read later, if needed
    truth = [event_row(_fastavro(m)) for m in messages]
    landed = []
    for message, got, row in zip(messages, native, truth, strict=True):
        if got is None:
            event("refused")
            assert _unstorable(row), native_reader().refusal(message)
            continue
        assert not _unstorable(row)
        for column in KEEP:
            assert type(got[column]) is type(row[column]), column
            assert got[column] == row[column], column
            if isinstance(row[column], Decimal):
                assert got[column].as_tuple() == row[column].as_tuple(), column
        # The minute and quarter-hour it brings are the keys the pure functions compute.
        assert got[MINUTE] == rollup_key(row)[1]
        assert got[QUARTER] == quarter_key(row)[1]
        assert rollup_key(got) == rollup_key(row)
        assert quarter_key(got) == quarter_key(row)
        landed.append((got, row))
    conn.execute("TRUNCATE tl_test_native, tl_test_python")
    if not landed:
        return
    event("landed")
    # The whole row, and the re-pricing staging row.
    for columns, made in (
        (EVENT_COLUMNS, [got[COPY_ROW] for got, _ in landed]),
        (PRICING_ROW_COLUMNS, [got[PRICING_ROW] for got, _ in landed]),
        (EVENT_KEY, [got[GUARD_ROW] for got, _ in landed]),  # the guard row's columns
    ):
        conn.execute("TRUNCATE tl_test_native, tl_test_python")
        with conn.cursor() as cur, cur.copy(_copy_statement("tl_test_native", columns)) as copy:
            copy.write(_SIGNATURE + b"".join(made) + b"\xff\xff")
        values = itemgetter(*columns)
        types = dict(zip(EVENT_COLUMNS, EVENT_TYPES, strict=True)) | {"n": "int4"}
        with conn.cursor() as cur, cur.copy(_copy_statement("tl_test_python", columns)) as copy:
            copy.set_types([types[c] for c in columns])
            for _, row in landed:
                copy.write_row(values(row | {"n": 7}))
        assert _as_text(conn, "tl_test_native") == _as_text(conn, "tl_test_python")


def test_damaged_messages_are_refused() -> None:
    message = frame(factories.priced_event())
    rows = native_reader()
    assert rows.rows([message])[0] is not None
    for damaged in (message[:-1], message + b"\x00", b"\xc3\x01" + bytes(8) + message[10:]):
        assert rows.rows([damaged]) == [None]
        assert rows.refusal(damaged) is not None


def _priced(n: int, version: str, priced_s: int, *, unpriced: bool = False) -> Any:
    total = Decimal(n % 97 + 1) / Decimal(1000) * (2 if version == "v2" else 1)
    return factories.priced_event(
        event=factories.usage_event(
            event_id=uuid.UUID(int=n + 1),
            occurred_at=datetime(2026, 3, 29, 0, 30, tzinfo=UTC) + timedelta(minutes=7 * n),
            tenant_id=f"t{n % 3}",
        ),
        cost=None
        if unpriced
        else {
            "input": total,
            "cache_read": Decimal(0),
            "cache_write": Decimal(0),
            "output": Decimal("0.000000000001") * n,
            "reasoning": Decimal(0),
            "total": total + Decimal("0.000000000001") * n,
        },
        pricing_status="unpriced" if unpriced else "priced",
        pricing_version=version,
        priced_at=datetime(2026, 4, 1, tzinfo=UTC) + timedelta(seconds=priced_s),
    )


def _mixed(records: list[Any]) -> list[dict[str, Any]]:
    """Every other row native, the rest made by event_row (as for a refused message)."""
    native = native_reader().rows([frame(r) for r in records])
    out = []
    for n, (record, row) in enumerate(zip(records, native, strict=True)):
        assert row is not None
        out.append(row if n % 2 == 0 else event_row(record))
    return out


def test_the_store_lands_and_reprices_mixed_batches(new_database: Any) -> None:
    url = new_database()
    upgrade(settings_for(url, "postgresql"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenants (tenant_id, timezone) VALUES ('t1', 'Europe/Berlin'), "
            "('t2', 'Asia/Kathmandu')"
        )
    store = PostgresUsageStore(url)
    try:
        first = [_priced(n, "v1", 0, unpriced=n % 5 == 0) for n in range(60)]
        assert store.write(_mixed(first)) == []
        assert store.write(_mixed(first)) == []  # the same batch again changes nothing
        second = [_priced(n, "v2", 60) for n in range(30, 90)]
        assert store.write(_mixed(second)) == []
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE pricing_version = 'v2'), sum(cost_total) "
            "FROM usage_events"
        ).fetchone()
    expected = sum(
        (r["cost"]["total"] for r in [*first[:30], *second] if r["cost"] is not None), Decimal(0)
    )
    assert stored == (90, 60, expected)
    assert check_rollups(url).exact
    assert check_daily(url).exact


def test_the_store_sums_whole_native_batches_natively(new_database: Any) -> None:
    """Batches of native rows only: their sums come from the native reader, and still equal
    the raw rows' truths, fresh, delivered twice, re-priced and fresh again."""
    url = new_database()
    upgrade(settings_for(url, "postgresql"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO tenants (tenant_id, timezone) VALUES ('t1', 'Australia/Lord_Howe'), "
            "('t2', 'Asia/Kathmandu')"
        )

    def native(records: list[Any]) -> list[dict[str, Any]]:
        rows = native_reader().rows([frame(r) for r in records])
        assert all(row is not None for row in rows)
        made = [row for row in rows if row is not None]
        assert native_sums.sums(made) is not None  # the store will take the native sums
        return made

    store = PostgresUsageStore(url)
    try:
        first = [_priced(n, "v1", 0, unpriced=n % 5 == 0) for n in range(60)]
        assert store.write(native(first)) == []
        assert check_rollups(url).exact
        assert check_daily(url).exact
        assert store.write(native(first)) == []  # delivered again: nothing changes
        assert store.write(native([_priced(n, "v2", 60) for n in range(30, 90)])) == []
        assert store.write(native([_priced(n, "v1", 0) for n in range(90, 150)])) == []
        # A native batch holding one event twice (a producer's retry) and one event at two
        # times: the reader tells the store the ids are not distinct, and it de-duplicates.
        twice = [_priced(n, "v1", 0) for n in range(150, 160)]
        moved = _priced(151, "v1", 0)
        moved["event"]["occurred_at"] += timedelta(minutes=7)
        made = native([*twice, twice[3], moved])
        assert not native_sums.distinct(made)
        assert native_sums.distinct(native(twice))
        refused = store.write(made)
        assert [r.reason_code for r in refused] == ["duplicate_event_id"]
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM usage_events").fetchone() == (160,)
    assert check_rollups(url).exact
    assert check_daily(url).exact


def test_a_run_of_repricings_reads_what_each_batch_needs_and_lands_it_exactly(
    new_database: Any,
) -> None:
    """Re-pricing batches read lean, then with their pricing rows only, then whole.

    A lean batch of stored events is re-priced from its pricing rows alone (the rest of its
    values is never read), and the next batch is read with pricing rows. One of those holding
    new events too needs every value: it lands exactly, and the batch after it is read whole.
    """
    url = new_database()
    upgrade(settings_for(url, "postgresql"))
    reader = native_reader()
    store = PostgresUsageStore(url)
    try:
        assert store.write(reader.rows([frame(_priced(n, "v1", 0)) for n in range(40)])) == []
        lean = reader.rows([frame(_priced(n, "v2", 60)) for n in range(40)])
        assert all(row is not None and PRICING_ROW not in row for row in lean)
        assert store.write(lean) == []
        assert not any("tenant_id" in row for row in lean if row is not None)  # never needed
        mixed = reader.rows([frame(_priced(n, "v3", 120)) for n in range(20, 60)])
        assert all(row is not None and PRICING_ROW in row for row in mixed)
        assert not any("tenant_id" in row for row in mixed if row is not None)
        assert store.write(mixed) == []  # 20 stored, 20 new: the rest is read now
        whole = reader.rows([frame(_priced(n, "v4", 180, unpriced=True)) for n in range(50, 60)])
        assert all(row is not None and "tenant_id" in row for row in whole)
        assert store.write(whole) == []
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        versions = dict(
            conn.execute("SELECT pricing_version, count(*) FROM usage_events GROUP BY 1").fetchall()
        )
    assert versions == {"v2": 20, "v3": 30, "v4": 10}
    assert check_rollups(url).exact
    assert check_daily(url).exact
