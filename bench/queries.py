"""Query benchmark: a tenant's monthly report from the aggregates against the same from raw rows.

    eval "$(.venv/bin/tokenline dev up --env)"
    .venv/bin/python bench/queries.py [--rows 10000000] [--storage auto|timescaledb|postgresql|both]

Per storage path, one fresh database migrated to head, 50 tenants (skewed: the largest has about
14% of the rows) in different billing timezones, and N usage events loaded server-side with
``INSERT ... SELECT FROM generate_series``: 15 models over 6 providers (each of a tenant's three
projects calls three of them, and 1% of calls a model without a price), tokens in every bucket,
NUMERIC costs at 12 decimals, about 1.5% unpriced (cost NULL), spread evenly over four UTC months
(2026-07 to 2026-10), in time order like a live feed. On TimescaleDB the background policies
are paused and their work is done explicitly: the continuous aggregates are refreshed in
dependency order; then VACUUM ANALYZE on both paths.

The events are loaded past the sink, so ``usage_tenant_daily`` (which the sink keeps as it
lands events) is then built from them with ``tokenline_rebuild_tenant_daily(NULL)``, as the
migration does; its time is printed.

Timed, each as the median of 7 runs after a warm-up (psycopg, ``prepare_threshold=None``), and
checked to give exactly the same rows as its raw counterpart (else exit 1):

- a tenant's calendar month in its own timezone (Asia/Kolkata, +05:30) by provider and model:
  requests, unpriced calls, tokens per bucket and cost, from ``usage_tenant_daily`` and from
  ``usage_events`` (the timezone read by a scalar subquery);
- ``tenant_monthly_totals`` for the same month against the raw totals;
- the tenant's local days by model, as sink/QUERIES.md has it (raw: timezone from a join);
- every tenant's calendar month, each in its own timezone, by tenant, provider and model;
- ``tokenline report --by model,day`` for the month: the report layer's SQL over each source.

Each line says whether it meets the goal: at most 50 ms from the aggregate, and 50 times
faster than the raw query.

With ``--compress`` on TimescaleDB, the raw side is timed again after every chunk is moved to the
columnstore, as the compression policy would leave it after ``compress_after_days``.

Printed: load, refresh and vacuum times, relation sizes, ms per query and the ratio raw ÷ aggregate.
"""

# The SQL is assembled from module constants only; values go as parameters:

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tokenline.sink.migrate import upgrade
from tokenline.sink.report.queries import Query, report_query
from tokenline.sink.report.selection import ReportSpec, Selection
from tokenline.sink.settings import SinkSettings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

Storage = Literal["timescaledb", "postgresql"]


