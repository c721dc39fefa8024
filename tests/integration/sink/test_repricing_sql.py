"""Re-pricing's aggregate changes, summed in SQL, equal the Python rules and the raw sums.

The re-pricing ``UPDATE`` stages what it changes in ``usage_rollup_1m`` and
``usage_tenant_daily`` itself (:mod:`tokenline.sink.repricing_sql`). Both statements are held
to the same checks: the one that finds and updates the stored rows without a lock (plain
PostgreSQL's first choice) and the one that locks them first (its fallback, TimescaleDB's
only). Two independent checks:

- what it stages equals what :func:`tokenline.sink.rollups.deltas` and
  :func:`tokenline.sink.tenant_daily.deltas` (the Python rules, a second implementation) make
  of the same (old, new) event rows, read back from the database;
- after batches mixing new events and re-priced ones in the same keys (new costs, priced and
  unpriced turns, models moved, empty model names, another currency), the rollups and the
  tenant-local days equal the raw sums (:mod:`tests._rollup_truth`, :mod:`tests._daily_truth`).

A race the lock-free statement must lose cleanly is forced: another transaction re-prices the
same events between its snapshot and its UPDATE.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests._daily_truth import check_daily
from tests._rollup_truth import check_rollups
from tests.factories import priced_event
from tests.integration.sink._data import EventFactory, utc
from tokenline.sink import rollups, tenant_daily
from tokenline.sink import store_sql as q
from tokenline.sink.batch import ROLLUP_KEY
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration

_TEMPLATE = event_row(priced_event())
ZONES = {"t-a": "Asia/Kathmandu", "t-b": "America/New_York"}


@pytest.fixture(params=["postgresql", pytest.param("timescaledb", marks=pytest.mark.timescale)])
def url(new_database: Callable[[], str], request: pytest.FixtureRequest) -> str:
    """A database migrated on each storage path, two tenants with their zones."""
    from tests.integration.sink.conftest import zoned_database

    return zoned_database(new_database(), request.param, ZONES)


@pytest.fixture(params=["seen", "locked"])
def statement(request: pytest.FixtureRequest) -> str:
    """Which re-pricing statement a store runs on plain PostgreSQL."""
    return str(request.param)


def _store(url: str, statement: str) -> PostgresUsageStore:
    """A store connected to ``url`` that re-prices with ``statement``.

    ``locked``: the fallback statement, which plain PostgreSQL otherwise runs only after a
    race (the store picks by the database when it connects).
    """
    store = PostgresUsageStore(url)
    store.write([])  # connects: the choice is made
    if statement == "locked":
        store._seen_first = False
    return store


def _events(factory: EventFactory, count: int) -> list[dict[str, Any]]:
    rows = []
    for n in range(count):
        tenant = ("t-a", "t-b", "t-none")[n % 3]
        # A few minutes either side of a UTC midnight, so keys are shared by many events.
        made = factory.row(tenant, utc(2026, 10, 31, 23, 57) + timedelta(seconds=n * 3))
        row = {**_TEMPLATE, **made, "attributed_team": "platform" if n % 7 == 0 else None}
        if n % 11 == 0:  # empty names: the rollup model skips them, the daily model does not
            row |= {"canonical_model": "", "response_model": "", "deployment": "dep-1"}
        rows.append(row)
    return rows


def _repriced(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """A later pricing of each row: another cost, unpriced, moved to a model, or in EUR."""
    out = []
    for n, row in enumerate(rows):
        new = {**row, "pricing_version": f"v{seed}", "priced_at": row["priced_at"] + timedelta(1)}
        kind = (n + seed) % 5
        if kind == 0:
            new |= {"pricing_status": "unpriced", "unpriced_reason": "unknown_model"}
            new |= dict.fromkeys(
                ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output"), None
            )
            new |= {"cost_reasoning": None, "cost_total": None}
        else:
            parts = [Decimal(n % 89 + i + seed) / 1000 for i in range(5)]
            new |= dict(
                zip(
                    ("cost_input", "cost_cache_read", "cost_cache_write", "cost_output"),
                    parts[:4],
                    strict=True,
                )
            )
            new |= {"cost_reasoning": parts[4], "cost_total": sum(parts, Decimal(0))}
            new |= {"pricing_status": "priced", "unpriced_reason": None}
            if kind == 1:
                new["canonical_model"] = f"renamed-{seed}"
            if kind == 2:
                new["currency"] = "EUR"
        out.append(new)
    return out


def _stored(url: str, rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        found = conn.execute(
            "SELECT * FROM usage_events WHERE event_id = ANY(%s)", ([r["event_id"] for r in rows],)
        ).fetchall()
    return {r["event_id"]: r for r in found}


def _tables(url: str) -> list[list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return [
            conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5").fetchall()
            for table in ("usage_rollup_1m", "usage_tenant_daily")
        ]


def _net(rows: list[dict[str, Any]], key: tuple[str, ...], sums: tuple[str, ...]) -> dict[Any, Any]:
    """Staged rows netted per key, as the store adds them (what is taken away is staged apart).

    The sums summed, the largest latency, the currency of what was added.
    """
    netted: dict[Any, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["requests"] <= 0):  # what was added first
        at = tuple(row[k] for k in key)
        if at not in netted:
            netted[at] = dict(row)
            continue
        found = netted[at]
        for column in sums:
            found[column] += row[column]
        found["latency_ms_max"] = max(found["latency_ms_max"], row["latency_ms_max"])
    return netted


def _watch_staging(store: PostgresUsageStore) -> dict[str, list[dict[str, Any]]]:
    """What the store's next landings stage, read as the store starts adding it.

    The two staging tables are the store's session's, and emptied at its commit: they are
    read in its transaction, just before it adds them to the aggregates.
    """
    seen: dict[str, list[dict[str, Any]]] = {}
    add = store._add_rollups

    def reading(conn: psycopg.Connection[Any], *args: Any) -> None:
        with conn.cursor(row_factory=dict_row) as cur:
            seen["rollup"] = cur.execute(f"SELECT * FROM {q.ROLLUP_STAGING}").fetchall()
            seen["daily"] = cur.execute(f"SELECT * FROM {q.DAILY_STAGING}").fetchall()
        add(conn, *args)

    store._add_rollups = reading  # type: ignore[method-assign]
    return seen


def _staged(seen: dict[str, list[dict[str, Any]]]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The staged rows :func:`_watch_staging` saw, netted per key as the store adds them."""
    return (
        _net(seen["rollup"], ROLLUP_KEY, q.DELTA_SUMS),
        _net(seen["daily"], tenant_daily.KEY, tenant_daily.SUMS),
    )


