"""The schema registry setting needs the ``registry`` extra; without it, a ConfigError says so."""

from __future__ import annotations

import sys

import pytest

from tokenline import sdk

pytestmark = pytest.mark.unit


@pytest.fixture
def without_registry_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in an install without the extra: confluent_kafka.schema_registry cannot be imported."""
    monkeypatch.setitem(sys.modules, "confluent_kafka.schema_registry", None)
    for name in ("TOKENLINE_TENANT_ID", "TOKENLINE_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    sdk.close(0)


def test_wrap_names_the_extra_to_install(
    without_registry_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKENLINE_SCHEMA_REGISTRY_URL", "http://registry:8081")
    with pytest.raises(sdk.ConfigError) as info:
        sdk.wrap(object(), tenant_id="acme")
    assert "tokenline-sdk[registry]" in str(info.value)
    assert "TOKENLINE_SCHEMA_REGISTRY_URL" in str(info.value)


def test_configure_names_the_extra_to_install(without_registry_client: None) -> None:
    with pytest.raises(sdk.ConfigError, match=r"tokenline-sdk\[registry\]"):
        sdk.configure(
            tenant_id="acme", bootstrap_servers="127.0.0.1:9", schema_registry_url="mock://t"
        )


def test_with_the_extra_the_setting_is_accepted() -> None:
    settings = sdk.Settings(schema_registry_url="mock://tokenline-tests")
    assert settings.schema_registry_url == "mock://tokenline-tests"