def _next_month_of(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


START = date(2026, 7, 1)  # four UTC months of events: [START, END)
END = date(2026, 11, 1)
MONTH = date(2026, 10, 1)  # the reported month
TENANT = "t00"  # the largest tenant
TENANTS = 50
TIMEZONES = (
    "Asia/Kolkata",
    "America/New_York",
    "UTC",
    "Europe/Berlin",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "America/Los_Angeles",
    "Asia/Tokyo",
)
CHUNK_ROWS = 500_000
GOAL_MS = 50  # every report from the aggregates at most this, and GOAL_RATIO times the raw
GOAL_RATIO = 50
RUNS = 7

# (provider, canonical model, reported model, USD per 1M tokens: input, cache read, cache write,
# output, reasoning, or None: a model the price table does not know yet, always unpriced).
_Prices = tuple[str, str, str, str, str] | None
MODELS: tuple[tuple[str, str | None, str, _Prices], ...] = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", ("0.15", "0.075", "0", "0.60", "0.60")),
    ("anthropic", "claude-sonnet-4", "claude-sonnet-4-20250514", ("3", "0.30", "3.75", "15", "15")),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06", ("2.50", "1.25", "0", "10", "10")),
    ("gemini", "gemini-2.5-flash", "gemini-2.5-flash", ("0.30", "0.075", "0", "2.50", "2.50")),
    ("anthropic", "claude-haiku-3.5", "claude-3-5-haiku-20241022", ("0.80", "0.08", "1", "4", "4")),
    ("openai", "o3", "o3-2025-04-16", ("2", "0.50", "0", "8", "8")),
    (
        "bedrock",
        "claude-sonnet-4",
        "us.anthropic.claude-sonnet-4-v1:0",
        ("3", "0.3", "3.75", "15", "15"),
    ),
    ("azure", "gpt-4o", "prod-gpt4o-eastus", ("2.50", "1.25", "0", "10", "10")),
    ("gemini", "gemini-2.5-pro", "gemini-2.5-pro", ("1.25", "0.31", "0", "10", "10")),
    ("openai", "gpt-4.1", "gpt-4.1-2025-04-14", ("2", "0.50", "0", "8", "8")),
    ("mistral", "mistral-small", "mistral-small-2503", ("0.10", "0", "0", "0.30", "0")),
    (
        "bedrock",
        "llama-3.3-70b",
        "meta.llama3-3-70b-instruct-v1:0",
        ("0.72", "0", "0", "0.72", "0"),
    ),
    ("mistral", "mistral-large", "mistral-large-2411", ("2", "0", "0", "6", "0")),
    ("anthropic", "claude-opus-4", "claude-opus-4-20250514", ("15", "1.50", "18.75", "75", "75")),
    ("openai", None, "gpt-5-preview", None),
)
REASONING_MODELS = frozenset({"o3", "gemini-2.5-pro", "gemini-2.5-flash"})

# u(k): a deterministic pseudo-random number in [0, 1) for row g and stream k.
_U = "(abs(hashint8extended(g, {}) %% 1000000)::float8 / 1000000)"
_COST = "CASE WHEN t.priced THEN (t.{tokens} * t.{price})::numeric(38,12) END"
_COSTS = {
    "cost_input": ("input_t", "p_in"),
    "cost_cache_read": ("cache_read", "p_cr"),
    "cost_cache_write": ("cache_write", "p_cw"),
    "cost_output": ("output", "p_out"),
    "cost_reasoning": ("reasoning", "p_rs"),
}

