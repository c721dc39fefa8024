"""Alembic environment of the sink: online migrations on the connection the caller passes.

:func:`tokenline.sink.migrate.upgrade` puts an open SQLAlchemy connection into
``config.attributes["connection"]``. Each revision runs in its own transaction, so a failing
revision leaves the ones before it applied.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from tokenline.sink.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        transaction_per_migration=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a new one to ``sqlalchemy.url``."""
    given = context.config.attributes.get("connection")
    if isinstance(given, Connection):
        _run(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        msg = "no connection and no sqlalchemy.url given to the sink's migrations"
        raise RuntimeError(msg)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    msg = "the sink's migrations probe the server (TimescaleDB or not); offline mode is unsupported"
    raise RuntimeError(msg)
run_migrations_online()
