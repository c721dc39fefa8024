"""What a replay computes from the raw records it reads, free of Kafka and the database.

:class:`Repricer` takes raw records one at a time (in offset order per partition), decodes
them once, keeps those in the :class:`~tokenline.processor.replay.scope.ReplayScope`, and runs
the processor's own pipeline on them (:func:`~tokenline.processor.pipeline.process_decoded`),
with two differences that make a replay of old records equal to their live processing:

* validation's age and future limits are judged at the record's Kafka timestamp (when the
  processor saw it), not at the wall clock, or every record older than ``max_age_s`` would be
  dead-lettered;
* ``priced_at`` is the run's start for every record, so the sink's upsert (a different
  pricing *and* a later ``priced_at``) applies the new prices.

Windows are recomputed with :func:`~tokenline.processor.windows.apply` from every event of the
range. Duplicates are counted once, as ``usage_events`` holds an ``event_id`` once (the first
copy the sink stored): a copy the sink refused (in ``usage_event_duplicates``, given as
``refused``) is skipped, and an ``event_id`` seen before in the run (an SDK retry or re-sent
spool record, in offset order as the sink stores them) too. The live processor skips only
redeliveries of the same offset, so its windows count such a duplicate twice; a replay
corrects that. Dead-lettered records are counted, never re-sent to the DLQ.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from tokenline.processor.pipeline import DeadLettered, process_decoded
from tokenline.processor.replay.landing import fingerprint
from tokenline.processor.windows import apply, model_of, rollup_key, window_start
from tokenline.schemas import AvroCodec, DecodeError, EncodeError
from tokenline.schemas.rollup import ROLLUP_MAX, ROLLUP_SUMS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tokenline.processor.pipeline import PipelineConfig
    from tokenline.processor.pricebook import PriceBook
    from tokenline.processor.replay.scope import ReplayScope
    from tokenline.processor.splice import PricedEncoder
    from tokenline.schemas import PricedUsageEvent, UsageEvent, UsageRollup

__all__ = [
    "CostLine",
    "Counts",
    "PartialResult",
    "Repricer",
    "WindowKey",
    "merge_results",
    "merge_windows",
]

WindowKey = tuple[str, str]
"""``(rollup_key(tenant, provider, model), window_start isoformat)``."""


@dataclass
class CostLine:
    """Events and their cost for one (tenant, model): ``unpriced`` events add no cost."""

    events: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0

    def add(self, cost: Decimal | None) -> None:
        """Count one event of ``cost`` (``None``: unpriced)."""
        self.events += 1
        if cost is None:
            self.unpriced += 1
        else:
            self.cost += cost

    def merge(self, other: CostLine) -> None:
        """Add ``other``'s counts and cost."""
        self.events += other.events
        self.cost += other.cost
        self.unpriced += other.unpriced


@dataclass
class Counts:
    """What happened to the records read."""

    read: int = 0
    out_of_scope: int = 0
    duplicates: int = 0
    priced: int = 0
    unpriced: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)

    @property
    def replayed(self) -> int:
        """Events re-emitted: priced plus unpriced."""
        return self.priced + self.unpriced

    def merge(self, other: Counts) -> None:
        """Add ``other``'s counts."""
        self.read += other.read
        self.out_of_scope += other.out_of_scope
        self.duplicates += other.duplicates
        self.priced += other.priced
        self.unpriced += other.unpriced
        self.dead_lettered.update(other.dead_lettered)


