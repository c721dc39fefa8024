"""Run the sink's Alembic migrations from code; no alembic.ini is needed.

The migration scripts ship inside the package (``tokenline/sink/migrations``).
"""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text
from sqlalchemy.exc import DBAPIError, PendingRollbackError, ProgrammingError

from tokenline.sink.errors import MigrationError
from tokenline.sink.migrations.options import OPTIONS_KEY, MigrationOptions
from tokenline.sink.migrations.timescale import PRELOAD_HINT, Timescale, timescale_status
from tokenline.sink.settings import SinkSettings, sqlalchemy_url

__all__ = [
    "alembic_config",
    "current_revision",
    "downgrade",
    "notes",
    "storage_path",
    "upgrade",
]


def alembic_config(options: MigrationOptions | None = None) -> Config:
    """Return an Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(files("tokenline.sink") / "migrations"))
    config.attributes[OPTIONS_KEY] = options or MigrationOptions()
    return config


def _run(settings: SinkSettings, action: str, revision: str) -> None:
    config = alembic_config(MigrationOptions.from_settings(settings))
    engine = create_engine(
        sqlalchemy_url(settings.database_url.get_secret_value()), poolclass=pool.NullPool
    )
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            if action == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
            connection.commit()
    except DBAPIError as exc:
        msg = f"{action} to {revision} failed: {' '.join(str(exc.orig or exc).split())}"
        raise MigrationError(msg) from exc
    except PendingRollbackError as exc:  # the server ended the session (FATAL)
        msg = f"{action} to {revision} failed: the server closed the connection ({exc})"
        raise MigrationError(msg) from exc
    finally:
        engine.dispose()


def notes(settings: SinkSettings) -> list[str]:
    """What a user should know after a migration (TimescaleDB installed but not usable)."""
    engine = create_engine(
        sqlalchemy_url(settings.database_url.get_secret_value()), poolclass=pool.NullPool
    )
    try:
        with engine.connect() as connection:
            status = timescale_status(connection)
    except DBAPIError:
        return []
    finally:
        engine.dispose()
    if status is Timescale.NOT_PRELOADED and settings.storage == "auto":
        return [f"note: took the plain PostgreSQL path. {PRELOAD_HINT}"]
    return []


def upgrade(settings: SinkSettings, revision: str = "head") -> None:
    """Migrate the database of ``settings`` up to ``revision``."""
    _run(settings, "upgrade", revision)


def downgrade(settings: SinkSettings, revision: str) -> None:
    """Migrate the database of ``settings`` down to ``revision`` (``base`` removes everything)."""
    _run(settings, "downgrade", revision)


def _scalar(settings: SinkSettings, query: str) -> str | None:
    engine = create_engine(
        sqlalchemy_url(settings.database_url.get_secret_value()), poolclass=pool.NullPool
    )
    try:
        with engine.connect() as connection:
            found = connection.execute(text(query)).scalar_one_or_none()
    except ProgrammingError:
        return None  # not migrated yet
    except DBAPIError as exc:
        msg = f"cannot read the schema's state: {exc.orig or exc}"
        raise MigrationError(msg) from exc
    finally:
        engine.dispose()
    return None if found is None else str(found)


def storage_path(settings: SinkSettings) -> str | None:
    """Return ``timescaledb`` or ``postgresql`` as recorded by the migrations, or None."""
    return _scalar(settings, "SELECT tokenline_storage_path()")


def current_revision(settings: SinkSettings) -> str | None:
    """Return the applied Alembic revision, or None."""
    return _scalar(settings, "SELECT version_num FROM alembic_version")
