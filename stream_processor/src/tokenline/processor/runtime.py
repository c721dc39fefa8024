"""State the agents share inside one worker process, and what they do per record.

Nothing here imports Faust: the agents hand each record to :meth:`Runtime.handle`, which runs
the pure pipeline, accounts producer sequences and returns what to send. The window table is
read and written by the agent (it belongs to Faust); the aggregation is :func:`windows.apply`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tokenline.processor.completeness import SequenceTracker
from tokenline.processor.pipeline import (
    DeadLettered,
    PipelineConfig,
    Priced,
    dead_letter,
    process,
)
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import PricingError
from tokenline.processor.splice import PricedEncoder
from tokenline.processor.validate import ValidationLimits
from tokenline.processor.windows import WindowValue, model_of, rollup_key, to_rollup
from tokenline.schemas import AvroCodec, EncodeError

if TYPE_CHECKING:
    from collections.abc import Sequence
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

__all__ = ["Handled", "Runtime"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Handled:
    """What one raw record produced: encoded output, and the priced record for the window."""

    priced_value: bytes | None = None
    priced: PricedUsageEvent | None = None
    dlq_value: bytes | None = None
    window_key: str | None = None


@dataclass
class Runtime:
    """The worker's mutable state: current prices, sequence accounting, pending rollups."""

    settings: ProcessorSettings
    metrics: Metrics
    book: PriceBook
    rules: Sequence[AttributionRule] = ()
    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    pending: dict[tuple[str, str], WindowValue] = field(default_factory=dict)
    event_ts: float = 0.0
    prices_ready: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        s = self.settings
        self.config = PipelineConfig(
            limits=ValidationLimits(
                max_tokens_per_bucket=s.max_tokens_per_bucket,
                max_future=s.max_future,
                max_age=s.max_age,
                mismatch_tolerance=s.mismatch_tolerance,
            ),
            rules=tuple(self.rules),
            worker=s.worker_name or socket.gethostname(),
        )
        self.usage_codec: AvroCodec[UsageEvent] = AvroCodec("tokenline.UsageEvent")
        self.priced_encoder = PricedEncoder()
        self.rollup_codec: AvroCodec[UsageRollup] = AvroCodec("tokenline.UsageRollup")
        self.dlq_codec: AvroCodec[DeadLetter] = AvroCodec("tokenline.DeadLetter")
        self.metrics.pricing.info({"pricing_version": self.book.pricing_version})

    def handle(
        self,
        raw: bytes,
        *,
        key: bytes | None,
        source: SourcePosition,
        timestamp_ms: int | None,
        now: datetime,
    ) -> Handled:
        """Run one raw record through the pipeline and encode what goes out.

        What goes out fits the producer's ``max_message_bytes``: a priced record that would not
        is dead-lettered instead (``oversize``), and a dead letter is cut to fit.
        """
        from tokenline.schemas.oversize import oversized

        self.metrics.events_in.inc()
        outcome = process(
            raw,
            key=key,
            source=source,
            timestamp_ms=timestamp_ms,
            now=now,
            book=self.book,
            config=self.config,
            codec=self.usage_codec,
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
        tenant = event["tenant_id"].encode()
        size = oversized(tenant, value, self.settings.max_message_bytes)
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
        self.event_ts = event["occurred_at"].timestamp()
        window_key = rollup_key(event["tenant_id"], event["provider"], model_of(record))
        self.metrics.events_out.labels("priced").inc()
        return Handled(priced_value=value, priced=record, window_key=window_key)

    def _dead(self, record: DeadLetter) -> Handled:
        from tokenline.schemas.oversize import fit_dead_letter

        self.metrics.dead_letters.labels(record["reason_code"], record["stage"]).inc()
        self.metrics.events_out.labels("dlq").inc()
        log.warning(
            "dead letter %s at %s[%d]@%d: %s",
            record["reason_code"],
            record["source_topic"],
            record["source_partition"],
            record["source_offset"],
            record["reason"],
        )
        # The dead letter goes out under the original record's key: both count against the
        # producer's limit, and an oversized original is cut (its coordinates are kept).
        value = fit_dead_letter(
            record,
            kafka_key=record["key"],
            max_bytes=self.settings.max_message_bytes,
            encode=self.dlq_codec.encode,
        )
        return Handled(dlq_value=value)

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

    def remember_window(self, key: str, value: WindowValue) -> None:
        """Note a changed window for the next rollup emission."""
        self.pending[(key, value["window_start"])] = value

    def drain_rollups(self) -> list[tuple[bytes, bytes]]:
        """The changed windows since the last call, as (key, encoded UsageRollup)."""
        pending, self.pending = self.pending, {}
        out: list[tuple[bytes, bytes]] = []
        for (key, _), value in pending.items():
            rollup = to_rollup(key, value)
            out.append((rollup["tenant_id"].encode(), self.rollup_codec.encode(rollup)))
        if out:
            self.metrics.events_out.labels("rollup").inc(len(out))
        return out

    def swap_prices(self, raw: bytes | None) -> bool:
        """Load a price document from the prices topic and use it from now on."""
        if not raw:
            return False
        try:
            book = PriceBook.from_json(raw)
        except (PricingError, ValueError, TypeError, KeyError) as exc:
            self.metrics.price_updates.labels("invalid").inc()
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
