"""Processor throughput: the tokenline processor against Quix Streams and a plain loop.

    .venv/bin/python bench/processor.py [--events 200000] [--partitions 4] [--tenants 50] \\
        [--bootstrap HOST:PORT] [--contenders consume,decode,tokenline,quix,plain]

One command, one run. Kafka: ``--bootstrap``, else ``TOKENLINE_TEST_KAFKA_BOOTSTRAP``, else a
private single-node broker started on loopback for this run and stopped after it. Every topic
and consumer group is new and named after the run; the topics are deleted at the end.

1. One raw topic is pre-loaded (``bench/proc/load.py``): ``--events`` valid UsageEvents in
   the SDK's Avro encoding, keyed by tenant, over ``--partitions`` partitions, ``--tenants``
   tenants and 15 models of six providers, ``occurred_at`` over ``--hours`` hours ending 15
   minutes ago (a backlog), with ``--bad`` records for the DLQ among them and one closing
   event per partition (a live event after the backlog, which lets event-time windows close).
2. Contenders, one after the other, each in a process of its own reading the whole topic with
   a fresh consumer group:

   * consume only, and consume + decode (``AvroCodec``): the ceilings (``bench/proc/runner.py``);
   * the tokenline processor: the real ``tokenline processor`` command, one worker, with its
     own topic prefix (the pre-loaded topic is its raw topic), app id and data dir, metrics
     off: a black box. It is done when the priced topic holds every valid event, the DLQ
     every bad record and its window results add up to every backlog event (read as below;
     the closing events' windows may stay open); then it is stopped;
   * Quix Streams (pinned below, in a venv of its own under ``~/.cache/tokenline/bench-venvs/``
     with this checkout's ``tokenline-common``, ``-schemas`` and ``-processor`` installed
     editable) and a plain confluent-kafka batch loop, doing the same job: for each record
     the processor's ``ProcessorRuntime.handle``, the priced event (or dead letter) produced, and
     one-minute sums per (tenant, provider, model) produced as ``UsageRollup`` records (how
     each does it: ``bench/proc/runner.py``).

   Per contender: events/s = records / wall time from the start of its reading to the last
   output acknowledged, and CPU µs per event = the process's CPU time (every thread) over
   that same span / records. The start: for the confluent-kafka contenders, the assignment
   of their partitions (fetching starts then; timing from the first record in hand would
   credit the ceilings with what librdkafka prefetched); for Quix Streams, its first record
   in hand; for the processor, the earliest ``priced_at`` of its output. The end: the
   runner's last flush, commit and close; for the processor, when the watcher below sees its
   outputs complete (read committed). The processor's CPU is read from ``/proc/<pid>/stat``
   every 50 ms. Start-up and shut-down are left out of both figures; the whole process's CPU
   is printed with the details. While each producing contender runs, the same watcher
   thread follows its output topics.
3. Correctness: every contender's outputs are read back (``read_committed``); its window
   results, folded with delta semantics (the records of one window summed, ``latency_ms_max``
   their max: ``bench/proc/check.py``), must equal the sums of its own priced events per
   (tenant, provider, model, minute of ``occurred_at``), exactly (Decimal cost), every valid
   event priced once and every bad record dead-lettered; otherwise it is WRONG, and a WRONG
   contender meets no goal. The plain loop emits a delta per window and batch, Quix Streams
   one final total per window.

Goals (issue 13): the processor ≥ 3 times Quix Streams' events/s, ≥ 8,000 events/s and ≤ 120 µs
CPU per event, one worker. Printed as met / MISSED; nothing here passes or fails on timings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "proc"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "sdk"))

import venvs
from check import Outputs, Verdict, Watcher, check
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from e2e_services import broker, cpu_ticks
from load import CLOSING_TENANT, Loaded, preload

from tokenline.dev import kafka

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "bench" / "proc" / "runner.py"
TOKENLINE = str(Path(sys.executable).parent / "tokenline")
QUIX = "quixstreams==3.28.1"
TICK_HZ = os.sysconf("SC_CLK_TCK")
TITLES = {
    "consume": "consume only (ceiling)",
    "decode": "consume + decode (ceiling)",
    "tokenline": "tokenline processor, 1 worker",
    "quix": "Quix Streams",
    "plain": "plain confluent-kafka loop",
}
GOAL_RATIO, GOAL_RATE, GOAL_CPU_US = 3.0, 8_000, 120.0


@dataclass
class Result:
    """One contender's figures, or why there are none."""

    name: str
    records: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    process_cpu_s: float = 0.0
    verdict: Verdict | None = None
    problem: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Events per second."""
        return self.records / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """CPU µs per event."""
        return self.cpu_s / self.records * 1e6 if self.records else 0.0

    @property
    def measured(self) -> bool:
        """Figures exist."""
        return self.problem is None and self.wall_s > 0

    @property
    def sums(self) -> str:
        """OK / WRONG, or — for a contender without window results."""
        if self.verdict is None:
            return "—"
        return "OK" if self.verdict.ok else "WRONG"


# ---------------------------------------------------------------------------- services
def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create ``names`` (``partitions`` each, replication 1) and wait for them."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names]
    for future in admin.create_topics(new).values():
        future.result(timeout=30)


def delete_topics(bootstrap: str, run_id: str) -> None:
    """Delete every topic whose name holds ``run_id`` (ours, the processor's, Quix's)."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    names = [t for t in admin.list_topics(timeout=10).topics if run_id in t]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=30)


