"""The HTTP transport's added latency per wrapped call, beside the Kafka transport's, one run.

    .venv/bin/python bench/sdk_http.py [--calls 5000] [--block 25] [--warmup 300]

Needs a PostgreSQL server (``--database-url`` or ``TOKENLINE_TEST_DATABASE_URL``) for the API's
keys, and Kafka (``--bootstrap`` / ``TOKENLINE_TEST_KAFKA_BOOTSTRAP``, else a private broker on
loopback, as ``sdk_overhead.py``). It makes a fresh database (``tokenline sink migrate``), an
ingest key (``tokenline api keys create``), starts ``tokenline api serve`` and the provider
emulator each in a process of its own, then measures an OpenAI chat completion wrapped against
unwrapped with ``sdk_overhead.py``'s method (interleaved blocks, medians with a bootstrap
interval, paired differences, p99, the caller's CPU): once with the Kafka transport, once with
``transport="http"``. The caller's path is the same queue append for both; what differs is the
sender thread's work (an HTTP POST per wake instead of librdkafka's produce), which competes
with the caller for the GIL and the two cores.

Also printed: the events each transport delivered, and the HTTP sender's median time per batch
(a POST and its 202, which waits for Kafka's acknowledgement).

Why not in ``sdk_overhead.py``: that run needs no database and no API process; this one does.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "sdk"))

import sdk_overhead
from e2e_services import broker

from tests._db import drop_database
from tests._kafka import new_topic
from tests.integration.sdk._api_server import ApiServer, create_key, migrated_database
from tokenline import sdk
from tokenline.sdk.emitters import HttpEmitter

SCENARIO = "openai chat"


def _timed_posts() -> list[int]:
    """Time each batch the HTTP emitter posts (ns, on the sender thread)."""
    times: list[int] = []
    post = HttpEmitter._post

    def timed(self: HttpEmitter, records: Any, timeout_s: float) -> None:
        started = time.perf_counter_ns()
        post(self, records, timeout_s)
        times.append(time.perf_counter_ns() - started)

    HttpEmitter._post = timed  # type: ignore[method-assign]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--calls", type=int, default=5_000, help="timed calls each way")
    parser.add_argument("--block", type=int, default=25, help="calls per interleaved block")
    parser.add_argument("--warmup", type=int, default=300, help="untimed calls each way first")
    parser.add_argument("--bootstrap", default=os.environ.get("TOKENLINE_TEST_KAFKA_BOOTSTRAP"))
    parser.add_argument("--database-url", default=os.environ.get("TOKENLINE_TEST_DATABASE_URL"))
    args = parser.parse_args()
    if not args.database_url:
        parser.error("give --database-url or TOKENLINE_TEST_DATABASE_URL (a PostgreSQL server)")

    results: dict[str, dict[str, float]] = {}
    checks: list[str] = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tl-bench-http-")))
        servers = stack.enter_context(broker(args.bootstrap))
        url = stack.enter_context(sdk_overhead.emulator())
        database = migrated_database(args.database_url)
        stack.callback(drop_database, args.database_url, database.rsplit("/", 1)[-1])
        topic = new_topic(servers, "bench-http")
        api = ApiServer(database, servers, topic, work)
        api.start()
        stack.callback(api.stop)
        key = create_key(database, "bench", "--rate-limit", "100000000")
        print(f"kafka {servers}; api {api.url} -> {topic}; emulator {url}", flush=True)
        expected = args.calls + args.warmup

        print("Tokenline, Kafka transport ...", flush=True)
        kafka = {"bootstrap_servers": servers, "topic": topic, "spool_dir": work / "kafka"}
        times, _ = sdk_overhead.run_tokenline(url, kafka, (SCENARIO,), args)
        left = sdk.flush(60)
        stats = sdk.stats()
        checks.append(f"Kafka: {stats.sent:,} of {expected:,} sent, {left} left after flush")
        sdk.close(10)
        results["kafka"] = sdk_overhead.summarize(times[SCENARIO], args.block)

        print("Tokenline, HTTP transport ...", flush=True)
        http = {"transport": "http", "ingest_url": api.url, "ingest_key": key,
                "spool_dir": work / f"http-{uuid.uuid4().hex[:6]}"}  # fmt: skip
        posts = _timed_posts()
        times, _ = sdk_overhead.run_tokenline(url, http, (SCENARIO,), args)
        left = sdk.flush(60)
        stats = sdk.stats()
        checks.append(
            f"HTTP: {stats.sent:,} of {expected:,} sent in {len(posts):,} POSTs, "
            f"{stats.spooled} spooled, {left} left after flush, error {stats.transport_error}"
        )
        sdk.close(10)
        results["http"] = sdk_overhead.summarize(times[SCENARIO], args.block)

    print()
    print(f"{SCENARIO}, µs, {args.calls:,} calls each way, blocks of {args.block}")
    print(f"{'transport':<10}{'plain':>9}{'wrapped':>9}{'added':>9}{'95% interval':>18}"
          f"{'paired':>9}{'p99 add':>9}{'cpu add':>9}")  # fmt: skip
    for name, s in results.items():
        interval = f"[{s['added_low']:.1f}, {s['added_high']:.1f}]"
        print(f"{name:<10}{s['plain_median']:9.1f}{s['wrapped_median']:9.1f}"
              f"{s['added_median']:9.1f}{interval:>18}{s['paired']:9.1f}"
              f"{s['added_p99']:9.1f}{s['cpu_added']:9.1f}")  # fmt: skip
    if posts:
        ordered = sorted(posts)
        print(f"HTTP sender: median {ordered[len(ordered) // 2] / 1e6:.2f} ms per POST "
              f"(p99 {ordered[int(len(ordered) * 0.99)] / 1e6:.2f} ms)")  # fmt: skip
    for line in checks:
        print(f"  {line}")


if __name__ == "__main__":
    main()
