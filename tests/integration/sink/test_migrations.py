"""Migrations on plain PostgreSQL: up, down to nothing, up again; the schema matches the models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import create_engine, pool

from tests.integration.sink._expected import (
    COLUMNS_QUERY,
    FUNCTIONS,
    RELATIONS,
    money_precisions,
    relation_columns,
)
from tests.integration.sink.conftest import settings_for
from tokenline.sink import migrate
from tokenline.sink.cli import sink
from tokenline.sink.models import Base
from tokenline.sink.settings import sqlalchemy_url

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.integration

OWN_RELATIONS = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relname <> 'alembic_version'
  AND c.relname NOT LIKE 'alembic_version%'
"""
OWN_FUNCTIONS = """
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
"""


def _names(url: str, query: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute(query)}


def _columns(url: str) -> list[tuple[str, str, str, int | None, int | None]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(COLUMNS_QUERY))


def test_up_down_up(new_database: Callable[[], str]) -> None:
    url = new_database()
    settings = settings_for(url, "postgresql")
    migrate.upgrade(settings)
    assert migrate.current_revision(settings) == "0008"
    assert migrate.storage_path(settings) == "postgresql"
    assert set(RELATIONS) <= _names(url, OWN_RELATIONS)
    assert _names(url, OWN_FUNCTIONS) == FUNCTIONS

    migrate.downgrade(settings, "0001")
    assert migrate.current_revision(settings) == "0001"
    assert not {"usage_15m", "usage_monthly"} & _names(url, OWN_RELATIONS)

    migrate.downgrade(settings, "base")
    assert migrate.current_revision(settings) is None
    assert migrate.storage_path(settings) is None
    assert _names(url, OWN_RELATIONS) == set()
    assert _names(url, OWN_FUNCTIONS) == set()

    migrate.upgrade(settings)
    assert migrate.current_revision(settings) == "0008"
    assert set(RELATIONS) <= _names(url, OWN_RELATIONS)


def test_plain_path_has_every_relation_and_column(plain_url: str) -> None:
    rows = _columns(plain_url)
    assert relation_columns(rows) == RELATIONS
    assert set(money_precisions(rows).values()) == {(38, 12)}


def test_views_on_plain_path(plain_url: str) -> None:
    with psycopg.connect(plain_url) as conn:
        kinds = dict(
            conn.execute(
                "SELECT relname, relkind::text FROM pg_class"
                " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'v', 'm')"
            )
        )
    kinds.pop("alembic_version")
    assert kinds == {
        "tenants": "r",
        "budgets": "r",
        "repricing_runs": "r",
        "tokenline_meta": "r",
        "api_keys": "r",
        "usage_events": "r",
        "usage_rollup_1m": "r",
        "usage_event_ids": "r",
        "usage_event_duplicates": "r",
        "usage_tenant_daily": "r",
        "usage_15m": "v",
        "usage_hourly": "v",
        "usage_daily": "v",
        "usage_monthly": "v",
    }


def test_database_matches_the_models(plain_url: str) -> None:
    engine = create_engine(sqlalchemy_url(plain_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_expected_columns_match_the_models() -> None:
    for table in Base.metadata.sorted_tables:
        assert set(table.columns.keys()) == set(RELATIONS[table.name]), table.name


def test_tenant_timezone_must_be_a_real_zone(plain_url: str) -> None:
    with psycopg.connect(plain_url) as conn:
        conn.execute("INSERT INTO tenants (tenant_id) VALUES ('t-default')")
        conn.execute("INSERT INTO tenants (tenant_id, timezone) VALUES ('t-np', 'Asia/Kathmandu')")
        assert conn.execute(
            "SELECT timezone FROM tenants WHERE tenant_id = 't-default'"
        ).fetchone() == ("UTC",)
        for bad in ("Mars/Olympus", "+05:30", "EST5EDT,M3.2.0,M11.1.0"):
            with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
                conn.execute(
                    "INSERT INTO tenants (tenant_id, timezone) VALUES ('t-bad', %s)", (bad,)
                )
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute("UPDATE tenants SET timezone = 'Nowhere' WHERE tenant_id = 't-np'")
        conn.rollback()


def test_unpriced_event_cannot_carry_a_cost(plain_url: str) -> None:
    from tests.integration.sink._data import EventFactory, insert_rows, utc

    row = EventFactory(seed=1).row("t-x", utc(2026, 1, 1), pricing_status="unpriced")
    row["cost_total"] = row["cost_total"] or 0
    with pytest.raises(Exception, match="cost_null_iff_unpriced"):
        insert_rows(plain_url, [row])


def test_cli_migrate_and_downgrade(new_database: Callable[[], str]) -> None:
    url = new_database()
    runner = CliRunner()
    result = runner.invoke(
        sink, ["migrate", "--database-url", url, "--storage", "postgresql"], env={}
    )
    assert result.exit_code == 0, result.output
    assert "revision 0008; storage path postgresql" in result.output
    result = runner.invoke(sink, ["migrate", "--database-url", url, "--downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert "revision base" in result.output


def test_cli_lists_every_settings_problem() -> None:
    result = CliRunner().invoke(
        sink,
        ["migrate", "--database-url", "mysql://x/y"],
        env={"TOKENLINE_COMPRESS_AFTER_DAYS": "0"},
    )
    assert result.exit_code == 2
    assert "TOKENLINE_DATABASE_URL (--database-url)" in result.output
    assert "TOKENLINE_COMPRESS_AFTER_DAYS" in result.output


def test_revision_0003_rebuilds_the_rollups_from_the_events(
    new_database: Callable[[], str],
) -> None:
    import uuid
    from datetime import timedelta

    from tests._rollup_truth import check_rollups
    from tests.factories import EPOCH, priced_event, usage_event
    from tokenline.sink.batch import EVENT_COLUMNS
    from tokenline.sink.rows import event_row

    url = new_database()
    settings = settings_for(url, "postgresql")
    migrate.upgrade(settings, "0002")
    rows = [
        event_row(
            priced_event(
                event=usage_event(
                    event_id=uuid.UUID(int=n), occurred_at=EPOCH + timedelta(seconds=7 * n)
                )
            )
        )
        for n in range(40)
    ]
    columns = ", ".join(EVENT_COLUMNS)
    values = ", ".join(f"%({c})s" for c in EVENT_COLUMNS)
    with psycopg.connect(url) as conn:
        for row in rows:
            conn.execute(
                f"INSERT INTO usage_events ({columns}) VALUES ({values})",
                row | {"tags": psycopg.types.json.Jsonb(row["tags"])},
            )
        # A row as the replacing sink left it: short of its window's events.
        conn.execute(
            "INSERT INTO usage_rollup_1m (tenant_id, window_start, provider, model, "
            "window_seconds, requests, failures, input_tokens, cache_read_input_tokens, "
            "cache_write_input_tokens, output_tokens, reasoning_tokens, cost_total, "
            "unpriced_count, latency_ms_sum, latency_ms_max, updated_at) "
            "VALUES ('acme', %s, 'anthropic', 'claude-sonnet-4-5', 60, 1, 0, 0, 0, 0, 0, 0, 0, "
            "0, 0, 0, now())",
            (EPOCH,),
        )
    assert not check_rollups(url).exact
    migrate.upgrade(settings)
    result = check_rollups(url)
    assert result.exact, result.differing[:5]
    assert result.rollup_requests == 40
