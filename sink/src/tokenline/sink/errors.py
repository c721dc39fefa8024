"""Errors of the sink.

Every exception the sink raises on purpose derives from :class:`SinkError`::

    SinkError
    ├── MigrationError       a schema migration failed or was asked for something impossible
    │   └── StorageUnavailable   TimescaleDB was required but cannot be created
    ├── DatabaseUnavailable  the database cannot be reached now (transient: retry, never DLQ)
    ├── DeadLetterError      the dead-letter topic did not take a record (offsets stay put)
    └── ReportError          a report or export was asked for something it cannot give

Invalid settings are a :class:`tokenline.common.errors.ConfigError` (``problems`` lists every
one), as in every part.

A row the database refuses is not an exception: ``UsageStore.write`` returns it as a
:class:`~tokenline.sink.store.Rejected`, with the record, so the worker can dead-letter it.
"""

from __future__ import annotations


class SinkError(Exception):
    """Root of the sink's exceptions."""


class MigrationError(SinkError):
    """A schema migration failed."""


class StorageUnavailable(MigrationError):
    """``storage=timescaledb`` was asked for, but the extension cannot be created."""


class DatabaseUnavailable(SinkError):
    """The database cannot be reached or lost the connection; the write may be retried."""


class DeadLetterError(SinkError):
    """A record could not be delivered to the dead-letter topic."""


class ReportError(SinkError):
    """A report or export was asked for something it cannot give (bad range, unknown column)."""
