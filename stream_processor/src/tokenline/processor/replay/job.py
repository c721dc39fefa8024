"""One replay from start to end; the order of its steps is the contract.

0. Close the runs earlier replays left ``running`` when they were killed (their lease is
   free: see :mod:`~tokenline.processor.replay.db`); the report lists them.
1. Plan: widen the range to whole windows, find each raw partition's offsets, and stop if
   retention deleted records the range needs (unless truncation is allowed).
2. Read what the database holds now (costs per tenant and model, pricing versions, windows,
   the copies of events the sink refused), *before* anything is sent, and insert the
   ``repricing_runs`` row (``running``, leased for as long as this replay's connection
   lives).
3. Read, re-price and re-emit the priced events (readers in parallel), then send the windows
   whose recomputed value differs from the stored one; flush, failing on any delivery error.
4. Close the run row (``succeeded``, or ``failed`` with the error), then with
   ``wait_landed_s`` poll until the sink has stored every re-priced event's pricing and every
   window.

A dry run does steps 1, 2 and the computing part of 3, sends nothing, and still records its
run row (``dry_run = true``): a what-if is worth auditing, and the row shows its result.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tokenline.processor.replay import db
from tokenline.processor.replay.errors import LandingTimeout, RetentionError
from tokenline.processor.replay.kafka import Sender, plan_reads
from tokenline.processor.replay.prices import choose_price_book
from tokenline.processor.replay.readers import ReadTask, read_all, split_partitions
from tokenline.processor.replay.rollups import rollups_to_emit
from tokenline.processor.replay.scope import ReplayScope
from tokenline.processor.replay.summary import Summary, summarize
from tokenline.schemas import AvroCodec

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from tokenline.processor.replay.state import Counts
    from tokenline.processor.settings import ProcessorSettings
    from tokenline.schemas import UsageRollup

__all__ = ["Progress", "ReplayReport", "ReplayRequest", "run_replay"]

_SMALL_READ = 50_000
"""Below this many records one reader in this process beats starting processes."""


@dataclass(frozen=True)
class ReplayRequest:
    """What to replay and how."""

    start: datetime
    end: datetime
    database_url: str
    tenants: Sequence[str] = ()
    prices_file: Path | None = None
    dry_run: bool = False
    allow_truncated: bool = False
    wait_landed_s: float | None = None
    readers: int | None = None
    """Reader processes; ``None``: one per core, or a single one for small reads."""


class Progress:
    """Callbacks the job reports to (a progress bar); all do nothing by default."""

    def planned(self, total: int) -> None:
        """``total`` records are to be read."""

    def advance(self, records: int) -> None:
        """``records`` more were read."""

    def note(self, text: str) -> None:
        """A warning or a step worth showing."""

    def sent_all(self) -> None:
        """Everything is sent and acknowledged (or computed, in a dry run); the run row closed."""


@dataclass
class ReplayReport:
    """What a replay did."""

    run_id: int
    scope: ReplayScope
    price_source: str
    new_pricing_version: str
    old_pricing_versions: list[str]
    summary: Summary
    counts: Counts
    rollups_sent: int
    rollups_unchanged: int
    dry_run: bool
    truncated: dict[int, datetime | None] = field(default_factory=dict)
    landed: bool | None = None
    abandoned: list[db.AbandonedRun] = field(default_factory=list)
    """Runs earlier replays left ``running`` (killed), marked ``failed`` by this one."""
    rollups_changed: int = 0
    """Windows whose values change: re-emitted, or in a dry run, would be."""


def _ms_time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)


def run_replay(
    request: ReplayRequest, settings: ProcessorSettings, progress: Progress | None = None
) -> ReplayReport:
    """Run one replay (see the module docstring for the order of its steps)."""
    progress = progress or Progress()
    run = _Run(request, settings, progress)
    try:
        report = run.execute()
        progress.sent_all()
        if request.wait_landed_s is not None and not request.dry_run:
            report.landed = False
            try:
                run.wait_landed(report, request.wait_landed_s)
            except LandingTimeout as exc:
                exc.report = report
                raise
            report.landed = True
        return report
    finally:
        run.conn.close()


class _Run:
    """The state of one replay while it runs."""

    def __init__(
        self, request: ReplayRequest, settings: ProcessorSettings, progress: Progress
    ) -> None:
        self.request = request
        self.settings = settings
        self.progress = progress
        self.group_id = f"tokenline-replay-{uuid.uuid4().hex[:12]}"
        self.priced_at = datetime.now(UTC)
        self.scope = ReplayScope.of(
            request.start,
            request.end,
            window_seconds=settings.window_seconds,
            tenants=request.tenants,
            lead_s=settings.max_future_s,
            lag_s=settings.window_grace_s,
        )
        self.book, self.price_source = choose_price_book(
            settings, request.prices_file, self.group_id
        )
        self.conn = db.connect(request.database_url)
        self.keys: tuple[bytes, Sequence[int], Sequence[int]] = (b"", (), ())

    def execute(self) -> ReplayReport:
        """Steps 0 to 4; the run row is marked failed when any of them raises."""
        abandoned = db.close_abandoned(self.conn)
        for run in abandoned:
            self.progress.note(
                f"run {run.run_id} (started {run.started_at.isoformat()}, range "
                f"[{run.range_from.isoformat()}, {run.range_to.isoformat()})) was left running "
                "by a replay that stopped; marked failed"
            )
        run_id = db.start_run(
            self.conn,
            self.scope,
            new_pricing_version=self.book.pricing_version,
            dry_run=self.request.dry_run,
        )
        try:
            report = self._execute(run_id)
        except BaseException as exc:
            db.finish_run(self.conn, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        report.abandoned = abandoned
        truncated = ", ".join(
            f"partition {p} from {t.isoformat() if t else 'nothing'}"
            for p, t in sorted(report.truncated.items())
        )
        db.finish_run(
            self.conn,
            run_id,
            status="succeeded",
            range_from=report.scope.start,
            old_pricing_versions=report.old_pricing_versions,
            cost_before=report.summary.before,
            cost_after=report.summary.after,
            events_count=report.counts.replayed,
            error=f"truncated by retention: {truncated}" if truncated else None,
        )
        return report

    def _execute(self, run_id: int) -> ReplayReport:
        plan = plan_reads(self.settings, self.scope, self.group_id)
        truncated = {p: _ms_time(ms) for p, ms in plan.truncated.items()}
        if truncated:
            wanted = self.scope.start
            if not self.request.allow_truncated:
                raise RetentionError(plan.topic, truncated, wanted)
            known = [t for t in truncated.values() if t is not None]
            if known:
                self.scope = self.scope.after(max(known))
            self.progress.note(
                f"{RetentionError(plan.topic, truncated, wanted)} Replaying from "
                f"{self.scope.start.isoformat()} instead."
            )
        before, old_versions = db.before_costs(self.conn, self.scope)
        stored = db.stored_rollups(self.conn, self.scope)
        refused = db.refused_copies(self.conn, self.scope)
        self.progress.planned(plan.total)
        readers = self.request.readers
        if readers is None:
            readers = 1 if plan.total < _SMALL_READ else os.cpu_count() or 1
        groups = split_partitions(plan, readers)
        keep_keys = self.request.wait_landed_s is not None and not self.request.dry_run
        tasks = [
            ReadTask(
                settings=self.settings,
                plan=plan,
                partitions=group,
                scope=self.scope,
                book_json=self.book.to_json(),
                pricing_version=self.book.pricing_version,
                priced_at=self.priced_at,
                dry_run=self.request.dry_run,
                keep_keys=keep_keys,
                group_id=self.group_id,
                refused=refused,
            )
            for group in groups
        ]
        result = read_all(tasks, self.progress.advance)
        rollups, unchanged = rollups_to_emit(result.windows, stored, updated_at=self.priced_at)
        if not self.request.dry_run:
            self._send_rollups(rollups)
        self.keys = (bytes(result.event_ids), result.occurred_us, result.fingerprints)
        return ReplayReport(
            run_id=run_id,
            scope=self.scope,
            price_source=self.price_source,
            new_pricing_version=self.book.pricing_version,
            old_pricing_versions=old_versions,
            summary=summarize(before, result.after),
            counts=result.counts,
            rollups_sent=0 if self.request.dry_run else len(rollups),
            rollups_unchanged=unchanged,
            rollups_changed=len(rollups),
            dry_run=self.request.dry_run,
            truncated=truncated,
        )

    def _send_rollups(self, rollups: list[UsageRollup]) -> None:
        codec: AvroCodec[UsageRollup] = AvroCodec("tokenline.UsageRollup")
        sender = Sender(self.settings)
        topic = self.settings.topic(self.settings.rollup_topic)
        for rollup in rollups:
            sender.send(topic, rollup["tenant_id"].encode(), codec.encode(rollup))
        sender.close()

    def wait_landed(self, report: ReplayReport, timeout_s: float) -> None:
        """Poll until every re-priced event is stored with its new pricing.

        An event whose new pricing equals the stored one counts at once: the sink leaves such
        a row as it is (old ``pricing_version`` and ``priced_at`` included). The windows need
        no wait of their own: the sink adds a re-priced event's change to ``usage_rollup_1m``
        in the transaction that stores it.
        """
        event_ids, occurred_us, fingerprints = self.keys
        expected = len(occurred_us)
        db.load_event_keys(self.conn, event_ids, occurred_us, fingerprints)
        deadline = time.monotonic() + timeout_s
        events = 0
        while True:
            events += db.events_landed(self.conn)
            if events >= expected:
                return
            if time.monotonic() >= deadline:
                msg = (
                    f"after {timeout_s:g} s the sink has landed {events} of {expected} "
                    "re-priced events; "
                    "is `tokenline sink run` running on these topics?"
                )
                raise LandingTimeout(msg)
            time.sleep(0.5)
