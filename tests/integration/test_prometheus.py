"""Every query of the pipeline-health dashboard, and every alert rule, on a real Prometheus.

A running processor and sink (their real commands) get traffic that exercises each panel: priced
events, an unknown model (unpriced), an undecodable raw record (the processor's dead letter) and
an undecodable priced record (the sink's). A private Prometheus (Debian's, on loopback) scrapes
both every second with the repository's alert rules; each dashboard query must return data and
each rule must evaluate without error.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from confluent_kafka import Producer

from tests._db import drop_database
from tokenline import sdk
from tokenline.dev._proc import free_port
from tokenline.dev.demo.prices import write_initial_prices
from tokenline.dev.demo.services import DemoPipeline, create_database

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "pipeline-health.json"
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
PRICED, UNKNOWN = 200, 5
RATE_WINDOW = "30s"  # Grafana's $__rate_interval, with a 1 s scrape interval


def _targets() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (f"{panel['title']}:{target['refId']}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


class Prometheus:
    """A private Prometheus server scraping ``targets`` every second."""

    def __init__(self, work: Path, targets: dict[str, int]) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus missing: deploy/local/setup.sh installs Debian's package"
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = work / "prometheus.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as answer:
            doc = json.loads(answer.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[Any]:
        result: list[Any] = self.api("query", query=expr)["result"]
        return result

    def wait(self, expr: str, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if self.query(expr):
                    return
            except OSError:
                pass  # not listening yet
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"no data for {expr}:\n{self.log.read_text()}"
            time.sleep(1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _traffic(pipeline: DemoPipeline, bootstrap: str, tmp_path: Path) -> None:
    sdk.configure(
        tenant_id="t-prom",
        bootstrap_servers=bootstrap,
        topic=pipeline.topic("raw"),
        spool_dir=tmp_path / "spool",
        detect_host=False,
        strict=True,
    )
    try:
        for _ in range(PRICED):
            sdk.record(provider="openai", model="gpt-4o-mini", input_tokens=10, output_tokens=2)
        for _ in range(UNKNOWN):
            sdk.record(provider="openai", model="no-such-model-xyz", input_tokens=10)
        assert sdk.flush(60) == 0
    finally:
        sdk.close(10)
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    producer.produce(pipeline.topic("raw"), key=b"t-prom", value=b"not avro")
    producer.produce(pipeline.topic("priced"), key=b"t-prom", value=b"not avro either")
    assert producer.flush(30) == 0


def _wait_rows(url: str, expected: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM usage_events").fetchone()
            if row and row[0] >= expected:
                return
            assert time.monotonic() < deadline, f"{row} rows after {timeout_s} s"
            time.sleep(0.5)


def test_every_dashboard_query_and_alert_rule_runs_on_real_metrics(
    kafka_bootstrap: str, database_url: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    name = f"prom_{run}"
    pipeline = DemoPipeline(
        bootstrap=kafka_bootstrap,
        database_url=create_database(database_url, name),
        prefix=f"prom-{run}.",
        work_dir=tmp_path,
        prices_file=write_initial_prices(tmp_path / "prices.yaml"),
    )
    pipeline.migrate()
    pipeline.create_topics()
    pipeline.start()
    prometheus = None
    try:
        prometheus = Prometheus(
            tmp_path,
            {
                "tokenline-processor": pipeline.metrics_port("processor"),
                "tokenline-sink": pipeline.metrics_port("sink"),
            },
        )
        prometheus.wait('up{job="tokenline-sink"} == 1')
        _traffic(pipeline, kafka_bootstrap, tmp_path)
        _wait_rows(pipeline.database_url, PRICED + UNKNOWN)
        prometheus.wait("tokenline_sink_dead_letters_total > 0")
        prometheus.wait(f"increase(tokenline_sink_freshness_seconds_count[{RATE_WINDOW}]) > 0")

        # Each query must return data; a series scraped for the first time a moment ago has
        # one sample, and rate() needs two, so each gets a bounded wait (not a timing check).
        pending = dict(_targets())
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for ref, expr in list(pending.items()):
                if prometheus.query(expr.replace("$__rate_interval", RATE_WINDOW)):
                    del pending[ref]
            time.sleep(1)
        assert not pending, "queries without data:\n" + "\n".join(
            f"{ref}: {expr}" for ref, expr in pending.items()
        )
        # Lag is known for every assigned partition, not only those that delivered a message.
        lags = prometheus.query("tokenline_processor_consumer_lag")
        assert sorted(int(s["metric"]["partition"]) for s in lags) == [0, 1, 2, 3]

        groups = prometheus.api("rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        written = yaml.safe_load(RULES.read_text())["groups"]
        assert sorted(rule["name"] for rule in rules) == sorted(
            rule["alert"] for group in written for rule in group["rules"]
        )  # every rule of the file loaded, each healthy
        for rule in rules:
            assert rule["health"] == "ok", rule
    finally:
        if prometheus is not None:
            prometheus.stop()
        pipeline.stop()
        drop_database(database_url, name)
