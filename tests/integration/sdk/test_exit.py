"""No usage event is lost however the process ends: Kafka has them, or the spool does.

Each test runs the program in ``_child.py`` in its own Python process, configured with
``sdk.configure(...)`` keywords, and ends it in one of the ways a process ends.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tests._kafka import new_topic, read_events
from tokenline.dev import kafka
from tokenline.dev.demo.services import DemoPipeline, create_database
from tokenline.sdk.emitters import DiskSpool

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

N = 500
CHILD = Path(__file__).with_name("_child.py")
EXITS = {  # how the child ends → the status its parent sees
    "return": 0,
    "sys_exit": 3,
    "exception": 1,
    "sigterm": -signal.SIGTERM,
    "sigint": -signal.SIGINT,
}
SIGNALS = {"sigterm": signal.SIGTERM, "sigint": signal.SIGINT}
ROOT = Path(__file__).resolve().parents[3]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_child(
    bootstrap: str, topic: str, spool: Path, label: str, how: str
) -> tuple[int, float, str]:
    """Run the recording child to its end; return its status, seconds from end to exit, stderr."""
    args = [sys.executable, str(CHILD), "record", bootstrap, topic, str(spool), str(N), label, how]
    proc = subprocess.Popen(
        args,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job inherits SIGINT ignored, and Python then raises no
        # KeyboardInterrupt: the child starts with SIGINT at its default, as in a terminal.
        preexec_fn=_default_sigint,  # noqa: PLW1509 - no threads in the child before exec
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "recorded", proc.communicate(timeout=60)
    ended = time.monotonic()
    if how in SIGNALS:
        proc.send_signal(SIGNALS[how])
    _, err = proc.communicate(timeout=120)
    return proc.returncode, time.monotonic() - ended, err


def drain_child(bootstrap: str, topic: str, spool: Path) -> dict[str, Any]:
    """Run a second process on ``spool``; return its stats once it has re-sent the spool."""
    args = [sys.executable, str(CHILD), "drain", bootstrap, topic, str(spool)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    stats: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return stats


def spooled_records(spool: Path) -> list[tuple[bytes | None, bytes]]:
    """Every record in the spool directory (segments are read, not deleted)."""
    records: list[tuple[bytes | None, bytes]] = []
    for path in sorted(spool.glob("*.seg")):
        segment = DiskSpool._try_lock(path)
        assert segment is not None, f"{path} is still locked by a process"
        try:
            records.extend(DiskSpool.records(segment))
        finally:
            segment.handle.close()
    return records


def by_label(events: list[Any]) -> dict[str, Counter[Any]]:
    out: dict[str, Counter[Any]] = {}
    for event in events:
        out.setdefault(event["user_id"], Counter())[event["event_id"]] += 1
    return out


@pytest.mark.parametrize("how", list(EXITS))
def test_every_event_reaches_kafka_however_the_process_ends(
    how: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = new_topic(kafka_bootstrap, f"exit-{how.replace('_', '-')}")
    status, seconds, err = run_child(kafka_bootstrap, topic, tmp_path / "spool", how, how)
    assert status == EXITS[how], err
    events = read_events(kafka_bootstrap, topic, N, timeout_s=60)
    counts = Counter(e["event_id"] for e in events)
    print(f"{how}: status {status}, exited {seconds:.2f} s after recording, {len(counts)} events")
    assert len(counts) == N, err
    assert max(counts.values()) == 1
    assert sorted(e["usage"]["input_tokens"] for e in events) == list(range(N))
    assert spooled_records(tmp_path / "spool") == []  # Kafka acknowledged them all


@pytest.fixture
def outage(
    tmp_path: Path, database_url: str
) -> Iterator[tuple[list[kafka.KafkaNode], DemoPipeline]]:
    """A private broker with the pipeline's topics and database (processor and sink not run)."""
    nodes = [kafka.start(tmp_path / "broker")]
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices: []\n", encoding="utf-8")
    run = uuid.uuid4().hex[:6]
    pipeline = DemoPipeline(
        bootstrap=nodes[0].bootstrap,
        database_url=create_database(database_url, f"exit_{run}"),
        prefix=f"exit-{run}.",
        work_dir=tmp_path,
        prices_file=prices,
    )
    pipeline.migrate()
    pipeline.create_topics()
    try:
        yield nodes, pipeline
    finally:
        pipeline.stop()
        for node in nodes:
            kafka.stop(node)


def test_broker_down_at_exit_every_event_is_spooled_then_resent_once(
    outage: tuple[list[kafka.KafkaNode], DemoPipeline], tmp_path: Path
) -> None:
    """Broker stopped, default message timeout: each exit kind leaves all N events on disk;
    a second process re-sends them; each lands once in the topic and in ``usage_events``."""
    nodes, pipeline = outage
    topic = pipeline.topic("raw")
    kafka.stop(nodes[0])
    for how, expected_status in EXITS.items():
        spool = tmp_path / f"spool-{how}"
        status, seconds, err = run_child(nodes[0].bootstrap, topic, spool, how, how)
        assert status == expected_status, err
        records = spooled_records(spool)
        print(f"{how}: status {status}, exited {seconds:.2f} s after recording, "
              f"{len(records)} records in the spool")  # fmt: skip
        assert len(records) == N, (how, err)
        assert len(set(records)) == N

    nodes.append(kafka.restart(nodes[0]))
    pipeline.start()
    for how in EXITS:
        stats = drain_child(nodes[0].bootstrap, topic, tmp_path / f"spool-{how}")
        assert stats["left"] == 0, stats
        assert stats["resent"] == N, stats
        assert spooled_records(tmp_path / f"spool-{how}") == []

    events = read_events(nodes[0].bootstrap, topic, N * len(EXITS), timeout_s=120)
    per_label = by_label(events)
    assert set(per_label) == set(EXITS)
    for how, counts in per_label.items():
        assert len(counts) == N, how
        assert max(counts.values()) == 1, how
    event_ids = {e["event_id"] for e in events}

    deadline = time.monotonic() + 300
    with psycopg.connect(pipeline.database_url, autocommit=True) as conn:
        while True:
            pipeline.check_running()
            rows = conn.execute("SELECT event_id, count(*) FROM usage_events GROUP BY 1").fetchall()
            if len(rows) >= len(event_ids) or time.monotonic() > deadline:
                break
            time.sleep(1)
    assert {row[0] for row in rows} == event_ids
    assert {row[1] for row in rows} == {1}


def test_sigterm_during_close_waits_for_the_close_then_ends_the_process(tmp_path: Path) -> None:
    """A "broker" that accepts connections and never answers: close() waits its full time.

    SIGTERM arrives meanwhile; the process ends by it only once close() has spooled every
    event (without the wait, the close would be cut short and the events lost).
    """
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes connections; nobody reads or answers
    bootstrap = f"127.0.0.1:{silent.getsockname()[1]}"
    spool = tmp_path / "spool"
    args = [sys.executable, str(CHILD), "record", bootstrap, "t", str(spool), str(N), "close"]
    proc = subprocess.Popen(
        [*args, "close", "3"],  # label "close", exit kind "close", flush_timeout_s 3
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "recorded", proc.communicate(timeout=60)
        assert proc.stdout.readline().strip() == "closing", proc.communicate(timeout=60)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        silent.close()
    assert proc.returncode == -signal.SIGTERM, err
    assert "closed" not in out  # the process ended as soon as close() was done
    assert len(spooled_records(spool)) == N, err
