"""Reading the planned records with one reader per core, each owning some partitions.

A reader decodes, re-prices and re-emits its partitions' records itself (its own consumer
and producer) and returns its windows, cost lines and counts; the caller merges them. Windows
can be computed per partition because events are keyed by tenant, so a (tenant, provider,
model) series lives on one partition, as in the processor; a series split over partitions
anyway is merged (:func:`~tokenline.processor.replay.state.merge_windows`). Duplicates are
found per reader, which finds every duplicate of a tenant's event for the same reason.

Readers run in ``spawn``-ed processes (a fork would inherit librdkafka's threads); a single
reader runs in the calling process.
"""

from __future__ import annotations

import multiprocessing
import queue
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tokenline.processor.enrich import load_rules
from tokenline.processor.pipeline import PipelineConfig
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.replay.errors import ReplayError
from tokenline.processor.replay.kafka import Sender, read_records
from tokenline.processor.replay.state import PartialResult, Repricer, merge_results
from tokenline.processor.splice import PricedEncoder

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from tokenline.processor.replay.kafka import ReadPlan
    from tokenline.processor.replay.scope import ReplayScope
    from tokenline.processor.settings import ProcessorSettings

__all__ = ["ReadTask", "pipeline_config", "read_all", "split_partitions"]

_PROGRESS_EVERY = 20_000


def pipeline_config(settings: ProcessorSettings) -> PipelineConfig:
    """The pipeline configuration the processor's runtime builds from the same settings."""
    rules = load_rules(settings.attribution_file) if settings.attribution_file else ()
    return PipelineConfig.of(settings, rules, "tokenline-replay")


@dataclass(frozen=True)
class ReadTask:
    """Everything one reader needs (picklable)."""

    settings: ProcessorSettings
    plan: ReadPlan
    partitions: list[int]
    scope: ReplayScope
    book_json: str
    pricing_version: str
    priced_at: datetime
    dry_run: bool
    keep_keys: bool
    group_id: str
    refused: frozenset[tuple[int, int]] = frozenset()
    """Copies of events the sink refused (see :class:`~tokenline.processor.replay.Repricer`)."""


def split_partitions(plan: ReadPlan, readers: int) -> list[list[int]]:
    """Partitions dealt to at most ``readers`` readers, balancing the records to read."""
    todo = sorted(
        (p for p, (start, end) in plan.bounds.items() if end > start),
        key=lambda p: plan.bounds[p][0] - plan.bounds[p][1],
    )
    groups: list[list[int]] = [[] for _ in range(max(1, min(readers, len(todo))))]
    loads = [0] * len(groups)
    for p in todo:
        least = loads.index(min(loads))
        groups[least].append(p)
        loads[least] += plan.bounds[p][1] - plan.bounds[p][0]
    return [sorted(g) for g in groups if g]


def run_task(task: ReadTask, progress: Callable[[int], None]) -> PartialResult:
    """Read, re-price and (unless a dry run) re-emit the task's partitions."""
    book = PriceBook.from_json(task.book_json)
    if book.pricing_version != task.pricing_version:
        msg = f"price book changed in transit: {book.pricing_version} != {task.pricing_version}"
        raise ReplayError(msg)
    repricer = Repricer(
        scope=task.scope,
        book=book,
        config=pipeline_config(task.settings),
        priced_at=task.priced_at,
        encoder=None if task.dry_run else PricedEncoder(),
        keep_keys=task.keep_keys,
        refused=task.refused,
    )
    sender = None if task.dry_run else Sender(task.settings)
    priced_topic = task.settings.topic(task.settings.priced_topic)
    topic = task.plan.topic
    add = repricer.add
    unreported = 0
    for batch in read_records(task.settings, task.plan, task.partitions, task.group_id):
        for message in batch:
            kind, ms = message.timestamp()
            out = add(
                message.value() or b"",
                key=message.key(),
                topic=topic,
                partition=message.partition(),  # type: ignore[arg-type]
                offset=message.offset(),  # type: ignore[arg-type]
                timestamp_ms=ms if kind else None,
            )
            if out is not None and sender is not None:
                sender.send(priced_topic, out[0], out[1])
        unreported += len(batch)
        if unreported >= _PROGRESS_EVERY:
            progress(unreported)
            unreported = 0
    if sender is not None:
        sender.close()
    progress(unreported)
    return repricer.result


def _reader_main(index: int, task: ReadTask, out: Any) -> None:
    try:
        result = run_task(task, lambda n: out.put(("progress", index, n)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        out.put(("error", index, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        return
    out.put(("done", index, result))


def read_all(tasks: list[ReadTask], progress: Callable[[int], None]) -> PartialResult:
    """Run the tasks (in this process when there is one) and merge their results."""
    if len(tasks) <= 1:
        return merge_results(run_task(t, progress) for t in tasks)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_reader_main, args=(i, t, out), name=f"replay-reader-{i}", daemon=True)
        for i, t in enumerate(tasks)
    ]
    for proc in procs:
        proc.start()
    results: dict[int, PartialResult] = {}
    try:
        while len(results) < len(tasks):
            try:
                kind, index, payload = out.get(timeout=1.0)
            except queue.Empty:
                dead = [
                    p.name for i, p in enumerate(procs) if i not in results and not p.is_alive()
                ]
                if dead and out.empty():
                    raise ReplayError(f"reader(s) {', '.join(dead)} died") from None
                continue
            if kind == "progress":
                progress(payload)
            elif kind == "error":
                raise ReplayError(f"reader {index} failed: {payload}")
            else:
                results[index] = payload
    finally:
        for proc in procs:
            if proc.is_alive() and len(results) < len(tasks):
                proc.terminate()
            proc.join(10)
    return merge_results(results[i] for i in sorted(results))
