"""Test helpers for the shared PostgreSQL server: databases a test creates and drops."""

from __future__ import annotations

import psycopg
from psycopg import sql


def drop_database(server_url: str, name: str) -> None:
    """Drop database ``name`` (a test's own) on ``server_url``'s server."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