@dataclass
class PartialResult:
    """What one reader computed: counts, cost lines, windows and the replayed event keys."""

    counts: Counts = field(default_factory=Counts)
    after: dict[tuple[str, str], CostLine] = field(default_factory=dict)
    windows: dict[WindowKey, UsageRollup] = field(default_factory=dict)
    event_ids: bytearray = field(default_factory=bytearray)
    occurred_us: array[int] = field(default_factory=lambda: array("q"))
    fingerprints: array[int] = field(default_factory=lambda: array("q"))
    """Per replayed event, :func:`~tokenline.processor.replay.landing.fingerprint`."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


class Repricer:
    """Re-prices raw records of one or more partitions, each read in offset order."""

    def __init__(
        self,
        *,
        scope: ReplayScope,
        book: PriceBook,
        config: PipelineConfig,
        priced_at: datetime,
        encoder: PricedEncoder | None = None,
        keep_keys: bool = False,
        refused: frozenset[tuple[int, int]] = frozenset(),
    ) -> None:
        self.scope = scope
        self.book = book
        self.config = config
        self.priced_at = priced_at
        self.encoder = encoder
        self.keep_keys = keep_keys
        self.refused = refused
        """``(event_id as int, occurred_at in µs)`` of copies the sink refused: skipped."""
        self.result = PartialResult()
        self._seen: set[int] = set()
        self._codec: AvroCodec[UsageEvent] = AvroCodec("tokenline.UsageEvent")

    def add(
        self,
        raw: bytes,
        *,
        key: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int | None,
    ) -> tuple[bytes, bytes] | None:
        """Take one raw record; return the priced event to re-emit (key, value), if any.

        The key is the tenant, as the processor keys priced events. With no encoder (a dry
        run) the record is accounted for and ``None`` returned.
        """
        counts = self.result.counts
        counts.read += 1
        try:
            event = self._codec.decode(raw)
        except DecodeError as exc:
            counts.dead_lettered[exc.reason_code] += 1
            return None
        if not self.scope.contains(event):
            counts.out_of_scope += 1
            return None
        event_key = event["event_id"].int
        if event_key in self._seen or (
            self.refused and (event_key, (event["occurred_at"] - _EPOCH) // _MICRO) in self.refused
        ):
            counts.duplicates += 1
            return None
        seen_at = (
            self.priced_at
            if timestamp_ms is None or timestamp_ms <= 0
            else datetime.fromtimestamp(timestamp_ms / 1000, UTC)
        )
        outcome = process_decoded(
            event,
            raw,
            key=key,
            source={"topic": topic, "partition": partition, "offset": offset},
            timestamp_ms=timestamp_ms,
            now=seen_at,
            book=self.book,
            config=self.config,
        )
        if isinstance(outcome, DeadLettered):
            counts.dead_lettered[outcome.reason_code] += 1
            return None
        record = outcome.record
        record["priced_at"] = self.priced_at
        encoded: bytes | None = None
        if self.encoder is not None:
            try:
                encoded = self.encoder.encode(record, raw)
            except EncodeError:
                counts.dead_lettered["unencodable"] += 1
                return None
        self._seen.add(event_key)
        self._account(record, partition, offset)
        return None if encoded is None else (event["tenant_id"].encode(), encoded)

    def _account(self, record: PricedUsageEvent, partition: int, offset: int) -> None:
        result = self.result
        event = record["event"]
        cost = record["cost"]
        if cost is None:
            result.counts.unpriced += 1
        else:
            result.counts.priced += 1
        model = model_of(record)
        line = result.after.get((event["tenant_id"], model))
        if line is None:
            line = result.after[(event["tenant_id"], model)] = CostLine()
        line.add(None if cost is None else cost["total"])
        series = rollup_key(event["tenant_id"], event["provider"], model)
        size = self.scope.window_seconds
        start = event["occurred_at"]
        window = (series, _window_iso(start, size))
        updated = apply(result.windows.get(window), record, partition, offset, size)
        if updated is not None:
            result.windows[window] = updated
        if self.keep_keys:
            result.event_ids += event["event_id"].bytes
            result.occurred_us.append((start - _EPOCH) // _MICRO)
            result.fingerprints.append(fingerprint(record))


def _window_iso(at: datetime, size_s: int) -> str:
    return window_start(at, size_s).isoformat()


def merge_windows(a: UsageRollup, b: UsageRollup) -> UsageRollup:
    """One window's total from two readers (a tenant's events split over partitions)."""
    later = a if a["max_source_offset"] >= b["max_source_offset"] else b
    merged = later.copy()
    for name in ROLLUP_SUMS:
        merged[name] = a[name] + b[name]  # type: ignore[literal-required]
    merged[ROLLUP_MAX] = max(a[ROLLUP_MAX], b[ROLLUP_MAX])  # type: ignore[literal-required]
    merged["updated_at"] = max(a["updated_at"], b["updated_at"])
    return merged


def merge_results(parts: Iterable[PartialResult]) -> PartialResult:
    """The results of several readers as one."""
    total = PartialResult()
    for part in parts:
        total.counts.merge(part.counts)
        for line_key, line in part.after.items():
            total.after.setdefault(line_key, CostLine()).merge(line)
        for window, value in part.windows.items():
            seen = total.windows.get(window)
            total.windows[window] = value if seen is None else merge_windows(seen, value)
        total.event_ids += part.event_ids
        total.occurred_us.extend(part.occurred_us)
        total.fingerprints.extend(part.fingerprints)
    return total
