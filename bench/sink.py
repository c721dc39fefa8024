"""Sink benchmark: priced events from Kafka into usage_events, against a bare binary COPY.

    eval "$(.venv/bin/tokenline dev up --env)"
    .venv/bin/python bench/sink.py [--rows 1000000] [--batch 5000] [--storage postgresql]
        [--decode rows|native|python|both|all] [--fillfactor N]

One run, one fresh database migrated to head (plain PostgreSQL, or ``--storage timescaledb``
for the hypertable path), the same N distinct events:

- ceiling: one binary COPY of the rows, already flattened in memory, into ``usage_events``
  (same table, same indexes, emptied first), the fastest of the run's (three at the start, one
  in each cycle);
- psql ``\\copy`` of the same rows as CSV, for reference;
- bare UPDATE, for reference: after a checkpoint, the stored rows' pricing columns set by one
  ``UPDATE ... FROM`` joined on the key, a transaction a batch, from the key and pricing columns
  staged in the server's memory beforehand: what any re-pricing by UPDATE costs the server,
  with no rule, sum, aggregate or client;
- store only: ``PostgresUsageStore.write`` of the same flattened rows from memory, in batches
  (one transaction each): fresh, then every row re-priced (all conflict);
- fresh: ``SinkWorker`` landing them from a 4-partition topic (Avro decoding, flattening,
  batches, one transaction per batch, offset commits included); "steady" excludes the consumer
  group join and the first batch;
- re-pricing: the same events with a newer pricing version, so every row conflicts.

The worker's two passes run as a cycle from emptied tables, ``--repeat`` times (3), each cycle
after a COPY of its own: each figure is its best cycle, as the ceiling is its best COPY, and
every cycle's ratios, to the best ceiling and to its own (taken within a minute of its passes),
and its re-pricing's to its own bare UPDATE, are printed after the table (the machine's speed
moves a single pass by a fifth, and moves it between the first ceilings and the last pass).

``--fillfactor N`` sets ``usage_events``'s fillfactor after the migrations (revision 0008 sets
50, so that a re-priced row's new version fits in its page: a HOT update), to measure the
trade: ``--fillfactor 100`` packs pages full, as before revision 0008.

The worker runs with native COPY rows (``--decode rows``, the default: each message read by
``tokenline_native`` straight into its binary COPY row, see ``tokenline.sink.native_rows``),
with the native batch decoder and ``event_row`` dicts (``native``: the path before native
rows), and/or with the Python reader alone (``python``); ``both`` runs ``native`` then
``rows``, ``all`` the three, one after the other, each from an emptied table.

Printed: rows/s and the ratio to the ceiling (issue 15: fresh ≥ 0.6, re-pricing ≥ 0.4); µs
a row; and the CPU µs a row of this process (all its threads: the worker's, the decoder's,
librdkafka's) and of the machine's PostgreSQL processes (when the server runs here), so the
time a path spends in Python, in PostgreSQL and overlapped can be told apart: CPU ≈ µs/row
means the process's work and the server's alternate; less, that they overlap.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from confluent_kafka import Producer
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tests._kafka import new_topic
from tests.factories import EPOCH, priced_event, usage_event
from tokenline.schemas import AvroCodec
from tokenline.sink.batch import EVENT_COLUMNS
from tokenline.sink.migrate import upgrade
from tokenline.sink.rows import event_row
from tokenline.sink.settings import SinkSettings, StorageChoice
from tokenline.sink.store import PostgresUsageStore
from tokenline.sink.store_sql import PRICING_COLUMNS, PRICING_STAGING_COLUMNS
from tokenline.sink.worker import SinkWorker

if TYPE_CHECKING:
    from collections.abc import Callable

_T = TypeVar("_T")


def _event(n: int, version: str, priced_s: int) -> Any:
    # v2 doubles every cost: the sink replaces a stored pricing only when the result differs.
    total = Decimal(n % 997 + 1) / Decimal(1000) * (2 if version == "v2" else 1)
    return priced_event(
        event=usage_event(
            event_id=uuid.UUID(int=n + 1),
            occurred_at=EPOCH + timedelta(milliseconds=n),
            tenant_id=f"t{n % 50}",
        ),
        cost={
            "input": total,
            "cache_read": Decimal(0),
            "cache_write": Decimal(0),
            "output": Decimal(0),
            "reasoning": Decimal(0),
            "total": total,
        },
        pricing_version=version,
        priced_at=EPOCH + timedelta(seconds=priced_s),
    )


def _produce(bootstrap: str, topic: str, rows: int, version: str, priced_s: int) -> None:
    codec = AvroCodec[Any]("tokenline.PricedUsageEvent")
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20})
    for n in range(rows):
        value = codec.encode(_event(n, version, priced_s))
        while True:
            try:
                producer.produce(topic, value=value, partition=n % 4)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(120) == 0


def _fresh_database(server_url: str, storage: StorageChoice = "postgresql") -> str:
    name = f"tl_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(SinkSettings(database_url=SecretStr(url), storage=storage))
    return url


#: What the sink writes: emptied together, so a "fresh" path finds no guard row, rollup or
#: daily row left by an earlier path (a guard row left behind would send every fresh batch
#: down the conflict path).
_SINK_TABLES = (
    "usage_events",
    "usage_event_ids",
    "usage_event_duplicates",
    "usage_rollup_1m",
    "usage_tenant_daily",
)


def _empty(url: str) -> None:
    tables = sql.SQL(", ").join(map(sql.Identifier, _SINK_TABLES))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(tables))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(tables))
        conn.execute("CHECKPOINT")


def _types(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """``usage_events``'s column types by name, for binary COPY."""
    found = conn.execute(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t "
        "ON t.oid = a.atttypid WHERE a.attrelid = 'usage_events'::regclass AND a.attnum > 0"
    ).fetchall()
    return dict(found)


