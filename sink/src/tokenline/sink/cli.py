"""``tokenline sink``: the sink's commands (``migrate`` now; the worker joins it later)."""

from __future__ import annotations

import click

from tokenline.sink.errors import SinkError
from tokenline.sink.settings import load_settings


@click.group()
def sink() -> None:
    """Land priced usage events and rollups in TimescaleDB or PostgreSQL."""


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
