"""``tokenline demo``, the README's main command, runs to the end on the test services.

Two rounds of traffic (68 wrapped calls) instead of forty: the same steps, each checked by
what the demo prints. Its database is dropped and re-created, its topics carry a fresh prefix.
"""

from __future__ import annotations

import os
import re
import subprocess

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tokenline.dev.demo.services import tokenline_command

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROUNDS = 2
CALLS = 34 * ROUNDS


def test_the_demo_runs_every_step_and_replays_the_correction(
    kafka_bootstrap: str, database_url: str
) -> None:
    server = make_url(database_url).set(database="postgres")
    done = subprocess.run(
        [
            tokenline_command(),
            "demo",
            "--rounds",
            str(ROUNDS),
            "--bootstrap-servers",
            kafka_bootstrap,
            "--database-url",
            server.render_as_string(hide_password=False),
        ],
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
        timeout=540,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert f"all {CALLS} usage events landed in PostgreSQL" in out
    assert re.search(rf"{CALLS} calls \(\d+ failed at the provider\) for 3 tenants", out), out
    for tenant in ("acme", "globex", "initech"):
        assert tenant in out
    assert "After the replay" in out
    assert "demo finished" in out

    # It says where the data is, and the command it shows works with the exports it shows.
    (export,) = [line.strip() for line in out.splitlines() if line.strip().startswith("export ")]
    shown = subprocess.run(
        ["bash", "-c", f"{export} && {tokenline_command()} report --all-tenants --by tenant"],
        env={k: v for k, v in os.environ.items() if not k.startswith("TOKENLINE_")},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    for tenant in ("acme", "globex", "initech"):
        assert tenant in shown.stdout

    demo_db = make_url(database_url).set(database="tokenline_demo")
    with psycopg.connect(demo_db.render_as_string(hide_password=False)) as conn:
        runs = conn.execute(
            "SELECT status, dry_run FROM repricing_runs ORDER BY started_at"
        ).fetchall()
        unpriced = conn.execute(
            "SELECT count(*) FROM usage_events WHERE pricing_status = 'unpriced'"
        ).fetchone()
    assert runs == [("succeeded", False)]
    # The correction priced the fine-tuned model that nobody had a price for.
    assert unpriced == (0,)