# Rows %(first)s..%(last)s of %(rows)s, spread evenly over [%(start)s, %(end)s) in time order;
# tenants skewed (t00 the largest), models skewed, ~2% failures, ~1.5% unpriced.
LOAD_SQL = f"""
INSERT INTO usage_events (
    event_id, occurred_at, tenant_id, project, user_id, team, attributed_team, provider,
    operation, request_model, response_model, canonical_model, input_tokens,
    cache_read_input_tokens, cache_write_input_tokens, output_tokens, reasoning_tokens,
    usage_source, streamed, latency_ms, time_to_first_token_ms, success, error_type, http_status,
    sdk_version, sdk_language, producer_id, producer_seq, pricing_status, unpriced_reason,
    {", ".join(_COSTS)}, cost_total, currency, price_entry_id, pricing_version, priced_at,
    source_topic, source_partition, source_offset)
SELECT
    ('00000000-0000-7000-8000-' || lpad(to_hex(t.g), 12, '0'))::uuid, t.occurred_at, t.tenant_id,
    t.tenant_id || '-p' || t.project_n, t.tenant_id || '-u' || t.user_n,
    t.tenant_id || '-team' || t.project_n %% 2, CASE WHEN t.project_n = 2 THEN 'platform' END,
    t.provider, 'chat', t.reported, t.reported, t.canonical, t.input_t, t.cache_read,
    t.cache_write, t.output, t.reasoning, 'provider', t.streamed, t.latency_ms,
    CASE WHEN t.streamed THEN t.latency_ms / 5 END, t.success,
    CASE WHEN NOT t.success THEN 'RateLimitError' END, CASE WHEN t.success THEN 200 ELSE 429 END,
    '0.4.0', 'python', ('00000000-0000-4000-8000-' || lpad(t.tenant_n::text, 12, '0'))::uuid,
    t.g, CASE WHEN t.priced THEN 'priced' ELSE 'unpriced' END,
    CASE WHEN NOT t.priced THEN 'no_price_entry' END,
    {", ".join(_COST.format(tokens=n, price=p) for n, p in _COSTS.values())},
    CASE WHEN t.priced THEN ({" + ".join(f"t.{n} * t.{p}" for n, p in _COSTS.values())}
        )::numeric(38,12) END,
    'USD', CASE WHEN t.priced THEN t.provider || '/' || t.canonical || '@2026-07' END,
    'bench-2026-07', t.occurred_at + INTERVAL '2 seconds', 'llm-usage.priced', t.g %% 12, t.g
FROM (
    SELECT s.*, m.provider, m.canonical, m.reported, m.p_in, m.p_cr, m.p_cw, m.p_out, m.p_rs,
        m.p_in IS NOT NULL AND s.u_unpriced >= 0.005 AS priced,
        CASE WHEN s.u_cache < 0.35 THEN floor(s.input_t * 4 * s.u_cache)::bigint
             ELSE 0 END AS cache_read,
        CASE WHEN s.u_cache > 0.95 THEN floor(s.input_t * 20 * (s.u_cache - 0.95))::bigint
             ELSE 0 END AS cache_write,
        CASE WHEN m.reasons THEN floor(s.output * 3 * s.u_reasoning)::bigint
             ELSE 0 END AS reasoning
    FROM (
        SELECT g,
            %(start)s::timestamptz + (%(end)s::timestamptz - %(start)s::timestamptz)
                * ((g - 1 + {_U.format(1)}) / %(rows)s) AS occurred_at,
            floor({TENANTS} * {_U.format(2)} ^ 2)::int AS tenant_n,
            't' || lpad(floor({TENANTS} * {_U.format(2)} ^ 2)::text, 2, '0') AS tenant_id,
            floor(3 * {_U.format(4)} ^ 1.5)::int AS project_n,
            {_U.format(3)} AS u_model,
            floor(200 * {_U.format(5)} ^ 2)::int AS user_n,
            (20 + floor(6000 * {_U.format(6)} ^ 3))::bigint AS input_t,
            {_U.format(7)} AS u_cache,
            {_U.format(8)} AS u_unpriced,
            (5 + floor(2000 * {_U.format(9)} ^ 2))::bigint AS output,
            {_U.format(10)} < 0.6 AS streamed,
            (150 + floor(9000 * {_U.format(11)} ^ 2))::bigint AS latency_ms,
            {_U.format(12)} >= 0.02 AS success,
            {_U.format(13)} AS u_reasoning
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
    ) AS s
    JOIN bench_models m ON m.n = CASE WHEN s.u_model < 0.01 THEN {len(MODELS) - 1}
        ELSE (s.tenant_n * 5 + s.project_n * 3 + floor(3 * s.u_model ^ 2)::int) %% {len(MODELS) - 1}
        END
) AS t
"""

_TOKEN_COLUMNS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
)
_FROM_AGGREGATE = ", ".join(
    [
        "sum(u.requests)::bigint",
        "sum(u.unpriced_count)::bigint",
        *[f"sum(u.{c})::bigint" for c in _TOKEN_COLUMNS],
        "sum(u.cost_total)::numeric(38,12)",
    ]
)
_FROM_EVENTS = ", ".join(
    [
        "count(*)::bigint",
        "count(*) FILTER (WHERE u.pricing_status = 'unpriced')::bigint",
        *[f"sum(u.{c})::bigint" for c in _TOKEN_COLUMNS],
        "coalesce(sum(u.cost_total), 0)::numeric(38,12)",
    ]
)
_MODEL = "coalesce(u.canonical_model, u.response_model, u.request_model)"
# The tenant's timezone as a scalar subquery: an InitPlan, whose value TimescaleDB's runtime
# chunk exclusion and the index conditions can use (bounds taken from a joined tenants row are
# only a join filter: every chunk of the tenant is read).
_TZ = "(SELECT tz.timezone FROM tenants tz WHERE tz.tenant_id = %(tenant)s)"
_LOCAL_MONTH = "date_trunc('month', u.{0} AT TIME ZONE {1})::date"
_IN_LOCAL_MONTH = """u.{0} >= (%(month)s::timestamp AT TIME ZONE {1})
  AND u.{0} < ((%(month)s::timestamp + INTERVAL '1 month') AT TIME ZONE {1})"""

