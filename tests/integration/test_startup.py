"""Every long-running command fails fast and says why: exit code, a bounded time, one line.

Each case runs the real ``tokenline`` command in a subprocess against a Kafka or PostgreSQL
address where nothing listens, a database without the schema, or bad settings, and checks the
exit code of the README's table, that it ended within a generous bound (the checks wait about
10 s), and that its message names the address and the variable to set, in a few lines rather
than a client library's retry log.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from tests._db import drop_database
from tokenline.dev._proc import free_port
from tokenline.dev.demo.services import create_database, tokenline_command

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BOUND_S = 45.0
"""Generous: a startup check waits about 10 s; a loaded machine adds the interpreter start."""


@dataclass(frozen=True)
class Case:
    args: list[str]
    env: dict[str, str]
    code: int
    says: list[str]
    max_lines: int = 3
    files: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def unmigrated(database_url: str) -> Iterator[str]:
    name = f"startup_{uuid.uuid4().hex[:8]}"
    url = create_database(database_url, name)
    yield url
    drop_database(database_url, name)


def run(case: Case, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    for name, text in case.files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLINE_")}
    env.update({k: v.replace("{tmp}", str(tmp_path)) for k, v in case.env.items()})
    args = [a.replace("{tmp}", str(tmp_path)) for a in case.args]
    started = time.monotonic()
    done = subprocess.run(
        [tokenline_command(), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=BOUND_S * 2,
        stdin=subprocess.DEVNULL,
    )
    return done, time.monotonic() - started


def check(case: Case, tmp_path: Path) -> str:
    done, elapsed = run(case, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == case.code, output
    assert elapsed < BOUND_S, f"took {elapsed:.0f} s:\n{output}"
    for text in case.says:
        assert text in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) <= case.max_lines, output
    assert "Traceback" not in output
    return output


DEAD_KAFKA = f"127.0.0.1:{free_port()}"
DEAD_DATABASE = f"postgresql://postgres@127.0.0.1:{free_port()}/tokenline"
RANGE = ["--from", "2026-01-01", "--to", "2026-01-02"]


# ------------------------------------------------------------------ Kafka does not answer
@pytest.mark.parametrize(
    "args",
    [["processor"], ["sink", "run"], ["replay", *RANGE], ["prices", "publish", "{tmp}/p.yaml"],
     ["budgets", "run"], ["alerts"]],
    ids=["processor", "sink-run", "replay", "prices-publish", "budgets-run", "alerts"],
)  # fmt: skip
def test_no_kafka_exits_3_naming_the_address_and_the_variable(
    args: list[str], database_url: str, tmp_path: Path
) -> None:
    case = Case(
        args,
        {
            "TOKENLINE_BOOTSTRAP_SERVERS": DEAD_KAFKA,
            "TOKENLINE_DATABASE_URL": database_url,
            "TOKENLINE_METRICS_PORT": "0",
            "TOKENLINE_WEBHOOK_URLS": '["http://127.0.0.1:9/hook"]',  # tokenline alerts needs one
        },
        3,
        [f"Kafka at {DEAD_KAFKA} did not answer within 10 s", "TOKENLINE_BOOTSTRAP_SERVERS"],
        files={"p.yaml": "tenants: {acme: {discount_percent: 10}}\n"},
    )
    check(case, tmp_path)


# ------------------------------------------------------------------ the database
@pytest.mark.parametrize(
    "args",
    [["sink", "run"], ["sink", "migrate"], ["replay", *RANGE], ["report", "--all-tenants"],
     ["api", "serve"]],
    ids=["sink-run", "sink-migrate", "replay", "report", "api-serve"],
)  # fmt: skip
def test_no_database_exits_4_naming_the_address_and_the_variable(
    args: list[str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    case = Case(
        args,
        {
            "TOKENLINE_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "TOKENLINE_DATABASE_URL": DEAD_DATABASE,
            "TOKENLINE_METRICS_PORT": "0",
        },
        4,
        [f"database at {DEAD_DATABASE} did not answer", "TOKENLINE_DATABASE_URL"],
    )
    check(case, tmp_path)


@pytest.mark.parametrize(
    "args",
    [["sink", "run"], ["replay", *RANGE], ["report", "--all-tenants"], ["api", "serve"]],
    ids=["sink-run", "replay", "report", "api-serve"],
)
def test_an_unmigrated_database_exits_5_saying_to_migrate(
    args: list[str], kafka_bootstrap: str, unmigrated: str, tmp_path: Path
) -> None:
    case = Case(
        args,
        {
            "TOKENLINE_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "TOKENLINE_DATABASE_URL": unmigrated,
            "TOKENLINE_METRICS_PORT": "0",
        },
        5,
        ["has no Tokenline schema", "run `tokenline sink migrate` first"],
    )
    check(case, tmp_path)


# ------------------------------------------------------------------ configuration
BAD_DATE_YAML = """\
prices:
  - provider: openai
    model: gpt-4o
    valid_from: 2026-13-01
    input: "-1"
    output: "10.00"
