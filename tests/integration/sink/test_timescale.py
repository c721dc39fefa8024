"""The TimescaleDB path: same relations and columns as the plain path, the Timescale objects
exist, and both paths give the same numbers on the same data. Not run without TimescaleDB."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.integration.sink._data import EventFactory, insert_rows, utc
from tests.integration.sink._expected import (
    COLUMNS_QUERY,
    RELATIONS,
    money_precisions,
    relation_columns,
)
from tests.integration.sink.conftest import settings_for
from tokenline.sink import migrate
from tokenline.sink.migrations.versions.rev_0002_aggregates import AGGREGATES

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = [pytest.mark.integration, pytest.mark.timescale]

TENANTS = {"t-kolkata": "Asia/Kolkata", "t-new-york": "America/New_York", "t-utc": "UTC"}


def _fetch(url: str, query: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
    # No params: the query is sent as is, so a literal % (LIKE 'policy_%') needs no escaping.
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def test_auto_takes_the_timescale_path_and_downgrades_cleanly(
    new_database: Callable[[], str],
) -> None:
    url = new_database()
    settings = settings_for(url, "auto")
    migrate.upgrade(settings)
    assert migrate.storage_path(settings) == "timescaledb"
    migrate.downgrade(settings, "base")
    assert (
        _fetch(
            url,
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relname NOT LIKE 'alembic_version%'",  # the table and its pkey index
        )
        == []
    )
    migrate.upgrade(settings)
    assert migrate.storage_path(settings) == "timescaledb"


def test_same_relations_and_columns_as_plain(timescale_url: str) -> None:
    rows = _fetch(timescale_url, COLUMNS_QUERY)
    assert relation_columns(rows) == RELATIONS
    tables = {k: v for k, v in money_precisions(rows).items() if k[0] not in AGGREGATES}
    assert set(tables.values()) == {(38, 12)}


def test_hypertables_aggregates_and_policies_exist(timescale_url: str) -> None:
    hypertables = _fetch(
        timescale_url,
        "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables",
    )
    assert set(hypertables) >= {("usage_events", True), ("usage_rollup_1m", True)}
    chunk_intervals = _fetch(
        timescale_url,
        "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions"
        " WHERE hypertable_name IN ('usage_events', 'usage_rollup_1m')",
    )
    assert {interval.days for _name, interval in chunk_intervals} == {1}
    caggs = dict(
        _fetch(
            timescale_url,
            "SELECT view_name, materialized_only"
            " FROM timescaledb_information.continuous_aggregates",
        )
    )
    assert caggs == dict.fromkeys(AGGREGATES, False)
    jobs = _fetch(
        timescale_url,
        "SELECT proc_name, hypertable_name FROM timescaledb_information.jobs"
        " WHERE proc_name LIKE 'policy_%'",
    )
    refreshed = {h for p, h in jobs if p == "policy_refresh_continuous_aggregate"}
    compressed = {h for p, h in jobs if p in {"policy_compression", "policy_columnstore"}}
    assert len(refreshed) == len(AGGREGATES)  # one per cagg (named by materialization table)
    assert compressed == {"usage_events", "usage_rollup_1m"}


@pytest.fixture(scope="module")
def both(new_database: Callable[[], str], timescale_url: str) -> tuple[str, str]:
    """The same rows in a plain-path and a Timescale-path database on the same server."""
    plain = new_database()
    migrate.upgrade(settings_for(plain, "postgresql"))
    factory = EventFactory(seed=99)
    rows: list[dict[str, Any]] = []
    for tenant in TENANTS:
        rows += factory.spread(tenant, utc(2026, 10, 20), utc(2026, 11, 10), 400)
    insert_rows(plain, rows, tenants=TENANTS)
    insert_rows(timescale_url, rows, tenants=TENANTS)
    return plain, timescale_url


def _aggregate_rows(url: str, name: str) -> list[tuple[Any, ...]]:
    return sorted(
        _fetch(url, f"SELECT * FROM {name}"),
        key=repr,
    )


def _daily(url: str, tenant: str) -> list[tuple[Any, ...]]:
    return _fetch(
        url,
        "SELECT * FROM tenant_daily_totals(%s, %s, %s)",
        (tenant, date(2026, 10, 20), date(2026, 11, 10)),
    )


def _compare(plain: str, timescale: str) -> None:
    for name in AGGREGATES:
        assert _aggregate_rows(timescale, name) == _aggregate_rows(plain, name), name
    for tenant in TENANTS:
        assert _daily(timescale, tenant) == _daily(plain, tenant), tenant


def test_same_numbers_real_time_then_materialized(both: tuple[str, str]) -> None:
    plain, timescale = both
    _compare(plain, timescale)  # nothing materialized: real-time aggregation only
    with psycopg.connect(timescale, autocommit=True) as conn:
        for name in AGGREGATES:  # finest first: each level reads the one below
            conn.execute("CALL refresh_continuous_aggregate(%s, NULL, NULL)", (name,))
    _compare(plain, timescale)
