"""The Faust agents, timer and task: thin wiring from topics and tables to :class:`Runtime`.

* ``process-raw`` (concurrency 1, see notes on faust #606): each raw record goes through the
  pipeline; the priced event goes to the priced topic (key tenant) or the record to the DLQ;
  the event's window in the tumbling table is updated with :func:`windows.apply`, which skips
  redeliveries by source offset.
* a timer sends the windows changed since its last run to the rollup topic (replace values; a
  live feed for other consumers: the database's rollups are the sink's, see the README);
  Faust's ``on_window_close`` is not used.
* a task follows the compacted prices topic on every worker (its own group-less consumer, so
  every worker sees every document) and swaps the price book in; the raw agent waits until
  the topic has been read to its end once at startup.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tokenline.processor.windows import apply
from tokenline.schemas.kafka_security import KafkaSecurity

if TYPE_CHECKING:
    from tokenline.processor.runtime import Runtime
    from tokenline.processor.settings import ProcessorSettings

__all__ = ["wire"]

log = logging.getLogger(__name__)


def _raw_topic(app: Any, name: str) -> Any:
    return app.topic(name, key_serializer="raw", value_serializer="raw")


def wire(app: Any, settings: ProcessorSettings, runtime: Runtime) -> None:
    """Declare the topics, the window table, the agents, the timer and the prices task."""
    import faust

    raw = _raw_topic(app, settings.topic(settings.raw_topic))
    priced = _raw_topic(app, settings.topic(settings.priced_topic))
    rollups = _raw_topic(app, settings.topic(settings.rollup_topic))
    dlq = _raw_topic(app, settings.topic(settings.dlq_topic))
    size = settings.window_seconds
    windows = (
        app.Table(
            "rollup-windows",
            default=dict,
            partitions=settings.topic_partitions,
            schema=faust.Schema(key_serializer="json", value_serializer="json"),
        )
        .tumbling(size, expires=timedelta(seconds=size + settings.window_grace_s))
        .relative_to(lambda _event: runtime.event_ts)
    )

    async def process_raw(stream: Any) -> None:
        await runtime.prices_ready.wait()
        async for event in stream.events():
            message = event.message
            handled = runtime.handle(
                event.value or b"",
                key=event.key,
                source={
                    "topic": message.topic,
                    "partition": message.partition,
                    "offset": message.offset,
                },
                timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
                now=datetime.now(UTC),
            )
            if handled.dlq_value is not None:
                await dlq.send(key=event.key, value=handled.dlq_value)
            if handled.priced is not None and handled.window_key is not None:
                tenant = handled.priced["event"]["tenant_id"].encode()
                await priced.send(key=tenant, value=handled.priced_value)
                current = windows[handled.window_key].value()
                updated = apply(
                    current or None, handled.priced, message.partition, message.offset, size
                )
                if updated is None:
                    runtime.metrics.window_redeliveries.inc()
                else:
                    windows[handled.window_key] = updated
                    runtime.remember_window(handled.window_key, updated)
            _record_lag(app, runtime, message)

    async def emit_rollups() -> None:
        for key, value in runtime.drain_rollups():
            await rollups.send(key=key, value=value)

    async def follow_prices() -> None:
        while True:
            try:
                await _follow_prices(settings, runtime)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Never leave the raw agent waiting: price with what we have, then retry.
                log.exception("following the prices topic failed; retrying in 5 s")
                runtime.prices_ready.set()
                await asyncio.sleep(5.0)

    app.agent(raw, name="process-raw", concurrency=1)(process_raw)
    app.timer(interval=settings.rollup_emit_interval_s, name="emit-rollups")(emit_rollups)
    app.task(follow_prices)


def _record_lag(app: Any, runtime: Runtime, message: Any) -> None:
    try:
        highwater = app.consumer.highwater(message.tp)
    except Exception:  # noqa: BLE001 - lag is best effort
        return
    if isinstance(highwater, int):
        runtime.consumer_lag(message.partition, highwater - message.offset - 1)


async def _follow_prices(settings: ProcessorSettings, runtime: Runtime) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = settings.topic(settings.prices_topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 2**20,
        **KafkaSecurity.of(settings).aiokafka(),
    )
    await consumer.start()
    try:
        partitions = await _wait_for_partitions(consumer, topic, runtime, TopicPartition)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                latest = next((r.value for r in reversed(records) if r.value), None)
                runtime.swap_prices(latest)
            if not runtime.prices_ready.is_set():
                positions = [await consumer.position(tp) for tp in partitions]
                if all(pos >= ends[tp] for pos, tp in zip(positions, partitions, strict=True)):
                    log.info("prices topic %s read to its end", topic)
                    runtime.prices_ready.set()
    finally:
        await consumer.stop()


async def _wait_for_partitions(
    consumer: Any, topic: str, runtime: Runtime, topic_partition: Any
) -> list[Any]:
    """The prices topic's partitions; after a few tries, process with the initial prices."""
    attempt = 0
    while True:
        # The consumer's own metadata is not refreshed by topics(); ask for a fresh copy.
        cluster = await consumer._client.fetch_all_metadata()
        found = cluster.partitions_for_topic(topic)
        if found:
            return [topic_partition(topic, p) for p in sorted(found)]
        attempt += 1
        if attempt == 10 and not runtime.prices_ready.is_set():
            log.warning("prices topic %s not found; pricing with the initial table", topic)
            runtime.prices_ready.set()
        await asyncio.sleep(1.0 if attempt < 10 else 5.0)
