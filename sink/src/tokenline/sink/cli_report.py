"""``tokenline report`` (totals, billing) and ``tokenline export``: click glue only.

The work is in :mod:`tokenline.sink.report`; this module turns options into a
:class:`~tokenline.sink.report.selection.Selection`, opens the output, and maps errors to
click's.
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING, Any

import click

from tokenline.common.errors import ConfigError
from tokenline.common.ops.exits import CommandFailed, ExitCode
from tokenline.sink.errors import SinkError
from tokenline.sink.report.export import EXPORT_FORMATS
from tokenline.sink.report.render import FORMATS
from tokenline.sink.report.selection import DIMENSIONS, FILTER_DIMENSIONS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import TextIO

    from tokenline.sink.report.run import ReportConnection
    from tokenline.sink.report.selection import Selection

_FILTER_OPTIONS = {
    "provider": "Only this provider (repeat for several).",
    "model": "Only this model: canonical, else the one reported (repeat for several).",
    "project": "Only this project (repeat for several).",
    "team": "Only this team: attributed, else the one sent (repeat for several).",
    "user": "Only this user id (repeat for several).",
    "session": "Only this session id (repeat for several).",
    "host": "Only this hostname (repeat for several).",
    "service": "Only this service (repeat for several).",
    "cloud": "Only this cloud (repeat for several).",
    "operation": "Only this operation: chat, embedding, ... (repeat for several).",
    "unpriced_reason": "Only calls unpriced for this reason: unknown_model, ... (repeat).",
}


class _DefaultGroup(click.Group):
    """A group that runs ``totals`` when the first argument names no subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["totals", *args]
        return super().parse_args(ctx, args)


