"""Avro records flattened by tokenline.sink.rows land in the tables and read back exactly."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, insert, pool, select

from tests import factories
from tokenline.sink.models import UsageEvent, UsageRollup1m
from tokenline.sink.rows import event_row, rollup_row
from tokenline.sink.settings import sqlalchemy_url

pytestmark = pytest.mark.integration


def test_priced_unpriced_and_rollup_rows_round_trip(plain_url: str) -> None:
    priced = factories.priced_event()
    unpriced = factories.priced_event(
        event=factories.usage_event(event_id=uuid.uuid4()),
        pricing_status="unpriced",
        unpriced_reason="unknown_model",
        cost=None,
        canonical_model=None,
        source=None,
    )
    rollup = factories.rollup()
    rows = [event_row(priced), event_row(unpriced)]
    assert set(rows[0]) == set(UsageEvent.__table__.columns.keys()) - {"ingested_at"}
    assert set(rollup_row(rollup)) == set(UsageRollup1m.__table__.columns.keys())
    engine = create_engine(sqlalchemy_url(plain_url), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(insert(UsageEvent), rows)
            conn.execute(insert(UsageRollup1m), [rollup_row(rollup)])
            stored = {
                r.event_id: r
                for r in conn.execute(
                    select(UsageEvent).where(UsageEvent.event_id.in_([r["event_id"] for r in rows]))
                )
            }
            stored_rollup = conn.execute(select(UsageRollup1m)).one()
    finally:
        engine.dispose()
    got = stored[priced["event"]["event_id"]]
    assert priced["cost"] is not None
    assert got.cost_total == priced["cost"]["total"]
    assert got.tags == priced["event"]["tags"]
    assert got.occurred_at == priced["event"]["occurred_at"]
    assert stored[unpriced["event"]["event_id"]].cost_total is None
    assert stored_rollup.cost_total == rollup["cost_total"]
