"""Typed, frozen settings of the sink (environment prefix ``TOKENLINE_``).

``TOKENLINE_DATABASE_URL`` is the only one without a default. :func:`load_settings` validates
everything at once and raises :class:`~tokenline.common.errors.ConfigError` listing every
problem.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from tokenline.common import settings as config
from tokenline.common.kafka_security import KafkaSecurity

__all__ = ["SinkSettings", "StorageChoice", "load_settings", "sqlalchemy_url"]

StorageChoice = Literal["auto", "timescaledb", "postgresql"]

# libpq's URL schemes: psycopg connects with the URL as given (SQLAlchemy gets its driver name
# from sqlalchemy_url), so "postgresql+psycopg://" would pass here and fail at the first connect.
_SCHEMES = ("postgresql://", "postgres://")


class DatabaseSettings(config.ServiceSettings):
    """The database connection every process of the sink (workers, reports, API) is given."""

    model_config = SettingsConfigDict(env_prefix="TOKENLINE_", frozen=True, extra="ignore")

    database_url: SecretStr = Field(
        description="libpq URL of the database, e.g. postgresql://user:pw@host:5432/tokenline."
    )
    db_connect_timeout_s: int = Field(default=5, ge=1)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(_SCHEMES):
            msg = "must be a PostgreSQL URL (postgresql://...)"
            raise ValueError(msg)
        return value


class SinkSettings(DatabaseSettings):
    """What the sink's schema and workers are configured with."""

    storage: StorageChoice = Field(
        default="auto",
        description=(
            "auto: TimescaleDB when CREATE EXTENSION timescaledb works, else plain PostgreSQL; "
            "timescaledb: fail without it; postgresql: never use it."
        ),
    )
    compress_after_days: int = Field(
        default=7, ge=1, description="Age after which TimescaleDB chunks go to the columnstore."
    )
    refresh_lookback_days: int = Field(
        default=7,
        ge=1,
        description="How far back the refresh policies of usage_15m and usage_hourly look.",
    )
    raw_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Drop raw usage_events and usage_rollup_1m chunks older than this; None keeps.",
    )

    # ------------------------------------------------------------------ the worker
    # (Kafka's connection, topic_prefix and logs: the base class, ServiceSettings)
    group_id: str = Field(default="tokenline-sink", min_length=1, pattern=r"^[\w.-]+$")
    priced_topic: str = Field(default="llm-usage.priced", min_length=1)
    dlq_topic: str = Field(default="llm-usage.dlq", min_length=1)
    batch_max_rows: int = Field(default=5_000, ge=1, le=1_000_000)
    batch_max_ms: int = Field(default=500, ge=1, description="Longest wait to fill a batch.")
    max_message_bytes: int = Field(
        default=1_000_000,
        ge=16_384,
        description="The largest dead letter the sink produces (librdkafka message.max.bytes); "
        "a larger one is sent with its original value truncated.",
    )
    retry_initial_ms: int = Field(default=200, ge=1)
    retry_max_ms: int = Field(default=10_000, ge=1)
    session_timeout_ms: int = Field(default=45_000, ge=1_000, le=3_600_000)
    metrics_port: int = Field(default=9109, ge=0, le=65_535, description="0 disables.")
    worker_name: str | None = Field(
        default=None,
        pattern=r"^[\w.-]+$",
        description="Names this worker (client id, DLQ records) and makes its group membership "
        "static, so a restarted worker gets its partitions back without a rebalance wait.",
    )
    ready_max_lag: int = Field(
        default=1_000_000,
        ge=0,
        description="/readyz fails while the lag of the assigned partitions is above this; 0 "
        "leaves lag out of readiness.",
    )

    def topic(self, name: str) -> str:
        """Return the full name of a topic (with the prefix)."""
        return f"{self.topic_prefix}{name}"


def _consistency(settings: SinkSettings) -> list[str]:
    """Problems between fields (checked with the others, in the same pass)."""
    found = KafkaSecurity.of(settings).problems()
    if settings.retry_max_ms < settings.retry_initial_ms:
        found.append(
            f"TOKENLINE_RETRY_MAX_MS: {settings.retry_max_ms} must be at least "
            f"TOKENLINE_RETRY_INITIAL_MS ({settings.retry_initial_ms})"
        )
    # A refresh over dropped raw chunks would erase the aggregates of that range.
    if (
        settings.raw_retention_days is not None
        and settings.raw_retention_days <= settings.refresh_lookback_days
    ):
        found.append(
            f"TOKENLINE_RAW_RETENTION_DAYS: {settings.raw_retention_days} must exceed "
            f"TOKENLINE_REFRESH_LOOKBACK_DAYS ({settings.refresh_lookback_days}), or refreshes "
            "would erase aggregates of dropped raw data"
        )
    return found


_CLI = {"database_url": "--database-url", "metrics_port": "--metrics-port", "storage": "--storage"}


def load_settings(**overrides: Any) -> SinkSettings:
    """Read settings from the environment, with ``overrides`` (None values ignored) on top.

    Every problem is found in one pass, each named by its ``TOKENLINE_*`` variable.
    """
    return config.load_or_raise(
        SinkSettings,
        overrides,
        part="sink",
        placeholders={"database_url": "postgresql://placeholder/tokenline"},
        checks=_consistency,
        cli=_CLI,
    )


def sqlalchemy_url(database_url: str) -> str:
    """Return ``database_url`` with SQLAlchemy's psycopg 3 driver name."""
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return "postgresql+psycopg://" + database_url.removeprefix(scheme)
    return database_url
