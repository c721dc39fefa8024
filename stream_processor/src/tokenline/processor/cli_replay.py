"""``tokenline replay``: re-price a time range of history and recompute its windows."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenline.common.errors import ConfigError
from tokenline.common.ops.exits import CommandFailed, ExitCode
from tokenline.processor.settings import load_settings

if TYPE_CHECKING:
    from typing import TextIO

    from rich.console import Console

    from tokenline.processor.replay import ReplayReport as Report

__all__ = ["replay"]

_UNWRAPPED = 1000
_RELATIONS = ("usage_events", "repricing_runs")
"""The sink's tables a replay reads and records its run in (exit 5 without them)."""


class _When(click.ParamType):
    name = "time"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO date or time", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.command()
@click.option(
    "--from",
    "start",
    type=_When(),
    required=True,
    help="Start, in UTC unless it has an offset (unlike `report --from`, tenant-local): "
    "2026-10-01 or 2026-10-01T09:30+02:00.",
)
@click.option("--to", "end", type=_When(), required=True, help="End, exclusive; UTC unless offset.")
@click.option("--tenant", "tenants", multiple=True, help="Only this tenant (repeatable).")
@click.option(
    "--prices",
    "prices_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Overrides YAML, merged over the current table on the prices topic (its other "
    "prices, tenant terms and model maps stay), or a price-book JSON that replaces it; "
    "default: the current table.",
)
@click.option("--dry-run", is_flag=True, help="Compute the summary; send nothing to Kafka.")
@click.option(
    "--allow-truncated", is_flag=True, help="Re-price what retention left instead of stopping."
)
@click.option(
    "--wait-landed",
    "wait_landed_s",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Then wait up to SECONDS until the sink has landed every re-priced event.",
)
@click.option(
    "--database-url",
    envvar="TOKENLINE_DATABASE_URL",
    required=True,
    help="The sink's database [TOKENLINE_DATABASE_URL].",
)
@click.option(
    "--readers", type=click.IntRange(min=1), metavar="N", help="Reader processes (default: cores)."
)
def replay(
    *,
    start: datetime,
    end: datetime,
    tenants: tuple[str, ...],
    prices_file: Path | None,
    dry_run: bool,
    allow_truncated: bool,
    wait_landed_s: float | None,
    database_url: str,
    readers: int | None,
) -> None:
    """Re-price the raw events of [FROM, TO) and recompute their one-minute windows.

    Reads the raw topic (settings from TOKENLINE_* variables, as the processor), prices with
    the given or current table exactly as the processor would now, re-emits the priced events
    for the sink to upsert (it changes the stored windows with them) and the changed windows
    on the rollup feed, records a repricing_runs row and prints the cost before and after.
    Replaying the same range with the same prices changes nothing.
    """
    from rich.console import Console

    from tokenline.common.kafka_security import librdkafka_config
    from tokenline.common.ops.logs import configure_logging
    from tokenline.common.ops.preflight import check_database, check_kafka
    from tokenline.processor.replay import (
        LandingTimeout,
        ReplayError,
        ReplayReport,
        ReplayRequest,
        run_replay,
    )
    from tokenline.processor.replay.progress import BarProgress

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CommandFailed(str(exc), ExitCode.CONFIG) from exc
    configure_logging(settings.log_level, settings.log_format, "replay")
    check_kafka(librdkafka_config(settings))
    check_database(
        database_url, relations=_RELATIONS, setting="--database-url or TOKENLINE_DATABASE_URL"
    )
    request = ReplayRequest(
        start=start,
        end=end,
        database_url=database_url,
        tenants=tenants,
        prices_file=prices_file,
        dry_run=dry_run,
        allow_truncated=allow_truncated,
        wait_landed_s=wait_landed_s,
        readers=readers,
    )
    err = Console(stderr=True)
    out = output_console()
    try:
        with BarProgress(err) as progress:
            report = run_replay(request, settings, progress)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except LandingTimeout as exc:
        if isinstance(exc.report, ReplayReport):
            _print(out, exc.report)
        raise CommandFailed(str(exc)) from exc
    except ReplayError as exc:
        raise CommandFailed(str(exc)) from exc
    _print(out, report)


def output_console(stream: TextIO | None = None) -> Console:
    """A console for the summary: a terminal's width, else one that never wraps a row.

    A pipe or a file has no width; rich would fold the tables at 80 columns.
    """
    from rich.console import Console

    target = stream or sys.stdout
    if target.isatty():
        return Console(file=target)
    return Console(file=target, width=_UNWRAPPED, highlight=False)


def _print(out: Console, report: Report) -> None:
    from tokenline.processor.replay.summary import render, render_counts

    scope = report.scope
    tenants = ", ".join(sorted(scope.tenants)) or "all"
    for run in report.abandoned:
        out.print(
            f"run {run.run_id} (started {run.started_at.isoformat()}, range "
            f"[{run.range_from.isoformat()}, {run.range_to.isoformat()})) had been left running "
            "by a replay that stopped: marked failed"
        )
    out.print(
        f"replay run {report.run_id}{' (dry run: nothing sent)' if report.dry_run else ''}\n"
        f"range      [{scope.start.isoformat()}, {scope.end.isoformat()}) (UTC, widened to "
        f"whole windows) tenants: {tenants}\n"
        f"prices     {report.new_pricing_version} from {report.price_source}\n"
        f"replacing  {', '.join(report.old_pricing_versions) or 'nothing stored'}"
    )
    out.print(render(report.summary, title="cost by tenant and model"))
    out.print(
        render_counts(
            report.counts,
            rollups=report.rollups_changed if report.dry_run else report.rollups_sent,
            rollups_unchanged=report.rollups_unchanged,
            dry_run=report.dry_run,
        )
    )
    if report.landed:
        out.print("every re-priced event, and so its window, has landed in the database")
