"""Typed, frozen settings of ``tokenline api`` (environment prefix ``TOKENLINE_``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tokenline.common import settings as config
from tokenline.common.kafka_security import KafkaSecurity
from tokenline.sink.settings import DatabaseSettings

__all__ = ["ApiSettings", "load_api_settings"]


class ApiSettings(DatabaseSettings):
    """What ``tokenline api`` is configured with."""

    api_host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on.")
    api_port: int = Field(default=8000, ge=1, le=65_535)
    api_db_pool_size: int = Field(default=8, ge=1, le=200)
    api_rate_limit_per_minute: int = Field(
        default=600, ge=1, description="Requests a key may make per minute (unless it has its own)."
    )
    api_cache_max_age_s: int = Field(
        default=60, ge=0, description="Cache-Control max-age of report responses."
    )
    api_report_cache_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a report result is reused for the same question (0: never).",
    )
    api_max_batch: int = Field(default=5_000, ge=1, le=100_000, description="Events per POST.")
    api_ingest_timeout_ms: int = Field(
        default=10_000, ge=100, description="How long an ingest waits for Kafka's acknowledgement."
    )

    # Kafka's connection, topic_prefix and logs: the base class (ServiceSettings)
    raw_topic: str = Field(default="llm-usage.raw", min_length=1)

    @property
    def raw_topic_name(self) -> str:
        """The raw topic with the prefix."""
        return f"{self.topic_prefix}{self.raw_topic}"


def _consistency(settings: ApiSettings) -> list[str]:
    return KafkaSecurity.of(settings).problems()


def load_api_settings(**overrides: Any) -> ApiSettings:
    """Read settings from the environment with ``overrides`` on top; list every problem."""
    return config.load_or_raise(
        ApiSettings,
        overrides,
        part="sink",
        placeholders={"database_url": "postgresql://placeholder/tokenline"},
        checks=_consistency,
        cli={"database_url": "--database-url", "api_port": "--port", "api_host": "--host"},
    )
