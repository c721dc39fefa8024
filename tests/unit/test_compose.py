"""docker-compose.yml describes the Kafka and TimescaleDB services the local stack mirrors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

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
