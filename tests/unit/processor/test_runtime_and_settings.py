from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner

from tests.factories import usage_event
from tests.unit.processor.test_pipeline import BOOK, SONNET
from tokenline.processor.cli_processor import processor
from tokenline.processor.metrics import Metrics
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import PriceTable
from tokenline.processor.runtime import Runtime
from tokenline.processor.settings import ConfigError, ProcessorSettings, load_settings
from tokenline.processor.topics import topic_specs
from tokenline.processor.windows import apply
from tokenline.schemas import AvroCodec

pytestmark = pytest.mark.unit

NOW = datetime.now(UTC)
USAGE = AvroCodec[Any]("tokenline.UsageEvent")
SOURCE: Any = {"topic": "llm-usage.raw", "partition": 1, "offset": 5}


def runtime() -> Runtime:
    return Runtime(settings=ProcessorSettings(worker_name="w"), metrics=Metrics(), book=BOOK)


def sample(rt: Runtime, name: str, labels: dict[str, str] | None = None) -> float | None:
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
    assert "topic_partitions" in result.output
    assert "web_port" in result.output


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


def test_runtime_drains_changed_windows_once() -> None:
    rt = runtime()
    event = usage_event(occurred_at=NOW - timedelta(seconds=1))
    done = rt.handle(USAGE.encode(event), key=b"acme", source=SOURCE, timestamp_ms=None, now=NOW)
    assert done.priced is not None
    assert done.window_key is not None
    value = apply(None, done.priced, 1, 5)
    assert value is not None
    rt.remember_window(done.window_key, value)
    rt.remember_window(done.window_key, value)
    out = rt.drain_rollups()
    assert len(out) == 1
    assert out[0][0] == b"acme"
    assert AvroCodec[Any]("tokenline.UsageRollup").decode(out[0][1])["requests"] == 1
    assert rt.drain_rollups() == []


def test_runtime_swaps_prices_and_ignores_bad_documents() -> None:
    rt = runtime()
    assert not rt.swap_prices(b"{not json")
    assert not rt.swap_prices(None)
    cheaper = PriceBook(PriceTable([SONNET]), adjustments={})
    assert rt.swap_prices(cheaper.to_json().encode())
    assert rt.book.pricing_version == cheaper.pricing_version
    assert sample(rt, "tokenline_processor_price_updates_total", {"result": "invalid"}) == 1
