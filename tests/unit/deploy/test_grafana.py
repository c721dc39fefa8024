"""deploy/grafana: provisioning files and dashboards fit together (their SQL runs in
tests/integration/sink/test_dashboards.py, the pipeline-health PromQL in
tests/integration/test_prometheus.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from tests.unit.deploy._deploy import DEPLOY

pytestmark = pytest.mark.unit

GRAFANA = DEPLOY / "grafana"
ALL_DASHBOARDS = {path.stem: path for path in sorted((GRAFANA / "dashboards").glob("*.json"))}
PROMETHEUS_DASHBOARDS = {"pipeline-health"}
#: The dashboards on the database (SQL); the others read Prometheus.
DASHBOARDS = {k: v for k, v in ALL_DASHBOARDS.items() if k not in PROMETHEUS_DASHBOARDS}
AGGREGATES = {"usage_15m", "usage_hourly", "usage_daily", "usage_monthly"}
# Raw rows only where the aggregates lack the column: reasons, error types, percentiles.
# Budgets by scope (project, team, user): columns no aggregate has.
RAW_PANELS = {
    "Unpriced calls by pricing reason",
    "Latency by model",
    "Errors by type",
    "Budgets: spend against budget per period",
}
RELATIONS = AGGREGATES | {"usage_events", "tenants", "tenant_daily_totals", "budgets"}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ALL_DASHBOARDS[name].read_text(encoding="utf-8"))
    return data


def _targets(dashboard: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(panel, target) for panel in dashboard["panels"] for target in panel["targets"]]


def _relations(sql: str) -> set[str]:
    # ``FROM unnest(array)`` reads an array's elements, not a relation.
    return set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_0-9]+)", sql)) - {"unnest"}


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    data = yaml.safe_load((GRAFANA / "provisioning/datasources/tokenline.yaml").read_text())
    (source,) = [s for s in data["datasources"] if s["uid"] == "tokenline-db"]
    assert isinstance(source, dict)
    return source


def test_every_dashboard() -> None:
    assert set(ALL_DASHBOARDS) == {"overview", "tenant-detail", "pipeline-health"}
    uids = {_load(name)["uid"] for name in ALL_DASHBOARDS}
    assert len(uids) == 3


def test_pipeline_health_reads_the_provisioned_prometheus() -> None:
    data = yaml.safe_load((GRAFANA / "provisioning/datasources/tokenline.yaml").read_text())
    (prometheus,) = [s for s in data["datasources"] if s["type"] == "prometheus"]
    ref = {"type": "prometheus", "uid": prometheus["uid"]}
    dashboard = _load("pipeline-health")
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel, target in _targets(dashboard):
        assert panel["datasource"] == target["datasource"] == ref, panel["title"]
        assert target["expr"].strip(), panel["title"]
        assert "rawSql" not in target


def test_datasource(datasource: dict[str, Any]) -> None:
    assert datasource["type"] == "grafana-postgresql-datasource"
    assert datasource["jsonData"]["timescaledb"] is True
    assert "password" in datasource["secureJsonData"]
    assert "password" not in datasource


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_use_the_provisioned_datasource(name: str, datasource: dict[str, Any]) -> None:
    dashboard = _load(name)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel, target in _targets(dashboard):
        for ref in (panel["datasource"], target["datasource"]):
            assert ref == {"type": datasource["type"], "uid": datasource["uid"]}, panel["title"]
        assert target["rawQuery"] is True
        assert target["rawSql"].strip(), panel["title"]
        assert target["format"] in {"table", "time_series"}
        if panel["type"] == "timeseries":
            assert re.search(r'AS "time"', target["rawSql"]), panel["title"]


@pytest.mark.parametrize("name", sorted(ALL_DASHBOARDS))
def test_panels_do_not_overlap(name: str) -> None:
    cells: set[tuple[int, int]] = set()
    for panel in _load(name)["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, panel["title"]
        cells |= mine


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_queries_read_the_aggregates(name: str) -> None:
    used: set[str] = set()
    for panel, target in _targets(_load(name)):
        relations = _relations(target["rawSql"])
        assert relations, panel["title"]
        assert relations <= RELATIONS, (panel["title"], relations - RELATIONS)
        if "usage_events" in relations:
            assert panel["title"] in RAW_PANELS, panel["title"]
        used |= relations
    assert used & AGGREGATES


def test_all_aggregates_are_shown() -> None:
    used = {
        relation
        for name in DASHBOARDS
        for _, target in _targets(_load(name))
        for relation in _relations(target["rawSql"])
    }
    assert used >= AGGREGATES


def test_tenant_detail() -> None:
    dashboard = _load("tenant-detail")
    (variable,) = dashboard["templating"]["list"]
    assert variable["name"] == "tenant"
    assert variable["type"] == "query"
    assert variable["multi"] is False
    # Every panel of the tenant dashboard is about that one tenant.
    for panel, target in _targets(dashboard):
        assert "'$tenant'" in target["rawSql"], panel["title"]
    titles = {panel["title"] for panel in dashboard["panels"]}
    for wanted in (
        "Cost by model",
        "Tokens by bucket",
        "Unpriced calls by pricing reason",
        "Latency",
        "Errors by model",
    ):
        assert wanted in titles, wanted


def test_overview_covers_all_tenants() -> None:
    dashboard = _load("overview")
    assert dashboard["templating"]["list"] == []
    for _, target in _targets(dashboard):
        assert "$tenant" not in target["rawSql"]


def test_dashboard_provider_loads_the_folder() -> None:
    data = yaml.safe_load((GRAFANA / "provisioning/dashboards/tokenline.yaml").read_text())
    (provider,) = data["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
