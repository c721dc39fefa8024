"""What a migration run is configured with, and where the migrations find it.

:mod:`tokenline.sink.migrate` puts a :class:`MigrationOptions` into the Alembic config's
``attributes``; revisions read it with :func:`current_options`. When Alembic is driven some other
way the defaults apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from alembic import context

if TYPE_CHECKING:
    from tokenline.sink.settings import SinkSettings, StorageChoice

__all__ = ["OPTIONS_KEY", "MigrationOptions", "current_options"]

OPTIONS_KEY = "tokenline.sink.options"


@dataclass(frozen=True)
class MigrationOptions:
    """The settings that shape the schema (TimescaleDB path only, except ``storage``)."""

    storage: StorageChoice = "auto"
    compress_after_days: int = 7
    refresh_lookback_days: int = 7
    raw_retention_days: int | None = None

    @classmethod
    def from_settings(cls, settings: SinkSettings) -> MigrationOptions:
        """Take the schema-shaping fields of the sink's settings."""
        return cls(
            storage=settings.storage,
            compress_after_days=settings.compress_after_days,
            refresh_lookback_days=settings.refresh_lookback_days,
            raw_retention_days=settings.raw_retention_days,
        )


def current_options() -> MigrationOptions:
    """Return the options of the running migration."""
    found = context.config.attributes.get(OPTIONS_KEY)
    return found if isinstance(found, MigrationOptions) else MigrationOptions()
