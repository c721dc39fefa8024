"""The alert rules: valid for promtool, the same in compose and in the PrometheusRule, and on
metrics the parts export (they are evaluated against a running pipeline in
tests/integration/test_prometheus.py)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.unit.deploy._deploy import DEPLOY
from tokenline.processor.budgets.delivery import AlertMetrics
from tokenline.processor.metrics import Metrics
from tokenline.sink.metrics import SinkMetrics

pytestmark = pytest.mark.unit

RULES = DEPLOY / "prometheus" / "rules.yml"
PROMETHEUS_RULE = DEPLOY / "kubernetes" / "monitoring" / "prometheus-rule.yaml"


def _exported() -> set[str]:
    names: set[str] = set()
    for registry in (Metrics().registry, SinkMetrics().registry, AlertMetrics().registry):
        for metric in registry.collect():
            names.update(sample.name for sample in metric.samples)
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
            names.update(metric.name + s for s in suffixes.get(metric.type, ("",)))
    return names


def test_promtool_accepts_the_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: deploy/local/setup.sh installs Debian's prometheus"
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_prometheus_rule_holds_the_same_groups() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load(RULES.read_text(encoding="utf-8"))


def test_every_rule_reads_metrics_the_parts_export() -> None:
    exported = _exported() | {"up"}
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    alerts = {r["alert"]: r["expr"] for g in groups for r in g["rules"]}
    # Lag, dead letters, freshness and the unpriced rate, as the issue asks, and parts down.
    assert {
        "TokenlineProcessorLagHigh",
        "TokenlineSinkLagHigh",
        "TokenlineDeadLetters",
        "TokenlineFreshnessSlow",
        "TokenlineUnpricedRateHigh",
        "TokenlinePartDown",
    } <= set(alerts)
    for name, expr in alerts.items():
        used = set(re.findall(r"\b((?:tokenline|process|python)_[a-z_0-9]+|up)\b", expr))
        assert used, name
        assert used <= exported, (name, used - exported)
