"""The API's pure parts: the committed OpenAPI document, the rate limiter, keys, JSON events."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from tokenline.sink.api.cache import ReportCache
from tokenline.sink.api.cli import openapi_text
from tokenline.sink.api.events import EventConverter
from tokenline.sink.api.keys import KeyError_, KeyStore, parse_key
from tokenline.sink.api.ratelimit import RateLimiter

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).parents[3] / "sink" / "openapi.json"


def test_the_committed_openapi_document_is_current() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == openapi_text(), (
        "sink/openapi.json is stale: run `tokenline api openapi > sink/openapi.json`"
    )


def test_money_is_never_a_number_in_the_document() -> None:
    document = json.loads(openapi_text())
    totals = document["components"]["schemas"]["TotalsOut"]["properties"]
    money = [name for name in totals if name.startswith(("cost_", "avg_cost"))]
    assert len(money) == 7
    for name in money:
        kinds = {t.get("type") for t in totals[name].get("anyOf", [totals[name]])}
        assert kinds <= {"string", "null"}, name


def test_the_limiter_allows_the_limit_then_refills_at_its_rate() -> None:
    limiter = RateLimiter()
    assert [limiter.take("k", 60, 100.0) for _ in range(60)] == [None] * 60
    wait = limiter.take("k", 60, 100.0)
    assert wait == pytest.approx(1.0)
    assert limiter.take("k", 60, 101.0) is None  # one a second comes back
    assert limiter.take("other", 60, 101.0) is None  # buckets are per key


def test_key_text() -> None:
    assert parse_key("tlk_0123456789ab_" + "x" * 43) == ("0123456789ab", "x" * 43)
    assert parse_key("tlk_0123456789ab_" + "x" * 42) is None
    assert parse_key("Bearer tlk_0123456789ab_" + "x" * 43) is None


@pytest.mark.parametrize(
    ("tenant", "scopes"),
    [(None, ("read",)), ("t", ("admin",)), ("t", ()), ("t", ("write",)), (None, ("admin", "read"))],
)
def test_scopes_that_cannot_be(tenant: str | None, scopes: tuple[str, ...]) -> None:
    with pytest.raises(KeyError_):
        KeyStore().create(None, tenant_id=tenant, scopes=scopes)  # type: ignore[arg-type]


def test_an_event_gets_ids_and_defaults() -> None:
    converter = EventConverter()
    minimal = {
        "tenant_id": "t",
        "occurred_at": "2026-10-01T00:00:00-07:00",
        "provider": "gemini",
        "operation": "embedding",
        "usage": {},
        "usage_source": "estimated",
        "latency_ms": 5,
        "success": False,
        "host": {},
    }
    first, problems = converter.convert(minimal)
    second, _ = converter.convert(minimal)
    assert problems == []
    assert first is not None
    assert second is not None
    assert first["event_id"] != second["event_id"]
    assert first["event_id"].version == 7
    assert first["producer_id"] == second["producer_id"]
    assert second["producer_seq"] == first["producer_seq"] + 1
    assert first["occurred_at"].isoformat() == "2026-10-01T07:00:00+00:00"
    assert first["usage"]["input_tokens"] == 0
    assert first["usage"]["cache_write_5m_input_tokens"] is None
    assert first["tags"] == {}


def test_not_an_object() -> None:
    assert EventConverter().convert([1, 2]) == (None, ["$: must be an object"])


def test_the_report_cache_reuses_a_result_for_its_ttl_only() -> None:
    now = [0.0]
    cache = ReportCache(5.0, clock=lambda: now[0])
    computed: list[int] = []

    def compute() -> int:
        computed.append(1)
        return len(computed)

    assert cache.get("a", compute) == 1
    now[0] = 4.9
    assert cache.get("a", compute) == 1
    assert cache.get("b", compute) == 2  # another question
    now[0] = 5.0
    assert cache.get("a", compute) == 3
    assert ReportCache(0).get("a", compute) == 4  # off: always computed


def test_concurrent_misses_compute_once() -> None:
    cache = ReportCache(60.0)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        started.set()
        release.wait(10)
        return "report"

    first = threading.Thread(target=lambda: cache.get("k", slow))
    first.start()
    started.wait(10)
    results: list[str] = []
    waiter = threading.Thread(target=lambda: results.append(cache.get("k", slow)))
    waiter.start()
    release.set()
    first.join(10)
    waiter.join(10)
    assert results == ["report"]
    assert calls == [1]


def test_an_expired_value_is_served_while_another_request_refreshes_it() -> None:
    now = [0.0]
    cache = ReportCache(5.0, clock=lambda: now[0])
    assert cache.get("k", lambda: "old") == "old"
    now[0] = 6.0
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "new"

    refresher = threading.Thread(target=lambda: cache.get("k", slow))
    refresher.start()
    started.wait(10)
    assert cache.peek("k") == "old"  # the refresh is under way: no one waits for it
    assert cache.get("k", lambda: "other") == "old"
    release.set()
    refresher.join(10)
    assert cache.peek("k") == "new"
