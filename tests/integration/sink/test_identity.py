"""One identity per event: an ``event_id`` is stored once, whatever its ``occurred_at``.

The first copy stored wins; a later copy with another ``occurred_at`` is refused as
``duplicate_event_id`` and recorded in ``usage_event_duplicates``; the rollups stay the sums
of the stored events. Checked on plain PostgreSQL (always) and on TimescaleDB (where it runs);
revision 0004 applies the rule to a database that already holds such duplicates.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests._rollup_truth import check_rollups
from tests.factories import EPOCH, priced_event, usage_event
from tests.integration.sink.conftest import settings_for
from tokenline.sink import migrate
from tokenline.sink.batch import EVENT_COLUMNS
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore, RetryingStore

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration


def _copy(n: int, minute: int, *, total: str = "0.5", version: str = "v1", later_s: int = 0) -> Any:
    """Event ``n`` as it says it occurred at ``minute``."""
    total_cost = Decimal(total)
    return event_row(
        priced_event(
            event=usage_event(
                event_id=uuid.UUID(int=n),
                occurred_at=EPOCH + timedelta(minutes=minute, seconds=n % 60),
                latency_ms=100 + n,
            ),
            cost={
                "input": total_cost,
                "cache_read": Decimal(0),
                "cache_write": Decimal(0),
                "output": Decimal(0),
                "reasoning": Decimal(0),
                "total": total_cost,
            },
            pricing_version=version,
            priced_at=EPOCH + timedelta(hours=1, seconds=later_s),
        )
    )


def _stored(url: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT event_id, occurred_at, cost_total FROM usage_events").fetchall()
        guards = dict(conn.execute("SELECT event_id, occurred_at FROM usage_event_ids").fetchall())
    stored = {r[0]: r[1:] for r in rows}
    assert len(rows) == len(stored), "an event_id stored twice"
    assert {k: v[0] for k, v in stored.items()} == guards
    return stored


def _duplicates(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT event_id, occurred_at, kept_occurred_at FROM usage_event_duplicates "
            "ORDER BY 1, 2"
        ).fetchall()


def _check_identity(url: str) -> None:
    store = PostgresUsageStore(url)
    try:
        assert store.write([_copy(n, 0) for n in range(10)]) == []
        # Later copies at other times: refused, whatever path the batch takes (all new keys:
        # the COPY path; mixed with a stored key: the re-pricing path).
        refused = store.write([_copy(3, 5), _copy(4, 9, total="7")])
        assert [(r.row["event_id"], r.reason_code) for r in refused] == [
            (uuid.UUID(int=3), "duplicate_event_id"),
            (uuid.UUID(int=4), "duplicate_event_id"),
        ]
        assert "is stored with occurred_at" in refused[0].reason
        refused = store.write([_copy(20, 0), _copy(5, 1), _copy(6, 0)])
        assert [r.row["event_id"] for r in refused] == [uuid.UUID(int=5)]
        # A newer pricing of the stored copy still re-prices it; of a refused copy, nothing.
        assert store.write([_copy(7, 0, total="2", version="v2", later_s=9)]) == []
        assert len(store.write([_copy(8, 3, total="2", version="v2", later_s=9)])) == 1
        # Three copies in one batch: the first lands, the others are refused.
        refused = store.write([_copy(30, 2), _copy(30, 4), _copy(30, 6), _copy(31, 2)])
        assert sorted(r.row["occurred_at"].minute for r in refused) == [4, 6]
    finally:
        store.close()
    stored = _stored(url)
    assert len(stored) == 13
    assert stored[uuid.UUID(int=4)] == (EPOCH + timedelta(seconds=4), Decimal("0.5"))
    assert stored[uuid.UUID(int=7)][1] == Decimal(2)
    assert stored[uuid.UUID(int=30)][0] == EPOCH + timedelta(minutes=2, seconds=30)
    assert len(_duplicates(url)) == 6
    check = check_rollups(url)
    assert check.exact, check.differing[:3]
    assert check.rollup_requests == 13


def test_the_first_stored_copy_wins_on_plain_postgresql(plain_url: str) -> None:
    _check_identity(plain_url)


@pytest.mark.timescale
def test_the_first_stored_copy_wins_on_timescaledb(timescale_url: str) -> None:
    _check_identity(timescale_url)


def test_a_refused_first_copy_leaves_the_place_to_the_next(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    migrate.upgrade(settings_for(url, "postgresql"))
    poisoned = _copy(1, 0)
    poisoned["request_model"] = "gpt\x00"
    store = PostgresUsageStore(url)
    try:
        refused = store.write([poisoned, _copy(1, 3)])
    finally:
        store.close()
    assert [r.reason[:6] for r in refused] == ["22021:"]
    assert _stored(url) == {
        uuid.UUID(int=1): (EPOCH + timedelta(minutes=3, seconds=1), Decimal("0.5"))
    }
    assert _duplicates(url) == []


def test_writers_racing_with_copies_at_other_times_store_each_event_once(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    migrate.upgrade(settings_for(url, "postgresql"))
    refused: list[int] = []

    def writer(minute: int, order: int) -> None:
        store = RetryingStore(PostgresUsageStore(url), initial_ms=10, max_ms=100)
        try:
            numbers = list(range(300))[::order]
            for first in range(0, len(numbers), 40):
                batch = [_copy(n, minute) for n in numbers[first : first + 40]]
                refused.append(len(store.write(batch)))
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(m, o)) for m, o in ((0, 1), (7, -1), (3, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(_stored(url)) == 300
    assert sum(refused) == 600
    assert len(_duplicates(url)) == 600
    check = check_rollups(url)
    assert check.exact, check.differing[:3]
    assert check.rollup_requests == 300


def test_revision_0004_keeps_the_first_stored_copy_of_existing_duplicates(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    settings = settings_for(url, "postgresql")
    migrate.upgrade(settings, "0003")
    columns = ", ".join(EVENT_COLUMNS)
    values = ", ".join(f"%({c})s" for c in EVENT_COLUMNS)
    copies = [_copy(1, 0), _copy(2, 0), _copy(1, 4), _copy(3, 1), _copy(2, 9), _copy(1, 2)]
    with psycopg.connect(url) as conn:
        for n, row in enumerate(copies):
            # ingested in this order (what the key (event_id, occurred_at) let through)
            conn.execute(
                f"INSERT INTO usage_events ({columns}, ingested_at) VALUES ({values}, "
                "now() + make_interval(secs => %(n)s))",
                row | {"tags": psycopg.types.json.Jsonb(row["tags"]), "n": n},
            )
    migrate.upgrade(settings)
    stored = _stored(url)
    assert {k: v[0] for k, v in stored.items()} == {
        uuid.UUID(int=1): EPOCH + timedelta(seconds=1),
        uuid.UUID(int=2): EPOCH + timedelta(seconds=2),
        uuid.UUID(int=3): EPOCH + timedelta(minutes=1, seconds=3),
    }
    assert [(d[0].int, d[1].minute) for d in _duplicates(url)] == [(1, 2), (1, 4), (2, 9)]
    check = check_rollups(url)
    assert check.exact, check.differing[:3]
    assert check.rollup_requests == 3
