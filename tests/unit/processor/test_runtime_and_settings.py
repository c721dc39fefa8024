from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner

from tests.factories import usage_event
from tests.unit.processor.test_pipeline import BOOK, SONNET
from tokenline.common.errors import ConfigError
from tokenline.processor.cli_processor import processor
from tokenline.processor.metrics import Metrics
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import PriceTable
from tokenline.processor.runtime import ProcessorRuntime
from tokenline.processor.settings import ProcessorSettings, load_settings
from tokenline.processor.topics import topic_specs
from tokenline.schemas import AvroCodec

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)
USAGE = AvroCodec[Any]("tokenline.UsageEvent")
PRICED = AvroCodec[Any]("tokenline.PricedUsageEvent")
ROLLUP = AvroCodec[Any]("tokenline.UsageRollup")
SOURCE: Any = {"topic": "llm-usage.raw", "partition": 1, "offset": 5}


def runtime() -> ProcessorRuntime:
    return ProcessorRuntime(
        settings=ProcessorSettings(worker_name="w"), metrics=Metrics(), book=BOOK
    )


def sample(rt: ProcessorRuntime, name: str, labels: dict[str, str] | None = None) -> float | None:
    return rt.metrics.registry.get_sample_value(name, labels or {})


def test_settings_report_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(topic_partitions=0, metrics_port=70_000, topic_prefix="bad prefix")
    assert len(info.value.problems) == 3


def test_topics_use_the_prefix_and_the_prices_topic_is_compacted() -> None:
    specs = {
        s.name: s for s in topic_specs(ProcessorSettings(topic_prefix="x-", topic_partitions=6))
    }
    assert specs["x-llm-usage.raw"].partitions == 6
    assert specs["x-llm-usage.prices"].config["cleanup.policy"] == "compact"
    assert set(specs) == {
        "x-llm-usage.raw",
        "x-llm-usage.priced",
        "x-llm-usage.rollup-1m",
        "x-llm-usage.dlq",
        "x-llm-usage.prices",
    }


def test_processor_check_lists_problems() -> None:
    result = CliRunner().invoke(
        processor, ["--check"], env={"TOKENLINE_TOPIC_PARTITIONS": "0", "TOKENLINE_WEB_PORT": "0"}
    )
    assert result.exit_code == 2
    assert "TOKENLINE_TOPIC_PARTITIONS" in result.output
    assert "TOKENLINE_WEB_PORT" in result.output


def test_runtime_counts_and_encodes() -> None:
    rt = runtime()
    event = usage_event(occurred_at=NOW - timedelta(seconds=1), producer_seq=1)
    done = rt.handle(USAGE.encode(event), key=b"acme", source=SOURCE, timestamp_ms=None, now=NOW)
    assert done.priced_value is not None
    assert done.window_key == '["acme","anthropic","claude-sonnet-4-5"]'
    gap = usage_event(occurred_at=NOW, producer_seq=5)
    rt.handle(USAGE.encode(gap), key=b"acme", source=SOURCE, timestamp_ms=None, now=NOW)
    rt.handle(USAGE.encode(gap), key=b"acme", source=SOURCE, timestamp_ms=None, now=NOW)
    bad = rt.handle(b"\x00\x00", key=None, source=SOURCE, timestamp_ms=None, now=NOW)
    assert bad.dlq_value is not None
    assert bad.priced is None
    assert sample(rt, "tokenline_processor_events_in_total") == 4
    assert sample(rt, "tokenline_processor_producer_gaps_total") == 3
    assert sample(rt, "tokenline_processor_producer_repeats_total") == 1
    assert (
        sample(
            rt,
            "tokenline_processor_dead_letters_total",
            {"reason_code": "truncated", "stage": "decode"},
        )
        == 1
    )


