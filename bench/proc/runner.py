"""One contender of ``bench/processor.py``, run in a process of its own; prints JSON.

    python bench/proc/runner.py --contender consume|decode|plain|quix --bootstrap HOST:PORT \\
        --topic RAW --group GROUP --expect N [--priced T --rollups T --dlq T] [--batch 2000]

Reads the whole raw topic with a fresh consumer group and stops after ``--expect`` records.
Printed (one JSON object): ``t0`` (wall clock when the consumer was assigned its partitions;
for Quix Streams, when its first record was in hand), ``t1`` (after the last output was
acknowledged, offsets committed and the clients closed), the process's CPU seconds
(``getrusage``: every thread, librdkafka's included) at both moments, the records read and
what was produced.

* ``consume``: ``Consumer.consume`` in batches, nothing else (the ceiling of reading);
* ``decode``: the same, plus ``AvroCodec("tokenline.UsageEvent").decode`` of each value;
* ``plain``: the processor's job in a plain confluent-kafka loop: ``ProcessorRuntime.handle`` per
  record, the priced value (or the dead letter) produced, the batch's window sums kept in a
  dict and produced as one ``UsageRollup`` delta per window and batch, ``flush()``, then the
  offsets committed (at least once, no transactions);
* ``quix``: the same job in Quix Streams (run in its own venv): ``ProcessorRuntime.handle`` in
  ``apply``, the output routed by ``to_topic`` to the priced topic or the DLQ, the record's
  timestamp set to ``occurred_at``, a one-minute tumbling window (grace as the processor's,
  10 min) per message key (the tenant: the raw topic is keyed by tenant, so no repartition is
  needed) whose ``reduce`` keeps integer sums per (provider, model), ``final()`` closing
  windows by partition, each closed window expanded into one ``UsageRollup`` (a final total)
  per (tenant, provider, model). Quix's defaults otherwise: RocksDB state with a changelog
  topic, at-least-once, checkpoint every 5 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import work
from confluent_kafka import Consumer, Message, Producer

from tokenline.schemas import AvroCodec, DecodeError

if TYPE_CHECKING:
    from collections.abc import Callable

#: What every producing contender sends with: as the processor's producer (acks=-1, lz4,
#: linger 20 ms), idempotent.
PRODUCER = {"acks": "all", "compression.type": "lz4", "linger.ms": 20, "enable.idempotence": True}
WINDOW_GRACE_MS = 600_000  # the processor's default window_grace_s


def cpu_s() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Marks the start (``t0``: the first call of :meth:`first`) and the end (``t1``)."""

    def __init__(self) -> None:
        self.t0 = self.cpu0 = self.t1 = self.cpu1 = 0.0

    def first(self) -> None:
        if not self.t0:
            self.t0, self.cpu0 = time.time(), cpu_s()

    def done(self) -> None:
        self.t1, self.cpu1 = time.time(), cpu_s()

    def report(self, **extra: Any) -> dict[str, Any]:
        return {"t0": self.t0, "t1": self.t1, "cpu0": self.cpu0, "cpu1": self.cpu1, **extra}


def consumer(args: argparse.Namespace) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )


def read_all(args: argparse.Namespace, clock: Clock, on_batch: Callable[[list[Message]], None]
             ) -> int:  # fmt: skip
    """Consume ``--expect`` records in batches, handing each batch to ``on_batch``."""
    reader = consumer(args)
    # The clock starts when fetching does: a consumer prefetches (up to 64 MiB), so a fast
    # one would otherwise find much of the topic already in hand at its first record.
    reader.subscribe([args.topic], on_assign=lambda _consumer, _partitions: clock.first())
    seen = 0
    try:
        while seen < args.expect:
            wanted = min(args.batch, args.expect - seen)  # the last batch must not wait for more
            batch = [m for m in reader.consume(wanted, timeout=1.0) if m.error() is None]
            if not batch:
                continue
            seen += len(batch)
            on_batch(batch)
            if args.commit:
                reader.commit(asynchronous=False)
    finally:
        reader.close()
    return seen


def run_ceiling(args: argparse.Namespace, decode: bool) -> dict[str, Any]:
    """Consume only, or consume + decode."""
    clock = Clock()
    codec: AvroCodec[Any] = AvroCodec("tokenline.UsageEvent")
    undecodable = 0

    def on_batch(batch: list[Message]) -> None:
        nonlocal undecodable
        if decode:
            for message in batch:
                try:
                    codec.decode(message.value() or b"")
                except DecodeError:
                    undecodable += 1

    args.commit = False
    seen = read_all(args, clock, on_batch)
    clock.done()
    return clock.report(records=seen, undecodable=undecodable)


