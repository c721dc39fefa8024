"""Reading a topic partition from its beginning to its end (``read_committed``).

Used to load the compacted budgets topic and to restore a partition's spend state from the
state topic. The end is the partition's end when the read starts: with ``read_committed``
the consumer stops before an open transaction (a killed worker's, which can only abort), so
what is read is exactly what was committed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["read_to_end", "reader"]


def reader(client_config: dict[str, Any], name: str) -> Consumer:
    """A group-less, read-committed consumer that reports each partition's end."""
    return Consumer(
        {
            **client_config,
            "group.id": f"{name}-unused",
            "client.id": name,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )


def read_to_end(
    consumer: Consumer,
    topic: str,
    partitions: list[int],
    apply: Callable[[int, bytes | None, bytes | None], None],
    timeout_s: float = 60.0,
) -> None:
    """Give ``apply(partition, key, value)`` every record of ``partitions``, then return."""
    if not partitions:
        return
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    pending = set(partitions)
    deadline = time.monotonic() + timeout_s
    try:
        while pending:
            if time.monotonic() > deadline:
                msg = f"{topic} {sorted(pending)}: not read to the end in {timeout_s:.0f} s"
                raise TimeoutError(msg)
            for m in consumer.consume(1000, 0.2):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(m.partition() or 0)
                        continue
                    raise KafkaException(err)
                apply(m.partition() or 0, m.key(), m.value())
    finally:
        consumer.unassign()
