"""The whole pipeline: wrapped real SDK clients → Kafka → processor → sink → PostgreSQL.

50,000 calls through wrapped provider clients (OpenAI plain, cached, streamed and reasoning;
Anthropic with prompt caching; Bedrock converse through an inference profile; Gemini with
thinking) against the emulator, running in its own process, for five tenants. The database's
totals per tenant, model and bucket must equal the ground truth computed from the calls'
answers to the last decimal. Then a replay with one changed price changes exactly the
expected costs, and the same replay again changes nothing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests.e2e._pipeline import running_pipeline, wait_rows
from tests.e2e._truth import BUCKETS, PRICES, TENANTS, Caller, Truth, cost, price_file
from tokenline import sdk
from tokenline.dev._proc import free_port
from tokenline.dev.demo.services import DemoPipeline, tokenline_command

if TYPE_CHECKING:
    import uuid
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CALLS = int(os.environ.get("TOKENLINE_E2E_CALLS", "50000"))
WORKERS = 4
CHANGED = ("anthropic", "claude-e2e-sonnet")
NEW_PRICES = {**PRICES, CHANGED: {**PRICES[CHANGED], "output": Decimal("16.5")}}

SUMS = ", ".join(
    [
        "count(*)",
        "sum(input_tokens)",
        "sum(cache_read_input_tokens)",
        "sum(cache_write_input_tokens)",
        "sum(output_tokens)",
        "sum(reasoning_tokens)",
        "sum(cost_total)",
    ]
)


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [tokenline_command(), "emulator", "--port", str(port)], stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "emulator did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pipeline(
    kafka_bootstrap: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoPipeline]:
    work = tmp_path_factory.mktemp("e2e")
    with running_pipeline(kafka_bootstrap, database_url, work, price_file(PRICES), "e2e") as handle:
        yield handle


@pytest.fixture(scope="module")
def sent(
    pipeline: DemoPipeline, emulator_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Make the calls; return the truth and the time range they span."""
    sdk.configure(
        bootstrap_servers=pipeline.bootstrap,
        topic=pipeline.topic("raw"),
        spool_dir=tmp_path_factory.mktemp("spool"),
        detect_host=False,
        strict=True,
    )
    began = datetime.now(UTC)

    def work(worker: int) -> Truth:
        truth, caller = Truth(), Caller(emulator_url)
        try:
            for n in range(worker, CALLS, WORKERS):
                caller.call(n, truth)
        finally:
            caller.close()
        return truth

    try:
        with ThreadPoolExecutor(WORKERS) as pool:
            parts = list(pool.map(work, range(WORKERS)))
        assert sdk.flush(60) == 0
    finally:
        sdk.close(30)
    truth = Truth()
    for part in parts:
        truth.merge(part)
    assert sum(truth.requests.values()) == CALLS
    wait_rows(pipeline, CALLS)
    return truth, began, datetime.now(UTC)


def _db_table(url: str) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT tenant_id, provider, request_model, {SUMS} FROM usage_events GROUP BY 1, 2, 3"
        ).fetchall()
    return {(r[0], r[1], r[2]): tuple(r[3:]) for r in rows}


def _costs(url: str) -> dict[uuid.UUID, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event_id, provider, request_model, cost_total, pricing_version, priced_at, "
            "input_tokens, cache_read_input_tokens, cache_write_input_tokens, output_tokens, "
            "reasoning_tokens FROM usage_events"
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def test_database_totals_equal_the_calls_ground_truth(pipeline: DemoPipeline, sent: Any) -> None:
    truth, _, _ = sent
    expected = truth.table()

    assert _db_table(pipeline.database_url) == expected
    assert {t for t, _, _ in expected} == set(TENANTS)
    assert all(v[-1] > 0 for v in expected.values())


def test_rollups_and_daily_aggregate_agree_with_raw_rows(pipeline: DemoPipeline, sent: Any) -> None:
    truth, _, _ = sent
    per_tenant: dict[str, Decimal] = {}
    for (tenant, _, _), value in truth.costs.items():
        per_tenant[tenant] = per_tenant.get(tenant, Decimal(0)) + value
    deadline = time.monotonic() + 60
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        while True:
            rollups = dict(
                conn.execute(
                    "SELECT tenant_id, sum(cost_total) FROM usage_rollup_1m GROUP BY 1"
                ).fetchall()
            )
            if rollups == per_tenant or time.monotonic() > deadline:
                break
            time.sleep(1)
        daily = dict(
            conn.execute("SELECT tenant_id, sum(cost_total) FROM usage_daily GROUP BY 1").fetchall()
        )
    assert rollups == per_tenant
    assert daily == per_tenant


def _replay(pipeline: DemoPipeline, prices: Path, began: datetime, ended: datetime) -> str:
    done = subprocess.run(
        [
            tokenline_command(),
            "replay",
            "--from",
            (began - timedelta(minutes=1)).isoformat(),
            "--to",
            (ended + timedelta(minutes=1)).isoformat(),
            "--prices",
            str(prices),
            "--wait-landed",
            "240",
        ],
        env=pipeline.environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_replay_with_a_changed_price_changes_exactly_the_expected_costs(
    pipeline: DemoPipeline, sent: Any
) -> None:
    _, began, ended = sent
    before = _costs(pipeline.database_url)
    changed = pipeline.work_dir / "changed.yaml"
    changed.write_text(price_file(NEW_PRICES), encoding="utf-8")

    _replay(pipeline, changed, began, ended)
    after = _costs(pipeline.database_url)

    assert after.keys() == before.keys()
    moved = {eid for eid in before if after[eid][2] != before[eid][2]}
    for eid, row in after.items():
        provider, model = row[0], row[1]
        tokens = dict(zip(BUCKETS, row[5:], strict=True))
        assert row[2] == cost((provider, model), tokens, NEW_PRICES), eid
    assert moved == {
        eid for eid, row in before.items() if (row[0], row[1]) == CHANGED and row[5 + 3] > 0
    }
    assert moved

    _replay(pipeline, changed, began, ended)

    assert _costs(pipeline.database_url) == after
