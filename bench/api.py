"""HTTP API benchmark: tenant summary latency at a fixed request rate, and ingest throughput.

    source /tmp/devenv.sh   # or: eval "$(.venv/bin/tokenline dev up --env)"
    .venv/bin/python bench/api.py [--rows 1000000] [--rate 200] [--seconds 30]
                                  [--ingest-events 50000] [--batch 500] [--clients 8]
                                  [--keep-database | --loaded-database URL]

Summary: a fresh database (TimescaleDB when the server has it, else plain PostgreSQL) loaded
with N events exactly as ``bench/queries.py`` loads them (50 skewed tenants, four months,
15 models), then ``tokenline api serve`` (one uvicorn process) in its own process on loopback.
Requests for the largest tenant's October by provider, one every 1/rate s on a fixed schedule
(open loop: a slow answer does not delay the next request, and latency is measured from the
scheduled send time, so queueing counts), sent over 64 keep-alive connections with plain
asyncio streams (the generator runs on the same cores as the server; httpx would cost as much
CPU a request as the answer). The first second is warm-up and not counted. Printed: p50,
p90, p99, max, the status codes, and the goal (p99 ≤ 50 ms at 200 requests/s).
``--timeline FILE``: also write every summary request's send time (seconds from the start)
and latency, and every garbage collection of the load generator and of the server (the server
gets a ``sitecustomize`` that times them through ``gc.callbacks``), as CSV; the stalls (over
50 ms) are printed with the collections that ran just before them.
``--report-cache-s`` sets the server's report cache (default 5 s, as shipped; 0 runs the query
for every request, which measures the database instead).
Checked: every answer is 200 and its USD total equals ``tokenline report``'s.

Ingest: M events in batches of B sent by C concurrent clients to one API process, producing to
a fresh raw topic of the real broker; events/s from the first send to the last 202 (each 202
means Kafka acknowledged). Then the topic is read to its end offsets and every event id must be
there exactly once (goal ≥ 5,000 events/s per API process).

Timings never gate tests: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psycopg
from psycopg.rows import dict_row
from queries import (  # bench/queries.py: the same data as the query benchmark
    _connect,
    _drop_database,
    _fresh_database,
    _load,
    _pause_policies,
    _refresh,
    _timescale_available,
)

from tests._kafka import new_topic
from tests.integration.sink.test_api_ingest import _read_all
from tokenline.sink.api.keys import KeyStore
from tokenline.sink.report import ReportSpec, Selection, connect, run_report

ROOT = Path(__file__).resolve().parents[1]
TENANT = "t00"
IN_FLIGHT = 64
PARAMS = {"by": "provider", "from": "2026-10-01", "to": "2026-11-01"}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Times each collection of the server (a ``sitecustomize`` on its path, with --timeline).
_GC_LOGGER = """
import gc, os, time
_log = open(os.environ["TOKENLINE_BENCH_GC_LOG"], "a", buffering=1)
_began = [0.0]
def _timed(phase, info):
    if phase == "start":
        _began[0] = time.perf_counter()
    else:
        took = time.perf_counter() - _began[0]
        _log.write(f"gc-server,{_began[0]:.6f},{took * 1000:.3f},{info['generation']}\\n")