def run_plain(args: argparse.Namespace) -> dict[str, Any]:
    """The job in a plain confluent-kafka batch loop."""
    clock = Clock()
    runtime = work.make_runtime(args.bootstrap, "bench-plain")
    producer = Producer({"bootstrap.servers": args.bootstrap, **PRODUCER})
    counts = {"priced": 0, "dlq": 0, "rollups": 0, "delivery_errors": 0}

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            counts["delivery_errors"] += 1

    def on_batch(batch: list[Message]) -> None:
        windows: dict[tuple[str, int], list[int]] = {}
        produce, handle, contribution = producer.produce, work.handle, work.contribution
        for m in batch:
            key = m.key()
            done = handle(runtime, m.value(), key, args.topic, m.partition() or 0,
                          m.offset() or 0, m.timestamp()[1])  # fmt: skip
            if done.priced is None or done.window_key is None:
                produce(args.dlq, done.dlq_value, key, on_delivery=delivered)
                counts["dlq"] += 1
                continue
            produce(args.priced, done.priced_value, key, on_delivery=delivered)
            counts["priced"] += 1
            start = work.occurred_ms(done.priced) // work.WINDOW_MS * work.WINDOW_MS
            row = contribution(done.priced)
            into = windows.get((done.window_key, start))
            if into is None:
                windows[(done.window_key, start)] = row
            else:
                work.add(into, row)
        last = batch[-1]
        for (window_key, start), sums in windows.items():
            key, value = work.rollup(window_key, start, sums, last.partition() or 0,
                                     last.offset() or 0)  # fmt: skip
            produce(args.rollups, value, key, on_delivery=delivered)
        counts["rollups"] += len(windows)
        # Offsets are committed (by read_all) only after every output is acknowledged.
        left = producer.flush(60)
        if left:
            raise SystemExit(f"{left} records not acknowledged within 60 s")

    args.commit = True
    seen = read_all(args, clock, on_batch)
    clock.done()
    return clock.report(records=seen, **counts)


def run_quix(args: argparse.Namespace) -> dict[str, Any]:
    """The job in Quix Streams."""
    import quixstreams  # type: ignore[import-not-found,unused-ignore]
    from quixstreams import Application, message_context  # type: ignore[import-not-found,unused-ignore]
    from quixstreams.models.serializers import Serializer  # type: ignore[import-not-found,unused-ignore]

    class OutputBytes(Serializer):  # type: ignore[misc]
        """Sends the encoded output a (bytes, is_dead_letter, ...) value carries."""

        def __call__(self, value: Any, ctx: Any) -> bytes:
            return value[0]  # type: ignore[no-any-return]

    clock = Clock()
    runtime = work.make_runtime(args.bootstrap, "bench-quix")
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        producer_extra_config={k: v for k, v in PRODUCER.items() if k != "enable.idempotence"},
        loglevel="WARNING",
    )
    raw = app.topic(args.topic, key_deserializer="bytes", value_deserializer="bytes")
    priced = app.topic(args.priced, key_serializer="bytes", value_serializer=OutputBytes())
    dlq = app.topic(args.dlq, key_serializer="bytes", value_serializer=OutputBytes())
    rollups = app.topic(args.rollups, key_serializer="bytes", value_serializer="bytes")
    seen = 0

    def job(value: bytes, key: bytes, timestamp: int, _headers: Any) -> tuple[Any, ...]:
        nonlocal seen
        clock.first()
        ctx = message_context()
        done = work.handle(runtime, value, key, ctx.topic, ctx.partition, ctx.offset, timestamp)
        seen += 1
        if seen >= args.expect:
            app.stop()  # after this record: Quix then flushes and commits its checkpoint
        if done.priced is None or done.window_key is None:
            return (done.dlq_value, True, None, 0)
        row = work.contribution(done.priced)
        return (done.priced_value, False, (done.window_key, row), work.occurred_ms(done.priced))

    def initializer(value: tuple[str, list[int]]) -> dict[str, list[int]]:
        return {value[0]: value[1]}

    def reducer(sums: dict[str, list[int]], value: tuple[str, list[int]]) -> dict[str, list[int]]:
        into = sums.get(value[0])
        if into is None:
            sums[value[0]] = value[1]
        else:
            work.add(into, value[1])
        return sums

    def expand(window: dict[str, Any]) -> list[bytes]:
        return [work.rollup(k, window["start"], v)[1] for k, v in window["value"].items()]

    sdf = app.dataframe(raw)
    sdf = sdf.apply(job, metadata=True)
    sdf = sdf.to_topic(lambda value, _k, _t, _h: dlq if value[1] else priced)
    sdf = sdf.filter(lambda value: value[2] is not None)
    sdf = sdf.set_timestamp(lambda value, _k, _t, _h: value[3])
    sdf = sdf.apply(lambda value: value[2])
    sdf = sdf.tumbling_window(work.WINDOW_MS, grace_ms=WINDOW_GRACE_MS)
    sdf = sdf.reduce(reducer, initializer).final(closing_strategy="partition")
    sdf = sdf.apply(expand, expand=True)
    sdf.to_topic(rollups)
    app.run()
    clock.done()
    return clock.report(records=seen, version=quixstreams.__version__)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--contender", required=True,
                        choices=("consume", "decode", "plain", "quix"))  # fmt: skip
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True, help="the raw topic")
    parser.add_argument("--group", required=True)
    parser.add_argument("--expect", type=int, required=True, help="records to read")
    parser.add_argument("--priced")
    parser.add_argument("--rollups")
    parser.add_argument("--dlq")
    parser.add_argument("--batch", type=int, default=2_000, help="records per consume()")
    parser.add_argument("--state-dir", help="Quix Streams' state directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.contender in ("consume", "decode"):
        result = run_ceiling(args, decode=args.contender == "decode")
    elif args.contender == "plain":
        result = run_plain(args)
    else:
        result = run_quix(args)
    result["confluent_kafka"] = version("confluent-kafka")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