def _ceiling(url: str, tuples: list[tuple[Any, ...]]) -> float:
    with psycopg.connect(url) as conn:
        types = _types(conn)
        statement = sql.SQL("COPY usage_events ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, EVENT_COLUMNS))
        )
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy(statement) as copy:
            copy.set_types([types[c] for c in EVENT_COLUMNS])
            for values in tuples:
                copy.write_row(values)
        conn.commit()
        return time.perf_counter() - start


#: The plainest re-pricing PostgreSQL can do: the staged key and pricing columns, one UPDATE
#: joined by the key. No rule, no sums, no aggregate: a reference for what any UPDATE costs.
_STAGED = sql.SQL(", ").join(map(sql.Identifier, PRICING_STAGING_COLUMNS))
_BARE_SETUP = (
    sql.SQL("CREATE TEMP TABLE bare_all AS SELECT 0 AS batch, {} FROM usage_events WITH NO DATA"),
    sql.SQL(
        "CREATE TEMP TABLE bare_pricing ON COMMIT DELETE ROWS AS SELECT {} FROM usage_events "
        "WITH NO DATA"
    ),
)
_BARE_COPY = sql.SQL("COPY bare_all (batch, {}) FROM STDIN (FORMAT BINARY)")
_BARE_STAGE = sql.SQL("INSERT INTO bare_pricing SELECT {} FROM bare_all WHERE batch = %s")
_BARE_UPDATE = sql.SQL(
    "UPDATE usage_events AS e SET {} FROM bare_pricing AS s "
    "WHERE e.event_id = s.event_id AND e.occurred_at = s.occurred_at"
).format(
    sql.SQL(", ").join(sql.SQL("{0} = s.{0}").format(sql.Identifier(c)) for c in PRICING_COLUMNS)
)


