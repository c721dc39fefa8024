"""Session-wide services for the tests; the resolution logic lives in ``tests/_services.py``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests._services import Services, timescale_available

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

#: Lines tests ask to show at the end of every run (whatever ``-r`` says), e.g. the pricing
#: oracle's counts.
_SUMMARY: list[str] = []
#: Tests marked ``timescale`` that did not run (skipped: no TimescaleDB was reachable).
_TIMESCALE_NOT_RUN: list[str] = []


@pytest.fixture(scope="session")
def summary_line() -> Callable[[str], None]:
    """Add a line to the run's closing summary."""
    return _SUMMARY.append


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count the tests marked ``timescale`` that were skipped (no TimescaleDB)."""
    if report.skipped and "timescale" in report.keywords:
        _TIMESCALE_NOT_RUN.append(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the lines tests added with ``summary_line``."""
    if _SUMMARY:
        terminalreporter.section("figures")
        for line in _SUMMARY:
            terminalreporter.write_line(line)
    if _TIMESCALE_NOT_RUN:
        terminalreporter.section("TimescaleDB tier", red=True, bold=True)
        terminalreporter.write_line(
            f"!!! TimescaleDB tier NOT RUN: {len(_TIMESCALE_NOT_RUN)} tests marked timescale "
            "were not exercised (no TimescaleDB reachable); the primary storage path is "
            "untested in this run !!!",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def _services() -> Iterator[Services]:
    services = Services()
    yield services
    services.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(_services: Services) -> str:
    """A Kafka bootstrap address (``host:port``)."""
    return _services.kafka_bootstrap()


@pytest.fixture(scope="session")
def database_url(_services: Services) -> str:
    """A PostgreSQL URL for a database the tests may use."""
    return _services.database_url()


@pytest.fixture(scope="session")
def timescale(database_url: str) -> bool:
    """Whether TimescaleDB is active in ``database_url``'s database."""
    return timescale_available(database_url)


@pytest.fixture(autouse=True)
def _timescale_gate(request: pytest.FixtureRequest) -> None:
    """Report tests marked ``timescale`` as not run when no TimescaleDB is reachable."""
    if request.node.get_closest_marker("timescale") is None:
        return
    if not request.getfixturevalue("timescale"):
        pytest.skip("not run: TimescaleDB not reachable")
