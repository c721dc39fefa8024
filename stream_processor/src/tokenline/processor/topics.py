"""The processor's topics and creating them with the configured partitions and replication."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.processor.settings import ProcessorSettings

__all__ = ["TopicSpec", "ensure_topics", "topic_specs"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create."""

    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: ProcessorSettings) -> list[TopicSpec]:
    """Every topic the processor reads or writes.

    The prices topic is compacted; the raw topic keeps ``raw_retention_ms`` when set (replay
    can re-price only what it holds).
    """
    parts, repl = settings.topic_partitions, settings.topic_replication
    raw: dict[str, str] = {}
    if settings.raw_retention_ms is not None:
        raw["retention.ms"] = str(settings.raw_retention_ms)
    return [
        TopicSpec(settings.topic(settings.raw_topic), parts, repl, raw),
        TopicSpec(settings.topic(settings.priced_topic), parts, repl),
        TopicSpec(settings.topic(settings.rollup_topic), parts, repl),
        TopicSpec(settings.topic(settings.dlq_topic), parts, repl),
        TopicSpec(
            settings.topic(settings.prices_topic),
            1,
            repl,
            {"cleanup.policy": "compact", "max.message.bytes": str(16 * 2**20)},
        ),
    ]


def ensure_topics(
    bootstrap_servers: str,
    specs: list[TopicSpec],
    timeout_s: float = 30.0,
    *,
    client_config: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``client_config``: more librdkafka properties (security), e.g. ``librdkafka_config(settings)``.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **(client_config or {})})
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication,
                config=s.config,
            )
            for s in specs
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    created: list[str] = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise
        log.info("created topic %s", name)
        created.append(name)
    return created
