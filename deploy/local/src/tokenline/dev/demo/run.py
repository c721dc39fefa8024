"""``tokenline demo``: the whole pipeline on the local stack, start to finish.

Steps: the local stack (Kafka + PostgreSQL), a fresh database and topic prefix, the
processor and the sink, the provider emulator; traffic through wrapped real SDK clients for
three tenants across all five providers; wait until every event has landed; the per-tenant
report; a price correction published and the affected range replayed, with the before/after;
then everything the demo started is stopped.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tokenline import sdk
from tokenline.dev import stack
from tokenline.dev.demo.prices import write_correction, write_initial_prices
from tokenline.dev.demo.services import (
    DemoPipeline,
    PipelineError,
    create_database,
    tokenline_command,
)
from tokenline.dev.demo.traffic import AZURE_DEPLOYMENTS, TENANTS, Traffic, drive, planned_calls
from tokenline.emulator import ProviderEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DemoOptions", "run_demo"]

DATABASE = "tokenline_demo"


@dataclass(frozen=True)
class DemoOptions:
    """What ``tokenline demo`` was asked for."""

    rounds: int = 40
    state_dir: Path | None = None
    keep_stack: bool = False
    land_timeout_s: float = 120.0
    #: Use this Kafka and PostgreSQL (both given) instead of the local stack.
    services: tuple[str, str] | None = None


def run_demo(options: DemoOptions, console: Console | None = None) -> None:
    """Run the demo; raise :class:`PipelineError` when a part fails."""
    out = console or Console()
    began = time.monotonic()
    with (
        _services(options, out) as (bootstrap, admin_url, kept),
        tempfile.TemporaryDirectory(prefix="tokenline-demo-") as tmp,
    ):
        work = Path(tmp)
        pipeline = DemoPipeline(
            bootstrap=bootstrap,
            database_url=create_database(admin_url, DATABASE),
            prefix=f"demo-{uuid.uuid4().hex[:6]}.",
            work_dir=work,
            prices_file=write_initial_prices(work / "prices.yaml"),
        )
        with _step(out, "schema, topics, processor and sink"):
            pipeline.migrate()
            _add_tenants(pipeline.database_url)
            pipeline.create_topics()
        try:
            with _step(out, "processor and sink started"):
                pipeline.start()
            started_at = datetime.now(UTC)
            traffic = _send(pipeline, options, work, out)
            with _step(out, f"all {traffic.total} usage events landed in PostgreSQL"):
                _wait_landed(pipeline, traffic, options.land_timeout_s)
            out.rule("Usage this month, per tenant (each in its own timezone)")
            _tokenline(out, pipeline, "report", "--all-tenants", "--by", "tenant,provider")
            out.rule("Price correction and replay")
            _correct_and_replay(out, pipeline, work, started_at)
        finally:
            pipeline.stop()
    out.print(f"[bold green]demo finished in {time.monotonic() - began:.0f} s[/]")
    if kept:
        for line in where_the_data_is(pipeline):
            out.print(line, highlight=False, soft_wrap=True)


def where_the_data_is(pipeline: DemoPipeline) -> list[str]:
    """What to type to look at the demo's data afterwards (its database, topics and Kafka)."""
    env = pipeline.env()
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in sorted(env.items()))
    return [
        f"The data stays: database {DATABASE} ({pipeline.database_url}), topics "
        f"{pipeline.prefix}llm-usage.*, Kafka {pipeline.bootstrap}. To look at it:",
        f"  export {exports}",
        "  tokenline report --all-tenants --by tenant,model",
    ]


@contextlib.contextmanager
def _services(options: DemoOptions, out: Console) -> Iterator[tuple[str, str, bool]]:
    """Kafka's bootstrap address and a PostgreSQL URL, and whether they stay up afterwards.

    The given ones (they stay), or the local stack's (kept with --keep-stack, or when it was
    running already).
    """
    if options.services is not None:
        yield (*options.services, True)
        return
    with _step(out, "local stack (Kafka, PostgreSQL) up"):
        info = stack.up(options.state_dir)
    try:
        assert info.kafka_bootstrap is not None
        assert info.database_url is not None
        kept = options.keep_stack or not info.started
        yield info.kafka_bootstrap, info.database_url, kept
    finally:
        if info.started and not options.keep_stack:
            with _step(out, "local stack stopped"):
                stack.down(options.state_dir, services=info.started)


