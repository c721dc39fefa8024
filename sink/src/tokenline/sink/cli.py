"""``tokenline sink``: the sink's commands: ``migrate`` the schema, ``run`` the worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from tokenline.common.errors import ConfigError
from tokenline.common.ops.exits import CommandFailed, ExitCode
from tokenline.sink.errors import (
    DatabaseUnavailable,
    SinkError,
    StorageUnavailable,
)
from tokenline.sink.settings import load_settings

if TYPE_CHECKING:
    from tokenline.sink.settings import SinkSettings

REQUIRED_RELATIONS = ("usage_events", "usage_rollup_1m", "tenants")
"""What ``sink run`` writes to: without them the database is not migrated (exit 5)."""


def _settings(**overrides: Any) -> SinkSettings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        raise CommandFailed(str(exc), ExitCode.CONFIG) from exc


def _failed(exc: SinkError) -> CommandFailed:
    """The exit code of a sink error (README: "Exit codes")."""
    if isinstance(exc, StorageUnavailable):
        return CommandFailed(str(exc), ExitCode.CONFIG)
    if isinstance(exc, DatabaseUnavailable):
        return CommandFailed(str(exc), ExitCode.DATABASE)
    return CommandFailed(str(exc), ExitCode.FAILED)


@click.group()
def sink() -> None:
    """Land priced usage events and their rollups in TimescaleDB or PostgreSQL."""


@sink.command()
@click.option(
    "--database-url",
    metavar="URL",
    help="PostgreSQL URL; default TOKENLINE_DATABASE_URL.",
)
@click.option(
    "--downgrade",
    "downgrade_to",
    metavar="REV",
    help="Migrate down to REV (e.g. 0001, or base to remove everything) instead of up.",
)
@click.option(
    "--storage",
    type=click.Choice(["auto", "timescaledb", "postgresql"]),
    help="Storage path for a first migration; default TOKENLINE_STORAGE or auto.",
)
def migrate(database_url: str | None, downgrade_to: str | None, storage: str | None) -> None:
    """Create or update the sink's schema (up to the newest revision unless --downgrade)."""
    from tokenline.common.ops.logs import configure_logging
    from tokenline.common.ops.preflight import check_database
    from tokenline.sink import migrate as migrations

    settings = _settings(database_url=database_url, storage=storage)
    configure_logging(settings.log_level, settings.log_format, "migrate")
    check_database(settings.database_url.get_secret_value())
    try:
        if downgrade_to:
            migrations.downgrade(settings, downgrade_to)
        else:
            migrations.upgrade(settings)
        revision = migrations.current_revision(settings)
        path = migrations.storage_path(settings)
    except SinkError as exc:
        raise _failed(exc) from exc
    for note in migrations.notes(settings):
        click.echo(note, err=True)
    click.echo(f"schema at revision {revision or 'base'}; storage path {path or 'none'}")


@sink.command()
@click.option(
    "--database-url", metavar="URL", help="PostgreSQL URL; default TOKENLINE_DATABASE_URL."
)
@click.option(
    "--metrics-port",
    type=int,
    help="Prometheus port (0 = off); default TOKENLINE_METRICS_PORT or 9109.",
)
def run(database_url: str | None, metrics_port: int | None) -> None:
    """Land priced events, and their rollups, from Kafka until SIGTERM or SIGINT.

    Settings come from TOKENLINE_* variables (see sink/README.md); every problem with them is
    listed before anything starts. Then Kafka, the database and its schema are checked (10 s
    each at most): exit codes 2 settings, 3 Kafka, 4 database, 5 not migrated.
    """
    import signal

    from tokenline.common.kafka_security import librdkafka_config
    from tokenline.common.ops.logs import configure_logging
    from tokenline.common.ops.preflight import check_database, check_kafka
    from tokenline.sink.worker import SinkWorker

    settings = _settings(database_url=database_url, metrics_port=metrics_port)
    configure_logging(settings.log_level, settings.log_format, "sink")
    check_kafka(librdkafka_config(settings))
    check_database(settings.database_url.get_secret_value(), relations=REQUIRED_RELATIONS)
    worker = SinkWorker(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: worker.stop())
    try:
        worker.run()
    except SinkError as exc:
        raise _failed(exc) from exc


@sink.command("set-timezone")
@click.argument("tenant")
@click.argument("zone")
@click.option(
    "--database-url", metavar="URL", help="PostgreSQL URL; default TOKENLINE_DATABASE_URL."
)
def set_timezone(tenant: str, zone: str, database_url: str | None) -> None:
    """Set TENANT's billing timezone to ZONE (an IANA name) and rebuild its daily totals.

    One transaction: the tenant's row is written (created when missing) and its rows of
    usage_tenant_daily are rebuilt from its events in the new zone. Sinks keep running; their
    writes wait for it.
    """
    from tokenline.sink.timezones import set_tenant_timezone

    settings = _settings(database_url=database_url)
    try:
        rows = set_tenant_timezone(settings.database_url.get_secret_value(), tenant, zone)
    except SinkError as exc:
        raise _failed(exc) from exc
    click.echo(f"tenant {tenant}: timezone {zone}; {rows} daily rows rebuilt")