# A tenant's calendar month in its own timezone, by provider and model.
_DAYS = "d.day >= %(month)s AND d.day < %(next_month)s"
TENANT_AGGREGATE = f"""
SELECT date_trunc('month', d.day)::date AS month, d.provider, d.model, d.currency,
    {_FROM_AGGREGATE.replace("u.", "d.")}
FROM usage_tenant_daily d
WHERE d.tenant_id = %(tenant)s AND {_DAYS}
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""
TENANT_RAW = f"""
SELECT {_LOCAL_MONTH.format("occurred_at", _TZ)} AS month, u.provider, {_MODEL}, u.currency,
    {_FROM_EVENTS}
FROM usage_events u
WHERE u.tenant_id = %(tenant)s AND {_IN_LOCAL_MONTH.format("occurred_at", _TZ)}
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""

# Daily spend by model in the tenant's timezone, as sink/QUERIES.md has it.
TENANT_DAYS_AGGREGATE = f"""
SELECT d.day, d.model, d.currency, {_FROM_AGGREGATE.replace("u.", "d.")}
FROM usage_tenant_daily d
WHERE d.tenant_id = %(tenant)s AND {_DAYS}
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""
TENANT_DAYS_RAW = f"""
SELECT (u.occurred_at AT TIME ZONE t.timezone)::date, {_MODEL}, u.currency, {_FROM_EVENTS}
FROM usage_events u JOIN tenants t ON t.tenant_id = u.tenant_id
WHERE u.tenant_id = %(tenant)s AND {_IN_LOCAL_MONTH.format("occurred_at", "t.timezone")}
GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"""

# The same month's totals per currency (the function reads usage_tenant_daily).
TOTALS_FUNCTION = f"""
SELECT month, currency, requests, unpriced_count, {", ".join(_TOKEN_COLUMNS)}, cost_total
FROM tenant_monthly_totals(%(tenant)s, %(month)s, %(next_month)s)"""
TOTALS_RAW = f"""
SELECT {_LOCAL_MONTH.format("occurred_at", _TZ)} AS month, u.currency, {_FROM_EVENTS}
FROM usage_events u
WHERE u.tenant_id = %(tenant)s AND {_IN_LOCAL_MONTH.format("occurred_at", _TZ)}
GROUP BY 1, 2 ORDER BY 1, 2"""

# Every tenant's calendar month, each in its own timezone, by tenant, provider and model (the
# month's bills). The raw side cuts each tenant's month by its joined timezone, inside a range
# widened by a day on each side for the index.
ALL_AGGREGATE = f"""
SELECT d.tenant_id, d.provider, d.model, d.currency, {_FROM_AGGREGATE.replace("u.", "d.")}
FROM usage_tenant_daily d
WHERE {_DAYS}
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""
ALL_RAW = f"""
SELECT u.tenant_id, u.provider, {_MODEL}, u.currency, {_FROM_EVENTS}
FROM usage_events u JOIN tenants t ON t.tenant_id = u.tenant_id
WHERE u.occurred_at >= %(utc_from)s::timestamptz - INTERVAL '1 day'
  AND u.occurred_at < %(utc_to)s::timestamptz + INTERVAL '1 day'
  AND (u.occurred_at AT TIME ZONE t.timezone)::date >= %(month)s
  AND (u.occurred_at AT TIME ZONE t.timezone)::date < %(next_month)s
GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"""

