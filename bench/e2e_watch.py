"""Watchers of the end-to-end benchmark: when does each event become visible, and where.

* :class:`RowWatcher` polls ``usage_events`` every ``poll_ms`` and stamps each event id with
  the wall clock read just before the poll's query (``time.time_ns()``, the clock the load
  generator stamps sends with). A row is visible at most one poll period before its stamp, so
  the resolution is the poll period plus the poll's own duration (both are reported). New rows
  are found by a TID range scan (``ctid >= (page, 0)``): the sink only appends, so nearly all
  new rows land on the heap's last pages; each poll starts ``MARGIN_PAGES`` before the highest
  page seen. A short row may also land in an older page with room left (the free space map),
  so every ``SWEEP_EVERY`` polls a sweep scans the pages below with a filter on ``xmin``: rows
  of transactions that were not finished at the previous sweep's snapshot (its
  ``pg_snapshot_xmin``) are exactly those that sweep could not see. Rows found only by a sweep
  are counted (their resolution is the sweep period), and :meth:`RowWatcher.missed` checks at
  the end, with a full scan, that no row escaped both. No index, trigger or column is added to
  the table measured. ``ingested_at`` is not used: it is the landing transaction's start time,
  which understates latency by the batch's duration, and it has no index to poll by.
* :class:`TransportWatcher` is the reference: a bare confluent-kafka consumer of a plain topic
  stamping each record as ``consume`` returns it (before decoding it to read the event id).
* :class:`Sampler` reads the processors' and sinks' Prometheus endpoints once a second.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from e2e_services import scrape

from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from e2e_services import Child

MARGIN_PAGES = 8
SWEEP_EVERY = 20

_NEW_ROWS = (
    "SELECT event_id, (ctid::text::point)[0]::bigint FROM usage_events WHERE ctid >= %s::tid"
)
# One statement, so the horizon and the rows come from the same snapshot. ``xmin`` is a 32-bit
# transaction id: the horizon is compared modulo 2**32 (a wraparound during a run would show
# up in ``missed``).
_SWEEP = (
    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint %% 4294967296, "
    "ARRAY(SELECT event_id FROM usage_events WHERE ctid < %s::tid "
    "AND xmin::text::bigint >= %s)"
)


class RowWatcher(threading.Thread):
    """Polls ``usage_events`` for new rows and stamps the first time each id is seen."""

    def __init__(self, database_url: str, poll_ms: int) -> None:
        super().__init__(name="row-watcher", daemon=True)
        self.seen: dict[int, int] = {}
        self.polls = 0
        self.poll_ns = 0
        self.max_period_ns = 0
        self.swept = 0
        """Rows first seen by a sweep rather than by the tail scan."""
        self._url = database_url
        self._poll_ns = poll_ms * 1_000_000
        self._stop_event = threading.Event()
        self._conn = psycopg.connect(database_url, autocommit=True)
        self.backend_pid = self._conn.info.backend_pid
        self.failure: BaseException | None = None

    def run(self) -> None:
        """Poll until stopped."""
        try:
            self._loop()
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            self.failure = exc
        finally:
            self._conn.close()

    def _loop(self) -> None:
        page = horizon = 0
        seen = self.seen
        last = time.time_ns()
        while not self._stop_event.is_set():
            stamp = time.time_ns()
            self.max_period_ns = max(self.max_period_ns, stamp - last)
            last = stamp
            start = f"({max(page - MARGIN_PAGES, 0)},0)"
            # The sweep's snapshot must come first: a row it cannot see (committed later) is then
            # either on the tail this poll reads, or has an xmin at or above its horizon.
            if self.polls % SWEEP_EVERY == 0:
                horizon = self._sweep(start, horizon)
            for event_id, row_page in self._conn.execute(_NEW_ROWS, (start,)).fetchall():
                seen.setdefault(event_id.int, stamp)
                page = max(page, row_page)
            done = time.time_ns()
            self.polls += 1
            self.poll_ns += done - stamp
            wait_ns = stamp + self._poll_ns - done
            if wait_ns > 0:
                self._stop_event.wait(wait_ns / 1e9)

    def _sweep(self, below: str, horizon: int) -> int:
        """Stamp rows below the tail committed since the last sweep; return the new horizon."""
        stamp = time.time_ns()
        row = self._conn.execute(_SWEEP, (below, horizon)).fetchone()
        assert row is not None
        for event_id in row[1]:
            if self.seen.setdefault(event_id.int, stamp) == stamp:
                self.swept += 1
        return int(row[0])

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop_event.set()
        self.join(30)

    def missed(self) -> set[int]:
        """Ids in the table the polls never saw (a full scan; expected empty)."""
        with psycopg.connect(self._url) as conn:
            ids = {row[0].int for row in conn.execute("SELECT event_id FROM usage_events")}
        return ids - self.seen.keys()

    def count(self) -> int:
        """Rows in ``usage_events`` now."""
        with psycopg.connect(self._url) as conn:
            row = conn.execute("SELECT count(*) FROM usage_events").fetchone()
        return int(row[0]) if row else 0


class TransportWatcher(threading.Thread):
    """Reads a plain topic from its beginning with a bare consumer, stamping each record."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        super().__init__(name="transport-watcher", daemon=True)
        self.seen: dict[int, int] = {}
        self.failure: BaseException | None = None
        self._codec = AvroCodec[Any]("tokenline.UsageEvent")
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{topic}-reader",  # required by librdkafka; nothing is committed
                "enable.auto.commit": False,
            }
        )
        self._consumer.assign(
            [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        )
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Consume until stopped."""
        try:
            while not self._stop_event.is_set():
                batch = self._consumer.consume(num_messages=1000, timeout=0.05)
                stamp = time.time_ns()
                for message in batch:
                    if message.error() is None:
                        event = self._codec.decode(message.value() or b"")
                        self.seen.setdefault(event["event_id"].int, stamp)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            self.failure = exc
        finally:
            self._consumer.close()

    def stop(self) -> None:
        """Stop consuming and wait for the thread."""
        self._stop_event.set()
        self.join(30)


@dataclass
class Sample:
    """One reading of the pipeline's metrics."""

    at_s: int
    visible: int
    processor_in: int
    processor_lag: int
    sink_landed: int
    sink_lag: int
    sink_batches: int
    sink_batch_ms: int


@dataclass
class Sampler:
    """Reads every processor's and sink's metrics once a second, in a thread."""

    processors: list[Child]
    sinks: list[Child]
    watcher: RowWatcher
    priced_topic: str
    samples: list[Sample] = field(default_factory=list)
    _stop_event: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin sampling."""
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        start = time.monotonic()
        while not self._stop_event.wait(1.0):
            try:
                self.samples.append(self._read(int(time.monotonic() - start)))
            except OSError:
                continue  # a worker busy or restarting: skip this second

    def read(self, at_s: int = 0) -> Sample:
        """One reading now (any thread)."""
        return self._read(at_s)

    def _read(self, at_s: int) -> Sample:
        processor_in = processor_lag = 0
        for child in self.processors:
            found = scrape(child.metrics_port)
            processor_in += int(sum(found.get("tokenline_processor_events_in_total", {}).values()))
            processor_lag += int(sum(found.get("tokenline_processor_consumer_lag", {}).values()))
        landed = sink_lag = batches = batch_ms = 0
        for child in self.sinks:
            found = scrape(child.metrics_port)
            rows = found.get("tokenline_sink_rows_landed_total", {})
            landed += int(rows.get((("table", "usage_events"),), 0))
            lags = found.get("tokenline_sink_consumer_lag", {})
            sink_lag += int(sum(v for k, v in lags.items() if ("topic", self.priced_topic) in k))
            batches += int(sum(found.get("tokenline_sink_batch_seconds_count", {}).values()))
            batch_ms += int(1000 * sum(found.get("tokenline_sink_batch_seconds_sum", {}).values()))
        return Sample(
            at_s,
            len(self.watcher.seen),
            processor_in,
            processor_lag,
            landed,
            sink_lag,
            batches,
            batch_ms,
        )
