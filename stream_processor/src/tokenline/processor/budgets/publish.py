"""Putting budgets on the compacted budgets topic (key = budget_id; None deletes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from tokenline.common.kafka_security import librdkafka_config
from tokenline.processor.budgets.codec import budget_codec
from tokenline.processor.budgets.settings import budget_topic_specs
from tokenline.processor.topics import ensure_topics

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tokenline.processor.budgets.settings import BudgetSettings
    from tokenline.schemas import Budget

__all__ = ["PublishError", "ensure_budget_topics", "publish"]


class PublishError(Exception):
    """The budgets could not be written to Kafka."""


def ensure_budget_topics(settings: BudgetSettings, timeout_s: float = 30.0) -> None:
    """Create the budget topics that are missing.

    The state topic gets the priced topic's partitions (``TOKENLINE_TOPIC_PARTITIONS`` while
    the priced topic does not exist yet). Raises :class:`PublishError` when an existing state
    topic has fewer partitions than the priced topic: the state of a priced partition lives in
    the state partition of its number.
    """
    partitions = _partitions(settings, settings.topic(settings.priced_topic), timeout_s)
    if settings.create_topics:
        ensure_topics(
            settings.bootstrap_servers,
            budget_topic_specs(settings, partitions or settings.topic_partitions),
            timeout_s,
            client_config=librdkafka_config(settings),
        )
    state_topic = settings.topic(settings.budget_state_topic)
    held = _partitions(settings, state_topic, timeout_s)
    if partitions and held is not None and held < partitions:
        msg = (
            f"{state_topic} has {held} partitions, the priced topic {partitions}: add "
            f"partitions to it (kafka-topics --alter --partitions {partitions})"
        )
        raise PublishError(msg)


def _partitions(settings: BudgetSettings, topic: str, timeout_s: float) -> int | None:
    """How many partitions ``topic`` has, None when it does not exist."""
    admin = AdminClient(librdkafka_config(settings))
    # All topics, not this one: a metadata request naming it may create it on some brokers.
    found = admin.list_topics(timeout=timeout_s).topics.get(topic)
    if found is None or found.error is not None:
        return None
    return len(found.partitions)


def publish(
    settings: BudgetSettings,
    budgets: list[Budget],
    deleted: Sequence[str] = (),
    timeout_s: float = 30.0,
) -> None:
    """Write ``budgets`` (and tombstones for ``deleted`` ids); wait for every ack."""
    topic = settings.topic(settings.budgets_topic)
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    try:
        ensure_budget_topics(settings, timeout_s)
        producer = Producer(
            {**librdkafka_config(settings), "acks": "all", "enable.idempotence": True}
        )
        for budget in budgets:
            value = budget_codec().encode(budget)
            producer.produce(topic, key=budget["budget_id"], value=value, on_delivery=delivered)
        for budget_id in deleted:
            producer.produce(topic, key=budget_id, value=None, on_delivery=delivered)
        remaining = producer.flush(timeout_s)
    except KafkaException as exc:
        raise PublishError(f"cannot publish to {topic}: {exc}") from exc
    if remaining or errors:
        raise PublishError(f"cannot publish to {topic}: {'; '.join(errors) or 'no ack in time'}")
