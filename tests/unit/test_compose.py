"""docker-compose.yml: the Kafka and TimescaleDB the local stack mirrors, and the whole pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from tests.unit.deploy._deploy import PROCESSOR_ENV, SINK_ENV, settings_kwargs
from tokenline.cli import main
from tokenline.processor.settings import ProcessorSettings
from tokenline.sink.api.settings import ApiSettings
from tokenline.sink.settings import SinkSettings

pytestmark = pytest.mark.unit

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _healthcheck(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def _volume_names(service: dict[str, Any]) -> set[str]:
    return {str(volume).split(":", 1)[0] for volume in service.get("volumes", [])}


def test_services_present(compose: dict[str, Any]) -> None:
    assert {"kafka", "timescaledb"} <= set(compose["services"])


def test_kafka_service(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert tag.startswith("3.9.")
    assert "9092:9092" in kafka["ports"]
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith("1@")
    assert env["KAFKA_NUM_PARTITIONS"] == "4"
    assert "localhost:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in _healthcheck(kafka)


def test_timescaledb_service(compose: dict[str, Any]) -> None:
    db = compose["services"]["timescaledb"]
    image, _, tag = db["image"].partition(":")
    assert image == "timescale/timescaledb"
    assert tag.endswith("-pg16")
    assert "5432:5432" in db["ports"]
    assert db["environment"]["POSTGRES_PASSWORD"]
    assert db["environment"]["POSTGRES_DB"] == "tokenline"
    assert "pg_isready" in _healthcheck(db)


def test_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name in ("kafka", "timescaledb"):
        used = _volume_names(compose["services"][name])
        assert used, f"{name} keeps no data volume"
        assert used <= declared, f"{name} uses undeclared volumes {used - declared}"


# ---------------------------------------------------------------- the whole pipeline

PIPELINE = ("migrate", "processor", "sink")
METRICS_PORTS = {"processor": 9108, "sink": 9109}


def _image_pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and bool(tag) and tag != "latest" and "/" not in tag


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service["depends_on"].items()}


def test_pipeline_services_present(compose: dict[str, Any]) -> None:
    assert {"migrate", "processor", "sink", "grafana"} <= set(compose["services"])


def test_every_image_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert _image_pinned(service["image"]), f"{name}: {service['image']} is not pinned"


def test_grafana_image(compose: dict[str, Any]) -> None:
    image, _, tag = compose["services"]["grafana"]["image"].partition(":")
    assert image == "grafana/grafana-oss"
    assert tag.split(".")[0].isdigit()


def test_pipeline_built_from_the_dockerfile(compose: dict[str, Any]) -> None:
    for name in PIPELINE:
        service = compose["services"][name]
        build = service["build"]
        dockerfile = COMPOSE.parent / build["context"] / build["dockerfile"]
        assert dockerfile.is_file(), name
        assert service["image"] == compose["services"]["migrate"]["image"], name


def test_commands(compose: dict[str, Any]) -> None:
    commands = {name: compose["services"][name]["command"] for name in PIPELINE}
    assert commands == {
        "migrate": ["sink", "migrate"],
        "processor": ["processor"],
        "sink": ["sink", "run"],
    }
    for name, command in commands.items():
        result = CliRunner().invoke(main, [*command, "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_start_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert _depends(services["migrate"]) == {"timescaledb": "service_healthy"}
    for name in ("processor", "sink"):
        assert _depends(services[name]) == {
            "kafka": "service_healthy",
            "migrate": "service_completed_successfully",
        }, name
    assert _depends(services["grafana"])["timescaledb"] == "service_healthy"
    # The one-shot job is not restarted after it succeeds.
    assert services["migrate"]["restart"] == "no"
    assert "healthcheck" not in services["migrate"]


def test_long_running_services_have_healthchecks(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name == "migrate":
            continue
        check = service["healthcheck"]
        assert check["test"], name
        assert {"interval", "timeout", "retries"} <= set(check), name
    for name, port in METRICS_PORTS.items():
        assert f"localhost:{port}/readyz" in _healthcheck(compose["services"][name])
    assert "/api/health" in _healthcheck(compose["services"]["grafana"])


def test_prometheus_scrapes_every_part_with_the_rules(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    mounts = {v.split(":")[1]: COMPOSE.parent / v.split(":")[0] for v in service["volumes"][:2]}
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text(encoding="utf-8"))
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]
    assert mounts["/etc/prometheus/rules.yml"].is_file()
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    for name, port in METRICS_PORTS.items():
        assert targets[f"tokenline-{name}"] == [f"{name}:{port}"]
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["TOKENLINE_PROMETHEUS_URL"] == "http://prometheus:9090"


def test_metrics_ports_published(compose: dict[str, Any]) -> None:
    for name, port in METRICS_PORTS.items():
        service = compose["services"][name]
        assert service["environment"]["TOKENLINE_METRICS_PORT"] == str(port)
        assert f"{port}:{port}" in service["ports"]


def test_pipeline_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in PIPELINE:
        env = services[name]["environment"]
        assert set(env) <= PROCESSOR_ENV | SINK_ENV, name
        assert env["TOKENLINE_BOOTSTRAP_SERVERS"] == "kafka:19092", name
        assert "@timescaledb:5432/" in env["TOKENLINE_DATABASE_URL"], name
        assert services[name]["read_only"] is True, name
        assert "/tmp" in services[name]["tmpfs"], name
    processor = ProcessorSettings.model_validate(
        settings_kwargs(services["processor"]["environment"])
    )
    assert processor.metrics_port == 9108
    sink = SinkSettings.model_validate(settings_kwargs(services["sink"]["environment"]))
    assert sink.storage == "timescaledb"
    # The migration and the sink write to the same database.
    assert (
        services["migrate"]["environment"]["TOKENLINE_DATABASE_URL"]
        == sink.database_url.get_secret_value()
    )


def test_api_service(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert api["command"] == ["api", "serve"]
    assert CliRunner().invoke(main, ["api", "serve", "--help"]).exit_code == 0
    assert _depends(api) == {
        "kafka": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    settings = ApiSettings.model_validate(settings_kwargs(api["environment"]))
    assert f"{settings.api_port}:{settings.api_port}" in api["ports"]
    assert f"localhost:{settings.api_port}/readyz" in _healthcheck(api)
    assert (
        settings.database_url
        == SinkSettings.model_validate(
            settings_kwargs(compose["services"]["sink"]["environment"])
        ).database_url
    )
    assert api["read_only"] is True


def test_grafana_provisioning_mounted(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {
        source: target.removesuffix(":ro")
        for source, _, target in (str(v).partition(":") for v in grafana["volumes"])
    }
    provisioning = mounts["./deploy/grafana/provisioning"]
    assert provisioning == "/etc/grafana/provisioning"
    dashboards = mounts["./deploy/grafana/dashboards"]
    provider = yaml.safe_load(
        (COMPOSE.parent / "deploy/grafana/provisioning/dashboards/tokenline.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == dashboards
    env = grafana["environment"]
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{dashboards}/overview.json"
    # The datasource reads its connection from these variables.
    datasource = (
        COMPOSE.parent / "deploy/grafana/provisioning/datasources/tokenline.yaml"
    ).read_text()
    for key in ("TOKENLINE_DB_HOST", "TOKENLINE_DB_NAME", "TOKENLINE_DB_USER"):
        assert "${" + key + "}" in datasource
        assert env[key], key
    assert (
        env["TOKENLINE_DB_PASSWORD"]
        == compose["services"]["timescaledb"]["environment"]["POSTGRES_PASSWORD"]
    )
    assert env["TOKENLINE_DB_HOST"] == "timescaledb:5432"


def test_all_named_volumes_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    named = {
        volume
        for service in compose["services"].values()
        for volume in _volume_names(service)
        if not volume.startswith((".", "/"))
    }
    assert named == declared
    assert "grafana-data" in declared


def _compose_spec_errors(path: Path) -> str:
    """Validate ``path`` against the compose-spec schema bundled with check-jsonschema."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run(
        [*command, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return "" if result.returncode == 0 else result.stdout + result.stderr


def test_compose_spec_valid() -> None:
    assert _compose_spec_errors(COMPOSE) == ""


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("condition: service_completed_successfully", "condition: service_finished"),
        ("start_period: 10s", "start_period: {seconds: 10}"),
        ("restart: unless-stopped", "restart_policy: unless-stopped"),
    ],
)
def test_compose_spec_rejects_a_broken_file(tmp_path: Path, good: str, bad: str) -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert good in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(good, bad, 1), encoding="utf-8")
    assert _compose_spec_errors(broken)
