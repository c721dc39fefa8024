"""State the processor's consumer shares inside one worker process, and the per-record work.

Nothing here imports Faust or Kafka: the consumer hands each batch of raw records to
:meth:`ProcessorRuntime.handle_batch`, which decodes the batch in one call (``decode_many``:
the native decoder when it is installed), runs the pure pipeline on each, sums the windows, accounts
producer sequences and metrics once per batch, and returns the encoded records to produce.
:meth:`ProcessorRuntime.handle` does the same for one record (the replay, the tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokenline.common.ops.health import Health
from tokenline.processor.completeness import SequenceTracker
from tokenline.processor.pipeline import (
    DeadLettered,
    PipelineConfig,
    Priced,
    dead_letter,
    price_and_enrich,
    process,
)
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import PricingError
from tokenline.processor.recent import RecentIds
from tokenline.processor.splice import PricedEncoder
from tokenline.processor.validate import validate_event
from tokenline.processor.windows import Deltas, model_of, rollup_key
from tokenline.schemas import AvroCodec, DecodeError, EncodeError
from tokenline.schemas.oversize import RECORD_OVERHEAD, fit_dead_letter, oversized

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from datetime import datetime

    from tokenline.processor.enrich import AttributionRule
    from tokenline.processor.metrics import Metrics
    from tokenline.processor.settings import ProcessorSettings
    from tokenline.schemas import (
        DeadLetter,
        PricedUsageEvent,
        SourcePosition,
        UsageEvent,
        UsageRollup,
    )

__all__ = ["Batch", "Handled", "ProcessorRuntime", "RawRecord"]

log = logging.getLogger(__name__)

RawRecord = tuple[bytes | None, bytes | None, str, int, int, int | None]
"""One raw Kafka record: key, value, topic, partition, offset, timestamp (ms, or None)."""


@dataclass(slots=True)
class Batch:
    """What a batch of raw records produced, encoded: ``(key, value)`` per output topic."""

    priced: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    dead: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    rollups: list[tuple[bytes, bytes]] = field(default_factory=list)
    duplicates: int = 0


@dataclass(slots=True)
class Handled:
    """What one raw record produced: encoded output, and the priced record for the window."""

    priced_value: bytes | None = None
    priced: PricedUsageEvent | None = None
    dlq_value: bytes | None = None
    window_key: str | None = None
    dead_reason: tuple[str, str] = ("", "")
    """``(reason_code, stage)`` of a dead letter."""


@dataclass
class ProcessorRuntime:
    """The worker's mutable state: current prices, sequence accounting, recent event ids."""

    settings: ProcessorSettings
    metrics: Metrics
    book: PriceBook
    rules: Sequence[AttributionRule] = ()
    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    prices_ready: asyncio.Event = field(default_factory=asyncio.Event)
    health: Health = field(default_factory=Health)
    """Liveness and readiness: the raw topic's consumer reports its turns, partitions, lag."""

    def __post_init__(self) -> None:
        s = self.settings
        self.config = PipelineConfig.of(s, self.rules, s.worker_id)
        self.usage_codec: AvroCodec[UsageEvent] = AvroCodec("tokenline.UsageEvent")
        self.priced_encoder = PricedEncoder()
        self.rollup_codec: AvroCodec[UsageRollup] = AvroCodec("tokenline.UsageRollup")
        self.dlq_codec: AvroCodec[DeadLetter] = AvroCodec("tokenline.DeadLetter")
        self.recent = RecentIds(s.dedupe_events)
        self.metrics.pricing.info({"pricing_version": self.book.pricing_version})

    def handle_batch(self, records: Sequence[RawRecord], now: datetime) -> Batch:
        """Price a batch of raw records; sum the windows; count metrics once for the batch.

        A priced event whose ``event_id`` this worker saw among its recent events is produced
        again (the sink keeps one) but not counted in the windows a second time. A record
        that fails any step is handled again on its own by :meth:`_one`, which makes its dead
        letter: the loop here only runs what a valid record needs.
        """
        out = Batch()
        deltas = Deltas(self.settings.window_seconds)
        dead: Counter[tuple[str, str]] = Counter()
        unpriced: Counter[str] = Counter()
        first_time = self.recent.first_time
        observe = self.tracker.observe
        before = self.tracker.totals()
        values = [value or b"" for _key, value, *_rest in records]
        events = self.usage_codec.decode_many(values)
        for (key, _value, topic, partition, offset, timestamp_ms), raw, event in zip(
            records, values, events, strict=True
        ):
            source: SourcePosition = {"topic": topic, "partition": partition, "offset": offset}
            fast = None if isinstance(event, DecodeError) else self._fast(event, raw, source, now)
            if fast is None:
                handled = self._one(raw, key, source, timestamp_ms, now, decoded=event)
                record, value = handled.priced, handled.priced_value
                if record is None or value is None:
                    if handled.dlq_value is not None:
                        out.dead.append((key, handled.dlq_value))
                        dead[handled.dead_reason] += 1
                    continue
                tenant = record["event"]["tenant_id"].encode()
            else:
                record, value, tenant = fast
                if record["pricing_status"] == "unpriced":
                    unpriced[record["unpriced_reason"] or "unknown"] += 1
                observe(record["event"]["producer_id"], record["event"]["producer_seq"])
            out.priced.append((tenant, value))
            if first_time(record["event"]["event_id"]):
                deltas.add(record, partition, offset)
            else:
                out.duplicates += 1
        for rollup in deltas.rollups(now):
            out.rollups.append((rollup["tenant_id"].encode(), self.rollup_codec.encode(rollup)))
        self._count_batch(len(records), out, dead)
        self._count_sequences(before, unpriced)
        return out

    def _fast(
        self, event: UsageEvent, raw: bytes, source: SourcePosition, now: datetime
    ) -> tuple[PricedUsageEvent, bytes, bytes] | None:
        """A valid event's priced record, its encoding and its Kafka key, else ``None``.

        ``None`` for anything short of that (a violation, a failure, a record too large):
        :meth:`_one` then runs the record again and makes its dead letter with the reason.
        """
        try:
            if validate_event(event, now, self.config.limits) is not None:
                return None
            record = price_and_enrich(
                event, book=self.book, rules=self.config.rules, source=source, now=now
            )
            value = self.priced_encoder.encode(record, raw)
        except Exception:  # noqa: BLE001 - run again by _one, which keeps the reason
            return None
        tenant = event["tenant_id"].encode()
        if len(tenant) + len(value) + RECORD_OVERHEAD > self.settings.max_message_bytes:
            return None
        return record, value, tenant

    def _count_sequences(self, before: tuple[int, int, int], unpriced: Counter[str]) -> None:
        m = self.metrics
        for reason, n in unpriced.items():
            m.unpriced.labels(reason).inc(n)
        gaps, repeats, filled = (a - b for a, b in zip(self.tracker.totals(), before, strict=True))
        if gaps:
            m.producer_gaps.inc(gaps)
        if filled:
            m.producer_gap_fills.inc(filled)
        if repeats:
            m.producer_repeats.inc(repeats)

    def _count_batch(self, consumed: int, out: Batch, dead: Counter[tuple[str, str]]) -> None:
        m = self.metrics
        m.events_in.inc(consumed)
        if out.priced:
            m.events_out.labels("priced").inc(len(out.priced))
        if out.dead:
            m.events_out.labels("dlq").inc(len(out.dead))
            for (reason_code, stage), n in dead.items():
                m.dead_letters.labels(reason_code, stage).inc(n)
            log.warning(
                "%d dead letter(s) in a batch of %d: %s",
                len(out.dead), consumed,
                ", ".join(f"{code} at {stage}: {n}" for (code, stage), n in dead.most_common()),
            )  # fmt: skip
        if out.rollups:
            m.events_out.labels("rollup").inc(len(out.rollups))
        if out.duplicates:
            m.window_redeliveries.inc(out.duplicates)

    def handle(
        self,
        raw: bytes,
        *,
        key: bytes | None,
        source: SourcePosition,
        timestamp_ms: int | None,
        now: datetime,
    ) -> Handled:
        """Run one raw record through the pipeline and encode what goes out (metrics too).

        What goes out fits ``max_message_bytes`` (see :meth:`_one`).
        """
        self.metrics.events_in.inc()
        (decoded,) = self.usage_codec.decode_many([raw])  # the native reader for one, too
        handled = self._one(raw, key, source, timestamp_ms, now, decoded=decoded)
        if handled.dlq_value is not None:
            reason_code, stage = handled.dead_reason
            self.metrics.dead_letters.labels(reason_code, stage).inc()
            self.metrics.events_out.labels("dlq").inc()
            log.warning(
                "dead letter %s at %s[%d]@%d",
                reason_code, source["topic"], source["partition"], source["offset"],
            )  # fmt: skip
        else:
            self.metrics.events_out.labels("priced").inc()
        return handled

    def _one(
        self,
        raw: bytes,
        key: bytes | None,
        source: SourcePosition,
        timestamp_ms: int | None,
        now: datetime,
        *,
        decoded: UsageEvent | DecodeError | None = None,
    ) -> Handled:
        outcome = process(
            raw,
            key=key,
            source=source,
            timestamp_ms=timestamp_ms,
            now=now,
            book=self.book,
            config=self.config,
            codec=self.usage_codec,
            decoded=decoded,
        )
        if isinstance(outcome, DeadLettered):
            return self._dead(outcome.record)
        assert isinstance(outcome, Priced)
        record = outcome.record
        try:
            value = self.priced_encoder.encode(record, raw)
        except EncodeError as exc:
            return self._dead(
                dead_letter(
                    reason_code="unencodable",
                    reason=str(exc),
                    stage="encode",
                    source=source,
                    key=key,
                    value=raw,
                    timestamp_ms=timestamp_ms,
                    now=now,
                    worker=self.config.worker,
                )
            )
        event = record["event"]
        size = oversized(event["tenant_id"].encode(), value, self.settings.max_message_bytes)
        if size is not None:
            return self._dead(
                dead_letter(
                    reason_code="oversize",
                    reason=f"the priced record is {size} bytes with its key, over the "
                    f"producer's {self.settings.max_message_bytes}-byte limit",
                    stage="encode",
                    source=source,
                    key=key,
                    value=raw,
                    timestamp_ms=timestamp_ms,
                    now=now,
                    worker=self.config.worker,
                )
            )
        self._account(record)
        window_key = rollup_key(event["tenant_id"], event["provider"], model_of(record))
        return Handled(priced_value=value, priced=record, window_key=window_key)

    def _dead(self, record: DeadLetter) -> Handled:
        # The dead letter goes out under the original record's key: both count against the
        # producer's limit, and an oversized original is cut (its coordinates are kept).
        value = fit_dead_letter(
            record,
            kafka_key=record["key"],
            max_bytes=self.settings.max_message_bytes,
            encode=self.dlq_codec.encode,
        )
        return Handled(dlq_value=value, dead_reason=(record["reason_code"], record["stage"]))

    def _account(self, record: PricedUsageEvent) -> None:
        if record["pricing_status"] == "unpriced":
            self.metrics.unpriced.labels(record["unpriced_reason"] or "unknown").inc()
        event = record["event"]
        seen = self.tracker.observe(event["producer_id"], event["producer_seq"])
        if seen.gaps:
            self.metrics.producer_gaps.inc(seen.gaps)
        if seen.filled:
            self.metrics.producer_gap_fills.inc()
        if seen.repeat:
            self.metrics.producer_repeats.inc()

    def forget_recent(self) -> None:
        """Forget the recent event ids (a batch was aborted: its events will come again)."""
        self.recent = RecentIds(self.settings.dedupe_events)

    def swap_prices(self, raw: bytes | None) -> bool:
        """Load a price document from the prices topic and use it from now on."""
        if not raw:
            return False
        try:
            book = PriceBook.from_json(raw)
        except (PricingError, ValueError, TypeError, KeyError) as exc:
            self.metrics.price_updates.labels("invalid").inc()
            self.metrics.errors.labels("price_document").inc()
            log.error("ignoring an invalid price document: %s", exc)
            return False
        self.book = book
        self.metrics.price_updates.labels("applied").inc()
        self.metrics.pricing.info({"pricing_version": book.pricing_version})
        log.info("price table %s in use (%d entries)", book.pricing_version, len(book.table))
        return True

    def consumer_lag(self, partition: int, lag: Any) -> None:
        """Record the lag of a raw-topic partition when the consumer knows it."""
        if isinstance(lag, int) and lag >= 0:
            self.metrics.consumer_lag.labels(str(partition)).set(lag)

    def assigned_lag(self, lags: dict[int, int]) -> None:
        """The lag of every assigned partition (those unknown yet left out); readiness."""
        for partition, lag in lags.items():
            self.consumer_lag(partition, lag)
        limit = self.settings.ready_max_lag
        if limit:
            total = sum(lags.values())
            self.health.report("lag", ok=total <= limit, detail=f"{total} behind (at most {limit})")

    def partitions_changed(self, assigned: set[int], revoked: Collection[int] = ()) -> None:
        """The raw topic's assignment changed: readiness, and gauges of revoked partitions."""
        for partition in revoked:
            with contextlib.suppress(KeyError):  # no lag measured for it yet
                self.metrics.consumer_lag.remove(str(partition))
        shown = ", ".join(str(p) for p in sorted(assigned)) or "none: more workers than partitions"
        self.health.report("partitions", ok=True, detail=f"{len(assigned)} assigned ({shown})")