def _fold(rollups: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[Any]]:
    """Window deltas summed per window (the latency max taken as a max)."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    for r in rollups:
        key = (r["tenant_id"], r["provider"], r["model"], r["window_start"])
        sums = out.setdefault(key, [0, 0, 0, 0, Decimal(0), 0, 0])
        sums[0] += r["requests"]
        sums[1] += r["failures"]
        sums[2] += r["input_tokens"] + r["cache_read_input_tokens"] + r["output_tokens"]
        sums[3] += r["unpriced_count"]
        sums[4] += r["cost_total"]
        sums[5] += r["latency_ms_sum"]
        sums[6] = max(sums[6], r["latency_ms_max"])
    return out


def _truth(priced: list[dict[str, Any]]) -> dict[tuple[Any, ...], list[Any]]:
    """The same sums, grouped here from the priced events, each event_id once."""
    out: dict[tuple[Any, ...], list[Any]] = {}
    seen: set[Any] = set()
    for p in priced:
        e = p["event"]
        if e["event_id"] in seen:
            continue
        seen.add(e["event_id"])
        at = e["occurred_at"]
        minute = at.replace(second=0, microsecond=0)
        model = p["canonical_model"] or e["response_model"] or e["request_model"] or "unknown"
        sums = out.setdefault((e["tenant_id"], e["provider"], model, minute), [0] * 7)
        u = e["usage"]
        sums[0] += 1
        sums[1] += 0 if e["success"] else 1
        sums[2] += u["input_tokens"] + u["cache_read_input_tokens"] + u["output_tokens"]
        sums[3] += 1 if p["cost"] is None else 0
        sums[4] += p["cost"]["total"] if p["cost"] is not None else 0
        sums[5] += e["latency_ms"]
        sums[6] = max(sums[6], e["latency_ms"])
    return out


def test_batches_sum_windows_exactly_and_count_a_duplicate_once() -> None:
    rng = random.Random(13)
    rt = runtime()
    minute = NOW.replace(second=0, microsecond=0) - timedelta(minutes=30)
    raw: list[bytes] = []
    for n in range(600):
        at = minute + timedelta(minutes=rng.randrange(5), seconds=rng.choice([0, 59.999999, 30]))
        event = usage_event(
            event_id=uuid.UUID(int=n + 1),
            tenant_id=rng.choice(["a", "b"]),
            occurred_at=at,
            response_model=rng.choice(["claude-sonnet-4-5", "a-model-nobody-prices"]),
            success=rng.random() > 0.1,
            latency_ms=rng.randrange(5000),
            usage={**usage_event()["usage"], "input_tokens": rng.randrange(10**6)},
        )
        raw.append(USAGE.encode(event))
    raw += rng.sample(raw, 50)  # the same records again, later
    raw.insert(100, b"\x00\x00")  # and one that is not an event
    records: list[Any] = [(b"k", v, "raw", 0, i, None) for i, v in enumerate(raw)]
    priced: list[dict[str, Any]] = []
    rollups: list[dict[str, Any]] = []
    dead = duplicates = 0
    while records:
        size = rng.randrange(1, 200)
        batch = rt.handle_batch(records[:size], NOW)
        records = records[size:]
        priced += [PRICED.decode(v) for _k, v in batch.priced]
        rollups += [ROLLUP.decode(v) for _k, v in batch.rollups]
        dead += len(batch.dead)
        duplicates += batch.duplicates
    assert (len(priced), dead, duplicates) == (650, 1, 50)
    assert _fold(rollups) == _truth(priced)
    assert sample(rt, "tokenline_processor_events_in_total") == 651


def test_batches_are_decoded_natively() -> None:
    rt = runtime()
    events = [usage_event(event_id=uuid.UUID(int=n + 1), occurred_at=NOW) for n in range(30)]
    values: list[bytes | None] = [USAGE.encode(e) for e in events]
    values += [b"\x00\x00", None]
    records: list[Any] = [(b"k", v, "raw", 0, i, None) for i, v in enumerate(values)]
    batch = rt.handle_batch(records, NOW)
    assert rt.usage_codec.native_decoder is not None
    assert rt.usage_codec.decoded_natively == 30  # not one fell back to Python
    assert len(batch.priced) == 30
    assert [PRICED.decode(v)["event"] for _k, v in batch.priced] == events
    assert sample(rt, "tokenline_processor_dead_letters_total", DECODE_TRUNCATED) == 2
    # One record at a time, as the replay and the tests do, reads as before.
    one = rt.handle(values[0] or b"", key=b"k", source=SOURCE, timestamp_ms=None, now=NOW)
    assert one.priced is not None
    assert one.priced["event"] == events[0]


DECODE_TRUNCATED = {"reason_code": "truncated", "stage": "decode"}


def test_runtime_swaps_prices_and_ignores_bad_documents() -> None:
    rt = runtime()
    assert not rt.swap_prices(b"{not json")
    assert not rt.swap_prices(None)
    cheaper = PriceBook(PriceTable([SONNET]), adjustments={})
    assert rt.swap_prices(cheaper.to_json().encode())
    assert rt.book.pricing_version == cheaper.pricing_version
    assert sample(rt, "tokenline_processor_price_updates_total", {"result": "invalid"}) == 1