def _moved_in(
    key_of: Callable[[dict[str, Any]], Any], old: dict[str, Any], new: dict[str, Any], key: Any
) -> bool:
    """Whether a re-pricing moved an event into ``key`` from another."""
    return bool(key_of(new) == key and key_of(old) != key)


def test_what_sql_stages_equals_the_python_rules(url: str, statement: str) -> None:
    factory = EventFactory(seed=23)
    events = _events(factory, 150)
    store = _store(url, statement)
    try:
        assert store.write(events) == []
        newer = _repriced(events, 1)
        old = _stored(url, events)
        seen = _watch_staging(store)
        assert store.write(newer) == []  # every event stored: only the UPDATE stages
        new = _stored(url, events)
        pairs = [(old[r["event_id"]], new[r["event_id"]]) for r in events]
        changed = [(o, n) for o, n in pairs if o != n]
        assert len(changed) > len(events) // 2

        rollup, daily = _staged(seen)
        want_rollup = rollups.deltas([], changed)
        assert rollup.keys() == want_rollup.keys()
        for key, delta in want_rollup.items():
            for column in q.DELTA_SUMS:
                assert rollup[key][column] == getattr(delta, column), (key, column)
            if delta.requests > 0:
                assert rollup[key]["currency"] == delta.currency, key
            # At least the largest latency of the events moved into the key, at most the Python
            # rule's: an event re-priced in place is in the key's maximum already, and counting
            # it again (as the Python rule does) changes nothing.
            moved = [
                n["latency_ms"] for o, n in changed if _moved_in(rollups.rollup_key, o, n, key)
            ]
            assert max(moved, default=0) <= rollup[key]["latency_ms_max"], key
            assert rollup[key]["latency_ms_max"] <= delta.latency_ms_max, key
        want_daily = tenant_daily.deltas([], changed)
        assert daily.keys() == want_daily.keys()
        for key, sums in want_daily.items():
            assert [daily[key][c] for c in tenant_daily.SUMS] == sums[:-1], key
            quarter = tenant_daily.quarter_key
            moved = [n["latency_ms"] for o, n in changed if _moved_in(quarter, o, n, key)]
            now = [n["latency_ms"] for _, n in changed if quarter(n) == key]
            assert max(moved, default=0) <= daily[key]["latency_ms_max"] <= max(now, default=0)
        # Some keys lost events (moved models, currencies): they are there, negative.
        assert any(d.requests < 0 for d in want_rollup.values())
    finally:
        store.close()


def test_mixed_batches_keep_rollups_and_days_equal_to_the_raw_sums(
    url: str, statement: str
) -> None:
    factory = EventFactory(seed=29)
    events = _events(factory, 240)
    store = _store(url, statement)
    try:
        assert store.write(events[:120]) == []
        # New events and re-priced ones of the same minutes in one batch, then again later.
        for seed, batch in enumerate((events[60:180], events[100:240], events[::2]), 1):
            newer = _repriced(batch, seed)
            assert store.write([*newer[1::2], *batch[::2]]) == []
            result = check_rollups(url)
            assert result.exact, result.differing[:3]
            day = check_daily(url)
            assert day.exact, day.differing[:3]
            last = [*newer[1::2], *batch[::2]]
        assert result.events == len(events)
        # The last batch again (a replay) changes nothing.
        before = _tables(url)
        assert store.write(last) == []
        assert _tables(url) == before
    finally:
        store.close()


