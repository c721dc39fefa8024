"""Publishing a price book to the compacted prices topic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confluent_kafka import KafkaException, Producer

from tokenline.common.kafka_security import librdkafka_config
from tokenline.processor.topics import ensure_topics, topic_specs

if TYPE_CHECKING:
    from tokenline.processor.pricebook import PriceBook
    from tokenline.processor.settings import ProcessorSettings

__all__ = ["PRICES_KEY", "PublishError", "publish_price_book"]

PRICES_KEY = b"price-table"
"""One key, so compaction keeps only the latest document."""


class PublishError(Exception):
    """The document could not be written to Kafka."""


def publish_price_book(
    book: PriceBook, settings: ProcessorSettings, *, topic: str, timeout_s: float = 30.0
) -> None:
    """Write ``book`` to ``topic`` (created compacted if missing) and wait for the ack."""
    try:
        if settings.create_topics:
            specs = [s for s in topic_specs(settings) if s.name == topic]
            ensure_topics(
                settings.bootstrap_servers,
                specs,
                timeout_s,
                client_config=librdkafka_config(settings),
            )
        producer = Producer(
            {
                **librdkafka_config(settings),
                "acks": "all",
                "enable.idempotence": True,
                "message.max.bytes": 20_000_000,
                "compression.type": "zstd",
            }
        )
        errors: list[str] = []

        def delivered(err: object, _msg: object) -> None:
            if err is not None:
                errors.append(str(err))

        producer.produce(
            topic, key=PRICES_KEY, value=book.to_json().encode(), on_delivery=delivered
        )
        remaining = producer.flush(timeout_s)
    except KafkaException as exc:
        raise PublishError(f"cannot publish to {topic}: {exc}") from exc
    if remaining or errors:
        detail = "; ".join(errors) or "not acknowledged in time"
        raise PublishError(f"cannot publish to {topic}: {detail}")
