"""Reading a contender's outputs back, and checking its window results against its events.

Every output topic is read with ``isolation.level=read_committed`` (a contender may produce
in Kafka transactions: what an aborted one wrote never counts).

:func:`fold_rollups` is the one reading of window results for every contender, with **delta
semantics**: the ``UsageRollup`` records of one (tenant, provider, model, window_start) are
summed measure by measure, and ``latency_ms_max`` is their max. A contender that emits each
window once as a final total (Quix Streams here) reads the same under it; one that emits
replace-semantics totals several times per window over-counts, and is reported WRONG.
:func:`check` compares the fold with the sums of the contender's own priced events (each
``event_id`` once), exactly (counts as integers, ``cost_total`` as Decimal).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from tokenline.processor.windows import model_of, window_start
from tokenline.schemas import AvroCodec
from tokenline.schemas.rollup import ROLLUP_MAX, ROLLUP_SUMS

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from confluent_kafka import Message

    from tokenline.schemas import PricedUsageEvent, UsageRollup

__all__ = ["MEASURES", "Outputs", "Verdict", "Watcher", "check", "fold_rollups"]

MEASURES = (*ROLLUP_SUMS, ROLLUP_MAX)
_MAX = MEASURES.index(ROLLUP_MAX)
Key = tuple[str, str, str, "datetime"]  # tenant, provider, model, window_start
Sums = list[Any]  # ints, cost_total a Decimal


@dataclass(frozen=True)
class Outputs:
    """A contender's output topics."""

    priced: str
    rollups: str
    dlq: str


def _reader(bootstrap: str, topics: list[str], eof: bool) -> tuple[Consumer, int]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-check-{uuid.uuid4().hex[:8]}",  # never joined, never committed
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": eof,
        }
    )
    assigned = []
    for topic in topics:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        assigned += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
    consumer.assign(assigned)
    return consumer, len(assigned)