gc.callbacks.append(_timed)
"""


def _serve(
    url: str, port: int, bootstrap: str, topic: str, cache_s: float, gc_log: Path | None = None
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TOKENLINE_DATABASE_URL": url,
        "TOKENLINE_API_PORT": str(port),
        "TOKENLINE_API_RATE_LIMIT_PER_MINUTE": "10000000",
        "TOKENLINE_BOOTSTRAP_SERVERS": bootstrap,
        "TOKENLINE_RAW_TOPIC": topic,
        "TOKENLINE_LOG_LEVEL": "warning",
        "TOKENLINE_API_REPORT_CACHE_S": str(cache_s),
    }
    site = None
    if gc_log is not None:
        site = Path(tempfile.mkdtemp(prefix="bench-api-site-"))
        (site / "sitecustomize.py").write_text(_GC_LOGGER)
        env["PYTHONPATH"] = str(site)
        env["TOKENLINE_BENCH_GC_LOG"] = str(gc_log)
    process = subprocess.Popen([str(ROOT / ".venv/bin/tokenline"), "api", "serve"], env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                if site is not None:  # imported when the server started
                    shutil.rmtree(site)
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("tokenline api serve did not answer in 30 s")


def _key(url: str, scopes: tuple[str, ...], tenant: str = TENANT) -> str:
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        return KeyStore().create(conn, tenant_id=tenant, scopes=scopes).text


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p * len(ordered)) - 1))]


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends a prepared GET and reads the answer.

    The load generator shares the server's two cores: httpx costs 1-2 ms of CPU a request
    there, as much as the server's answer, so the summary requests go over plain asyncio
    streams (about a tenth of that); ingest keeps httpx.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


async def _open_loop(
    base: str, key: str, rate: int, seconds: int, timeline: list[tuple[float, float, int]]
) -> tuple[list[float], Counter[int], set[str]]:
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    totals: set[str] = set()
    url = httpx.URL(base)
    query = httpx.QueryParams(PARAMS)
    request = (
        f"GET /v1/tenants/{TENANT}/summary?{query} HTTP/1.1\r\nHost: {url.host}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n"
    ).encode()
    # At most IN_FLIGHT requests open at once, each on a connection of its own; a request
    # that waits for a connection still counts its latency from its schedule.
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(IN_FLIGHT):
        pool.put_nowait(_Connection(*await asyncio.open_connection(url.host, url.port)))
    # Warm every connection, the key (its Argon2id check is once per process), the database
    # pools and the report cache before the clock starts.
    for _ in range(2):
        connections = [await pool.get() for _ in range(IN_FLIGHT)]
        await asyncio.gather(*(connection.get(request) for connection in connections))
        for connection in connections:
            pool.put_nowait(connection)
    start = time.perf_counter() + 0.2
    warmup = rate  # the first second

    async def one(n: int, scheduled: float) -> None:
        connection = await pool.get()
        try:
            status, body = await connection.get(request)
        finally:
            pool.put_nowait(connection)
        elapsed = time.perf_counter() - scheduled
        timeline.append((scheduled, elapsed * 1000, status))
        if n >= warmup:
            latencies.append(elapsed * 1000)
            codes[status] += 1
            if status == 200:
                totals.add(json.loads(body)["totals"]["USD"]["cost_total"])

    # A task per request made at its send time, not all at the start: 12,000 waiting
    # coroutines made the generator's own collections take 170-200 ms each (--timeline).
    running: set[asyncio.Task[None]] = set()
    gc.freeze()  # what exists now is never garbage: collections need not walk it
    for n in range(rate * (seconds + 1)):
        scheduled = start + n / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        task = asyncio.create_task(one(n, scheduled))
        running.add(task)
        task.add_done_callback(running.discard)
    await asyncio.gather(*running)
    gc.unfreeze()
    while not pool.empty():
        pool.get_nowait().writer.close()
    return latencies, codes, totals


class _Collections:
    """The load generator's own garbage collections: (start, ms, generation)."""

    def __init__(self) -> None:
        self.found: list[tuple[float, float, int]] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            took = (time.perf_counter() - self._began) * 1000
            self.found.append((self._began, took, info["generation"]))


