"""TimescaleDB installed but not preloaded: migrate never runs the CREATE EXTENSION that would
end its session; ``auto`` takes the plain path and says how to preload, ``timescaledb`` stops
with the same instructions."""

from __future__ import annotations

import pytest

from tokenline.sink.errors import StorageUnavailable
from tokenline.sink.migrations.timescale import PRELOAD_HINT, Timescale, decide, preloaded

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", False),
        ("pg_stat_statements", False),
        ("timescaledb", True),
        ("pg_stat_statements, timescaledb", True),
        ('"timescaledb"', True),
        ("timescaledb-2.17.2", True),
        ("timescaledb_toolkit", False),
    ],
)
def test_preloaded_reads_shared_preload_libraries(setting: str, expected: bool) -> None:
    assert preloaded(setting) is expected


def test_not_preloaded_takes_the_plain_path_on_auto_and_stops_on_timescaledb() -> None:
    assert decide(Timescale.NOT_PRELOADED, "auto") is False
    with pytest.raises(StorageUnavailable) as caught:
        decide(Timescale.NOT_PRELOADED, "timescaledb")
    assert "shared_preload_libraries" in str(caught.value)
    assert "--storage postgresql" in str(caught.value)
    assert "restart PostgreSQL" in PRELOAD_HINT


@pytest.mark.parametrize(
    ("status", "storage", "expected"),
    [
        (Timescale.ACTIVE, "auto", True),
        (Timescale.AVAILABLE, "auto", True),
        (Timescale.AVAILABLE, "timescaledb", True),
        (Timescale.NOT_INSTALLED, "auto", False),
        (Timescale.NOT_INSTALLED, "timescaledb", False),  # the revision says so (CREATE fails)
        (Timescale.ACTIVE, "postgresql", False),
    ],
)
def test_the_other_cases(status: Timescale, storage: str, expected: bool) -> None:
    assert decide(status, storage) is expected