def read_topic(
    bootstrap: str, topic: str, on_message: Callable[[Message], None], timeout_s: float = 120
) -> None:
    """Hand every committed record of ``topic`` to ``on_message``, up to its end."""
    consumer, partitions = _reader(bootstrap, [topic], eof=True)
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout_s
    try:
        while len(at_end) < partitions:
            if time.monotonic() > deadline:
                raise SystemExit(f"reading {topic}: not at its end after {timeout_s:.0f} s")
            for message in consumer.consume(2_000, timeout=0.5):
                error, partition = message.error(), message.partition() or 0
                if error is None:
                    at_end.discard(partition)
                    on_message(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(partition)
    finally:
        consumer.close()


def _add(into: Sums, row: Sums) -> None:
    for i in range(_MAX):
        into[i] += row[i]
    into[_MAX] = max(into[_MAX], row[_MAX])


def fold_rollups(records: list[UsageRollup]) -> dict[Key, Sums]:
    """Window results per key, with delta semantics (sums; ``latency_ms_max`` a max)."""
    folded: dict[Key, Sums] = {}
    for r in records:
        key = (r["tenant_id"], r["provider"], r["model"], r["window_start"])
        row = [r[name] for name in MEASURES]  # type: ignore[literal-required]
        if key in folded:
            _add(folded[key], row)
        else:
            folded[key] = row
    return folded


def _priced_row(priced: PricedUsageEvent) -> Sums:
    event = priced["event"]
    usage = event["usage"]
    cost = priced["cost"]
    return [
        1,
        0 if event["success"] else 1,
        usage["input_tokens"],
        usage["cache_read_input_tokens"],
        usage["cache_write_input_tokens"],
        usage["output_tokens"],
        usage["reasoning_tokens"],
        Decimal(0) if cost is None else cost["total"],
        1 if cost is None else 0,
        event["latency_ms"],
        event["latency_ms"],
    ]


@dataclass
class Verdict:
    """What a contender wrote, and whether its window sums equal its priced events'."""

    priced: int = 0
    distinct: int = 0
    dlq: int = 0
    rollup_records: int = 0
    windows: int = 0
    differing: list[tuple[Key, Sums | None, Sums | None]] = field(default_factory=list)
    expected_valid: int = 0
    expected_bad: int = 0

    @property
    def complete(self) -> bool:
        """Every valid event priced once, every bad record dead-lettered."""
        return self.distinct == self.expected_valid and self.dlq == self.expected_bad

    @property
    def ok(self) -> bool:
        """Complete, no event priced twice, and every window's sums exact."""
        return self.complete and self.priced == self.distinct and not self.differing


def check(
    bootstrap: str, outputs: Outputs, *, valid: int, bad: int, left_out: str
) -> tuple[Verdict, datetime | None]:
    """The verdict on ``outputs``, and the earliest ``priced_at`` (when pricing began).

    Windows of tenant ``left_out`` (the closing events) are not compared.
    """
    verdict = Verdict(expected_valid=valid, expected_bad=bad)
    priced_codec: AvroCodec[PricedUsageEvent] = AvroCodec("tokenline.PricedUsageEvent")
    rollup_codec: AvroCodec[UsageRollup] = AvroCodec("tokenline.UsageRollup")
    expected: dict[Key, Sums] = {}
    seen: set[uuid.UUID] = set()
    first: list[datetime] = []

    def on_priced(message: Message) -> None:
        priced = priced_codec.decode(message.value() or b"")
        event = priced["event"]
        verdict.priced += 1
        if event["event_id"] in seen:
            return
        seen.add(event["event_id"])
        if not first or priced["priced_at"] < first[0]:
            first[:] = [priced["priced_at"]]
        if event["tenant_id"] == left_out:
            return
        start = window_start(event["occurred_at"])
        key = (event["tenant_id"], event["provider"], model_of(priced), start)
        row = _priced_row(priced)
        if key in expected:
            _add(expected[key], row)
        else:
            expected[key] = row

    def on_dlq(_message: Message) -> None:
        verdict.dlq += 1

    rollups: list[UsageRollup] = []

    def on_rollup(message: Message) -> None:
        rollups.append(rollup_codec.decode(message.value() or b""))

    read_topic(bootstrap, outputs.priced, on_priced)
    read_topic(bootstrap, outputs.dlq, on_dlq)
    read_topic(bootstrap, outputs.rollups, on_rollup)
    verdict.distinct = len(seen)
    verdict.rollup_records = len(rollups)
    folded = {k: v for k, v in fold_rollups(rollups).items() if k[0] != left_out}
    verdict.windows = len(expected)
    verdict.differing = [
        (key, expected.get(key), folded.get(key))
        for key in sorted(expected.keys() | folded.keys())
        if expected.get(key) != folded.get(key)
    ]
    return verdict, first[0] if first else None


class Watcher(threading.Thread):
    """Follows a contender's outputs while it runs: priced and dead letters counted (not
    decoded), window results decoded and their requests summed (delta semantics), but those
    of tenant ``left_out``.

    The same watcher runs beside every contender, so each shares the machine with the same
    observer; it times the end of the black-box processor (see ``complete``).
    """

    def __init__(self, bootstrap: str, outputs: Outputs, left_out: str) -> None:
        super().__init__(name="output-watcher", daemon=True)
        self._consumer, _ = _reader(
            bootstrap, [outputs.priced, outputs.rollups, outputs.dlq], eof=False
        )
        self._outputs = outputs
        self._left_out = left_out
        self._codec: AvroCodec[UsageRollup] = AvroCodec("tokenline.UsageRollup")
        self._stopping = threading.Event()
        self.priced = self.dlq = self.rollup_requests = 0
        self.last_progress = time.monotonic()
        self.failure: BaseException | None = None

    def run(self) -> None:
        priced_topic, dlq_topic = self._outputs.priced, self._outputs.dlq
        decode = self._codec.decode
        try:
            while not self._stopping.is_set():
                batch = self._consumer.consume(5_000, timeout=0.05)
                for message in batch:
                    if message.error() is not None:
                        continue
                    topic = message.topic()
                    if topic == priced_topic:
                        self.priced += 1
                    elif topic == dlq_topic:
                        self.dlq += 1
                    else:
                        record = decode(message.value() or b"")
                        if record["tenant_id"] != self._left_out:
                            self.rollup_requests += record["requests"]
                if batch:
                    self.last_progress = time.monotonic()
        except BaseException as exc:  # noqa: BLE001 - reported by the harness
            self.failure = exc
        finally:
            self._consumer.close()

    def complete(self, valid: int, bad: int, windowed: int) -> bool:
        """``valid`` events priced, ``bad`` dead-lettered, and the requests of the window
        results (but those of tenant ``left_out``, whose windows may stay open) adding up to
        ``windowed``."""
        return self.priced >= valid and self.dlq >= bad and self.rollup_requests >= windowed

    def stop(self) -> None:
        """Stop following; wait for the thread."""
        self._stopping.set()
        self.join(10)
