"""The operations plumbing every part shares (tokenline.common.ops), without services."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from tokenline.common.ops.health import Health, HealthServer
from tokenline.common.ops.logs import JsonFormatter
from tokenline.common.ops.metrics import new_registry
from tokenline.common.ops.preflight import safe_url
from tokenline.common.ops.ratelog import KafkaClientLog, RateLimitedLog
from tokenline.dev._proc import free_port

pytestmark = pytest.mark.unit


def test_json_lines_carry_extra_fields_and_the_traceback() -> None:
    formatter = JsonFormatter("sink")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "landed %d rows", (3,), exc_info=sys.exc_info()
        )
    record.batch = 7
    doc = json.loads(formatter.format(record))
    assert doc["message"] == "landed 3 rows"
    assert doc["level"] == "error"
    assert doc["part"] == "sink"
    assert doc["batch"] == 7
    assert "ValueError: boom" in doc["exc"]


def test_librdkafka_lines_are_rate_limited_by_facility(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    client = KafkaClientLog(RateLimitedLog(logging.getLogger("t.kafka"), clock=lambda: now[0]), "c")
    with caplog.at_level(logging.INFO, logger="t.kafka"):
        for i in range(600):  # a minute of FAIL lines, ten a second
            now[0] = i / 10
            client.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "refused")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0] == "Kafka c: FAIL [rdkafka#consumer-1] refused"
    assert lines[1].endswith("(299 more like it in the last 30 s)")


def test_safe_url_hides_the_password() -> None:
    assert safe_url("postgresql://u:secret@db:5432/x") == "postgresql://u@db:5432/x"


def test_readiness_needs_every_check_and_liveness_a_turning_loop() -> None:
    now = [0.0]
    health = Health(stall_after_s=60, clock=lambda: now[0])
    health.add_probe("kafka", lambda: None)
    health.report("partitions", ok=False, detail="waiting")
    assert health.ready() == (False, ["kafka: not checked yet", "partitions: waiting"])
    health.run_probes()
    health.report("partitions", ok=True, detail="2 assigned")
    assert health.ready() == (True, ["kafka: ok", "partitions: 2 assigned"])
    now[0] = 61.0
    assert health.alive() == (False, "stalled: the worker's loop has not turned for 61 s")
    assert not health.ready()[0]
    health.beat()
    assert health.alive() == (True, "alive")


def test_the_health_server_answers_probes_and_serves_metrics() -> None:
    registry = CollectorRegistry()
    Counter("demo_total", "A demo.", registry=registry).inc()
    health = Health()
    problem: list[str | None] = ["Kafka at x did not answer"]
    health.add_probe("kafka", lambda: problem[0])
    server = HealthServer(health, registry, free_port(), host="127.0.0.1", probe_every_s=0.05)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        health.run_probes()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/readyz", timeout=5)
        with refused.value as answer:
            assert answer.code == 503
            assert answer.read().decode() == "not ready\nkafka: Kafka at x did not answer\n"
        problem[0] = None
        health.run_probes()
        with urllib.request.urlopen(f"{base}/readyz", timeout=5) as answer:
            assert answer.read().decode() == "ready\nkafka: ok\n"
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as answer:
            assert answer.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
            assert "demo_total 1.0" in answer.read().decode()
    finally:
        server.close()


def test_every_registry_has_process_metrics_and_build_info() -> None:
    registry = new_registry("sink", "tokenline-sink")
    names = {metric.name for metric in registry.collect()}
    assert {"process_cpu_seconds", "python_info", "python_gc_objects_collected"} <= names
    assert registry.get_sample_value("process_cpu_seconds_total") is not None
    build = next(m for m in registry.collect() if m.name == "tokenline_build_info")
    (sample,) = build.samples
    assert sample.labels["part"] == "sink"
    assert sample.labels["version"] == "0.1.0"


def test_lag_of_every_assigned_partition_from_librdkafka_statistics() -> None:
    from tokenline.common.ops.kafkastats import assigned_lags

    def part(state: str, ls: int, app: int, nxt: int) -> dict[str, object]:
        return {"fetch_state": state, "ls_offset": ls, "app_offset": app, "next_offset": nxt}

    stats = {
        "topics": {
            "raw": {
                "partitions": {
                    "0": part("active", 120, 100, 130),  # delivered up to 99: 20 behind
                    "1": part("active", 7, -1001, 0),  # nothing delivered yet: all 7
                    "2": part("active", 0, -1001, 0),  # empty
                    "3": part("none", 50, -1001, -1001),  # not assigned here
                    "-1": part("none", -1001, -1001, 0),  # librdkafka's internal partition
                }
            }
        }
    }
    assert assigned_lags(json.dumps(stats), "raw") == {0: 20, 1: 7, 2: 0}
    assert assigned_lags(json.dumps(stats), "other") == {}
    assert assigned_lags("not json", "raw") == {}
