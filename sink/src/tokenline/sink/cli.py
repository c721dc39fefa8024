"""``tokenline sink``: the sink's commands: ``migrate`` the schema, ``run`` the worker."""

from __future__ import annotations

import click

from tokenline.sink.errors import SinkError
from tokenline.sink.settings import load_settings


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
    from tokenline.sink import migrate as migrations

    try:
        settings = load_settings(database_url=database_url, storage=storage)
        if downgrade_to:
            migrations.downgrade(settings, downgrade_to)
        else:
            migrations.upgrade(settings)
        revision = migrations.current_revision(settings)
        path = migrations.storage_path(settings)
    except SinkError as exc:
        raise click.ClickException(str(exc)) from exc
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
    listed before anything starts.
    """
    import logging
    import signal

    from tokenline.sink.worker import SinkWorker

    try:
        settings = load_settings(database_url=database_url, metrics_port=metrics_port)
    except SinkError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    worker = SinkWorker(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda _signum, _frame: worker.stop())
    try:
        worker.run()
    except SinkError as exc:
        raise click.ClickException(str(exc)) from exc