def _write_timeline(
    path: Path,
    requests: list[tuple[float, float, int]],
    client_gc: list[tuple[float, float, int]],
    server_log: Path,
) -> None:
    """The CSV of --timeline, and the stalls with the collections before them."""
    start = min(at for at, _, _ in requests)
    rows = [("request", at, ms, status) for at, ms, status in requests]
    rows += [("gc-client", at, ms, generation) for at, ms, generation in client_gc]
    for line in server_log.read_text().splitlines() if server_log.exists() else []:
        kind, at, ms, generation = line.split(",")
        rows.append((kind, float(at), float(ms), int(generation)))
    rows.sort(key=lambda row: row[1])
    with path.open("w") as out:
        out.write("kind,t_s,ms,detail\n")
        for kind, at, ms, detail in rows:
            out.write(f"{kind},{at - start:.6f},{ms:.3f},{detail}\n")
    collections = [row for row in rows if row[0] != "request"]
    for who in ("gc-client", "gc-server"):
        mine = sorted(ms for kind, at, ms, _ in collections if kind == who and at >= start)
        slowest = ", ".join(f"{m:.1f}" for m in mine[-3:]) or "-"
        print(f"  {who}: {len(mine):,} collections in the run, the slowest {slowest} ms")
    stalls = [(at, ms) for kind, at, ms, _ in rows if kind == "request" and ms > 50]
    print(f"  timeline: {path} ({len(stalls)} requests over 50 ms); the slowest:")
    for at, ms in sorted(stalls, key=lambda stall: -stall[1])[:12]:
        near = [
            f"{kind} gen {generation} {took:.1f} ms at {(began - at) * 1000:+.0f} ms"
            for kind, began, took, generation in collections
            if at - 1.0 <= began <= at + ms / 1000 and took >= 1.0
        ]
        print(
            f"    t={at - start:7.3f} s {ms:7.1f} ms  {'; '.join(near) or 'no collection >= 1 ms'}"
        )


def _summary_bench(
    url: str, base: str, rate: int, seconds: int, timeline: Path | None = None
) -> None:
    key = _key(url, ("read",))
    with connect(url) as conn:
        spec = ReportSpec(
            Selection.build((TENANT,), start=PARAMS["from"], end=PARAMS["to"]), ("provider",)
        )
        report = run_report(conn, spec)
    expected = str(report.totals["USD"].cost_total)
    print(
        f"  report source: {report.source}; {TENANT}'s October requests: "
        f"{sum(t.requests for t in report.totals.values()):,}"
    )
    requests: list[tuple[float, float, int]] = []
    collections = _Collections()
    if timeline is not None:
        gc.callbacks.append(collections)
    try:
        latencies, codes, totals = asyncio.run(_open_loop(base, key, rate, seconds, requests))
    finally:
        if timeline is not None:
            gc.callbacks.remove(collections)
    p50, p90, p99 = (_percentile(latencies, p) for p in (0.5, 0.9, 0.99))
    print(
        f"  summary at {rate}/s for {seconds} s: {len(latencies):,} requests, codes {dict(codes)}"
    )
    print(
        f"  latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {max(latencies):.1f}"
        f"  mean {statistics.fmean(latencies):.1f}   goal p99 <= 50 ms: "
        f"{'met' if p99 <= 50 else 'NOT met'}"
    )
    if timeline is not None:
        _write_timeline(timeline, requests, collections.found, _gc_log(timeline))
    assert totals == {expected}, f"API totals {totals} != report {expected}"
    print(f"  every answer's USD total equals tokenline report's: {expected}")


def _gc_log(timeline: Path) -> Path:
    return timeline.with_name(timeline.name + ".server-gc")


def _event(n: int) -> dict[str, Any]:
    return {
        "tenant_id": "t-ingest",
        "occurred_at": "2026-12-01T10:00:00Z",
        "provider": "openai",
        "operation": "chat",
        "request_model": "gpt-4o",
        "usage": {"input_tokens": 100 + n % 50, "output_tokens": 20},
        "usage_source": "reported",
        "latency_ms": 300,
        "success": True,
        "host": {"hostname": "bench"},
    }


async def _ingest(
    base: str, key: str, events: int, batch: int, clients: int
) -> tuple[float, list[str]]:
    ids: list[str] = []
    batches = [
        [_event(n) for n in range(i, min(i + batch, events))] for i in range(0, events, batch)
    ]
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        headers = {"Authorization": f"Bearer {key}"}

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                response = await client.post("/v1/usage", json=body, headers=headers)
                assert response.status_code == 202, response.text
                ids.extend(response.json()["event_ids"])

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - start, ids