@contextlib.contextmanager
def _step(out: Console, done: str) -> Iterator[None]:
    began = time.monotonic()
    with out.status(f"{done} …"):
        yield
    out.print(f"[green]✓[/] {done} [dim]({time.monotonic() - began:.1f} s)[/]")


def _add_tenants(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        for tenant in TENANTS:
            conn.execute(
                "INSERT INTO tenants (tenant_id, timezone, monthly_budget) VALUES (%s, %s, 500)",
                (tenant.tenant_id, tenant.timezone),
            )


def _send(pipeline: DemoPipeline, options: DemoOptions, work: Path, out: Console) -> Traffic:
    sdk.configure(
        bootstrap_servers=pipeline.bootstrap,
        topic=pipeline.topic("raw"),
        spool_dir=work / "spool",
        service_name="tokenline-demo",
    )
    try:
        with _emulator() as emulator, _progress(out) as progress:
            task = progress.add_task("wrapped calls", total=planned_calls(options.rounds))
            traffic = drive(emulator, options.rounds, lambda: progress.advance(task))
            progress.update(task, total=traffic.total, completed=traffic.total)
        undelivered = sdk.flush(30)
    finally:
        sdk.close(30)
    if undelivered:
        msg = f"{undelivered} usage events were not delivered to Kafka"
        raise PipelineError(msg)
    out.print(
        f"[green]✓[/] {traffic.total} calls ({traffic.errors} failed at the provider) "
        f"for {len(TENANTS)} tenants across 5 providers"
    )
    return traffic


@contextlib.contextmanager
def _emulator() -> Iterator[ProviderEmulator]:
    with ProviderEmulator(azure_deployments=AZURE_DEPLOYMENTS) as emulator:
        yield emulator


def _progress(out: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    )


def _wait_landed(pipeline: DemoPipeline, traffic: Traffic, timeout_s: float) -> None:
    tenants = [t.tenant_id for t in TENANTS]
    deadline = time.monotonic() + timeout_s
    landed = -1
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        while landed < traffic.total:
            pipeline.check_running()
            row = conn.execute(
                "SELECT count(*) FROM usage_events WHERE tenant_id = ANY(%s)", (tenants,)
            ).fetchone()
            landed = int(row[0]) if row else 0
            if time.monotonic() > deadline:
                msg = f"only {landed} of {traffic.total} events landed in {timeout_s:.0f} s"
                raise PipelineError(msg)
            time.sleep(0.5)


def _correct_and_replay(
    out: Console, pipeline: DemoPipeline, work: Path, started_at: datetime
) -> None:
    correction = write_correction(work / "correction.yaml")
    out.print(
        "A price for the fine-tuned model and globex's negotiated discount arrive late; "
        "the correction goes live and the range is replayed:"
    )
    _tokenline(out, pipeline, "prices", "publish", str(correction))
    begin = (started_at - timedelta(minutes=1)).isoformat()
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    _tokenline(
        out,
        pipeline,
        "replay",
        "--from",
        begin,
        "--to",
        end,
        "--prices",
        str(correction),
        "--wait-landed",
        "90",
    )
    out.rule("After the replay")
    _tokenline(out, pipeline, "report", "--all-tenants", "--by", "tenant")


def _tokenline(out: Console, pipeline: DemoPipeline, *args: str) -> None:
    env = pipeline.environment({"COLUMNS": str(max(out.width, 160))})
    done = subprocess.run(
        [tokenline_command(), *args], env=env, capture_output=True, text=True, check=False
    )
    out.print(done.stdout, end="", markup=False, highlight=False)
    if done.returncode != 0:
        msg = f"tokenline {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr}"
        raise PipelineError(msg)