"""


def test_processor_lists_every_configuration_problem_at_once(tmp_path: Path) -> None:
    case = Case(
        ["processor"],
        {
            "TOKENLINE_KAFKA_CONFIG": '{"linger.ms": 5',
            "TOKENLINE_METRICS_PORT": "99999",
            "TOKENLINE_PRICES_FILE": "{tmp}/prices.yaml",
        },
        2,
        [
            "TOKENLINE_KAFKA_CONFIG: not valid JSON",
            "TOKENLINE_METRICS_PORT",
            "TOKENLINE_PRICES_FILE",
            "prices.0.valid_from",
            "prices.0.input",
        ],
        max_lines=8,
        files={"prices.yaml": BAD_DATE_YAML},
    )
    check(case, tmp_path)


def test_sink_lists_every_configuration_problem_at_once(tmp_path: Path) -> None:
    case = Case(
        ["sink", "run"],
        {
            "TOKENLINE_KAFKA_CONFIG": "not json",
            "TOKENLINE_RETRY_INITIAL_MS": "500",
            "TOKENLINE_RETRY_MAX_MS": "100",
            "TOKENLINE_LOG_FORMAT": "xml",
        },
        2,
        [
            "TOKENLINE_KAFKA_CONFIG: not valid JSON",
            "TOKENLINE_DATABASE_URL (--database-url): required, not set",
            "TOKENLINE_RETRY_MAX_MS",
            "TOKENLINE_LOG_FORMAT",
        ],
        max_lines=6,
    )
    check(case, tmp_path)


def test_replay_refuses_bad_settings_with_exit_2(tmp_path: Path) -> None:
    case = Case(
        ["replay", *RANGE, "--database-url", DEAD_DATABASE],
        {"TOKENLINE_KAFKA_CONFIG": "[1, 2", "TOKENLINE_WINDOW_SECONDS": "0"},
        2,
        ["TOKENLINE_KAFKA_CONFIG: not valid JSON", "TOKENLINE_WINDOW_SECONDS"],
        max_lines=4,
    )
    check(case, tmp_path)


def test_prices_publish_reports_a_bad_date_with_the_other_problems(tmp_path: Path) -> None:
    case = Case(
        ["prices", "publish", "{tmp}/prices.yaml"],
        {"TOKENLINE_BOOTSTRAP_SERVERS": DEAD_KAFKA, "TOKENLINE_KAFKA_CONFIG": "{"},
        2,
        ["prices.0.valid_from", "prices.0.input", "TOKENLINE_KAFKA_CONFIG: not valid JSON"],
        max_lines=8,
        files={"prices.yaml": BAD_DATE_YAML},
    )
    output = check(case, tmp_path)
    assert "month" in output  # what is wrong with the date


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "prices: []\ntenants: {}\n"])
def test_prices_publish_refuses_an_empty_file(text: str, tmp_path: Path) -> None:
    case = Case(
        ["prices", "publish", "{tmp}/prices.yaml"],
        {"TOKENLINE_BOOTSTRAP_SERVERS": DEAD_KAFKA},
        2,
        ["holds no prices, tenant terms or model maps", "--allow-empty"],
        files={"prices.yaml": text},
    )
    check(case, tmp_path)


# ------------------------------------------------------------------ migrate and TimescaleDB
def test_migrate_names_the_storage_path_and_what_timescaledb_needs(
    database_url: str, timescale: bool, tmp_path: Path
) -> None:
    """Auto takes the path the server offers; --storage timescaledb without it says what to do
    (exit 2) instead of a bare driver error, and leaves the database unmigrated."""
    name = f"startup_mig_{uuid.uuid4().hex[:8]}"
    url = create_database(database_url, name)
    try:
        if not timescale:
            case = Case(
                ["sink", "migrate", "--storage", "timescaledb"],
                {"TOKENLINE_DATABASE_URL": url},
                2,
                ["storage=timescaledb, but TimescaleDB is not installed", "--storage postgresql"],
                max_lines=6,  # with alembic's lines naming the revision it was running
            )
            check(case, tmp_path)
        path = "timescaledb" if timescale else "postgresql"
        migrate = Case(["sink", "migrate"], {"TOKENLINE_DATABASE_URL": url}, 0, [], max_lines=12)
        output = check(migrate, tmp_path)
        assert f"storage path {path}" in output
        assert "note:" not in output  # nothing installed-but-not-preloaded here
    finally:
        drop_database(database_url, name)