def quix_venv() -> venvs.Venv:
    """Quix Streams with this checkout's common, schemas and processor, and the project's pins
    of the libraries on the per-record path."""
    pins = [f"{n}=={version(n)}" for n in ("fastavro", "prometheus-client", "pydantic",
                                           "pydantic-settings")]  # fmt: skip
    ours = ("common", "schemas", "stream_processor")
    editable = [arg for name in ours for arg in ("-e", str(ROOT / name))]
    keys = [ROOT / name / "pyproject.toml" for name in ours]
    return venvs.ensure_with("quixstreams", [QUIX, *pins, *editable], kafka.cache_root(), keys)


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# ---------------------------------------------------------------------------- contenders
@dataclass(frozen=True)
class Run:
    """What every contender of this run shares."""

    bootstrap: str
    run_id: str
    raw: str
    loaded: Loaded
    logs: Path
    args: argparse.Namespace

    def outputs(self, name: str) -> Outputs:
        """A producing contender's output topics."""
        prefix = f"{self.run_id}-{name}."
        return Outputs(f"{prefix}priced", f"{prefix}rollup-1m", f"{prefix}dlq")

    @property
    def valid(self) -> int:
        """Valid events, the closing ones included."""
        return self.loaded.valid + self.loaded.closing

    def verdict(self, outputs: Outputs) -> tuple[Verdict, Any]:
        """Read back and check a contender's outputs."""
        return check(self.bootstrap, outputs, valid=self.valid, bad=self.loaded.bad,
                     left_out=CLOSING_TENANT)  # fmt: skip


