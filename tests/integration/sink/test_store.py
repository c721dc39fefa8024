"""PostgresUsageStore on the real database: idempotent upserts, re-pricing, refused rows."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests._rollup_truth import check_rollups
from tests.factories import EPOCH, priced_event, usage_event
from tokenline.sink.errors import DatabaseUnavailable
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore, RetryingStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.integration

COST_COLUMNS = "cost_input, cost_cache_read, cost_cache_write, cost_output, cost_reasoning"


def _cost(total: str) -> dict[str, Decimal]:
    t = Decimal(total)
    return {
        "input": t,
        "cache_read": Decimal(0),
        "cache_write": Decimal(0),
        "output": Decimal(0),
        "reasoning": Decimal(0),
        "total": t,
    }


def _event(n: int, *, version: str = "v1", priced_after_s: int = 1, total: str = "0.5") -> Any:
    return event_row(
        priced_event(
            event=usage_event(event_id=uuid.UUID(int=n), occurred_at=EPOCH + timedelta(seconds=n)),
            pricing_version=version,
            priced_at=EPOCH + timedelta(seconds=n + priced_after_s),
            cost=_cost(total),
        )
    )


@pytest.fixture
def url(new_database: Callable[[], str]) -> str:
    from tests.integration.sink.conftest import settings_for
    from tokenline.sink.migrate import upgrade

    made = new_database()
    upgrade(settings_for(made, "postgresql"))
    return made


@pytest.fixture
def store(url: str) -> Iterator[PostgresUsageStore]:
    store = PostgresUsageStore(url)
    yield store
    store.close()


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def _snapshot(url: str) -> list[tuple[Any, ...]]:
    return _rows(
        url,
        "SELECT event_id, pricing_version, priced_at, cost_total, ingested_at "
        "FROM usage_events ORDER BY event_id",
    )


def test_the_same_batch_twice_leaves_the_same_rows(store: PostgresUsageStore, url: str) -> None:
    events = [_event(n) for n in range(50)]
    assert store.write(events) == []
    before = _snapshot(url)
    rollups_before = _rows(url, "SELECT * FROM usage_rollup_1m ORDER BY model")
    assert store.write(events) == []
    assert store.write(events[10:20]) == []  # through the re-pricing path
    assert _snapshot(url) == before
    assert _rows(url, "SELECT * FROM usage_rollup_1m ORDER BY model") == rollups_before
    assert check_rollups(url).exact
    assert len(before) == 50
    assert _rows(url, "SELECT sum(cost_total) FROM usage_events") == [(Decimal("25.0"),)]


def test_a_newer_pricing_replaces_the_cost_and_an_older_never(
    store: PostgresUsageStore, url: str
) -> None:
    store.write([_event(1, version="v1", total="1.000000000001")])
    store.write([_event(1, version="v2", priced_after_s=60, total="2.5")])
    assert _rows(url, f"SELECT pricing_version, cost_total, {COST_COLUMNS} FROM usage_events") == [
        ("v2", Decimal("2.5"), Decimal("2.5"), 0, 0, 0, 0)
    ]
    # The old pricing arrives late (a replay of the old topic): it changes nothing.
    store.write([_event(1, version="v1", total="1.000000000001")])
    assert _rows(url, "SELECT pricing_version, cost_total FROM usage_events") == [
        ("v2", Decimal("2.5"))
    ]
    # Mixed in a batch with fresh events, the stale one is still ignored and the fresh land.
    store.write([_event(1, version="v0"), _event(2), _event(3)])
    assert _rows(url, "SELECT count(*), sum(cost_total) FROM usage_events") == [(3, Decimal("3.5"))]


def test_a_new_version_with_the_same_result_leaves_the_row_as_it_is(
    store: PostgresUsageStore, url: str
) -> None:
    store.write([_event(n, version="v1") for n in (1, 2, 3, 4)])
    before = {r[0]: r for r in _snapshot(url)}
    # The re-pricing path: event 1 prices the same under v2, event 2 differently.
    same = _event(1, version="v2", priced_after_s=60)
    changed = _event(2, version="v2", priced_after_s=60, total="0.75")
    store.write([same, changed])
    # The staging upsert (a refused row in the batch): the same rule.
    bad = _event(100)
    bad["cost_total"] = None
    same = _event(3, version="v2", priced_after_s=60)
    changed = _event(4, version="v2", priced_after_s=60, total="0.25")
    rejected = store.write([same, bad, changed])
    assert [r.row["event_id"] for r in rejected] == [bad["event_id"]]
    after = {r[0]: r for r in _snapshot(url)}
    assert after[uuid.UUID(int=1)] == before[uuid.UUID(int=1)]
    assert after[uuid.UUID(int=3)] == before[uuid.UUID(int=3)]
    for n, total in ((2, "0.75"), (4, "0.25")):
        event_id = uuid.UUID(int=n)
        assert after[event_id][1:4] == ("v2", EPOCH + timedelta(seconds=n + 60), Decimal(total))


def test_unpriced_then_priced_later(store: PostgresUsageStore, url: str) -> None:
    unpriced = event_row(
        priced_event(
            pricing_status="unpriced",
            unpriced_reason="unknown_model",
            cost=None,
            pricing_version="v1",
            priced_at=EPOCH,
        )
    )
    store.write([unpriced])
    assert _rows(url, "SELECT pricing_status, cost_total FROM usage_events") == [("unpriced", None)]
    priced = event_row(priced_event(pricing_version="v2", priced_at=EPOCH + timedelta(hours=1)))
    store.write([priced])
    assert _rows(url, "SELECT pricing_status, unpriced_reason, cost_total FROM usage_events") == [
        ("priced", None, Decimal("0.025350000000"))
    ]


def test_duplicates_in_one_batch_keep_the_newest(store: PostgresUsageStore, url: str) -> None:
    newest = _event(7, version="v3", priced_after_s=30, total="3")
    batch = [_event(7, version="v1"), newest, _event(7, version="v2", priced_after_s=5)]
    store.write(batch)
    store.write(batch)  # also through the staging upsert
    assert _rows(url, "SELECT pricing_version, cost_total FROM usage_events") == [
        ("v3", Decimal(3))
    ]


def _event_at(
    n: int, minute: int, *, version: str = "v1", priced_after_s: int = 1, total: str | None = "0.5"
) -> Any:
    """Event ``n`` at ``minute``; ``total=None`` makes it unpriced."""
    priced = priced_event(
        event=usage_event(
            event_id=uuid.UUID(int=n),
            occurred_at=EPOCH + timedelta(minutes=minute, seconds=n % 60),
            latency_ms=100 + n,
        ),
        pricing_version=version,
        priced_at=EPOCH + timedelta(hours=4, seconds=priced_after_s),
        cost=None if total is None else _cost(total),
    )
    if total is None:
        priced |= {"pricing_status": "unpriced", "unpriced_reason": "unknown_model"}
    return event_row(priced)


def test_rollups_are_the_sums_of_the_stored_events_whatever_arrives(
    store: PostgresUsageStore, url: str
) -> None:
    first = [_event_at(n, n % 3) for n in range(30)]
    assert store.write(first[:20]) == []  # fresh: the COPY path
    assert store.write([*first[15:], *first[:5]]) == []  # duplicates and new: re-pricing path
    assert store.write([first[7], first[7]]) == []  # the same event twice in a batch
    late = _event_at(99, 0)  # a window that has rows already, hours later
    assert store.write([late]) == []
    result = check_rollups(url)
    assert result.exact, result.differing
    assert (result.windows, result.rollup_requests) == (3, 31)

    # Re-pricing: a new cost, an unpriced event priced, a priced one unpriced, and one whose
    # canonical model changes (it moves to another window key); an older pricing changes nothing.
    repriced = _event_at(1, 1, version="v2", priced_after_s=60, total="2.25")
    unpriced = _event_at(2, 2, version="v1", total=None)
    assert store.write([unpriced]) == []
    moved = _event_at(4, 1, version="v2", priced_after_s=60, total="1")
    moved["canonical_model"] = "another-model"
    became_unpriced = _event_at(5, 2, version="v2", priced_after_s=60, total=None)
    priced_now = _event_at(2, 2, version="v2", priced_after_s=60, total="3")
    stale = _event_at(8, 2, version="v0", priced_after_s=-60, total="9")
    assert store.write([repriced, moved, became_unpriced, priced_now, stale]) == []
    result = check_rollups(url)
    assert result.exact, result.differing
    assert (result.windows, result.rollup_requests) == (4, 31)

    # The only event of a window moves away: the window is removed, not left at zero.
    alone = _event_at(200, 7)
    assert store.write([alone]) == []
    gone = _event_at(200, 7, version="v2", priced_after_s=60, total="1")
    gone["canonical_model"] = "another-model"
    assert store.write([gone]) == []
    result = check_rollups(url)
    assert result.exact, result.differing
    assert _rows(url, "SELECT count(*) FROM usage_rollup_1m WHERE requests = 0") == [(0,)]


def test_a_refused_row_is_returned_and_the_rest_lands(store: PostgresUsageStore, url: str) -> None:
    good = [_event(n) for n in range(20)]
    bad = _event(100)
    bad["cost_total"] = None  # priced without a total: ck_usage_events_cost_null_iff_unpriced
    rejected = store.write([*good[:7], bad, *good[7:]])
    assert [r.table for r in rejected] == ["usage_events"]
    assert rejected[0].row is bad
    assert rejected[0].reason.startswith("23514")
    assert _rows(url, "SELECT count(*) FROM usage_events") == [(20,)]
    assert check_rollups(url).exact
    # The refusal also works when the batch conflicts (the staging path).
    rejected = store.write([*good, bad])
    assert [r.row["event_id"] for r in rejected] == [bad["event_id"]]
    assert check_rollups(url).exact


def test_an_unreachable_database_raises_and_the_retrying_store_waits() -> None:
    store = PostgresUsageStore("postgresql://nobody@127.0.0.1:1/none", connect_timeout_s=1)
    with pytest.raises(DatabaseUnavailable):
        store.write([_event(1)])
    waits: list[float] = []

    class Stop(Exception):
        pass

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 4:
            raise Stop

    retrying = RetryingStore(store, initial_ms=100, max_ms=300, wait=wait)
    with pytest.raises(Stop):
        retrying.write([_event(1)])
    assert waits == [0.1, 0.2, 0.3, 0.3]


def test_a_batch_overlapping_in_the_middle_lands_whole(store: PostgresUsageStore, url: str) -> None:
    store.write([_event(5, version="v1")])
    # First and last are new (the probe misses), the middle one is stored: the COPY fails on
    # the unique key and the re-pricing path lands the batch.
    batch = [_event(4), _event(5, version="v2", priced_after_s=9, total="7"), _event(6)]
    assert store.write(batch) == []
    assert _rows(
        url, "SELECT event_id, pricing_version, cost_total FROM usage_events ORDER BY 1"
    ) == [
        (uuid.UUID(int=4), "v1", Decimal("0.5")),
        (uuid.UUID(int=5), "v2", Decimal(7)),
        (uuid.UUID(int=6), "v1", Decimal("0.5")),
    ]


def test_two_writers_racing_on_the_same_events_keep_the_rollups_exact(url: str) -> None:
    import threading

    def writer(version: str, total: str, order: int) -> None:
        store = RetryingStore(PostgresUsageStore(url), initial_ms=10, max_ms=100)
        try:
            numbers = list(range(400))[::order]
            for first in range(0, len(numbers), 50):
                batch = [
                    _event_at(n, n % 5, version=version, priced_after_s=order + 1, total=total)
                    for n in numbers[first : first + 50]
                ]
                store.write(batch)
        finally:
            store.close()

    threads = [
        threading.Thread(target=writer, args=("v1", "0.25", 1)),
        threading.Thread(target=writer, args=("v2", "0.75", 2)),
        threading.Thread(target=writer, args=("v3", "0.5", -1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    result = check_rollups(url)
    assert result.exact, result.differing[:5]
    assert (result.events, result.rollup_requests) == (400, 400)


def test_meanwhile_runs_once_a_write_while_the_server_takes_the_events_in(url: str) -> None:
    """``meanwhile`` runs once a write: on the fresh path, while the events' COPY runs.

    Another connection reads the store's backend in ``pg_stat_activity`` from inside it: the
    COPY into usage_events is running. Re-pricing calls it before its update statement. The
    sums worked out during the COPY are the rollups' exactly.
    """
    seen: list[tuple[Any, ...] | None] = []

    def meanwhile() -> None:
        with psycopg.connect(url, autocommit=True) as other:
            seen.append(
                other.execute(
                    "SELECT state, left(query, 19) FROM pg_stat_activity "
                    "WHERE application_name = 'tokenline-sink'"
                ).fetchone()
            )

    store = PostgresUsageStore(url, meanwhile=meanwhile)
    try:
        batch = [_event_at(n, n % 4) for n in range(200)]
        assert store.write(batch[:120]) == []
        assert seen == [("active", 'COPY "usage_events"')]
        assert store.write(batch[:120]) == []  # all stored: the re-pricing path
        assert len(seen) == 2
        assert store.write(batch[100:]) == []  # some stored: re-pricing, then a COPY of the rest
        assert len(seen) == 3
        assert store.write([_event_at(n, 5) for n in range(300, 340)]) == []
        assert len(seen) == 4
        assert seen[3] == ("active", 'COPY "usage_events"')
    finally:
        store.close()
    result = check_rollups(url)
    assert result.exact, result.differing
    assert result.rollup_requests == 240
