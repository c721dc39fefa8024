from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from tokenline.sink.errors import DatabaseUnavailable
from tokenline.sink.metrics import MeteredStore, SinkMetrics
from tokenline.sink.store import Rejected, RetryingStore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

pytestmark = pytest.mark.unit


class FlakyStore:
    """Fails ``failures`` times, then refuses the rows whose ``bad`` is set."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.closed = False

    def write(self, priced_rows: Sequence[dict[str, Any]]) -> list[Rejected]:
        self.calls += 1
        if self.calls <= self.failures:
            raise DatabaseUnavailable("down")
        return [Rejected("usage_events", r, "23514: no") for r in priced_rows if r.get("bad")]

    def close(self) -> None:
        self.closed = True


def test_retrying_then_metered_counts_landed_rows_and_retries() -> None:
    metrics = SinkMetrics()
    inner = FlakyStore(failures=3)
    waits: list[float] = []
    store = MeteredStore(
        RetryingStore(
            inner,
            initial_ms=10,
            max_ms=25,
            wait=waits.append,
            on_retry=lambda _a, _e: metrics.retries.inc(),
        ),
        metrics,
    )
    now = datetime.now(UTC)
    live = {"occurred_at": now - timedelta(seconds=2), "priced_at": now - timedelta(seconds=1)}
    replayed = {"occurred_at": now - timedelta(days=3), "priced_at": now}
    rejected = store.write([{**live}, {**live, "bad": True}, {**replayed}, {**live}])
    assert [r.table for r in rejected] == ["usage_events"]
    assert waits == [0.01, 0.02, 0.025]
    sample = metrics.registry.get_sample_value
    assert sample("tokenline_sink_rows_landed_total", {"table": "usage_events"}) == 3
    assert sample("tokenline_sink_retries_total") == 3
    # Freshness of the two live rows that landed; the replayed one and the refused one not.
    assert sample("tokenline_sink_freshness_seconds_count") == 2
    assert sample("tokenline_sink_freshness_seconds_bucket", {"le": "1.0"}) == 0
    assert sample("tokenline_sink_freshness_seconds_bucket", {"le": "30.0"}) == 2
    assert sample("tokenline_sink_batch_seconds_count") == 1
    store.close()
    assert inner.closed


def test_a_metered_store_given_later_counts_freshness_when_the_chore_runs() -> None:
    metrics = SinkMetrics()
    chores: list[Callable[[], None]] = []
    store = MeteredStore(FlakyStore(failures=0), metrics, later=chores.append)
    now = datetime.now(UTC)
    live = {"occurred_at": now - timedelta(seconds=2), "priced_at": now - timedelta(seconds=1)}
    assert store.write([{**live}, {**live}]) == []
    sample = metrics.registry.get_sample_value
    assert sample("tokenline_sink_rows_landed_total", {"table": "usage_events"}) == 2
    assert sample("tokenline_sink_freshness_seconds_count") == 0  # not counted yet
    assert len(chores) == 1
    chores[0]()
    assert sample("tokenline_sink_freshness_seconds_count") == 2
    assert sample("tokenline_sink_freshness_seconds_bucket", {"le": "1.0"}) == 0
    assert sample("tokenline_sink_freshness_seconds_bucket", {"le": "30.0"}) == 2


def test_metrics_of_two_workers_do_not_collide() -> None:
    SinkMetrics().retries.inc()
    assert SinkMetrics().registry.get_sample_value("tokenline_sink_retries_total") == 0


def test_the_metrics_endpoint_serves_the_workers_registry() -> None:
    import socket
    import urllib.request

    from tokenline.sink.metrics import serve

    assert serve(SinkMetrics(), 0) is None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = SinkMetrics()
    metrics.dead_letters.labels("truncated").inc()
    server = serve(metrics, port)
    assert server is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            body = answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert 'tokenline_sink_dead_letters_total{reason_code="truncated"} 1.0' in body
    assert "tokenline_sink_consumer_lag" in body