def _waits_for_a_lock(url: str, pid: int) -> None:
    """Return once backend ``pid`` waits for a lock (at most 30 seconds)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(3000):
            found = conn.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if found and found[0] == "Lock":
                return
            time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


@pytest.mark.parametrize("later", [True, False], ids=["newer", "older"])
def test_a_store_racing_another_over_the_same_events_keeps_every_sum_exact(
    url: str, statement: str, later: bool
) -> None:
    """Store B re-prices events that store A re-priced after B's snapshot was taken.

    A's UPDATE is done and its transaction held open (its rollup upsert waits for a lock this
    test holds); B's re-pricing of the same events then waits for A's row locks. When A
    commits, B's rows are no longer the versions it read: it must leave them (the lock-free
    statement's xmin test) and re-price them from A's values, or not at all when its pricing
    is older than A's. Taking B's old values from its snapshot would count A's change twice.
    """
    factory = EventFactory(seed=31)
    events = _events(factory, 60)
    first = _repriced(events, 1)  # A's: a day later
    second = [  # B's: a day after A's, or between the stored pricing and A's
        {**row, "priced_at": row["priced_at"] + timedelta(hours=12 if not later else 24)}
        for row in _repriced(events, 2)
    ]
    if not later:
        second = [
            {**r, "priced_at": e["priced_at"] + timedelta(hours=12)}
            for r, e in zip(second, events, strict=True)
        ]
    seed = PostgresUsageStore(url)
    assert seed.write(events) == []
    seed.close()
    a, b = _store(url, statement), _store(url, statement)
    refused: list[list[Any]] = []
    with psycopg.connect(url) as holder:
        holder.execute("SELECT 1 FROM usage_rollup_1m FOR UPDATE")
        threads = [
            threading.Thread(target=lambda: refused.append(a.write(first))),
            threading.Thread(target=lambda: refused.append(b.write(second))),
        ]
        threads[0].start()
        _waits_for_a_lock(url, a._connection().info.backend_pid)  # its events are updated
        threads[1].start()
        _waits_for_a_lock(url, b._connection().info.backend_pid)  # on A's row locks
        holder.rollback()
    for thread in threads:
        thread.join(60)
    a.close(), b.close()
    assert refused == [[], []]
    winner = second if later else first
    stored = _stored(url, events)
    assert {r["event_id"]: r["pricing_version"] for r in winner} == {
        k: v["pricing_version"] for k, v in stored.items()
    }
    result = check_rollups(url)
    assert result.exact, result.differing[:3]
    day = check_daily(url)
    assert day.exact, day.differing[:3]


def test_an_event_leaving_a_key_another_enters_has_its_maximum_latency_recomputed(
    url: str, statement: str
) -> None:
    """One batch moves the slowest event out of a key and another event into it.

    The key's count is unchanged, but its maximum latency must drop to the other event's: a
    maximum cannot be taken back, so it is recomputed from the events the key holds.
    """
    factory = EventFactory(seed=37)
    at = utc(2026, 10, 31, 12, 0, 5)
    shared = {"provider": "openai", "project": "chat", "team": "core", "attributed_team": None}
    shared |= {"currency": "USD", "pricing_status": "priced", "unpriced_reason": None}

    def event(latency: int, model: str) -> dict[str, Any]:
        made = factory.row("t-a", at, **shared)
        return {**_TEMPLATE, **made, "latency_ms": latency, "canonical_model": model}

    slow, fast = event(9000, "m-1"), event(100, "m-2")
    store = _store(url, statement)
    try:
        assert store.write([slow, fast]) == []
        later = {"priced_at": slow["priced_at"] + timedelta(hours=1), "pricing_version": "v9"}
        moved = [
            slow | later | {"canonical_model": "m-3"},
            fast | later | {"canonical_model": "m-1"},
        ]
        assert store.write(moved) == []
    finally:
        store.close()
    result = check_rollups(url)
    assert result.exact, result.differing[:3]
    day = check_daily(url)
    assert day.exact, day.differing[:3]
    with psycopg.connect(url) as conn:
        maxima = conn.execute(
            "SELECT (SELECT latency_ms_max FROM usage_rollup_1m WHERE model = 'm-1'), "
            "(SELECT latency_ms_max FROM usage_tenant_daily WHERE model = 'm-1')"
        ).fetchone()
    assert maxima == (100, 100)