def _bare_update(
    url: str, staged: list[tuple[Any, ...]], batch: int
) -> tuple[float, tuple[float, float]]:
    """Seconds to re-price the stored rows by :data:`_BARE_UPDATE`, a transaction a batch, and
    the CPU seconds in them (this process's, PostgreSQL's).

    The staged rows are in the server's memory first (a temporary table, indexed by batch), so
    the time is the server's alone: each batch is staged by ``INSERT ... SELECT`` (the worker
    sends its staging by COPY while it reads the next batch).
    """
    with psycopg.connect(url) as conn:
        conn.execute("SET temp_buffers = '1GB'")  # the staged rows stay in the backend's memory
        types = ["int4", *(_types(conn)[c] for c in PRICING_STAGING_COLUMNS)]
        for statement in _BARE_SETUP:
            conn.execute(statement.format(_STAGED))
        with conn.cursor() as cur, cur.copy(_BARE_COPY.format(_STAGED)) as copy:
            copy.set_types(types)
            for n, values in enumerate(staged):
                copy.write_row((n // batch, *values))
        conn.execute("CREATE INDEX ON bare_all (batch)")
        conn.execute("ANALYZE bare_all")
        conn.execute("SET enable_hashjoin = off")  # one index lookup a row, as the sink's
        conn.execute("SET enable_mergejoin = off")
        conn.commit()
        stage = _BARE_STAGE.format(_STAGED)
        updated = 0
        mine, server = sum(os.times()[:2]), _server_cpu()
        start = time.perf_counter()
        for number in range(-(-len(staged) // batch)):
            conn.execute(stage, (number,))
            updated += conn.execute(_BARE_UPDATE).rowcount
            conn.commit()
        elapsed = time.perf_counter() - start
        cpu = (sum(os.times()[:2]) - mine, _server_cpu() - server)
    assert updated == len(staged), updated
    return elapsed, cpu


def _psql_copy(url: str, rows: int) -> float:
    columns = ", ".join(EVENT_COLUMNS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.csv"
        # A query, not the table: on TimescaleDB the rows are in the hypertable's chunks.
        statement = f"COPY (SELECT {columns} FROM usage_events) TO STDOUT CSV"
        with (
            psycopg.connect(url) as conn,
            path.open("wb") as out,
            conn.cursor() as cur,
            cur.copy(statement) as copy,
        ):
            for chunk in copy:
                out.write(chunk)
        _empty(url)
        start = time.perf_counter()
        done = subprocess.run(  # noqa: PLW1510
            ["psql", url, "-q", "-c", f"\\copy usage_events ({columns}) FROM '{path}' CSV"],
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    _check(url, rows)
    return elapsed


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM usage_events").fetchone()
    return int(row[0]) if row else 0


def _check(url: str, rows: int, version: str | None = None) -> None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE pricing_version = %s) FROM usage_events",
            (version,),
        ).fetchone()
    assert row is not None
    assert row[0] == rows, row
    assert version is None or row[1] == rows, row


def _server_cpu() -> float:
    """CPU seconds of this machine's PostgreSQL processes so far (0 where none runs here).

    Live processes' own time plus what the postmasters reaped from exited backends
    (``cutime``/``cstime``), so a connection closed inside the span still counts.
    """
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # exited meanwhile
            continue
        ticks += int(fields[11]) + int(fields[12])
        if "postgres -D" in command:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _timed(fn: Callable[..., _T], *args: Any) -> tuple[_T, tuple[float, float]]:
    """``fn(*args)`` and the CPU seconds (this process's, all threads; PostgreSQL's) in it."""
    before, server = sum(os.times()[:2]), _server_cpu()
    result = fn(*args)
    mine = sum(os.times()[:2]) - before
    time.sleep(0.5)  # a backend whose connection fn closed exits, and is reaped, first
    return result, (mine, _server_cpu() - server)


def _store(url: str, rows: list[dict[str, Any]], batch: int) -> float:
    """Seconds for PostgresUsageStore to land ``rows`` (already flattened) in batches."""
    store = PostgresUsageStore(url)
    store.write([])  # connect outside the timing, like the ceiling's connection
    start = time.perf_counter()
    for first in range(0, len(rows), batch):
        assert store.write(rows[first : first + batch]) == []
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def _sink(
    bootstrap: str, url: str, topic: str, rows: int, batch: int, decode: str
) -> tuple[float, float]:
    """Return (wall seconds incl. group join, steady rows/s after the first batch)."""
    settings = SinkSettings(
        database_url=SecretStr(url),
        bootstrap_servers=bootstrap,
        group_id=f"bench-{uuid.uuid4().hex[:8]}",
        priced_topic=topic,
        metrics_port=0,
        batch_max_rows=batch,
        batch_max_ms=1000,
    )
    worker = SinkWorker(settings)
    if worker._codec.native_decoder is None or worker._native_rows is None:
        raise SystemExit("tokenline_native is not installed: bash deploy/local/native.sh")
    if decode != "rows":  # a benchmark's swap: every message through the decoder and event_row
        worker._native_rows = None
    if decode == "python":  # and the same codec without the native decoder
        worker._codec = AvroCodec[Any]("tokenline.PricedUsageEvent", native=False)
    landed = worker.metrics.rows_landed.labels("usage_events")
    thread = threading.Thread(target=worker.run, daemon=True)
    start = time.perf_counter()
    thread.start()
    first_at = first_rows = None
    while (done := landed._value.get()) < rows:  # a benchmark's peek
        if first_at is None and done > 0:
            first_at, first_rows = time.perf_counter(), done
        time.sleep(0.02)  # the bench's own peek: rare enough to cost the worker nothing
    end = time.perf_counter()
    worker.stop()
    thread.join(30)
    assert first_at is not None
    assert first_rows is not None
    steady = (rows - first_rows) / (end - first_at) if end > first_at else float("nan")
    return end - start, steady


class _Pass(NamedTuple):
    """One pass of the worker: wall seconds (group join included), steady rows/s, CPU seconds
    (this process's, PostgreSQL's)."""

    wall: float
    steady: float
    cpu: tuple[float, float]


class _Cycle(NamedTuple):
    """The cycle's own ceiling COPY and bare UPDATE (seconds), then the worker's fresh and
    re-pricing passes."""

    ceiling: tuple[float, tuple[float, float]]
    bare: tuple[float, tuple[float, float]]
    fresh: _Pass
    reprice: _Pass


def _cycle(
    bootstrap: str,
    url: str,
    topics: tuple[str, str],
    tuples: list[tuple[Any, ...]],
    staged: list[tuple[Any, ...]],
    batch: int,
    decode: str,
) -> _Cycle:
    """A ceiling COPY and the bare UPDATE of its rows, then from emptied tables the worker
    lands the fresh topic and re-prices every row: each pass's ratio to a ceiling taken within
    a minute of it, and the re-pricing's to what a bare UPDATE cost then.
    """
    rows = len(tuples)
    _empty(url)
    ceiling = _timed(_ceiling, url, tuples)
    # Re-pricing history meets pages last changed many checkpoints ago: each page's first change
    # writes its whole image to the WAL, as in the worker's long runs.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    bare = _bare_update(url, staged, batch)
    _check(url, rows, "v2")
    _empty(url)
    passes = []
    for topic, version in zip(topics, ("v1", "v2"), strict=True):
        (wall, steady), cpu = _timed(_sink, bootstrap, url, topic, rows, batch, decode)
        _check(url, rows, version)
        passes.append(_Pass(wall, steady, cpu))
    return _Cycle(ceiling, bare, *passes)


def _best(
    decode: str, rows: int, cycles: list[_Cycle]
) -> list[tuple[str, float, tuple[float, float] | None]]:
    """Each figure's best cycle, as the ceiling is its best COPY (CPU: that cycle's)."""
    fresh = max((c.fresh for c in cycles), key=lambda p: p.steady)
    reprice = max((c.reprice for c in cycles), key=lambda p: p.steady)
    bare_s, bare_cpu = min(c.bare for c in cycles)
    return [
        ("bare UPDATE of the pricing columns (reference)", rows / bare_s, bare_cpu),
        (f"sink {decode}, fresh events (wall, incl. join)", rows / fresh.wall, fresh.cpu),
        (f"sink {decode}, fresh events (steady)", fresh.steady, None),
        (f"sink {decode}, re-pricing, all conflict (wall)", rows / reprice.wall, reprice.cpu),
        (f"sink {decode}, re-pricing, all conflict (steady)", reprice.steady, None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="worker cycles (fresh, then re-pricing) per decode"
    )
    parser.add_argument("--storage", choices=["postgresql", "timescaledb"], default="postgresql")
    parser.add_argument(
        "--fillfactor", type=int, default=None, help="usage_events's, instead of the head's 50"
    )
    parser.add_argument(
        "--decode", choices=["rows", "native", "python", "both", "all"], default="rows"
    )
    args = parser.parse_args()
    bootstrap = os.environ.get("TOKENLINE_TEST_KAFKA_BOOTSTRAP")
    server = os.environ.get("TOKENLINE_TEST_DATABASE_URL")
    if not bootstrap or not server:
        raise SystemExit('run: eval "$(.venv/bin/tokenline dev up --env)" first')
    rows = args.rows
    url = _fresh_database(server, args.storage)
    if args.fillfactor is not None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER TABLE usage_events SET (fillfactor = {})").format(
                    sql.Literal(args.fillfactor)
                )
            )
    with psycopg.connect(url) as conn:
        options = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'usage_events'::regclass"
        ).fetchone()
    print(
        f"{rows:,} priced events, batches of {args.batch:,}, {args.storage}, "
        f"usage_events {options[0] if options and options[0] else 'default options'}",
        flush=True,
    )

    fresh_topic = new_topic(bootstrap, "bench-priced", 4)
    repriced_topic = new_topic(bootstrap, "bench-repriced", 4)
    _produce(bootstrap, fresh_topic, rows, "v1", 1)
    _produce(bootstrap, repriced_topic, rows, "v2", 3600)
    values = itemgetter(*EVENT_COLUMNS)
    flat = [event_row(_event(n, "v1", 1)) for n in range(rows)]
    tuples = [values(row) for row in flat]

    # The ceiling: the fastest COPY of the run, of these three and of every cycle's own (a single
    # one moved by a third between runs on a quiet machine), so a ratio to it errs on the low
    # side.
    ceilings = []
    for _ in range(3):
        _empty(url)
        ceilings.append(_timed(_ceiling, url, tuples))
        _check(url, rows)
    psql_s = _psql_copy(url, rows)
    _empty(url)
    store_fresh_s, store_fresh_cpu = _timed(_store, url, flat, args.batch)
    _check(url, rows, "v1")
    for row in flat:
        row["pricing_version"] = "v2"
        row["priced_at"] += timedelta(hours=1)
        row["cost_input"] *= 2
        row["cost_total"] *= 2
    store_reprice_s, store_reprice_cpu = _timed(_store, url, flat, args.batch)
    _check(url, rows, "v2")
    staged = [itemgetter(*PRICING_STAGING_COLUMNS)(row) for row in flat]
    del flat
    spreads: list[tuple[str, list[_Cycle]]] = []
    sinks: list[tuple[str, float, tuple[float, float] | None]] = []
    modes = {"both": ["native", "rows"], "all": ["python", "native", "rows"]}
    for decode in modes.get(args.decode, [args.decode]):
        cycles = [
            _cycle(
                bootstrap, url, (fresh_topic, repriced_topic), tuples, staged, args.batch, decode
            )
            for _ in range(args.repeat)
        ]
        sinks += _best(decode, rows, cycles)
        spreads.append((decode, cycles))
        ceilings += [c.ceiling for c in cycles]

    ceiling_s, ceiling_cpu = min(ceilings)
    ceiling = rows / ceiling_s
    # µs/row: wall time; CPU: this process's (all threads) and PostgreSQL's, µs a row
    print(f"{'path':50} {'rows/s':>10} {'÷ ceiling':>10} {'µs/row':>7} {'CPU':>6} {'PG CPU':>7}")
    results = [
        ("ceiling: binary COPY from memory", ceiling, ceiling_cpu),
        ("psql \\copy CSV (reference)", rows / psql_s, None),
        ("store only, fresh events (rows in memory)", rows / store_fresh_s, store_fresh_cpu),
        ("store only, re-pricing, all conflict", rows / store_reprice_s, store_reprice_cpu),
        *sinks,
    ]
    for name, rate, cpu in results:
        shown = "" if cpu is None else f"{cpu[0] * 1e6 / rows:6.1f} {cpu[1] * 1e6 / rows:7.1f}"
        print(f"{name:50} {rate:10,.0f} {rate / ceiling:10.2f} {1e6 / rate:7.1f} {shown}")
    for decode, cycles in spreads:
        print(
            f"sink {decode}, each cycle (steady ÷ the best ceiling; ÷ the cycle's own; "
            "the bare UPDATE and the re-pricing ÷ the cycle's bare UPDATE):"
        )
        for c in cycles:
            own, bare = rows / c.ceiling[0], rows / c.bare[0]
            fresh, reprice = c.fresh.steady, c.reprice.steady
            print(
                f"  ceiling {1e6 / own:.1f} µs/row; fresh {fresh / ceiling:.2f}; "
                f"{fresh / own:.2f}; re-pricing {reprice / ceiling:.2f}; {reprice / own:.2f}; "
                f"bare UPDATE {1e6 / bare:.1f} µs/row, {bare / ceiling:.2f}; {bare / own:.2f}; "
                f"re-pricing ÷ bare {reprice / bare:.2f}"
            )
    with psycopg.connect(server, autocommit=True) as conn:
        name = make_url(url).database or ""
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