def _selection_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that select events (tenants, range, filters, success)."""
    decorators = [
        click.option(
            "--tenant",
            "tenants",
            multiple=True,
            metavar="ID",
            help="Tenant to report on (repeat for several).",
        ),
        click.option("--all-tenants", is_flag=True, help="Every tenant instead of --tenant."),
        click.option(
            "--from",
            "start",
            metavar="WHEN",
            help="Start, inclusive: 2026-10-01 or 2026-10-01T09:30 (tenant-local), or with an "
            "offset (2026-10-01T04:00Z). Default: the current month in each tenant's timezone.",
        ),
        click.option(
            "--to",
            "end",
            metavar="WHEN",
            help="End, exclusive; same forms as --from. Default with --from: open-ended.",
        ),
        *[
            click.option(
                f"--{name.replace('_', '-')}",
                f"filter_{name}",
                multiple=True,
                metavar="V",
                help=text,
            )
            for name, text in _FILTER_OPTIONS.items()
        ],
        click.option(
            "--tag",
            "tags",
            multiple=True,
            metavar="KEY=VALUE",
            help="Only calls whose tags hold KEY=VALUE (repeat: all of them).",
        ),
        click.option(
            "--success/--failed",
            "success",
            default=None,
            help="Only successful, or only failed, calls.",
        ),
        click.option(
            "--database-url",
            metavar="URL",
            help="PostgreSQL URL; default TOKENLINE_DATABASE_URL.",
        ),
    ]
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


def _selection(options: dict[str, Any]) -> Selection:
    from tokenline.sink.report.selection import Selection

    tenants = _tenants(options.pop("tenants"), options.pop("all_tenants"))
    filters = {name: options.pop(f"filter_{name}") for name in FILTER_DIMENSIONS}
    return Selection.build(
        tenants,
        start=options.pop("start"),
        end=options.pop("end"),
        filters=filters,
        success=options.pop("success"),
        tags=options.pop("tags"),
    )


def _tenants(tenants: tuple[str, ...], all_tenants: bool) -> tuple[str, ...] | None:
    if all_tenants and tenants:
        msg = "give --tenant or --all-tenants, not both"
        raise click.UsageError(msg)
    if not all_tenants and not tenants:
        msg = "give --tenant ID (repeatable) or --all-tenants"
        raise click.UsageError(msg)
    return None if all_tenants else tuple(dict.fromkeys(tenants))


@contextlib.contextmanager
def _database(database_url: str | None) -> Iterator[ReportConnection]:
    from tokenline.common.ops.preflight import check_database
    from tokenline.sink.report.run import connect
    from tokenline.sink.settings import load_settings

    settings = load_settings(database_url=database_url)
    check_database(
        settings.database_url.get_secret_value(),
        relations=("usage_events", "tenants"),
        setting="--database-url or TOKENLINE_DATABASE_URL",
        timeout_s=float(settings.db_connect_timeout_s),
    )
    with connect(settings.database_url.get_secret_value(), settings.db_connect_timeout_s) as conn:
        yield conn


def _known(conn: ReportConnection, tenants: tuple[str, ...] | None) -> None:
    """Refuse tenants the database never heard of (exit 6), rather than an empty report."""
    from tokenline.sink.report.run import unknown_tenants

    unknown = unknown_tenants(conn, tenants) if tenants else []
    if unknown:
        msg = (
            f"unknown tenant {', '.join(unknown)}: no usage ever and not in the tenants table "
            "(--all-tenants lists those with usage)"
        )
        raise CommandFailed(msg, ExitCode.NOT_FOUND)


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    """Yield stdout, or ``path`` written atomically (a failed run leaves no partial file)."""
    if path is None or path == "-":
        yield sys.stdout
        return
    with click.open_file(path, "w", encoding="utf-8", atomic=True) as stream:
        yield stream  # type: ignore[misc]


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    import psycopg

    try:
        yield
    except ConfigError as exc:
        raise CommandFailed(str(exc), ExitCode.CONFIG) from exc
    except SinkError as exc:
        raise CommandFailed(str(exc)) from exc
    except psycopg.OperationalError as exc:
        msg = f"database error: {' '.join(str(exc).split())}"
        raise CommandFailed(msg, ExitCode.DATABASE) from exc
    except psycopg.Error as exc:
        msg = f"database error: {' '.join(str(exc).split())}"
        raise CommandFailed(msg) from exc


def _dimensions(values: tuple[str, ...]) -> tuple[str, ...]:
    found = [part.strip() for value in values for part in value.split(",") if part.strip()]
    unknown = [name for name in found if name not in DIMENSIONS]
    if unknown:
        msg = f"unknown dimension {', '.join(unknown)}; choose from {', '.join(DIMENSIONS)}"
        raise click.BadParameter(msg, param_hint="--by")
    return tuple(found)


@click.group(cls=_DefaultGroup)
def report() -> None:
    """Usage totals and monthly billing from the sink's database.

    `tokenline report OPTIONS` is `tokenline report totals OPTIONS`.
    """


@report.command()
@_selection_options
@click.option(
    "--by",
    "group_by",
    multiple=True,
    metavar="DIM[,DIM]",
    help=f"Group by these, in order: {', '.join(DIMENSIONS)}. day and month are tenant-local.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("--output", metavar="FILE", help="Write to FILE instead of standard output.")
@click.option(
    "--source",
    type=click.Choice(["auto", "aggregate", "events"]),
    default="auto",
    show_default=True,
    help=(
        "auto: usage_tenant_daily for local dates and months, else usage_15m when it can serve "
        "the report on TimescaleDB, else usage_events; aggregate: the first two only."
    ),
)
def totals(
    group_by: tuple[str, ...], fmt: str, output: str | None, source: str, **options: Any
) -> None:
    """Totals for tenants and a range: requests, failures, tokens per bucket, cost, averages.

    One row per group and currency, and a total row. Amounts are exact; the average cost is
    over priced requests (unpriced calls have no cost yet).
    """
    from tokenline.sink.report.render import render
    from tokenline.sink.report.run import run_report
    from tokenline.sink.report.selection import ReportSpec

    with _errors():
        database_url = options.pop("database_url")
        spec = ReportSpec(
            _selection(options),
            group_by=_dimensions(group_by),
            source=source,  # type: ignore[arg-type]
        )
        with _database(database_url) as conn:
            _known(conn, spec.selection.tenants)
            result = run_report(conn, spec)
        with _output(output) as stream:
            render(result, fmt, stream)  # type: ignore[arg-type]


@report.command()
@click.option("--tenant", "tenants", multiple=True, metavar="ID", help="Tenant (repeatable).")
@click.option("--all-tenants", is_flag=True, help="Every tenant with usage in the month.")
@click.option("--month", required=True, metavar="YYYY-MM", help="The month, tenant-local.")
@click.option("--output", metavar="FILE", help="Write to FILE instead of standard output.")
@click.option(
    "--database-url", metavar="URL", help="PostgreSQL URL; default TOKENLINE_DATABASE_URL."
)
def billing(
    tenants: tuple[str, ...],
    all_tenants: bool,
    month: str,
    output: str | None,
    database_url: str | None,
) -> None:
    """Monthly billing CSV: per tenant, a line per provider and model, and a total line."""
    from tokenline.sink.report.billing import billing_spec, write_billing_csv
    from tokenline.sink.report.run import run_report, tenant_timezones

    with _errors():
        spec = billing_spec(_tenants(tenants, all_tenants), month)
        with _database(database_url) as conn:
            _known(conn, spec.selection.tenants)
            result = run_report(conn, spec)
            named = spec.selection.tenants or tuple({str(row.keys[0]) for row in result.rows})
            timezones = tenant_timezones(conn, named) if named else {}
        with _output(output) as stream:
            write_billing_csv(result, month, timezones, stream)


@click.command()
@_selection_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(EXPORT_FORMATS),
    default="jsonl",
    show_default=True,
)
@click.option("--output", metavar="FILE", help="Write to FILE instead of standard output.")
def export(fmt: str, output: str | None, **options: Any) -> None:
    """Export raw per-call usage rows (no prompt text is ever stored), streamed.

    Rows come in time order through a server-side cursor, so an export of any size runs in
    constant memory. With --output the file appears only when the export is complete.
    """
    from tokenline.sink.report.export import write_export
    from tokenline.sink.report.run import iter_events

    with _errors():
        database_url = options.pop("database_url")
        selection = _selection(options)
        with _database(database_url) as conn:
            _known(conn, selection.tenants)
        with _database(database_url) as conn, _output(output) as stream:
            count = write_export(iter_events(conn, selection), fmt, stream)  # type: ignore[arg-type]
        if output not in (None, "-"):
            click.echo(f"exported {count} rows to {output}", err=True)
