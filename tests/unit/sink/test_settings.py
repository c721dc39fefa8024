from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import pytest

from tokenline.common.errors import ConfigError
from tokenline.sink.api.settings import load_api_settings
from tokenline.sink.settings import load_settings, sqlalchemy_url

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.unit


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLINE_DATABASE_URL", "postgresql://u:pw@db:5432/tokenline")
    monkeypatch.setenv("TOKENLINE_RAW_RETENTION_DAYS", "90")
    settings = load_settings()
    assert settings.database_url.get_secret_value().endswith("@db:5432/tokenline")
    assert "pw" not in repr(settings)
    assert settings.raw_retention_days == 90
    assert settings.storage == "auto"


def test_overrides_win_and_none_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLINE_DATABASE_URL", "postgresql://env/db")
    settings = load_settings(database_url="postgresql://flag/db", storage=None)
    assert settings.database_url.get_secret_value() == "postgresql://flag/db"


def test_every_problem_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENLINE_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings(storage="oracle", compress_after_days=0, refresh_lookback_days=-1)
    problems = "\n".join(caught.value.problems)
    for field in ("database_url", "storage", "compress_after_days", "refresh_lookback_days"):
        assert f"TOKENLINE_{field.upper()}" in problems
    assert len(caught.value.problems) == 4
    assert str(caught.value).startswith("invalid sink settings (4 problems):\n  - TOKENLINE_")


def test_non_postgres_url_is_refused() -> None:
    with pytest.raises(ConfigError, match="PostgreSQL URL"):
        load_settings(database_url="mysql://db/x")


@pytest.mark.parametrize("load", [load_settings, load_api_settings])
def test_a_sqlalchemy_url_is_refused_where_psycopg_would_fail_later(
    load: Callable[..., object],
) -> None:
    """The sink and the API read one database setting; psycopg cannot parse a driver name."""
    url = "postgresql+psycopg://u@h/d"
    with pytest.raises(psycopg.ProgrammingError):
        psycopg.conninfo.conninfo_to_dict(url)
    with pytest.raises(ConfigError, match=r"TOKENLINE_DATABASE_URL.*PostgreSQL URL"):
        load(database_url=url)


def test_retention_must_outlive_the_refresh_window() -> None:
    with pytest.raises(ConfigError, match="TOKENLINE_RAW_RETENTION_DAYS"):
        load_settings(database_url="postgresql://db/x", raw_retention_days=7)
    assert load_settings(database_url="postgresql://db/x", raw_retention_days=8)


def test_settings_are_frozen() -> None:
    settings = load_settings(database_url="postgresql://db/x")
    with pytest.raises(ValueError, match="frozen"):
        settings.storage = "postgresql"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_sqlalchemy_url(given: str, expected: str) -> None:
    assert sqlalchemy_url(given) == expected


def test_worker_settings_problems_are_all_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENLINE_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings(batch_max_rows=0, metrics_port=70_000, group_id="bad group", batch_max_ms=0)
    problems = "\n".join(caught.value.problems)
    for field in ("database_url", "batch_max_rows", "metrics_port", "group_id", "batch_max_ms"):
        assert f"TOKENLINE_{field.upper()}" in problems


def test_retry_cap_must_not_be_below_the_first_wait() -> None:
    with pytest.raises(ConfigError, match="TOKENLINE_RETRY_MAX_MS"):
        load_settings(database_url="postgresql://db/x", retry_initial_ms=500, retry_max_ms=100)