def run_runner(run: Run, name: str, python: Path) -> Result:
    """A contender of ``bench/proc/runner.py`` (consume, decode, plain, quix)."""
    argv = [str(python), str(RUNNER), f"--contender={name}", f"--bootstrap={run.bootstrap}",
            f"--topic={run.raw}", f"--group={run.run_id}-{name}",
            f"--expect={run.loaded.records}", f"--batch={run.args.batch}"]  # fmt: skip
    outputs = None
    if name in ("plain", "quix"):
        outputs = run.outputs(name)
        create_topics(run.bootstrap, [outputs.priced, outputs.rollups, outputs.dlq],
                      run.args.partitions)  # fmt: skip
        argv += [f"--priced={outputs.priced}", f"--rollups={outputs.rollups}",
                 f"--dlq={outputs.dlq}", f"--state-dir={run.logs / f'{name}-state'}"]  # fmt: skip
    watcher = Watcher(run.bootstrap, outputs, CLOSING_TENANT) if outputs else None
    if watcher:
        watcher.start()
    log = run.logs / f"{name}.log"
    before = _children_cpu_s()
    with log.open("wb") as err:
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, check=False,
                                  timeout=run.args.timeout)  # fmt: skip
        except subprocess.TimeoutExpired:
            done = None
    if watcher:
        watcher.stop()
    result = Result(name, process_cpu_s=_children_cpu_s() - before)
    if done is None or done.returncode != 0:
        tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        result.problem = f"runner failed ({'timeout' if done is None else done.returncode}): {tail}"
        return result
    figures = json.loads(done.stdout)
    result.records = figures["records"]
    result.wall_s = figures["t1"] - figures["t0"]
    result.cpu_s = figures["cpu1"] - figures["cpu0"]
    result.notes.append(f"confluent-kafka {figures['confluent_kafka']}")
    if "version" in figures:
        result.notes.append(f"quixstreams {figures['version']}")
    if "delivery_errors" in figures:
        result.notes.append(f"delivery errors {figures['delivery_errors']}")
    if outputs:
        result.verdict, _ = run.verdict(outputs)
    return result