# `tokenline report --tenant t00 --from 2026-10-01 --to 2026-11-01 --by model,day`, from each
# source (the report layer's own SQL).
_REPORT_SPEC = ReportSpec(
    Selection.build((TENANT,), start=MONTH.isoformat(), end=_next_month_of(MONTH).isoformat()),
    ("model", "day"),
)
REPORT_AGGREGATE = report_query(_REPORT_SPEC, "usage_tenant_daily")
REPORT_RAW = report_query(_REPORT_SPEC, "usage_events")

Report = tuple[str, "str | Query", "str | Query"]
REPORTS: tuple[Report, ...] = (
    (f"{TENANT} {MONTH:%Y-%m} local, by provider+model", TENANT_AGGREGATE, TENANT_RAW),
    (f"{TENANT} {MONTH:%Y-%m} local, tenant_monthly_totals", TOTALS_FUNCTION, TOTALS_RAW),
    (
        f"{TENANT} {MONTH:%Y-%m} local days by model (QUERIES.md)",
        TENANT_DAYS_AGGREGATE,
        TENANT_DAYS_RAW,
    ),
    (f"all tenants {MONTH:%Y-%m} local, by provider+model", ALL_AGGREGATE, ALL_RAW),
    (f"tokenline report {TENANT} {MONTH:%Y-%m} --by model,day", REPORT_AGGREGATE, REPORT_RAW),
)
AGGREGATES = ("usage_15m", "usage_hourly", "usage_daily", "usage_monthly")

Rows = list[tuple[Any, ...]]


def _params() -> dict[str, Any]:
    return {
        "tenant": TENANT,
        "month": MONTH,
        "next_month": _next_month_of(MONTH),
        "utc_from": f"{MONTH.isoformat()} 00:00+00",
        "utc_to": f"{_next_month_of(MONTH).isoformat()} 00:00+00",
    }


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, prepare_threshold=None)


def _fresh_database(server_url: str, storage: Storage) -> str:
    name = f"tl_bench_queries_{storage[:2]}_{uuid.uuid4().hex[:8]}"
    with _connect(server_url) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(SinkSettings(database_url=SecretStr(url), storage=storage))
    return url


def _drop_database(server_url: str, url: str) -> None:
    with _connect(server_url) as conn:
        name = make_url(url).database or ""
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _timescale_available(server_url: str) -> bool:
    with _connect(server_url) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
        ).fetchone()
    return found is not None


def _seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _per_token(prices: _Prices) -> tuple[Decimal | None, ...]:
    if prices is None:
        return (None,) * 5
    return tuple(Decimal(p) / 1_000_000 for p in prices)


