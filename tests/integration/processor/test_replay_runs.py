"""Replay runs always end, and a replay counts an event the way the sink stores it.

- A ``tokenline replay`` killed while it runs leaves its ``repricing_runs`` row ``running``;
  the next replay marks it ``failed`` and says so, and leaves alone a run whose replay is still
  alive (its lease is held).
- Two copies of one ``event_id`` at different times in two raw partitions: the sink stores the
  first copy it gets and refuses the other; a later replay re-prices the stored copy only, so
  its counts and costs are the database's and ``--wait-landed`` ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from confluent_kafka import Producer

from tests._rollup_truth import check_rollups
from tests.integration.processor import _replay_env as env
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.replay import db
from tokenline.processor.replay.scope import ReplayScope

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

FROM = env.T0 + timedelta(minutes=1)
TO = env.T0 + timedelta(minutes=4)


def _replay_command(prices: Path) -> list[str]:
    return [
        env.tokenline(),
        "replay",
        "--from",
        FROM.isoformat(),
        "--to",
        TO.isoformat(),
        "--prices",
        str(prices),
        "--dry-run",
    ]


def _runs(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, status, error, finished_at IS NOT NULL FROM repricing_runs ORDER BY id"
        ).fetchall()


def _wait_blocked_replay(url: str, timeout_s: float = 60) -> None:
    """Until a replay has its run row and waits on the table lock the test holds."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'tokenline-replay' AND wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0] and any(r[1] == "running" for r in _runs(url)):
                return
            assert time.monotonic() < deadline, "the replay never reached the locked table"
            time.sleep(0.1)


def test_a_killed_replay_is_marked_failed_by_the_next_one(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    settings = env.settings(kafka_bootstrap, f"rr-{uuid.uuid4().hex[:8]}-", partitions=1)
    env.create_topics(settings)
    url = env.new_database(database_url)
    prices = tmp_path / "a.json"
    prices.write_text(PriceBook(env.TABLE_A).to_json(), encoding="utf-8")
    run_env = {**env.sink_env(settings, url, "unused"), "TOKENLINE_WINDOW_GRACE_S": "120"}
    holder = db.connect(url)
    try:
        env.produce_raw(settings, env.events(["acme"], windows=5, per_window=3))
        # A replay that is alive (its connection holds the lease) is never touched.
        scope = ReplayScope.of(FROM, TO, window_seconds=60)
        alive = db.start_run(holder, scope, new_pricing_version="alive", dry_run=True)

        # A replay stopped dead: it has its run row and waits on a lock when it is SIGKILLed.
        with psycopg.connect(url) as lock:
            lock.execute("LOCK TABLE usage_events IN ACCESS EXCLUSIVE MODE")
            doomed = subprocess.Popen(
                _replay_command(prices),
                env=run_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its reader processes die with it
            )
            try:
                _wait_blocked_replay(url)
            finally:
                os.killpg(doomed.pid, signal.SIGKILL)
                doomed.wait(30)
        killed = next(r[0] for r in _runs(url) if r[0] != alive)
        assert {r[0]: r[1] for r in _runs(url)} == {alive: "running", killed: "running"}

        result = subprocess.run(
            _replay_command(prices), env=run_env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        said = " ".join(result.stdout.split())  # rich wraps long lines
        assert f"run {killed} (started " in said
        assert "had been left running by a replay that stopped: marked failed" in said
        assert f"run {alive} " not in said
        runs = {r[0]: r[1:] for r in _runs(url)}
        assert runs[killed][0] == "failed"
        assert runs[killed][1].startswith("abandoned: ")
        assert runs[killed][2] is True
        assert runs[alive][0] == "running"
        assert [r[1] for r in _runs(url)][-1] == "succeeded"
    finally:
        holder.close()
        env.drop_database(database_url, url)
    # the alive one's replay ended (its connection closed): now it is abandoned too


def test_a_replay_reprices_the_copy_the_sink_kept(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    records = env.events(["acme"], windows=5, per_window=4)
    in_range = [e for e in records if FROM <= e["occurred_at"] < TO]
    original = in_range[2]
    copy = {**original, "occurred_at": original["occurred_at"] + timedelta(seconds=40)}
    assert FROM <= copy["occurred_at"] < TO
    with env.open_world(kafka_bootstrap, database_url, tmp_path, [], (FROM, TO)) as world:
        world.add_book("a", PriceBook(env.TABLE_A))
        world.add_book("b", PriceBook(env.TABLE_B))
        # Every event in partition 0; the same event again, at another time, in partition 1
        # (a producer that does not key by tenant).
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        for partition, event in [*((0, r) for r in records), (1, copy)]:
            producer.produce(
                world.settings.topic(world.settings.raw_topic),
                key=event["tenant_id"].encode(),
                value=env.USAGE.encode(event),
                partition=partition,
                timestamp=int(event["occurred_at"].timestamp() * 1000),
            )
        assert producer.flush(30) == 0

        # The first replay plays the live processor: each reader (one per partition) emits
        # its copy; the sink stores one of them and refuses the other.
        world.replay(world.prices["a"])
        env.wait_caught_up(world.settings, world.group)
        with psycopg.connect(world.url) as conn:
            refused = conn.execute(
                "SELECT event_id, kept_occurred_at FROM usage_event_duplicates"
            ).fetchall()
            stored = conn.execute("SELECT count(*), count(DISTINCT event_id) FROM usage_events")
            assert stored.fetchone() == (len(in_range), len(in_range))
        assert [r[0] for r in refused] == [original["event_id"]]

        report = world.replay(world.prices["b"], wait_landed_s=60)
        assert report.landed is True  # the refused copy was not re-sent: it could never land
        assert report.counts.replayed == len(in_range)
        assert report.counts.duplicates == 1  # the refused copy
        with psycopg.connect(world.url) as conn:
            row = conn.execute("SELECT count(*), sum(cost_total) FROM usage_events").fetchone()
            again = conn.execute("SELECT count(*) FROM usage_event_duplicates").fetchone()
        assert row is not None
        assert row[0] == len(in_range)
        assert report.summary.after == row[1]
        assert isinstance(row[1], Decimal)
        assert again == (1,)
        check = check_rollups(world.url)
        assert check.exact, check.differing[:3]
