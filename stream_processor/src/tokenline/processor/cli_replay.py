"""``tokenline replay``: re-price a time range of history and recompute its windows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenline.processor.settings import ConfigError, load_settings
from tokenline.schemas.ops.exits import CommandFailed, ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from tokenline.processor.replay import ReplayReport as Report

__all__ = ["replay"]

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
@click.option("--from", "start", type=_When(), required=True, help="Start (ISO; UTC if no offset).")
@click.option("--to", "end", type=_When(), required=True, help="End, exclusive (ISO).")
@click.option("--tenant", "tenants", multiple=True, help="Only this tenant (repeatable).")
@click.option(
    "--prices",
    "prices_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Overrides YAML or price-book JSON; default: the current table on the prices topic.",
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

    from tokenline.processor.replay import (
        LandingTimeout,
        ReplayError,
        ReplayReport,
        ReplayRequest,
        run_replay,
    )
    from tokenline.processor.replay.progress import BarProgress
    from tokenline.schemas.kafka_security import librdkafka_config
    from tokenline.schemas.ops.logs import configure_logging
    from tokenline.schemas.ops.preflight import check_database, check_kafka

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
    out = Console()
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


def _print(out: Console, report: Report) -> None:
    from tokenline.processor.replay.summary import render, render_counts

    scope = report.scope
    tenants = ", ".join(sorted(scope.tenants)) or "all"
    out.print(
        f"replay run {report.run_id}{' (dry run: nothing sent)' if report.dry_run else ''}\n"
        f"range      [{scope.start.isoformat()}, {scope.end.isoformat()}) tenants: {tenants}\n"
        f"prices     {report.new_pricing_version} from {report.price_source}\n"
        f"replacing  {', '.join(report.old_pricing_versions) or 'nothing stored'}"
    )
    out.print(render(report.summary, title="cost by tenant and model"))
    out.print(
        render_counts(
            report.counts, rollups=report.rollups_sent, rollups_unchanged=report.rollups_unchanged
        )
    )
    if report.landed:
        out.print("every re-priced event, and so its window, has landed in the database")