def _load(conn: psycopg.Connection[Any], rows: int) -> float:
    """Insert the tenants and ``rows`` events; return the seconds the events took."""
    conn.execute(
        "CREATE TEMPORARY TABLE bench_models (n int PRIMARY KEY, provider text, canonical text, "
        "reported text, reasons boolean, p_in numeric(38,12), p_cr numeric(38,12), "
        "p_cw numeric(38,12), p_out numeric(38,12), p_rs numeric(38,12))"
    )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bench_models VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    n,
                    provider,
                    canonical,
                    reported,
                    canonical in REASONING_MODELS,
                    *_per_token(prices),
                )
                for n, (provider, canonical, reported, prices) in enumerate(MODELS)
            ],
        )
        cur.executemany(
            "INSERT INTO tenants (tenant_id, display_name, timezone, monthly_budget) "
            "VALUES (%s, %s, %s, %s)",
            [
                (
                    f"t{n:02d}",
                    f"Tenant {n}",
                    TIMEZONES[n % len(TIMEZONES)],
                    Decimal(99_000 // (n + 1)),
                )
                for n in range(TENANTS)
            ],
        )
    conn.execute("SET synchronous_commit = off")
    start = time.perf_counter()
    for first in range(1, rows + 1, CHUNK_ROWS):
        last = min(first + CHUNK_ROWS - 1, rows)
        conn.execute(
            LOAD_SQL,
            {"first": first, "last": last, "rows": rows, "start": START, "end": END},
        )
        done = time.perf_counter() - start
        print(f"\r  loaded {last:,} rows in {done:.0f} s", end="", flush=True)
    print()
    return time.perf_counter() - start


def _pause_policies(conn: psycopg.Connection[Any]) -> None:
    """Stop this database's background jobs: the benchmark does their work itself."""
    conn.execute(
        "SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
        "WHERE hypertable_name IS NOT NULL"
    )


def _refresh(conn: psycopg.Connection[Any]) -> list[tuple[str, float]]:
    """Materialize every continuous aggregate over all the data, finest first."""
    return [
        (
            name,
            _seconds(
                lambda n=name: conn.execute(  # type: ignore[misc]
                    "CALL refresh_continuous_aggregate(%s, NULL, NULL)", (n,)
                )
            ),
        )
        for name in AGGREGATES
    ]


def _compress(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(compress_chunk(c, if_not_compressed => true)) "
        "FROM show_chunks('usage_events') c"
    ).fetchone()
    conn.execute("VACUUM ANALYZE usage_events")
    return int(row[0]) if row else 0


def _sizes(conn: psycopg.Connection[Any], storage: Storage) -> list[tuple[str, int, int | None]]:
    """(relation, bytes incl. indexes, stored rows) of usage_events and the aggregates."""
    daily = conn.execute(
        "SELECT pg_total_relation_size('usage_tenant_daily'), count(*) FROM usage_tenant_daily"
    ).fetchone()
    assert daily is not None
    tenant_daily = ("usage_tenant_daily", int(daily[0]), int(daily[1]))
    if storage == "postgresql":
        row = conn.execute(
            "SELECT pg_total_relation_size('usage_events'), count(*) FROM usage_events"
        ).fetchone()
        assert row is not None
        return [("usage_events", int(row[0]), int(row[1])), tenant_daily]
    row = conn.execute(
        "SELECT hypertable_size('usage_events'), count(*) FROM usage_events"
    ).fetchone()
    assert row is not None
    found: list[tuple[str, int, int | None]] = [("usage_events", int(row[0]), int(row[1]))]
    for name in AGGREGATES:
        table = conn.execute(
            "SELECT format('%%I.%%I', materialization_hypertable_schema, "
            "materialization_hypertable_name) FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name = %s",
            (name,),
        ).fetchone()
        assert table is not None
        stored = conn.execute(
            sql.SQL("SELECT hypertable_size({0}), (SELECT count(*) FROM {1})").format(
                sql.Literal(table[0]), sql.SQL(table[0])
            )
        ).fetchone()
        assert stored is not None
        found.append((name, int(stored[0]), int(stored[1])))
    return [*found, tenant_daily]


def _timed(conn: psycopg.Connection[Any], query: str | Query) -> tuple[float, Rows]:
    """Median ms of RUNS runs after a warm-up, and the rows."""
    statement, params = (
        (query, _params()) if isinstance(query, str) else (query.statement, query.params)
    )
    rows = conn.execute(statement, params).fetchall()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        conn.execute(statement, params).fetchall()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, rows


def _same(name: str, aggregate: Rows, raw: Rows) -> None:
    if aggregate == raw:
        return
    print(f"\nMISMATCH in {name!r}: the aggregate and the raw rows disagree", file=sys.stderr)
    extra = [r for r in aggregate if r not in raw][:5]
    missing = [r for r in raw if r not in aggregate][:5]
    print(f"  only in aggregate ({len(aggregate)} rows): {extra}", file=sys.stderr)
    print(f"  only in raw ({len(raw)} rows): {missing}", file=sys.stderr)
    raise SystemExit(1)


def _mb(size: int) -> str:
    return f"{size / 1_000_000:,.1f} MB"


def _bench(server_url: str, storage: Storage, rows: int, *, compress: bool, keep: bool) -> None:
    print(f"[{storage}]", flush=True)
    url = _fresh_database(server_url, storage)
    try:
        with _connect(url) as conn:
            if storage == "timescaledb":
                _pause_policies(conn)
            load_s = _load(conn, rows)
            # The events were loaded past the sink, which keeps usage_tenant_daily as it lands
            # them: build it from them, as the migration does.
            daily_s = _seconds(lambda: conn.execute("SELECT tokenline_rebuild_tenant_daily(NULL)"))
            refreshed = _refresh(conn) if storage == "timescaledb" else []
            vacuum_s = _seconds(lambda: conn.execute("VACUUM ANALYZE"))
            print(f"  load {load_s:.1f} s ({rows / load_s:,.0f} rows/s)", end="")
            for name, seconds in refreshed:
                print(f"; refresh {name} {seconds:.1f} s", end="")
            print(f"; usage_tenant_daily built in {daily_s:.1f} s; VACUUM ANALYZE {vacuum_s:.1f} s")
            for name, size, count in _sizes(conn, storage):
                print(f"  {name:14} {_mb(size):>12} {count or 0:>12,} rows")
            month_rows = conn.execute(
                "SELECT sum(requests) FROM tenant_monthly_totals(%(tenant)s, %(month)s, "
                "%(next_month)s)",
                _params(),
            ).fetchone()
            assert month_rows is not None
            print(f"  {TENANT}'s events in {MONTH:%Y-%m} (Asia/Kolkata): {month_rows[0]:,}")
            print(
                f"  {'report':58} {'aggregate ms':>12} {'raw ms':>9} {'raw ÷ agg':>9}  "
                f"goal (≤ {GOAL_MS} ms, ≥ {GOAL_RATIO} times raw)"
            )
            results = _run_reports(conn, "")
            if compress and storage == "timescaledb":
                chunks_s = _seconds(lambda: print(f"  compressed {_compress(conn)} chunks", end=""))
                print(f" in {chunks_s:.1f} s")
                for name, size, count in _sizes(conn, storage)[:1]:
                    print(f"  {name:14} {_mb(size):>12} {count or 0:>12,} rows")
                _run_reports(conn, " [columnstore]", results)
    finally:
        if keep:
            print(f"  kept: {url}")
        else:
            _drop_database(server_url, url)


def _run_reports(
    conn: psycopg.Connection[Any], suffix: str, before: Sequence[tuple[float, Rows]] = ()
) -> list[tuple[float, Rows]]:
    results = []
    for n, (name, aggregate_sql, raw_sql) in enumerate(REPORTS):
        aggregate_ms, aggregate = _timed(conn, aggregate_sql)
        raw_ms, raw = _timed(conn, raw_sql)
        _same(name, aggregate, raw)
        if before:
            _same(name + suffix, before[n][1], raw)
        label = name + suffix
        ratio = raw_ms / aggregate_ms
        goal = "met" if aggregate_ms <= GOAL_MS and ratio >= GOAL_RATIO else "NOT met"
        print(f"  {label:58} {aggregate_ms:12.1f} {raw_ms:9.1f} {ratio:9.1f}  {goal}")
        results.append((aggregate_ms, raw))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=os.environ.get("TOKENLINE_TEST_DATABASE_URL"))
    parser.add_argument(
        "--storage", choices=("auto", "timescaledb", "postgresql", "both"), default="auto"
    )
    parser.add_argument(
        "--compress", action="store_true", help="TimescaleDB: time raw rows in the columnstore too"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args()
    if not args.database_url:
        raise SystemExit('run: eval "$(.venv/bin/tokenline dev up --env)" first, or --database-url')
    timescale = _timescale_available(args.database_url)
    paths: list[Storage]
    if args.storage == "both":
        paths = ["timescaledb", "postgresql"]
    elif args.storage == "auto":
        paths = ["timescaledb" if timescale else "postgresql"]
    else:
        paths = [args.storage]
    if "timescaledb" in paths and not timescale:
        raise SystemExit("TimescaleDB is not available on this server")
    print(
        f"{args.rows:,} events, {TENANTS} tenants, {START} to {END} UTC; "
        f"median of {RUNS} runs after a warm-up",
        flush=True,
    )
    for storage in paths:
        _bench(args.database_url, storage, args.rows, compress=args.compress, keep=args.keep)


if __name__ == "__main__":
    main()
