"""Whether TimescaleDB can be used on a server, asked before ``CREATE EXTENSION`` is tried.

TimescaleDB installed but not in ``shared_preload_libraries`` makes ``CREATE EXTENSION
timescaledb`` end the session with a FATAL error: the connection is gone, and every statement
after it fails. So the server is asked first (:func:`timescale_status`), and the extension is
created only when it can work.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["PRELOAD_HINT", "Timescale", "decide", "preloaded", "timescale_status"]

PRELOAD_HINT = (
    "TimescaleDB is installed on this PostgreSQL server but not preloaded: add timescaledb to "
    "shared_preload_libraries in postgresql.conf (shared_preload_libraries = 'timescaledb'), "
    "restart PostgreSQL and migrate again; or choose plain PostgreSQL with --storage postgresql "
    "(TOKENLINE_STORAGE=postgresql)"
)


class Timescale(Enum):
    """What the server offers."""

    ACTIVE = "active"
    """The extension exists in this database."""
    AVAILABLE = "available"
    """Installed and preloaded: ``CREATE EXTENSION`` will work."""
    NOT_PRELOADED = "not preloaded"
    """Installed, but ``CREATE EXTENSION`` would end the session (FATAL)."""
    NOT_INSTALLED = "not installed"


def timescale_status(connection: Connection) -> Timescale:
    """Ask the server (catalog queries only; never ``CREATE EXTENSION``)."""
    row = connection.execute(
        text("SELECT installed_version FROM pg_available_extensions WHERE name = 'timescaledb'")
    ).first()
    if row is None:
        return Timescale.NOT_INSTALLED
    if row[0] is not None:
        return Timescale.ACTIVE
    preload = connection.execute(text("SELECT current_setting('shared_preload_libraries')"))
    return (
        Timescale.AVAILABLE if preloaded(str(preload.scalar() or "")) else Timescale.NOT_PRELOADED
    )


def preloaded(shared_preload_libraries: str) -> bool:
    """Whether the setting's list names TimescaleDB's loader (quoted or not, any version)."""
    names = {name.strip().strip('"') for name in shared_preload_libraries.split(",")}
    return any(name == "timescaledb" or name.startswith("timescaledb-") for name in names)


def decide(status: Timescale, storage: str) -> bool:
    """Whether to take the TimescaleDB path (``CREATE EXTENSION`` when not active yet).

    Raises ``StorageUnavailable`` when the extension cannot work and ``storage`` insists on
    TimescaleDB; ``auto`` takes the plain path instead.
    """
    from tokenline.sink.errors import StorageUnavailable

    if storage == "postgresql":
        return False
    if status is Timescale.NOT_PRELOADED and storage == "timescaledb":
        raise StorageUnavailable(f"storage=timescaledb, but {PRELOAD_HINT}")
    return status in (Timescale.ACTIVE, Timescale.AVAILABLE)
