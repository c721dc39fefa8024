"""``tokenline api``: ``serve`` the HTTP API, manage ``keys``, print the ``openapi`` document."""

from __future__ import annotations

import contextlib
import gc
import json
from typing import TYPE_CHECKING, Any

import click

from tokenline.common.errors import ConfigError
from tokenline.common.ops.exits import CommandFailed, ExitCode

if TYPE_CHECKING:
    from collections.abc import Iterator

    import psycopg
    from psycopg.rows import DictRow

    from tokenline.sink.api.keys import ApiKey
    from tokenline.sink.api.settings import ApiSettings

_DB_OPTION = click.option(
    "--database-url", metavar="URL", help="PostgreSQL URL; default TOKENLINE_DATABASE_URL."
)


def _settings(**overrides: Any) -> ApiSettings:
    from tokenline.sink.api.settings import load_api_settings

    try:
        return load_api_settings(**overrides)
    except ConfigError as exc:
        raise CommandFailed(str(exc), ExitCode.CONFIG) from exc


@contextlib.contextmanager
def _keys_db(database_url: str | None) -> Iterator[psycopg.Connection[DictRow]]:
    import psycopg
    from psycopg.rows import dict_row

    from tokenline.common.ops.preflight import check_database

    settings = _settings(database_url=database_url)
    url = settings.database_url.get_secret_value()
    check_database(url, relations=("api_keys",), setting="--database-url")
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        yield conn


@click.group()
def api() -> None:
    """The HTTP API: reports and ingest over tenant-scoped keys."""


@api.command()
@_DB_OPTION
@click.option("--host", help="Address to listen on; default TOKENLINE_API_HOST or 127.0.0.1.")
@click.option("--port", type=int, help="Port; default TOKENLINE_API_PORT or 8000.")
def serve(database_url: str | None, host: str | None, port: int | None) -> None:
    """Serve the API with uvicorn until SIGTERM or SIGINT (exit 4/5 without a migrated database)."""
    import uvicorn

    from tokenline.common.ops.logs import configure_logging
    from tokenline.common.ops.preflight import check_database
    from tokenline.sink.api.app import create_app

    settings = _settings(database_url=database_url, api_host=host, api_port=port)
    configure_logging(settings.log_level, settings.log_format, "api")
    check_database(settings.database_url.get_secret_value(), relations=("usage_events", "api_keys"))
    app = create_app(settings)
    # What is made by now (modules, the app, its routes and models) lives as long as the
    # process: out of the collector's way, a full collection no longer walks it (93-133 ms
    # each before, a stall of every request in flight; bench/api.py --timeline).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        http="httptools",  # the C parser and libuv loop: a third of the CPU a request costs
        loop="uvloop",
    )


@api.command()
def openapi() -> None:
    """Print the OpenAPI document (what sink/openapi.json holds)."""
    click.echo(openapi_text(), nl=False)


def openapi_text() -> str:
    """The OpenAPI document as committed: sorted keys, two-space indent, a final newline."""
    from pydantic import SecretStr

    from tokenline.sink.api.app import create_app
    from tokenline.sink.api.settings import ApiSettings

    settings = ApiSettings(database_url=SecretStr("postgresql://placeholder/tokenline"))
    return json.dumps(create_app(settings).openapi(), indent=2, sort_keys=True) + "\n"


@api.group()
def keys() -> None:
    """API keys: create, list, revoke, rotate. A key's text is shown once, at creation."""


def _describe(key: ApiKey) -> str:
    who = "admin (every tenant)" if key.admin else f"tenant {key.tenant_id}"
    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z" if key.revoked_at else "active"
    limit = f"{key.rate_limit_per_minute}/min" if key.rate_limit_per_minute else "default limit"
    name = f" {key.name!r}" if key.name else ""
    return f"{key.key_id}  {who}  {','.join(key.scopes)}  {limit}  {state}{name}"


def _key_errors() -> contextlib.AbstractContextManager[None]:
    from tokenline.sink.api.keys import KeyError_

    @contextlib.contextmanager
    def mapped() -> Iterator[None]:
        try:
            yield
        except KeyError_ as exc:
            raise CommandFailed(str(exc), ExitCode.NOT_FOUND) from exc

    return mapped()


@keys.command()
@_DB_OPTION
@click.option("--tenant", metavar="ID", help="The key's tenant (not with --admin).")
@click.option("--admin", "is_admin", is_flag=True, help="An admin key: reads every tenant.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["read", "ingest"]),
    help="read and/or ingest (repeat); default both.",
)
@click.option("--name", help="What the key is for.")
@click.option("--rate-limit", type=click.IntRange(min=1), help="Requests a minute for this key.")
def create(
    *,
    database_url: str | None,
    tenant: str | None,
    is_admin: bool,
    scopes: tuple[str, ...],
    name: str | None,
    rate_limit: int | None,
) -> None:
    """Make a key and print its text once (only its hash is stored)."""
    from tokenline.sink.api.keys import KeyStore

    if is_admin == (tenant is not None):
        msg = "give --tenant ID or --admin"
        raise click.UsageError(msg)
    chosen = ("admin",) if is_admin else (scopes or ("read", "ingest"))
    with _key_errors(), _keys_db(database_url) as conn:
        made = KeyStore().create(
            conn, tenant_id=tenant, scopes=chosen, name=name, rate_limit_per_minute=rate_limit
        )
    click.echo(_describe(made.key), err=True)
    click.echo(made.text)


@keys.command(name="list")
@_DB_OPTION
@click.option("--tenant", metavar="ID", help="Only this tenant's keys.")
def list_keys(database_url: str | None, tenant: str | None) -> None:
    """List keys (never their secrets), newest first, revoked ones included."""
    from tokenline.sink.api.keys import KeyStore

    with _keys_db(database_url) as conn:
        for key in KeyStore().list(conn, tenant):
            click.echo(_describe(key))


@keys.command()
@_DB_OPTION
@click.argument("key_id")
def revoke(database_url: str | None, key_id: str) -> None:
    """Revoke KEY_ID: it is refused from the next request on."""
    from tokenline.sink.api.keys import KeyStore

    with _key_errors(), _keys_db(database_url) as conn:
        click.echo(_describe(KeyStore().revoke(conn, key_id)))


@keys.command()
@_DB_OPTION
@click.argument("key_id")
def rotate(database_url: str | None, key_id: str) -> None:
    """Replace KEY_ID by a new key with the same tenant, scopes and limit; print the new text."""
    from tokenline.sink.api.keys import KeyStore

    with _key_errors(), _keys_db(database_url) as conn:
        made = KeyStore().rotate(conn, key_id)
    click.echo(f"{key_id} revoked; new key {_describe(made.key)}", err=True)
    click.echo(made.text)
