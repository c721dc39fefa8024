"""A tenant's billing timezone changed, and its tenant-local daily rows rebuilt with it."""

from __future__ import annotations

import psycopg

from tokenline.sink.errors import DatabaseUnavailable, ReportError

__all__ = ["set_tenant_timezone"]

_UPSERT = (
    "INSERT INTO tenants (tenant_id, timezone) VALUES (%s, %s) "
    "ON CONFLICT (tenant_id) DO UPDATE SET timezone = EXCLUDED.timezone"
)


def set_tenant_timezone(database_url: str, tenant: str, zone: str) -> int:
    """Set ``tenant``'s timezone to ``zone`` and rebuild its ``usage_tenant_daily`` rows.

    The trigger of migration 0006 rebuilds the rows when the zone changes; they are rebuilt
    here in the same transaction whatever the trigger did, so the command also repairs rows
    (e.g. after a restore). Returns how many daily rows the tenant has now.

    Raises :class:`~tokenline.sink.errors.ReportError` for a zone PostgreSQL does not know, and
    :class:`~tokenline.sink.errors.DatabaseUnavailable` when the database cannot be reached.
    """
    try:
        with psycopg.connect(database_url, connect_timeout=10) as conn, conn.transaction():
            conn.execute(_UPSERT, (tenant, zone))
            found = conn.execute("SELECT tokenline_rebuild_tenant_daily(%s)", (tenant,)).fetchone()
    except psycopg.errors.CheckViolation as exc:
        msg = f"unknown time zone {zone!r}: use an IANA name, e.g. Asia/Kolkata"
        raise ReportError(msg) from exc
    except psycopg.OperationalError as exc:
        msg = f"cannot reach PostgreSQL: {exc}"
        raise DatabaseUnavailable(msg) from exc
    return int(found[0]) if found else 0
