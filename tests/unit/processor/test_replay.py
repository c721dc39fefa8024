"""The replay's pure parts: range, scope, re-pricing with duplicates, windows, summary, splice."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.factories import EPOCH, usage_event
from tokenline.processor.pipeline import PipelineConfig
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import BucketPrices, PriceEntry, PriceTable
from tokenline.processor.replay.landing import fingerprint
from tokenline.processor.replay.rollups import rollups_to_emit
from tokenline.processor.replay.scope import ReplayScope, truncated_partitions, widen
from tokenline.processor.replay.state import CostLine, Repricer, merge_results
from tokenline.processor.replay.summary import summarize
from tokenline.processor.splice import PricedEncoder
from tokenline.schemas import AvroCodec
from tokenline.schemas.priced import PRICE_COLUMNS

pytestmark = pytest.mark.unit

USAGE = AvroCodec[Any]("tokenline.UsageEvent")
PRICED = AvroCodec[Any]("tokenline.PricedUsageEvent")
SINCE = datetime(2000, 1, 1, tzinfo=UTC)
NOW = datetime(2027, 6, 1, tzinfo=UTC)  # long after EPOCH: beyond the processor's max_age


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def book(output_per_m: str = "15") -> PriceBook:
    m = Decimal(1_000_000)
    prices = BucketPrices(
        input=Decimal(3) / m,
        output=Decimal(output_per_m) / m,
        cache_read=Decimal("0.3") / m,
        cache_write_5m=Decimal("3.75") / m,
        cache_write_1h=Decimal(6) / m,
        reasoning=None,
    )
    entry = PriceEntry(
        PriceEntry.make_id("anthropic", "claude-sonnet-4-5", SINCE),
        "anthropic",
        "claude-sonnet-4-5",
        SINCE,
        prices,
    )
    return PriceBook(PriceTable([entry]))


def test_range_is_widened_to_whole_windows() -> None:
    assert widen(at(61), at(179), 60) == (at(60), at(180))
    assert widen(at(60), at(180), 60) == (at(60), at(180))
    assert widen(at(1), at(2), 300) == (at(0), at(300))
    with pytest.raises(ValueError, match="empty range"):
        widen(at(10), at(10), 60)
    with pytest.raises(ValueError, match="timezone"):
        widen(datetime(2026, 1, 1), at(10), 60)  # noqa: DTZ001


def test_scope_filters_by_range_and_tenant_and_reads_with_allowances() -> None:
    scope = ReplayScope.of(at(61), at(119), window_seconds=60, tenants=["acme"], lead_s=30)
    assert (scope.start, scope.end) == (at(60), at(120))
    assert scope.contains(usage_event(occurred_at=at(60)))
    assert scope.contains(usage_event(occurred_at=at(119.999999)))
    assert not scope.contains(usage_event(occurred_at=at(120)))
    assert not scope.contains(usage_event(occurred_at=at(59.999999)))
    assert not scope.contains(usage_event(occurred_at=at(90), tenant_id="globex"))
    epoch_ms = int(EPOCH.timestamp() * 1000)
    assert scope.read_from_ms == epoch_ms + 30_000
    assert scope.read_to_ms == epoch_ms + 120_000 + 600_000
    assert ReplayScope.of(at(0), at(1), window_seconds=60).contains(
        usage_event(tenant_id="anyone", occurred_at=at(0))
    )


def test_truncation_needs_deleted_records_and_a_later_first_record() -> None:
    low = {0: 0, 1: 5, 2: 5, 3: 9}
    first = {0: 100, 1: 2_000, 2: 500, 3: None}
    assert truncated_partitions(low, first, 1_000) == {1: 2_000, 3: None}
    scope = ReplayScope.of(at(0), at(600), window_seconds=60)
    # The kept record's window may have lost records: the scope starts after it.
    assert scope.after(at(150)).start == at(180)
    assert scope.after(at(180)).start == at(240)
    assert scope.after(at(-500)).start == at(0)


def _repricer(**more: Any) -> Repricer:
    return Repricer(
        scope=ReplayScope.of(at(0), at(180), window_seconds=60),
        book=book(),
        config=PipelineConfig(),
        priced_at=NOW,
        encoder=PricedEncoder(),
        **more,
    )


def _add(repricer: Repricer, event: Any, offset: int, partition: int = 0) -> Any:
    return repricer.add(
        USAGE.encode(event),
        key=b"k",
        topic="raw",
        partition=partition,
        offset=offset,
        timestamp_ms=int(event["occurred_at"].timestamp() * 1000),
    )


def test_old_events_are_priced_at_their_record_time_and_duplicates_count_once() -> None:
    repricer = _repricer(keep_keys=True)
    first = usage_event(event_id=uuid.uuid4(), occurred_at=at(10))
    second = usage_event(event_id=uuid.uuid4(), occurred_at=at(70), success=False)
    outside = usage_event(event_id=uuid.uuid4(), occurred_at=at(200))
    unknown = usage_event(
        event_id=uuid.uuid4(), occurred_at=at(75), request_model="mystery", response_model=None
    )
    outs = [
        _add(repricer, first, 0),
        _add(repricer, second, 1),
        _add(repricer, first, 2),  # the same event_id again (an SDK retry)
        _add(repricer, outside, 3),
        _add(repricer, unknown, 4),
    ]
    assert [o is not None for o in outs] == [True, True, False, False, True]
    counts = repricer.result.counts
    assert (counts.read, counts.duplicates, counts.out_of_scope) == (5, 1, 1)
    assert (counts.priced, counts.unpriced, sum(counts.dead_lettered.values())) == (2, 1, 0)

    key, value = outs[0]
    priced = PRICED.decode(value)
    assert key == b"acme"
    assert priced["priced_at"] == NOW
    assert priced["source"] == {"topic": "raw", "partition": 0, "offset": 0}
    assert priced["pricing_version"] == book().pricing_version
    assert priced == {**priced, "event": first}

    lines = repricer.result.after
    cost = priced["cost"]["total"]
    assert lines[("acme", "claude-sonnet-4-5")] == CostLine(2, cost * 2, 0)
    assert lines[("acme", "mystery")] == CostLine(1, Decimal(0), 1)
    windows = repricer.result.windows
    sonnet = '["acme","anthropic","claude-sonnet-4-5"]'
    assert windows[(sonnet, at(0).isoformat())]["requests"] == 1  # the duplicate is not added
    assert windows[(sonnet, at(60).isoformat())]["failures"] == 1
    assert len(repricer.result.occurred_us) == 3
    assert len(repricer.result.event_ids) == 3 * 16


def test_a_copy_the_sink_refused_is_skipped_even_when_it_comes_first() -> None:
    """The sink keeps the first copy it stored; the replay re-prices that one only."""
    event_id = uuid.uuid4()
    refused = usage_event(event_id=event_id, occurred_at=at(10))
    stored = usage_event(event_id=event_id, occurred_at=at(130))
    micros = (at(10) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    repricer = _repricer(refused=frozenset({(event_id.int, micros)}))
    outs = [_add(repricer, refused, 0), _add(repricer, stored, 1), _add(repricer, refused, 2)]
    assert [o is not None for o in outs] == [False, True, False]
    counts = repricer.result.counts
    assert (counts.duplicates, counts.priced) == (2, 1)
    assert [w[1] for w in repricer.result.windows] == [at(120).isoformat()]
    # without the sink's word, the first copy in offset order is the one counted
    plain = _repricer()
    assert [o is not None for o in (_add(plain, refused, 0), _add(plain, stored, 1))] == [
        True,
        False,
    ]


def test_invalid_and_undecodable_records_are_counted_not_emitted() -> None:
    repricer = _repricer()
    bad = usage_event(event_id=uuid.uuid4(), occurred_at=at(5), latency_ms=-1)
    assert _add(repricer, bad, 0) is None
    assert (
        repricer.add(
            b"\xc3\x01not-an-event-at-all",
            key=None,
            topic="raw",
            partition=0,
            offset=1,
            timestamp_ms=None,
        )
        is None
    )
    assert dict(repricer.result.counts.dead_lettered) == {
        "invalid_event": 1,
        "unknown_fingerprint": 1,
    }


def test_a_dry_run_encodes_nothing_but_accounts_for_everything() -> None:
    repricer = Repricer(
        scope=ReplayScope.of(at(0), at(60), window_seconds=60),
        book=book(),
        config=PipelineConfig(),
        priced_at=NOW,
    )
    assert _add(repricer, usage_event(occurred_at=at(1)), 0) is None
    assert repricer.result.counts.priced == 1


def test_spliced_encoding_equals_the_codec() -> None:
    encoder = PricedEncoder()
    repricer = _repricer()
    for n in range(20):
        event = usage_event(event_id=uuid.uuid4(), occurred_at=at(n), tags={"n": str(n)})
        out = _add(repricer, event, n)
        record = PRICED.decode(out[1])
        assert out[1] == encoder.codec.encode(record)
    assert repricer.encoder is not None
    assert repricer.encoder.spliced == 20


def test_results_of_readers_merge_and_split_windows_add_up() -> None:
    a, b = _repricer(), _repricer()
    _add(a, usage_event(event_id=uuid.uuid4(), occurred_at=at(1), latency_ms=10), 0, 0)
    _add(b, usage_event(event_id=uuid.uuid4(), occurred_at=at(2), latency_ms=30), 7, 1)
    merged = merge_results([a.result, b.result])
    (value,) = merged.windows.values()
    assert (value["requests"], value["latency_ms_sum"], value["latency_ms_max"]) == (2, 40, 30)
    assert (value["source_partition"], value["max_source_offset"]) == (1, 7)
    assert merged.counts.priced == 2
    assert merged.after[("acme", "claude-sonnet-4-5")].events == 2


def test_only_changed_windows_send_deltas_and_vanished_ones_are_taken_away() -> None:
    repricer = _repricer()
    _add(repricer, usage_event(event_id=uuid.uuid4(), occurred_at=at(1)), 0)
    _add(repricer, usage_event(event_id=uuid.uuid4(), occurred_at=at(61)), 1)
    windows = repricer.result.windows
    same = next(iter(sorted(windows.items())))
    stored_same = dict(same[1])
    stored_same["updated_at"] = at(-1)  # older, but equal totals
    gone = {**stored_same, "model": "old-name", "cost_total": Decimal("0.5"), "requests": 3}
    stored = {
        (r["tenant_id"], r["window_start"], r["provider"], r["model"]): r
        for r in (stored_same, gone)
    }
    repriced = {**stored_same, "window_start": at(60), "cost_total": Decimal("0.001")}
    stored[(repriced["tenant_id"], at(60), repriced["provider"], repriced["model"])] = repriced
    out, unchanged = rollups_to_emit(windows, stored, updated_at=NOW)
    assert unchanged == 1
    # Deltas: the stored rows plus what is sent add up to the recomputed windows
    assert [(r["window_start"], r["model"], r["requests"]) for r in out] == [
        (at(60), "claude-sonnet-4-5", 0),
        (at(0), "old-name", -3),
    ]
    recomputed_60 = next(v for (_k, start), v in windows.items() if start == at(60).isoformat())
    assert Decimal("0.001") + out[0]["cost_total"] == recomputed_60["cost_total"]
    assert (out[1]["cost_total"], out[1]["updated_at"]) == (Decimal("-0.5"), NOW)


def test_summary_pairs_sides_and_totals() -> None:
    before = {
        ("acme", "m1"): CostLine(2, Decimal("1.5")),
        ("acme", "gone"): CostLine(1, Decimal(1)),
    }
    after = {
        ("acme", "m1"): CostLine(2, Decimal("2.25")),
        ("globex", "m2"): CostLine(1, Decimal(0), 1),
    }
    summary = summarize(before, after)
    assert [(r.tenant_id, r.model, r.events, r.delta) for r in summary.rows] == [
        ("acme", "gone", 0, Decimal(-1)),
        ("acme", "m1", 2, Decimal("0.75")),
        ("globex", "m2", 1, Decimal(0)),
    ]
    assert (summary.before, summary.after, summary.delta) == (
        Decimal("2.5"),
        Decimal("2.25"),
        Decimal("-0.25"),
    )
    assert summary.events == 3


def test_the_landing_fingerprint_covers_what_the_sink_compares() -> None:
    from tokenline.sink.store import PRICED_VALUE_COLUMNS

    assert PRICE_COLUMNS == PRICED_VALUE_COLUMNS
    repricer = _repricer(keep_keys=True)
    events = [usage_event(event_id=uuid.uuid4(), occurred_at=at(10 + n)) for n in range(2)]
    unknown = usage_event(event_id=uuid.uuid4(), occurred_at=at(20), response_model="mystery")
    outs = [_add(repricer, e, n) for n, e in enumerate([*events, unknown])]
    records = [PRICED.decode(out[1]) for out in outs if out is not None]
    assert len(records) == 3
    assert list(repricer.result.fingerprints) == [fingerprint(r) for r in records]
    # Same pricing values, same fingerprint, whatever the version or time of pricing.
    same = {**records[0], "pricing_version": "other", "priced_at": NOW + timedelta(days=1)}
    assert fingerprint(same) == fingerprint(records[0])
    cheaper = {**records[0], "cost": {**records[0]["cost"], "total": Decimal("0.000000000001")}}
    assert fingerprint(cheaper) != fingerprint(records[0])
    assert fingerprint(records[2]) != fingerprint({**records[2], "unpriced_reason": "other"})
    # The layout landing.py documents, written out: model, status, reason, the six costs with 12
    # places, currency, price entry; joined by a unit separator, NULL as a record separator.
    priced = records[0]
    cost = priced["cost"]
    parts = ("input", "cache_read", "cache_write", "output", "reasoning", "total")
    text = "\x1f".join(
        [
            priced["canonical_model"],
            priced["pricing_status"],
            "\x1e",
            *(format(cost[p].quantize(Decimal("1E-12")), "f") for p in parts),
            priced["currency"],
            priced["price_entry_id"],
        ]
    )
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    assert fingerprint(priced) == int.from_bytes(digest[:8], "big", signed=True)