class CpuSampler(threading.Thread):
    """(wall clock, CPU seconds) of a process every 50 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.wait(0.05):
            self.samples.append((time.time(), cpu_ticks(self.pid) / TICK_HZ))

    def at(self, wall: float) -> float:
        """CPU seconds at the last sample taken no later than ``wall``."""
        before = [cpu for at, cpu in self.samples if at <= wall]
        return before[-1] if before else 0.0

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)


def run_tokenline(run: Run) -> Result:
    """The real ``tokenline processor``, a black box, until its outputs are complete."""
    prefix = f"{run.run_id}-"
    outputs = Outputs(f"{prefix}llm-usage.priced", f"{prefix}llm-usage.rollup-1m",
                      f"{prefix}llm-usage.dlq")  # fmt: skip
    create_topics(run.bootstrap, [outputs.priced, outputs.rollups, outputs.dlq],
                  run.args.partitions)  # fmt: skip
    env = {
        **os.environ,
        "TOKENLINE_BOOTSTRAP_SERVERS": run.bootstrap,
        "TOKENLINE_TOPIC_PREFIX": prefix,
        "TOKENLINE_TOPIC_PARTITIONS": str(run.args.partitions),
        "TOKENLINE_APP_ID": f"{prefix}processor",  # Faust's own topics share the run's id
        "TOKENLINE_WORKER_NAME": f"{prefix}processor-0",
        "TOKENLINE_METRICS_PORT": "0",
        "TOKENLINE_DATA_DIR": str(run.logs / "processor-data"),
        "TOKENLINE_LOG_LEVEL": "warning",
    }
    result = Result("tokenline")
    watcher = Watcher(run.bootstrap, outputs, CLOSING_TENANT)
    watcher.start()
    log = run.logs / "tokenline.log"
    before = _children_cpu_s()
    with log.open("wb") as out:
        proc = subprocess.Popen([TOKENLINE, "processor"], env=env, stdout=out, stderr=out)
    sampler = CpuSampler(proc.pid)
    sampler.start()
    deadline = time.monotonic() + run.args.timeout
    valid, bad = run.valid, run.loaded.bad
    try:
        while not watcher.complete(valid, bad, run.loaded.valid):
            now = time.monotonic()
            idle = now - watcher.last_progress
            if proc.poll() is not None:
                result.problem = f"exited ({proc.returncode}) before its outputs were complete"
            elif now > deadline:
                result.problem = f"outputs not complete after {run.args.timeout:.0f} s"
            elif watcher.priced >= valid and idle > run.args.idle_s:
                result.problem = f"window results short, nothing new for {idle:.0f} s"
            if result.problem:
                break
            time.sleep(0.05)
        end = time.time()
        end_cpu = cpu_ticks(proc.pid) / TICK_HZ
    finally:
        sampler.stop()
        watcher.stop()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    result.process_cpu_s = _children_cpu_s() - before
    result.notes.append(
        f"seen live: {watcher.priced:,} priced, {watcher.dlq:,} dead letters, window requests "
        f"{watcher.rollup_requests:,} (closing events' left out)"
    )
    result.verdict, first = run.verdict(outputs)
    if result.problem:
        tail = " / ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
        result.problem += f"; log: {tail}" if tail else ""
    if first is None:
        result.problem = result.problem or "no priced output"
        return result
    start = first.timestamp()
    result.records = run.loaded.records
    result.wall_s = end - start
    result.cpu_s = end_cpu - sampler.at(start)
    return result


# ---------------------------------------------------------------------------- report
def table(results: list[Result], quix: Result | None) -> None:
    """Events/s, CPU µs per event, ratio to Quix Streams, sums."""
    print(f"{'contender':32} {'events/s':>9} {'CPU µs/event':>13} {'÷ Quix':>7} {'sums':>6}")
    for r in results:
        title = TITLES[r.name]
        if not r.measured:
            print(f"{title:32} {'—':>9} {'—':>13} {'—':>7} {r.sums:>6}   not measured")
            continue
        ratio = (f"{r.rate / quix.rate:6.2f}x" if quix and quix.measured and quix.rate
                 else f"{'—':>7}")  # fmt: skip
        print(f"{title:32} {r.rate:9,.0f} {r.cpu_us:13,.1f} {ratio:>7} {r.sums:>6}")


def goals(ours: Result | None, quix: Result | None) -> None:
    """Issue 13's goals for the processor, met or MISSED."""
    if ours is None:
        print("goals: the tokenline processor was not run")
        return
    usable = ours.measured and ours.verdict is not None and ours.verdict.ok
    why = "" if usable else (" (not measured)" if not ours.measured else " (sums WRONG)")

    def verdict(ok: bool) -> str:
        return "met" if usable and ok else "MISSED"

    if quix is not None and quix.measured and quix.rate:
        ratio = ours.rate / quix.rate
        print(f"goal: processor ≥ {GOAL_RATIO:.0f}x Quix Streams: "
              f"{verdict(ratio >= GOAL_RATIO)} ({ratio:.2f}x){why}")  # fmt: skip
    else:
        print(f"goal: processor ≥ {GOAL_RATIO:.0f}x Quix Streams: not measured (no Quix figure)")
    print(f"goal: processor ≥ {GOAL_RATE:,} events/s: "
          f"{verdict(ours.rate >= GOAL_RATE)} ({ours.rate:,.0f}){why}")  # fmt: skip
    print(f"goal: processor ≤ {GOAL_CPU_US:.0f} µs CPU per event: "
          f"{verdict(0 < ours.cpu_us <= GOAL_CPU_US)} ({ours.cpu_us:,.1f}){why}")  # fmt: skip