def _ingest_bench(
    url: str, base: str, bootstrap: str, topic: str, args: argparse.Namespace
) -> None:
    key = _key(url, ("ingest",), "t-ingest")
    asyncio.run(
        _ingest(
            base, key, min(args.batch * args.clients, args.ingest_events), args.batch, args.clients
        )
    )
    before = len(_read_all(bootstrap, topic))  # the warm-up's
    seconds, ids = asyncio.run(_ingest(base, key, args.ingest_events, args.batch, args.clients))
    rate = len(ids) / seconds
    print(
        f"  ingest: {len(ids):,} events in {seconds:.2f} s = {rate:,.0f} events/s "
        f"(batches of {args.batch}, {args.clients} clients; goal >= 5,000: "
        f"{'met' if rate >= 5000 else 'NOT met'})"
    )
    landed = _read_all(bootstrap, topic)[before:]
    counts = Counter(str(event["event_id"]) for _, event in landed)
    once = counts == Counter(ids)
    print(f"  on the raw topic: {len(landed):,} records; every event exactly once: {once}")
    assert once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--ingest-events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--report-cache-s",
        type=float,
        default=5.0,
        help="TOKENLINE_API_REPORT_CACHE_S of the server (0: every request runs the query)",
    )
    parser.add_argument(
        "--timeline",
        type=Path,
        metavar="FILE",
        help="Write each summary request's send time and latency, and every garbage collection "
        "of the generator and the server, to FILE (CSV)",
    )
    parser.add_argument(
        "--keep-database",
        action="store_true",
        help="Keep the loaded database (its URL is printed) to measure it again",
    )
    parser.add_argument(
        "--loaded-database",
        metavar="URL",
        help="A database loaded by an earlier --keep-database run: measure it, load nothing",
    )
    parser.add_argument("--database-url", default=os.environ.get("TOKENLINE_TEST_DATABASE_URL"))
    parser.add_argument("--bootstrap", default=os.environ.get("TOKENLINE_TEST_KAFKA_BOOTSTRAP"))
    args = parser.parse_args()
    if not args.database_url or not args.bootstrap:
        raise SystemExit("give --database-url and --bootstrap (or the TOKENLINE_TEST_* variables)")
    storage = "timescaledb" if _timescale_available(args.database_url) else "postgresql"
    server = None
    if args.loaded_database:
        url = args.loaded_database
        with _connect(url) as conn:
            found = conn.execute("SELECT count(*) FROM usage_events").fetchone()
        print(f"[{storage}] {found[0] if found else 0:,} events, loaded before: {url}")
    else:
        print(f"[{storage}] {args.rows:,} events")
        url = _fresh_database(args.database_url, storage)  # type: ignore[arg-type]
    try:
        if not args.loaded_database:
            with _connect(url) as conn:
                if storage == "timescaledb":
                    _pause_policies(conn)
                load_s = _load(conn, args.rows)
                # Loaded past the sink, which keeps usage_tenant_daily as it lands events:
                # build it from them, as the migration does (bench/queries.py does the same).
                conn.execute("SELECT tokenline_rebuild_tenant_daily(NULL)")
                if storage == "timescaledb":
                    _refresh(conn)
                conn.execute("VACUUM ANALYZE")
            print(f"  loaded in {load_s:.0f} s")
            if args.keep_database:
                print(f"  kept: --loaded-database {url}")
        topic = new_topic(args.bootstrap, "bench-api-raw", partitions=4)
        port = _free_port()
        gc_log = _gc_log(args.timeline) if args.timeline else None
        if gc_log is not None:
            gc_log.unlink(missing_ok=True)
        server = _serve(url, port, args.bootstrap, topic, args.report_cache_s, gc_log)
        print(f"  tokenline api serve: 1 process, report cache {args.report_cache_s} s")
        base = f"http://127.0.0.1:{port}"
        _summary_bench(url, base, args.rate, args.seconds, args.timeline)
        _ingest_bench(url, base, args.bootstrap, topic, args)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not (args.keep_database or args.loaded_database):
            _drop_database(args.database_url, url)


if __name__ == "__main__":
    main()
