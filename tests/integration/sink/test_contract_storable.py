"""The validation contract against the migrated database: every valid event can be stored.

Each Avro field is traced to the ``usage_events`` column the sink writes it to (by a marker
value through ``event_row``, not by name), and the column's type is read from the migrated
database: a numeric bound must fit the column's integer type. Then the widest event the
contract allows (every string at its length in 4-byte characters that do not compress, every
number at its bound, every tag) goes through the processor's pipeline and the real store: it
lands whole, values unchanged, and so does its rollup row (whose primary key holds the tenant
and the model).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests._avro_fields import leaves
from tests._daily_truth import check_daily
from tests._rollup_truth import check_rollups
from tests.factories import priced_event, usage_event
from tests.unit.processor.test_pipeline import BOOK
from tokenline.processor.contract import Count, Tags, Text, contract
from tokenline.processor.pipeline import PipelineConfig, Priced, process_decoded
from tokenline.processor.validate import ValidationLimits, validate_event
from tokenline.sink.rows import event_row
from tokenline.sink.store import PostgresUsageStore

pytestmark = pytest.mark.integration

LIMITS = ValidationLimits()
CONTRACT = contract(LIMITS)
_INTEGER_RANGE = {"bigint": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}


def _column_of_each_leaf() -> dict[tuple[str, ...], str]:
    """Avro path → the usage_events column ``event_row`` puts it in, found by marker values."""
    event: Any = usage_event()
    markers: dict[Any, tuple[str, ...]] = {}
    for n, leaf in enumerate(leaves()):
        if leaf.kind not in ("long", "int", "string"):
            continue
        marker: Any = 900_000_000_000 + n if leaf.kind in ("long", "int") else f"marker-{n}"
        target = event
        for part in leaf.path[:-1]:
            target = target[part]
        target[leaf.path[-1]] = marker
        markers[marker] = leaf.path
    row = event_row(priced_event(event=event))
    found = {
        markers[value]: column
        for column, value in row.items()
        if isinstance(value, int | str) and value in markers
    }
    assert set(found) == set(markers.values()), set(markers.values()) - set(found)
    return found


def _column_types(url: str) -> dict[str, tuple[str, int | None]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type, character_maximum_length "
            "FROM information_schema.columns WHERE table_name = 'usage_events'"
        ).fetchall()
    return {name: (kind, length) for name, kind, length in rows}


def test_every_bound_fits_its_column(plain_url: str) -> None:
    types = _column_types(plain_url)
    for path, column in _column_of_each_leaf().items():
        kind, length = types[column]
        bound = CONTRACT[path]
        if isinstance(bound, Count):
            low, high = _INTEGER_RANGE[kind]
            assert low <= bound.low <= bound.high <= high, (path, column, kind)
        else:
            assert isinstance(bound, Text), path
            assert kind in ("text", "character varying"), (path, column, kind)
            assert length is None or bound.max_chars <= length, (path, column, length)


def _wide(rng: random.Random, chars: int) -> str:
    """``chars`` random supplementary-plane characters: 4 UTF-8 bytes each, incompressible."""
    return "".join(chr(rng.randrange(0x10000, 0x10FFFE)) for _ in range(chars))


def _widest_event(rng: random.Random, now: datetime) -> Any:
    event: Any = usage_event(event_id=uuid.uuid4(), occurred_at=now - timedelta(seconds=1))
    for leaf in leaves():
        bound = CONTRACT[leaf.path]
        target = event
        for part in leaf.path[:-1]:
            target = target[part]
        if isinstance(bound, Text):
            target[leaf.path[-1]] = _wide(rng, bound.max_chars)
        elif isinstance(bound, Count):
            target[leaf.path[-1]] = bound.high
        elif isinstance(bound, Tags):
            target[leaf.path[-1]] = {
                _wide(rng, bound.key.max_chars - 4) + f"{n:04}": _wide(rng, bound.value.max_chars)
                for n in range(bound.max_entries)
            }
    usage = event["usage"]
    usage["cache_write_5m_input_tokens"] = usage["cache_write_input_tokens"] // 2
    usage["cache_write_1h_input_tokens"] = usage["cache_write_input_tokens"] // 2
    usage["mismatch"] = None  # a flagged mismatch is checked against the total: not the case here
    return event


def test_the_widest_valid_event_lands_whole_with_its_rollup(plain_url: str) -> None:
    rng = random.Random(14)
    now = datetime.now(UTC)
    event = _widest_event(rng, now)
    assert validate_event(event, now, LIMITS) is None
    source: Any = {"topic": "llm-usage.raw", "partition": 0, "offset": 1}
    outcome = process_decoded(
        event,
        b"",
        key=None,
        source=source,
        timestamp_ms=None,
        now=now,
        book=BOOK,
        config=PipelineConfig(limits=LIMITS),
    )
    assert isinstance(outcome, Priced)
    row = event_row(outcome.record)
    store = PostgresUsageStore(plain_url)
    try:
        assert store.write([row]) == []
    finally:
        store.close()
    with psycopg.connect(plain_url, row_factory=dict_row) as conn:
        stored = conn.execute("SELECT * FROM usage_events").fetchone()
    assert stored is not None
    for column, value in row.items():
        assert stored[column] == value, column
    check = check_rollups(plain_url)
    assert check.exact
    assert check.windows == 1
    # ... and its tenant-local day, whose key holds the tenant, model, project and team.
    daily = check_daily(plain_url)
    assert daily.exact, daily.differing
    assert daily.rows == 1