def details(results: list[Result]) -> None:
    """Every figure of every contender, and what differs where sums are WRONG."""
    print("details: wall s and CPU s over the timed span; the whole process's CPU s")
    for r in results:
        print(f"  {TITLES[r.name]}: {r.records:,} records, {r.wall_s:.2f} s, CPU {r.cpu_s:.2f} s;"
              f" process CPU {r.process_cpu_s:.2f} s; {'; '.join(r.notes)}")  # fmt: skip
        if r.problem:
            print(f"    problem: {r.problem}")
        v = r.verdict
        if v is None:
            continue
        print(f"    outputs: {v.priced:,} priced ({v.distinct:,} distinct, {v.expected_valid:,} "
              f"expected), {v.dlq:,} dead letters ({v.expected_bad:,} expected), "
              f"{v.rollup_records:,} window records for {v.windows:,} windows; "
              f"{len(v.differing):,} windows differ")  # fmt: skip
        for key, expected, got in v.differing[:3]:
            tenant, provider, model, start = key
            print(f"    {tenant} {provider} {model} {start:%H:%M}: events {expected}, "
                  f"window results {got}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="valid events pre-loaded")
    parser.add_argument("--bad", type=int, default=None, help="records for the DLQ (events/1000)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--hours", type=float, default=2.0, help="span of occurred_at")
    parser.add_argument("--batch", type=int, default=2_000, help="records per consume()")
    parser.add_argument("--bootstrap", default=None, help="use this Kafka, start none")
    parser.add_argument("--contenders", default=",".join(TITLES), help="comma list")
    parser.add_argument("--timeout", type=float, default=1_800, help="seconds per contender")
    parser.add_argument("--idle-s", type=float, default=30, help="processor: wait for windows")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--logs", type=Path, help="keep the contenders' logs and state here")
    args = parser.parse_args()
    names = [n for n in args.contenders.split(",") if n]
    unknown = set(names) - set(TITLES)
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    bad = args.events // 1000 if args.bad is None else args.bad
    bootstrap = args.bootstrap or os.environ.get("TOKENLINE_TEST_KAFKA_BOOTSTRAP")
    # The venv is built (once) before anything is timed: pip would disturb the measurements.
    venv = quix_venv() if "quix" in names else None
    results: list[Result] = []
    with ExitStack() as stack:
        if args.logs:
            logs = args.logs
            logs.mkdir(parents=True, exist_ok=True)
        else:
            logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tl-bench-proc-")))
        servers = stack.enter_context(broker(bootstrap))
        host = servers.split(",")[0].rsplit(":", 1)[0]
        local = (
            "on this machine" if host in ("127.0.0.1", "localhost", "::1", "[::1]") else "remote?"
        )
        where = f"{'given' if bootstrap else 'private, started by this run'}, {local}"
        run_id = f"tlbench-{uuid.uuid4().hex[:8]}"
        stack.callback(delete_topics, servers, run_id)
        raw = f"{run_id}-llm-usage.raw"
        create_topics(servers, [raw], args.partitions)
        load_before = _loadavg()
        print(f"kafka {servers} ({where}); raw topic {raw}; load average {load_before}", flush=True)
        started = time.monotonic()
        loaded = preload(servers, raw, events=args.events, bad=bad, partitions=args.partitions,
                         tenants=args.tenants, hours=args.hours, seed=args.seed)  # fmt: skip
        print(f"pre-loaded {loaded.records:,} records ({loaded.bytes / 2**20:.1f} MiB) in "
              f"{time.monotonic() - started:.1f} s", flush=True)  # fmt: skip
        run = Run(servers, run_id, raw, loaded, logs, args)
        for name in names:
            print(f"{TITLES[name]} ... (load average {_loadavg()})", flush=True)
            if name == "tokenline":
                results.append(run_tokenline(run))
            elif name == "quix" and venv is not None and venv.python is None:
                results.append(Result(name, problem=f"Quix Streams venv: {venv.problem}"))
            else:
                python = venv.python if name == "quix" and venv else Path(sys.executable)
                results.append(run_runner(run, name, python or Path(sys.executable)))
    by_name = {r.name: r for r in results}
    print()
    print(
        f"Processor throughput: one raw topic of {loaded.records:,} records ({loaded.valid:,} "
        f"valid events, {loaded.bad:,} for the DLQ, {loaded.closing} closing events), "
        f"{args.partitions} partitions, {loaded.tenants} tenants, {loaded.models} models, "
        f"occurred_at {loaded.first:%Y-%m-%d %H:%M} to {loaded.last:%H:%M} UTC (a backlog)"
    )
    print(
        f"machine: {os.cpu_count()} cores (load average {load_before} before the run), shared "
        f"with the broker ({servers}: {where}) and this harness (its output watcher runs beside "
        f"every producing contender); one run"
    )
    table(results, by_name.get("quix"))
    print()
    goals(by_name.get("tokenline"), by_name.get("quix"))
    print()
    details(results)


if __name__ == "__main__":
    main()
