"""The native rollup and tenant-daily sums are the Python path's, to the Decimal exponent.

The truth is a second implementation: each message read by fastavro's ``schemaless_reader``
and flattened by ``event_row``, then summed by ``rollups.deltas`` and ``tenant_daily.deltas``.
Batches share a few tenants, minutes and models, so groups gather several events; models may
be null or empty (``model_of`` skips empty names, ``quarter_key`` does not), costs null, of
any scale the schema holds, negative, or summed at mixed scales.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import factories
from tests._native_rows import PRICED, frame, native_reader
from tokenline.schemas import catalog
from tokenline.sink import native_sums, rollups, tenant_daily
from tokenline.sink.rows import event_row

pytestmark = pytest.mark.unit

_START = datetime(2026, 3, 29, 0, 50, tzinfo=UTC)
_models = st.sampled_from([None, "", "gpt-4o", "claude-sonnet-4"])
_IDS = [uuid.UUID(int=n) for n in range(1, 4)]


def _fastavro_row(data: bytes) -> dict[str, Any]:
    schema = catalog().latest(PRICED)
    record: Any = schemaless_reader(BytesIO(data[10:]), schema.parsed, schema.parsed)
    return event_row(record)


@st.composite
def _records(draw: st.DrawFn) -> Any:
    record: Any = draw(factories.priced_events)
    event: Any = record["event"]
    event["event_id"] = draw(st.sampled_from(_IDS) | st.uuids())  # repeated now and then
    event["tenant_id"] = draw(st.sampled_from(["t1", "t2"]))
    event["occurred_at"] = _START + timedelta(seconds=draw(st.integers(0, 40)) * 37)
    event["latency_ms"] = draw(st.integers(0, 10**6))
    for field in ("request_model", "response_model", "deployment"):
        event[field] = draw(_models)
    record["canonical_model"] = draw(_models)
    record["team"] = draw(st.sampled_from([None, "search"]))
    event["team"] = draw(st.sampled_from([None, "ads"]))
    event["project"] = draw(st.sampled_from([None, "p"]))
    if record["cost"] is not None and draw(st.booleans()):
        record["cost"]["total"] = draw(
            st.decimals(
                min_value=Decimal("-" + "9" * 20),
                max_value=Decimal("9" * 20),
                places=draw(st.integers(0, 12)),
                allow_nan=False,
            )
        )
    return record


def _exact(value: Any) -> Any:
    """A value with its Decimals as their tuples (the exponent compared too)."""
    if isinstance(value, Decimal):
        return value.as_tuple()
    if isinstance(value, rollups.Delta):
        return {k: _exact(v) for k, v in vars(value).items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    return value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_records(), min_size=1, max_size=30))
def test_native_sums_are_the_python_sums(records: list[Any]) -> None:
    messages = [frame(r) for r in records]
    made = native_reader().rows(messages)
    rows = [row for row in made if row is not None]
    truth = [_fastavro_row(m) for m, row in zip(messages, made, strict=True) if row is not None]
    if not rows:
        return
    summed = native_sums.sums(rows)
    assert summed is not None
    # Whether the store may skip de-duplication: only when no two events share an id.
    assert native_sums.distinct(rows) == (len({r["event_id"] for r in truth}) == len(truth))
    got_rollups, got_daily = summed
    want_rollups, want_daily = rollups.deltas(truth), tenant_daily.deltas(truth)
    assert {k: _exact(v) for k, v in got_rollups.items()} == {
        k: _exact(v) for k, v in want_rollups.items()
    }
    assert {k: _exact(v) for k, v in got_daily.items()} == {
        k: _exact(v) for k, v in want_daily.items()
    }


def test_rows_that_are_not_a_whole_batch_are_summed_by_python() -> None:
    """The native sums are of a whole batch's native rows: any other set is Python's."""
    records = [factories.priced_event(), factories.priced_event()]
    first, second = native_reader().rows([frame(r) for r in records])
    assert first is not None
    assert second is not None
    assert native_sums.sums([first, second]) is not None
    assert native_sums.sums([second, first]) is not None  # in any order
    assert native_sums.sums([first]) is None  # the other one was set aside
    assert native_sums.sums([first, event_row(records[1])]) is None  # read by Python
    (again,) = native_reader().rows([frame(records[1])])  # the same event, another batch
    assert again is not None
    assert native_sums.sums([first, again]) is None
    assert native_sums.sums([]) is None
