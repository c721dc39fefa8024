"""One raw record in, one outcome out: decode, validate, price, enrich.

:func:`process` is pure apart from the codec: given the bytes, where they came from, the time
and the current price book and config, it returns :class:`Priced` (a PricedUsageEvent record)
or :class:`DeadLettered` (a DeadLetter record with the original bytes and the reason). It never
raises for bad input, so the processor never stops on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tokenline.processor.enrich import AttributionRule, enrich
from tokenline.processor.validate import ValidationLimits, validate_event
from tokenline.schemas import AvroCodec, DecodeError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from tokenline.processor.pricebook import PriceBook
    from tokenline.processor.settings import ProcessorSettings
    from tokenline.schemas import DeadLetter, PricedUsageEvent, SourcePosition, UsageEvent

__all__ = [
    "DeadLettered",
    "Outcome",
    "PipelineConfig",
    "Priced",
    "dead_letter",
    "price_and_enrich",
    "process",
    "process_decoded",
]


@dataclass(frozen=True)
class PipelineConfig:
    """Everything :func:`process` needs besides the price book."""

    limits: ValidationLimits = field(default_factory=ValidationLimits)
    rules: Sequence[AttributionRule] = ()
    worker: str | None = None

    @classmethod
    def of(
        cls, settings: ProcessorSettings, rules: Sequence[AttributionRule], worker: str
    ) -> PipelineConfig:
        """The configuration the processor's settings give (the worker and the replay)."""
        return cls(
            limits=ValidationLimits(
                max_tokens_per_bucket=settings.max_tokens_per_bucket,
                max_future=settings.max_future,
                max_age=settings.max_age,
                mismatch_tolerance=settings.mismatch_tolerance,
            ),
            rules=tuple(rules),
            worker=worker,
        )


@dataclass(frozen=True, slots=True)
class Priced:
    """A valid event, priced (or unpriced with a reason) and enriched."""

    record: PricedUsageEvent


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """A record that goes to the dead-letter topic."""

    record: DeadLetter

    @property
    def reason_code(self) -> str:
        """Shortcut to the record's reason code."""
        return self.record["reason_code"]


Outcome = Priced | DeadLettered

_CODEC: AvroCodec[UsageEvent] | None = None


def _usage_codec() -> AvroCodec[UsageEvent]:
    global _CODEC  # noqa: PLW0603 - one lazily built codec per process
    if _CODEC is None:
        _CODEC = AvroCodec("tokenline.UsageEvent")
    return _CODEC


def dead_letter(
    *,
    reason_code: str,
    reason: str,
    stage: str,
    source: SourcePosition,
    key: bytes | None,
    value: bytes | None,
    timestamp_ms: int | None,
    now: datetime,
    worker: str | None = None,
) -> DeadLetter:
    """A DeadLetter record: why, at which stage, and the original record as it was."""
    return {
        "reason_code": reason_code,
        "reason": reason,
        "stage": stage,
        "source_topic": source["topic"],
        "source_partition": source["partition"],
        "source_offset": source["offset"],
        "source_timestamp_ms": timestamp_ms,
        "key": key,
        "value": value,
        "failed_at": now,
        "worker": worker,
    }


def price_and_enrich(
    event: UsageEvent,
    *,
    book: PriceBook,
    rules: Sequence[AttributionRule],
    source: SourcePosition | None,
    now: datetime,
) -> PricedUsageEvent:
    """The priced, enriched record of a valid event (also used by the replay job)."""
    result = book.price(event)
    return {
        "event": event,
        "canonical_model": result.canonical_model,
        "pricing_status": result.status,
        "unpriced_reason": result.unpriced_reason,
        "cost": result.cost,
        "currency": result.currency,
        "price_entry_id": result.price_entry_id,
        "pricing_version": result.pricing_version,
        "priced_at": now,
        **enrich(event, rules),
        "source": source,
    }


@dataclass(frozen=True, slots=True)
class _Where:
    """The raw record being processed: what a dead letter of it carries."""

    raw: bytes
    key: bytes | None
    source: SourcePosition
    timestamp_ms: int | None
    now: datetime
    worker: str | None

    def dead(self, reason_code: str, reason: str, stage: str) -> DeadLettered:
        return DeadLettered(
            dead_letter(
                reason_code=reason_code,
                reason=reason,
                stage=stage,
                source=self.source,
                key=self.key,
                value=self.raw,
                timestamp_ms=self.timestamp_ms,
                now=self.now,
                worker=self.worker,
            )
        )


def process(
    raw: bytes,
    *,
    key: bytes | None,
    source: SourcePosition,
    timestamp_ms: int | None,
    now: datetime,
    book: PriceBook,
    config: PipelineConfig | None = None,
    codec: AvroCodec[UsageEvent] | None = None,
    decoded: UsageEvent | DecodeError | None = None,
) -> Outcome:
    """Decode, validate, price and enrich one raw record.

    ``decoded`` is what ``codec.decode_many`` already made of ``raw`` (the event, or the
    error), when the record was decoded with its batch.
    """
    config = config or PipelineConfig()
    if decoded is None:
        try:
            decoded = (codec or _usage_codec()).decode(raw)
        except DecodeError as exc:
            decoded = exc
    if isinstance(decoded, DecodeError):
        where = _Where(raw, key, source, timestamp_ms, now, config.worker)
        return where.dead(decoded.reason_code, str(decoded), "decode")
    return process_decoded(
        decoded,
        raw,
        key=key,
        source=source,
        timestamp_ms=timestamp_ms,
        now=now,
        book=book,
        config=config,
    )


def process_decoded(
    event: UsageEvent,
    raw: bytes,
    *,
    key: bytes | None,
    source: SourcePosition,
    timestamp_ms: int | None,
    now: datetime,
    book: PriceBook,
    config: PipelineConfig | None = None,
) -> Outcome:
    """Validate, price and enrich an event already decoded from ``raw`` (as :func:`process`)."""
    config = config or PipelineConfig()

    dlq = _Where(raw, key, source, timestamp_ms, now, config.worker).dead

    try:
        violation = validate_event(event, now, config.limits)
    except Exception as exc:  # noqa: BLE001 - a validation bug must not stop the processor
        return dlq("validation_error", f"{type(exc).__name__}: {exc}", "validate")
    if violation is not None:
        return dlq(violation.reason_code, violation.detail, "validate")
    try:
        record = price_and_enrich(event, book=book, rules=config.rules, source=source, now=now)
    except Exception as exc:  # noqa: BLE001 - a pricing bug must not stop the processor
        return dlq("pricing_error", f"{type(exc).__name__}: {exc}", "price")
    return Priced(record)
