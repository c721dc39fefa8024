"""Re-pricing updates each stored event within its own page (revision 0008's fillfactor).

The sizes of ``usage_events`` and of its indexes are the check: an update with no room on the
page writes the new version to another page (the heap grows) and a new entry in every index
(the indexes grow); one in place (HOT) changes neither. At ``fillfactor`` 100, the same passes
grow both, so the check is not vacuous.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.factories import EPOCH, priced_event, usage_event
from tests.integration.sink.conftest import settings_for
from tokenline.sink.migrate import upgrade
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration

#: Enough events for a few hundred pages, as one batch of the sink's default size would be.
EVENTS = 3_000

SIZES = """
SELECT c.relname, pg_relation_size(c.oid) FROM pg_class AS c
WHERE c.oid = 'usage_events'::regclass
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'usage_events'::regclass)
ORDER BY c.relname
"""


def _priced(n: int, version: str, total: str) -> dict[str, Any]:
    cost = {k: Decimal(0) for k in ("cache_read", "cache_write", "output", "reasoning")}
    hours = int(version.removeprefix("v"))
    return event_row(
        priced_event(
            event=usage_event(event_id=uuid.UUID(int=n), occurred_at=EPOCH + timedelta(seconds=n)),
            pricing_version=version,
            priced_at=EPOCH + timedelta(hours=hours, seconds=n),
            cost={**cost, "input": Decimal(total), "total": Decimal(total)},
        )
    )


def _sizes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(SIZES).fetchall())


def _passes(url: str) -> list[dict[str, int]]:
    """Land the events, then re-price every one twice: the sizes after each pass."""
    store = PostgresUsageStore(url)
    sizes = []
    try:
        for version, total in (("v1", "0.5"), ("v2", "1.25"), ("v3", "0.0625")):
            store.write([_priced(n, version, total) for n in range(EVENTS)])
            sizes.append(_sizes(url))
    finally:
        store.close()
    with psycopg.connect(url) as conn:
        stored = conn.execute(
            "SELECT count(*), min(pricing_version), sum(cost_total) FROM usage_events"
        ).fetchone()
    assert stored == (EVENTS, "v3", Decimal("0.0625") * EVENTS)
    return sizes


def _migrated(new_database: Callable[[], str]) -> str:
    url = new_database()
    upgrade(settings_for(url, "postgresql"))
    # An autovacuum's ANALYZE holds a snapshot that can keep a pass's dead versions from being
    # pruned, or a pin that makes pruning skip a page: the page's own mechanism is under test.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE usage_events SET (autovacuum_enabled = false)")
    return url


def test_a_re_priced_event_keeps_its_page_and_index_entries(
    new_database: Callable[[], str],
) -> None:
    landed, repriced, again = _passes(_migrated(new_database))
    assert repriced == landed
    assert again == landed


def test_with_pages_packed_full_re_pricing_grows_the_heap_and_every_index(
    new_database: Callable[[], str],
) -> None:
    url = _migrated(new_database)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE usage_events SET (fillfactor = 100)")
    landed, repriced, _ = _passes(url)
    grown = {name for name, size in repriced.items() if size > landed[name]}
    # The partial index of unpriced events holds none of these priced events.
    assert grown == set(landed) - {"ix_usage_events_unpriced"}
