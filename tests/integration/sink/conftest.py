"""A fresh database per test module, created on the ``database_url`` server and dropped after."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from tokenline.sink.migrate import upgrade
from tokenline.sink.settings import SinkSettings, StorageChoice

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def settings_for(url: str, storage: StorageChoice = "postgresql") -> SinkSettings:
    return SinkSettings(database_url=SecretStr(url), storage=storage)


def zoned_database(made: str, storage: StorageChoice, zones: dict[str, str]) -> str:
    """Migrate ``made`` on ``storage`` and give each tenant of ``zones`` its timezone."""
    upgrade(settings_for(made, storage))
    with psycopg.connect(made) as conn:
        for tenant, tz in zones.items():
            conn.execute("INSERT INTO tenants (tenant_id, timezone) VALUES (%s, %s)", (tenant, tz))
    return made


@pytest.fixture(scope="module")
def new_database(database_url: str) -> Iterator[Callable[[], str]]:
    """Return a factory of fresh empty databases; all are dropped when the module ends."""
    created: list[str] = []

    def make() -> str:
        name = f"tl_sink_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return make_url(database_url).set(database=name).render_as_string(hide_password=False)

    yield make
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in created:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="module")
def plain_url(new_database: Callable[[], str]) -> str:
    """A fresh database migrated to head on the plain-PostgreSQL path."""
    url = new_database()
    upgrade(settings_for(url, "postgresql"))
    return url


@pytest.fixture(scope="module")
def timescale_url(new_database: Callable[[], str], timescale: bool) -> str:
    """A fresh database migrated to head on the TimescaleDB path (tests marked ``timescale``)."""
    if not timescale:
        pytest.skip("TimescaleDB not reachable")
    url = new_database()
    upgrade(settings_for(url, "timescaledb"))
    return url
