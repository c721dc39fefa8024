"""End-to-end latency: SDK ``record`` → Kafka → processor → sink → row visible in usage_events.

    .venv/bin/python bench/e2e_latency.py [--rate 5000] [--seconds 60] \\
        [--bootstrap HOST:PORT] [--database-url URL] [--partitions 4] [--processors 1] \\
        [--sinks 1] [--sink-batch-rows 5000] [--sink-batch-ms 500] [--poll-ms 50]

Services: ``--bootstrap`` / ``--database-url``, else ``TOKENLINE_TEST_KAFKA_BOOTSTRAP`` /
``TOKENLINE_TEST_DATABASE_URL``, else the local stack (started, and stopped at the end, only
when it did not run already). One run, two measurements with the same load generator
(``bench/e2e_load.py``: ``sdk.record`` through the SDK's Kafka emitter chain, several tenants
and models, paced in 10 ms ticks, each event id's ``time.time_ns()`` noted as it is recorded):

1. reference, the bare transport: the events go to a plain topic, read by a bare
   confluent-kafka consumer (no processing, no database) that stamps each on receipt;
2. the pipeline: a fresh database migrated by ``tokenline sink migrate`` (plain PostgreSQL), a
   fresh topic prefix, ``tokenline processor`` and ``tokenline sink run`` as subprocesses,
   warmed up until events land; then the events go to the raw topic and a poller stamps each
   row when it first sees it in ``usage_events`` (see ``bench/e2e_watch.py`` for how and with
   what resolution).

Printed: sent, landed (must be all), achieved rate, p50/p90/p99/max latency of both and the
ratio pipeline ÷ transport (goal: pipeline p99 ≤ 2 s); latency by send-time slice (growth
means a stage falls behind), the processors' and sinks' lag and throughput each few seconds,
and each process's CPU. Everything started is stopped; the database and topics it made are
dropped, nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from e2e_load import read_sends
from e2e_services import Owned, Pipeline, cpu_ticks, fresh_database, own_topics, scrape, wait_until
from e2e_services import start as start_child
from e2e_watch import SWEEP_EVERY, RowWatcher, Sampler, TransportWatcher

from tests._services import Services

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import ExitStack

    from e2e_services import Child
    from e2e_watch import Sample

LOAD = str(Path(__file__).resolve().parent / "e2e_load.py")
GOAL_P99_MS = 2_000
TICK_HZ = os.sysconf("SC_CLK_TCK")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5_000, help="events per second")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers")
    parser.add_argument("--database-url", help="PostgreSQL server URL (a database is made on it)")
    parser.add_argument("--tenants", type=int, default=12)
    parser.add_argument("--partitions", type=int, default=4, help="raw and priced topics")
    parser.add_argument("--processors", type=int, default=1, help="processor workers")
    parser.add_argument("--sinks", type=int, default=1, help="sink workers")
    parser.add_argument("--sink-batch-rows", type=int, default=5_000)
    parser.add_argument("--sink-batch-ms", type=int, default=500)
    parser.add_argument("--poll-ms", type=int, default=50, help="row poller period")
    parser.add_argument("--drain-s", type=int, default=180, help="wait for the last rows")
    parser.add_argument("--skip-reference", action="store_true", help="pipeline only")
    return parser.parse_args()


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------------------- the load
def _load(
    owned: ExitStack,
    logs: Path,
    name: str,
    bootstrap: str,
    topic: str,
    rate: int,
    seconds: int,
    tenants: int,
) -> tuple[Child, Path]:
    out = logs / f"{name}.bin"
    argv = [sys.executable, LOAD, "--bootstrap", bootstrap, "--topic", topic]
    argv += ["--rate", str(rate), "--seconds", str(seconds), "--tenants", str(tenants)]
    return start_child(owned, name, [*argv, "--out", str(out)], {}, logs), out


def _finish_load(child: Child, out: Path, seconds: int) -> tuple[dict[int, int], dict[str, Any]]:
    try:
        child.proc.wait(timeout=seconds + 180)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"{child.name} did not finish:\n{child.tail()}") from None
    if child.proc.returncode != 0 or not out.exists():
        raise SystemExit(f"{child.name} failed ({child.proc.returncode}):\n{child.tail()}")
    summary: dict[str, Any] = json.loads(out.with_suffix(".json").read_text())
    return read_sends(out), summary


def _drain(sends: dict[int, int], watcher: RowWatcher | TransportWatcher, drain_s: int) -> float:
    """Wait until every sent id is seen (or ``drain_s`` passes); return the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < drain_s and not sends.keys() <= watcher.seen.keys():
        if not watcher.is_alive():
            raise SystemExit(f"{watcher.name} failed: {watcher.failure!r}")
        time.sleep(0.25)
    return time.monotonic() - start


