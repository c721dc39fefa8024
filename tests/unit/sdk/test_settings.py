"""Settings: keyword arguments over TOKENLINE_* variables, every problem listed at once."""

from __future__ import annotations

import pytest

from tokenline.common.errors import ConfigError as CommonConfigError
from tokenline.sdk import TokenlineError
from tokenline.sdk._runtime import default_emitter
from tokenline.sdk._settings import load_settings, producer_config
from tokenline.sdk.emitters import BackgroundEmitter
from tokenline.sdk.errors import ConfigError

pytestmark = pytest.mark.unit


def test_every_problem_is_listed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOKENLINE_TENANT_ID", raising=False)
    with pytest.raises(ConfigError) as info:
        load_settings(compression="brotli", linger_ms=-1)
    problems = info.value.problems
    assert len(problems) == 2
    text = str(info.value)
    assert "TOKENLINE_COMPRESSION" in text
    assert "compression" in text
    assert "linger_ms" in text


def test_environment_is_read_and_keywords_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLINE_TENANT_ID", "from-env")
    monkeypatch.setenv("TOKENLINE_PROJECT", "env-project")
    monkeypatch.setenv("TOKENLINE_KAFKA_CONFIG", '{"socket.timeout.ms": "5000"}')
    settings = load_settings(project="kw-project", bootstrap_servers="127.0.0.1:9")
    assert settings.tenant_id == "from-env"
    assert settings.project == "kw-project"
    assert producer_config(settings)["socket.timeout.ms"] == "5000"


def test_producer_config_is_idempotent_acks_all_murmur2_and_passes_security_through() -> None:
    settings = load_settings(
        tenant_id="acme",
        bootstrap_servers="broker:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password="s3cret",
    )
    conf = producer_config(settings)
    assert conf["enable.idempotence"] is True
    assert conf["acks"] == "all"
    assert conf["partitioner"] == "murmur2_random"
    assert conf["sasl.password"] == "s3cret"
    assert conf["security.protocol"] == "SASL_SSL"
    assert "s3cret" not in repr(settings)


def test_producer_config_without_servers_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bootstrap_servers"):
        producer_config(load_settings(tenant_id="acme"))


def test_the_send_interval_reaches_the_background_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLINE_SEND_INTERVAL_MS", "250")
    settings = load_settings(bootstrap_servers="127.0.0.1:9", spool_enabled=False)

    emitter = default_emitter(settings)

    assert isinstance(emitter, BackgroundEmitter)
    assert emitter.poll_s == 0.25
    assert load_settings().send_interval_ms == 250
    with pytest.raises(ConfigError, match="send_interval_ms"):
        load_settings(send_interval_ms=0)


def test_unparsable_json_is_listed_with_the_rest_as_the_common_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOKENLINE_KAFKA_CONFIG", "{not json")
    with pytest.raises(CommonConfigError) as info:
        load_settings(linger_ms=-1, lingr_ms=5)
    problems = info.value.problems
    assert [p.split(" ")[0] for p in problems] == ["kafka_config:", "linger_ms:", "lingr_ms:"]
    assert problems[1].endswith("(keyword 'linger_ms' or TOKENLINE_LINGER_MS)")
    assert isinstance(info.value, TokenlineError)
    assert str(info.value).startswith("invalid Tokenline settings (3 problems):\n  - ")
