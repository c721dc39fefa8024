"""Kafka security settings: one description, each client's dialect, problems listed."""

from __future__ import annotations

import ssl

import pytest

from tokenline.common.errors import ConfigError
from tokenline.common.kafka_security import KafkaSecurity, librdkafka_config
from tokenline.processor.settings import load_settings as processor_settings
from tokenline.sdk._settings import connection_config as sdk_connection
from tokenline.sdk._settings import load_settings as sdk_settings
from tokenline.sdk._settings import producer_config as sdk_producer
from tokenline.sink.settings import load_settings as sink_settings
from tokenline.sink.worker import consumer_config, producer_config

pytestmark = pytest.mark.unit

SASL_ENV = {
    "TOKENLINE_SECURITY_PROTOCOL": "SASL_SSL",
    "TOKENLINE_SASL_MECHANISM": "SCRAM-SHA-512",
    "TOKENLINE_SASL_USERNAME": "svc",
    "TOKENLINE_SASL_PASSWORD": "pw",
    "TOKENLINE_KAFKA_CONFIG": '{"client.rack": "use1-az1"}',
}


def test_plaintext_needs_nothing_and_adds_only_the_protocol() -> None:
    security = KafkaSecurity()
    assert security.problems() == []
    assert security.librdkafka() == {"security.protocol": "PLAINTEXT"}
    assert security.aiokafka() == {"security_protocol": "PLAINTEXT"}


def test_sasl_ssl_in_both_dialects() -> None:
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-256", "svc", "pw")
    assert security.librdkafka() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "svc",
        "sasl.password": "pw",
    }
    kwargs = security.aiokafka()
    assert isinstance(kwargs.pop("ssl_context"), ssl.SSLContext)
    assert kwargs == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw",
    }


def test_every_problem_is_named() -> None:
    assert len(KafkaSecurity("SASL_PLAINTEXT").problems()) == 2  # no username, no password
    assert KafkaSecurity("PLAINTEXT", username="svc").problems()[0].startswith("sasl_*")
    no_tls = KafkaSecurity("SASL_PLAINTEXT", username="u", password="p", ca_location="/ca.pem")
    assert [p.split(":")[0] for p in no_tls.problems()] == ["ssl_ca_location"]
    assert "ssl_ca_location" in KafkaSecurity("PLAINTEXT", ca_location="/ca.pem").problems()[0]


def test_the_sink_passes_security_to_both_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLINE_DATABASE_URL", "postgresql://db/x")
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    settings = sink_settings()
    for config in (consumer_config(settings), producer_config(settings)):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.password"] == "pw"
        assert config["client.rack"] == "use1-az1"
    assert "pw" not in repr(settings)


def test_the_sdk_passes_security_to_its_producer_and_consumer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    settings = sdk_settings(tenant_id="acme", bootstrap_servers="broker:9093")
    for config in (sdk_producer(settings), sdk_connection(settings)):
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert (config["sasl.username"], config["sasl.password"]) == ("svc", "pw")
        assert config["client.rack"] == "use1-az1"
    for name in SASL_ENV:
        monkeypatch.delenv(name)
    plain = sdk_producer(sdk_settings(tenant_id="acme", bootstrap_servers="broker:9092"))
    assert plain["security.protocol"] == "PLAINTEXT"
    assert not [key for key in plain if key.startswith(("sasl.", "ssl."))]


def test_the_processor_passes_security_to_faust(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SASL_ENV.items():
        monkeypatch.setenv(name, value)
    settings = processor_settings()
    assert librdkafka_config(settings)["sasl.username"] == "svc"
    credentials = KafkaSecurity.of(settings).faust()
    assert credentials.username == "svc"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.protocol.value == "SASL_SSL"
    assert KafkaSecurity().faust() is None


def test_a_half_configured_sasl_fails_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLINE_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TOKENLINE_DATABASE_URL", "postgresql://db/x")
    with pytest.raises(ConfigError) as processor_error:
        processor_settings()
    with pytest.raises(ConfigError) as sink_error:
        sink_settings()
    with pytest.raises(ConfigError) as sdk_error:
        sdk_settings(tenant_id="acme")
    for caught in (processor_error.value, sink_error.value, sdk_error.value):
        assert [p.split(":")[0] for p in caught.problems] == ["sasl_username", "sasl_password"]