# ---------------------------------------------------------------------------- statistics
def _latencies_us(sends: dict[int, int], seen: dict[int, int]) -> list[int]:
    return sorted((seen[k] - t) // 1_000 for k, t in sends.items() if k in seen)


def _pct(ordered: list[int], q: int) -> int:
    """Nearest-rank percentile ``q`` (0-100) of sorted values; -1 when empty."""
    if not ordered:
        return -1
    return ordered[min(len(ordered) - 1, max(0, (q * len(ordered) + 99) // 100 - 1))]


class Result:
    """The figures of one path."""

    def __init__(
        self, name: str, sends: dict[int, int], seen: dict[int, int], load: dict[str, Any]
    ) -> None:
        self.name = name
        self.sent = len(sends)
        self.landed = len(sends.keys() & seen.keys())
        self.rate = int(load["rate"])
        lat = _latencies_us(sends, seen)
        self.ms = [_pct(lat, q) // 1_000 for q in (50, 90, 99, 100)]

    def row(self) -> str:
        p50, p90, p99, top = self.ms
        return (
            f"{self.name:42} {self.sent:>9,} {self.landed:>9,} {self.rate:>8,} "
            f"{p50:>7,} {p90:>7,} {p99:>7,} {top:>7,}"
        )


def _slices(sends: dict[int, int], seen: dict[int, int], seconds: int) -> list[str]:
    """p50/p99 (ms) of the events sent in each tenth of the run: growth means falling behind."""
    if not sends:
        return []
    first = min(sends.values())
    width_ns = max(1, seconds // 10) * 1_000_000_000
    parts: dict[int, list[int]] = {}
    for key, sent in sends.items():
        if key in seen:
            parts.setdefault((sent - first) // width_ns, []).append((seen[key] - sent) // 1_000)
    lines = []
    for index in sorted(parts):
        values = sorted(parts[index])
        start = index * width_ns // 1_000_000_000
        end = start + width_ns // 1_000_000_000
        lines.append(
            f"  sent {start:>3}-{end:<3} s   p50 {_pct(values, 50) // 1000:>6,} ms   "
            f"p99 {_pct(values, 99) // 1000:>6,} ms   max {values[-1] // 1000:>6,} ms"
        )
    return lines


def _timeline(samples: list[Sample], every_s: int) -> list[str]:
    lines = ["  t s   visible   proc in/s  proc lag  sink rows/s  sink lag  batches  mean batch ms"]
    previous = samples[0] if samples else None
    for sample in samples[every_s::every_s]:
        assert previous is not None
        span = max(1, sample.at_s - previous.at_s)
        batches = sample.sink_batches - previous.sink_batches
        mean_ms = (sample.sink_batch_ms - previous.sink_batch_ms) // max(1, batches)
        processed = (sample.processor_in - previous.processor_in) // span
        landed = (sample.sink_landed - previous.sink_landed) // span
        lines.append(
            f"  {sample.at_s:>3} {sample.visible:>9,} {processed:>11,} {sample.processor_lag:>9,}"
            f" {landed:>12,} {sample.sink_lag:>9,} {batches:>8,} {mean_ms:>14,}"
        )
        previous = sample
    return lines


# ---------------------------------------------------------------------------- the two runs
def _reference(
    owned: ExitStack, args: argparse.Namespace, bootstrap: str, prefix: str, logs: Path
) -> Result:
    topic = f"{prefix}transport"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=args.partitions, replication_factor=1)
    admin.create_topics([new])[topic].result(timeout=30)
    watcher = TransportWatcher(bootstrap, topic, args.partitions)
    watcher.start()
    owned.callback(watcher.stop)
    child, out = _load(
        owned, logs, "load-transport", bootstrap, topic, args.rate, args.seconds, args.tenants
    )
    sends, summary = _finish_load(child, out, args.seconds)
    _drain(sends, watcher, 60)
    watcher.stop()
    if watcher.failure is not None:
        raise SystemExit(f"transport watcher failed: {watcher.failure!r}")
    return Result("bare transport (SDK → Kafka → consumer)", sends, watcher.seen, summary)


def _answers(child: Child) -> Callable[[], bool]:
    return lambda: bool(scrape(child.metrics_port))


def _start_pipeline(owned: ExitStack, pipeline: Pipeline, processors: int, sinks: int) -> None:
    for _ in range(processors):
        child = pipeline.start_processor(owned)
        wait_until(f"{child.name} metrics", _answers(child), 120, child)
    for _ in range(sinks):
        child = pipeline.start_sink(owned)
        wait_until(f"{child.name} metrics", _answers(child), 60, child)


def _backend_pids(url: str, exclude: int) -> list[int]:
    """The PostgreSQL backends connected to the run's database (the sinks'), if local."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid NOT IN (pg_backend_pid(), %s)",
            (exclude,),
        ).fetchall()
    return [int(r[0]) for r in rows if Path(f"/proc/{r[0]}").exists()]


def _pipeline(
    owned: ExitStack, args: argparse.Namespace, bootstrap: str, server: str, prefix: str, logs: Path
) -> tuple[Result, list[str]]:
    url = fresh_database(owned, server)
    pipeline = Pipeline(
        bootstrap, url, prefix, args.partitions, logs, args.sink_batch_rows, args.sink_batch_ms
    )
    _start_pipeline(owned, pipeline, args.processors, args.sinks)
    kids = [*pipeline.processors, *pipeline.sinks]
    raw = pipeline.topic("raw")
    warm, warm_out = _load(owned, logs, "load-warmup", bootstrap, raw, 100, 3, args.tenants)
    _finish_load(warm, warm_out, 3)
    watcher = RowWatcher(url, args.poll_ms)
    began = time.monotonic()
    wait_until("warm-up events to land", lambda: watcher.count() >= 300, 240, *kids)
    warm_s = time.monotonic() - began

    watcher.start()
    owned.callback(watcher.stop)
    sampler = Sampler(pipeline.processors, pipeline.sinks, watcher, pipeline.topic("priced"))
    sampler.start()
    owned.callback(sampler.stop)
    backends = _backend_pids(url, watcher.backend_pid)
    child, out = _load(
        owned, logs, "load-pipeline", bootstrap, raw, args.rate, args.seconds, args.tenants
    )
    watched = {k.name: k.proc.pid for k in kids}
    watched |= {f"postgres backend {pid}": pid for pid in backends}
    watched["this process (poller)"] = os.getpid()
    ticks = {name: cpu_ticks(pid) for name, pid in watched.items()}
    before = sampler.read()
    t0 = time.monotonic()
    sends, summary = _finish_load(child, out, args.seconds)
    drained_s = _drain(sends, watcher, args.drain_s)
    wall = time.monotonic() - t0
    cpu_ms = {
        name: (cpu_ticks(pid) - ticks[name]) * 1000 // TICK_HZ for name, pid in watched.items()
    }
    cpu_ms["load generator (SDK)"] = int(summary["cpu_ms"])
    after = sampler.read()
    done = {
        **dict.fromkeys(cpu_ms, len(sends)),
        **dict.fromkeys(
            (k.name for k in pipeline.processors), after.processor_in - before.processor_in
        ),
        **dict.fromkeys((k.name for k in pipeline.sinks), after.sink_landed - before.sink_landed),
    }
    sampler.stop()
    watcher.stop()
    if watcher.failure is not None:
        raise SystemExit(f"row watcher failed: {watcher.failure!r}")
    missed = watcher.missed()
    result = Result("pipeline (SDK → processor → sink → row)", sends, watcher.seen, summary)

    period_ms = (time.monotonic() - t0) * 1000 / max(1, watcher.polls)
    notes = [
        f"warm-up: 300 events landed {warm_s:.1f} s after the workers answered; last rows "
        f"visible {drained_s:.1f} s after the last send",
        f"row visibility: polled every {args.poll_ms} ms ({watcher.polls:,} polls, mean period "
        f"{period_ms:.0f} ms, mean poll {watcher.poll_ns / max(1, watcher.polls) / 1e6:.1f} ms, "
        f"longest period {watcher.max_period_ns / 1e6:.0f} ms); rows found only by the "
        f"{SWEEP_EVERY * args.poll_ms} ms sweep: {watcher.swept}; rows both missed: {len(missed)}",
        f"SDK: {summary['dropped']} dropped, {summary['unflushed']} unflushed; "
        f"pacing: worst tick {summary['max_tick_late_ms']} ms late",
        "latency by send time:",
        *_slices(sends, watcher.seen, args.seconds),
        "metrics (every 5 s):",
        *_timeline(sampler.samples, 5),
        f"CPU from the first send to the last row ({wall:.0f} s; 2 cores, shared): cores used; "
        "CPU µs per event (processors: of all events the processors consumed, sinks: of all "
        "rows landed, others: of events sent)",
        *(
            f"  {name:32} {ms / 1000 / wall:5.2f} {ms * 1000 // max(1, done[name]):>7,} µs"
            f" ({done[name]:,} events)"
            for name, ms in cpu_ms.items()
        ),
    ]
    return result, notes


def main() -> None:
    args = _args()
    services = Services()
    with Owned() as owned:
        owned.callback(services.close)
        bootstrap = args.bootstrap or services.kafka_bootstrap()
        server = args.database_url or services.database_url()
        prefix = f"e2e-{uuid.uuid4().hex[:8]}-"
        own_topics(owned, bootstrap, prefix)
        logs = Path(owned.enter_context(tempfile.TemporaryDirectory(prefix="tl-e2e-")))
        print(
            f"{args.rate:,} events/s for {args.seconds} s, {args.tenants} tenants, "
            f"{args.partitions} partitions, {args.processors} processor(s), {args.sinks} "
            f"sink(s) (batches ≤ {args.sink_batch_rows:,} rows / {args.sink_batch_ms} ms), "
            f"plain PostgreSQL; load average {_loadavg()}",
            flush=True,
        )
        results = []
        if not args.skip_reference:
            results.append(_reference(owned, args, bootstrap, prefix, logs))
        pipeline, notes = _pipeline(owned, args, bootstrap, server, prefix, logs)
        results.append(pipeline)

        print(
            f"{'path':42} {'sent':>9} {'landed':>9} {'rate/s':>8} "
            f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        )
        for result in results:
            print(result.row())
        if len(results) == 2:
            ratios = "".join(
                f" {p / max(t, 1):>7.1f}" for p, t in zip(pipeline.ms, results[0].ms, strict=True)
            )
            print(f"{'ratio pipeline ÷ transport':42} {'':>9} {'':>9} {'':>8}{ratios}")
        met = pipeline.ms[2] <= GOAL_P99_MS and pipeline.landed == pipeline.sent
        print(
            f"goal: every event landed and p99 ≤ {GOAL_P99_MS:,} ms: {'met' if met else 'NOT met'}"
        )
        print("\n".join(notes))
        print(f"load average at the end: {_loadavg()}", flush=True)


if __name__ == "__main__":
    main()
