"""The migrations' SQL, checked without a server (the TimescaleDB path cannot run here)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest

from tokenline.sink.migrate import alembic_config
from tokenline.sink.migrations.options import MigrationOptions
from tokenline.sink.migrations.versions import rev_0001_tables, rev_0002_aggregates

pytestmark = pytest.mark.unit


def test_revisions_form_one_line_from_base_to_head() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config())
    assert scripts.get_heads() == ["0008"]
    revisions = [s.revision for s in scripts.walk_revisions()]
    assert revisions == ["0008", "0007", "0006", "0005", "0004", "0003", "0002", "0001"]


def test_migrations_ship_inside_the_package() -> None:
    root = files("tokenline.sink") / "migrations"
    for name in ("env.py", "script.py.mako", "versions/rev_0001_tables.py"):
        assert (root / name).is_file(), name


def test_hypertables_compression_and_optional_retention() -> None:
    sql = "\n".join(rev_0001_tables.timescale_sql(MigrationOptions(compress_after_days=3)))
    assert sql.count("create_hypertable(") == 2
    assert sql.count("chunk_time_interval => INTERVAL '1 day'") == 2
    assert "compress_after => INTERVAL '3 days'" in sql
    assert "add_retention_policy" not in sql
    kept = "\n".join(rev_0001_tables.timescale_sql(MigrationOptions(raw_retention_days=400)))
    assert kept.count("drop_after => INTERVAL '400 days'") == 2


def test_continuous_aggregates_are_hierarchical_and_real_time() -> None:
    statements = rev_0002_aggregates.timescale_sql(MigrationOptions(refresh_lookback_days=10))
    views = [s for s in statements if s.startswith("CREATE MATERIALIZED VIEW")]
    sources = {
        re.search(r"VIEW (\w+)", s).group(1): re.search(r"FROM (\w+)", s).group(1)  # type: ignore[union-attr]
        for s in views
    }
    assert sources == {
        "usage_15m": "usage_events",
        "usage_hourly": "usage_15m",
        "usage_daily": "usage_hourly",
        "usage_monthly": "usage_daily",
    }
    assert all("timescaledb.materialized_only = false" in s for s in views)
    assert all(s.rstrip().endswith("WITH NO DATA") for s in views)
    policies = [s for s in statements if "add_continuous_aggregate_policy" in s]
    assert len(policies) == 4
    assert "start_offset => INTERVAL '10 days'" in policies[0]


def test_both_paths_select_the_same_columns() -> None:
    def columns(statement: str) -> list[str]:
        select = statement.split("SELECT", 1)[1].split("FROM", 1)[0]
        return re.findall(r"AS (\w+)", select)

    plain = [columns(s) for s in rev_0002_aggregates.plain_sql()]
    timescale = [
        columns(s)
        for s in rev_0002_aggregates.timescale_sql(MigrationOptions())
        if s.startswith("CREATE MATERIALIZED VIEW")
    ]
    assert len(plain) == len(timescale) == 4
    measures = plain[0][-16:]
    for found in plain + timescale:
        assert found[-16:] == measures


def test_wheel_config_includes_the_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[3] / "sink" / "pyproject.toml").read_text()
    assert 'packages = ["src/tokenline"]' in pyproject
    assert 'sink = "tokenline.sink.cli:sink"' in pyproject
