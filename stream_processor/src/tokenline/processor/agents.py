"""The Faust wiring: the raw topic's consumer as a service, and the prices task.

* a service runs :class:`~tokenline.processor.hotpath.HotPath` on a thread of its own: the raw
  topic in batches, each batch's priced events, dead letters and window deltas produced in one
  Kafka transaction with its offsets. It starts once the prices topic has been read to its end,
  and a fatal error in it stops the worker (to be restarted by its supervisor).
* a task follows the compacted prices topic on every worker (its own group-less consumer, so
  every worker sees every document) and swaps the price book in.

Faust's own consumer reads nothing (no agents, no tables): per-message agents cost several
times the pricing itself (issue 13's measurements; ``bench/processor.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from tokenline.common.kafka_security import KafkaSecurity
from tokenline.common.ops.ratelog import limit_handlers
from tokenline.processor.hotpath import HotPath

if TYPE_CHECKING:
    from tokenline.processor.runtime import ProcessorRuntime
    from tokenline.processor.settings import ProcessorSettings

__all__ = ["EXIT_STUCK", "wire"]

log = logging.getLogger(__name__)

_JOIN_S = 60.0
EXIT_STUCK = 75
"""The exit status when the raw topic's consumer is stuck (EX_TEMPFAIL: restart me)."""


def wire(app: Any, settings: ProcessorSettings, runtime: ProcessorRuntime) -> None:
    """Register the raw-topic service and the prices task."""
    import mode

    class RawTopic(mode.Service):
        """Owns the hot path's thread: started after the prices, stopped with the worker."""

        async def on_start(self) -> None:
            limit_handlers()  # the worker's logging is set up by now: bound what libraries say

        def __post_init__(self) -> None:
            self._stop_flag = threading.Event()
            self._thread: threading.Thread | None = None
            self._failure: BaseException | None = None

        def _run(self, hot: HotPath) -> None:
            try:
                hot.run(self._stop_flag)
            except BaseException as exc:
                self._failure = exc
                raise

        @mode.Service.task
        async def _watch(self) -> None:
            await runtime.prices_ready.wait()
            hot = HotPath(settings, runtime)
            thread = threading.Thread(target=self._run, args=(hot,), name="raw-topic", daemon=True)
            self._thread = thread
            thread.start()
            while thread.is_alive():
                await asyncio.sleep(0.5)
                stuck = time.monotonic() - hot.alive_at
                if stuck > settings.stuck_s and not self._stop_flag.is_set():
                    # A Kafka call that ignores its own timeout (seen after a broker restart)
                    # holds the thread in native code, so no graceful stop can finish: exit at
                    # once for the supervisor to restart the worker, which aborts the open
                    # transaction and resumes from the committed offsets.
                    log.critical(
                        "the raw topic's consumer made no progress for %.0f s; exiting (%d) "
                        "to be restarted", stuck, EXIT_STUCK,
                    )  # fmt: skip
                    logging.shutdown()
                    os._exit(EXIT_STUCK)
            if self._failure is not None and not self._stop_flag.is_set():
                log.critical("the raw topic's consumer failed, exiting: %s", self._failure)
                await self.crash(self._failure)

        async def on_stop(self) -> None:
            self._stop_flag.set()
            thread = self._thread
            if thread is not None:
                await asyncio.to_thread(thread.join, _JOIN_S)

    async def follow_prices() -> None:
        while True:
            try:
                await _follow_prices(settings, runtime)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Never leave the raw topic waiting: price with what we have, then retry.
                log.exception("following the prices topic failed; retrying in 5 s")
                runtime.prices_ready.set()
                await asyncio.sleep(5.0)

    app.service(RawTopic)
    app.task(follow_prices)


async def _follow_prices(settings: ProcessorSettings, runtime: ProcessorRuntime) -> None:
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
    consumer: Any, topic: str, runtime: ProcessorRuntime, topic_partition: Any
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
