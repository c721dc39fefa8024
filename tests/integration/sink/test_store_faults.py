"""Every write error on the real database: a poison row costs one dead letter, a transient error
a retry of the batch, and nothing else; the rollups stay the sums of what landed.

The row errors are provoked for real (a NUL the server refuses, an index row too large, an int
too big for psycopg to dump, ...). Errors of a class no row provokes by itself (a
serialization failure, a full disk, a trigger's RAISE) come from a trigger that raises that
SQLSTATE for one tenant.
"""

from __future__ import annotations

import random
import string
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

BATCH = 41
POISON_AT = 23


def _random_text(chars: int) -> str:
    """ASCII letters that do not compress below the B-tree's limit."""
    rng = random.Random(chars)
    return "".join(rng.choice(string.ascii_letters) for _ in range(chars))


def _row(n: int, *, event: dict[str, Any] | None = None, **priced: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": uuid.UUID(int=n + 1),
        "occurred_at": EPOCH + timedelta(seconds=n),
        "latency_ms": 100 + n,
        **(event or {}),
    }
    return event_row(priced_event(event=usage_event(**fields), **priced))


def _cost(total: str) -> dict[str, Decimal]:
    zero = Decimal(0)
    return {
        "input": Decimal(total),
        "cache_read": zero,
        "cache_write": zero,
        "output": zero,
        "reasoning": zero,
        "total": Decimal(total),
    }


#: name → (the poison row's changes: event fields, priced fields; the reason's beginning)
POISONS: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "22021 NUL in a model": ({"request_model": "gpt\x00-4o"}, {}, "22021:"),
    "22P05 NUL in a tag": ({"tags": {"feature": "re\x00rank"}}, {}, "22P05:"),
    "22003 cost beyond numeric(38,12)": ({}, {"cost": _cost("1e27")}, "22003:"),
    "23514 priced without a cost": ({}, {"cost": None}, "23514:"),
    "23502 no tenant": ({"tenant_id": None}, {}, "23502:"),
    "54000 100 kB tenant": ({"tenant_id": _random_text(100_000)}, {}, "54000:"),
    "54000 100 kB model": (
        {"response_model": _random_text(100_000)},
        {"canonical_model": None},
        "54000:",
    ),
    "OverflowError latency 2^64 + 7": ({"latency_ms": 2**64 + 7}, {}, "OverflowError:"),
    "UnicodeEncodeError surrogate": ({"user_id": "u-\ud800"}, {}, "UnicodeEncodeError:"),
    "TypeError text in a bigint": ({"producer_seq": "42"}, {}, "TypeError:"),
    "int4 http_status 2^32 + 200": ({"http_status": 2**32 + 200}, {}, "22003: http_status"),
}


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


def _count(url: str, query: str = "SELECT count(*) FROM usage_events") -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _raise_for_tenant(url: str, tenant: str, sqlstate: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE FUNCTION test_raise() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN "
            f"IF NEW.tenant_id = '{tenant}' THEN "
            f"RAISE EXCEPTION 'provoked {sqlstate}' USING ERRCODE = '{sqlstate}'; END IF; "
            "RETURN NEW; END $fn$"
        )
        conn.execute(
            "CREATE TRIGGER test_raise BEFORE INSERT ON usage_events "
            "FOR EACH ROW EXECUTE FUNCTION test_raise()"
        )


@pytest.mark.parametrize("name", list(POISONS))
def test_a_poison_row_costs_one_dead_letter_and_the_rest_lands(url: str, name: str) -> None:
    event, priced, reason = POISONS[name]
    rows = [_row(n) for n in range(BATCH)]
    rows[POISON_AT] = _row(POISON_AT, event=event, **priced)
    retries: list[int] = []
    store = RetryingStore(
        PostgresUsageStore(url),
        initial_ms=1,
        max_ms=1,
        on_retry=lambda attempt, _exc: retries.append(attempt),
    )
    try:
        refused = store.write(rows)
    finally:
        store.close()
    assert retries == []
    assert [r.row["event_id"] for r in refused] == [uuid.UUID(int=POISON_AT + 1)]
    assert refused[0].reason.startswith(reason), refused[0].reason
    assert refused[0].reason_code in ("rejected_by_database", "unstorable_value")
    assert len(refused[0].reason) < 1_200
    assert _count(url) == BATCH - 1
    check = check_rollups(url)
    assert check.exact, check.differing[:3]
    assert check.rollup_requests == BATCH - 1


def test_two_latencies_that_overflow_their_window_sum_cost_one_dead_letter(
    store: PostgresUsageStore, url: str
) -> None:
    """Each 2^62 + 1 is a bigint; their sum in one rollup row is not (issue 14)."""
    rows = [_row(n, event={"latency_ms": 2**62 + 1}) for n in range(2)]
    refused = store.write(rows)
    assert len(refused) == 1
    assert refused[0].reason.startswith(("22003:", "OverflowError:")), refused[0].reason
    assert _count(url) == 1
    assert check_rollups(url).exact
    # the same again, one at a time: the window holds one; the second would overflow it
    refused = store.write([_row(5, event={"latency_ms": 2**62 + 1, "occurred_at": EPOCH})])
    assert [r.reason[:6] for r in refused] == ["22003:"]
    assert check_rollups(url).exact


def test_an_error_of_no_known_kind_is_isolated_by_bisection(
    store: PostgresUsageStore, url: str
) -> None:
    _raise_for_tenant(url, "poison", "P0001")
    rows = [_row(n) for n in range(BATCH)]
    rows[7] = _row(7, event={"tenant_id": "poison"})
    refused = store.write(rows)
    assert [r.row["tenant_id"] for r in refused] == ["poison"]
    assert refused[0].reason.startswith("P0001: provoked P0001")
    assert _count(url) == BATCH - 1
    assert check_rollups(url).exact


@pytest.mark.parametrize(
    "sqlstate", ["08006", "25006", "40001", "40P01", "53100", "55P03", "57014", "58030", "XX000"]
)
def test_a_transient_error_lands_nothing_dead_letters_nothing_and_is_retried(
    url: str, sqlstate: str
) -> None:
    _raise_for_tenant(url, "flaky", sqlstate)
    rows = [_row(n) for n in range(BATCH)]
    rows[11] = _row(11, event={"tenant_id": "flaky"})
    store = PostgresUsageStore(url)
    try:
        with pytest.raises(DatabaseUnavailable, match=f"provoked {sqlstate}"):
            store.write(rows)
        assert _count(url) == 0
        attempts: list[int] = []

        def heal(_seconds: float) -> None:
            attempts.append(1)
            with psycopg.connect(url) as conn:
                conn.execute("DROP TRIGGER IF EXISTS test_raise ON usage_events")

        retrying = RetryingStore(store, initial_ms=1, max_ms=1, wait=heal)
        assert retrying.write(rows) == []
    finally:
        store.close()
    assert attempts == [1]
    assert _count(url) == BATCH
    assert check_rollups(url).exact


def test_a_database_without_the_schema_is_unavailable_not_a_reason_to_dead_letter(
    new_database: Callable[[], str],
) -> None:
    store = PostgresUsageStore(new_database())
    try:
        with pytest.raises(DatabaseUnavailable, match=r"UndefinedTable|42P01"):
            store.write([_row(1)])
    finally:
        store.close()
