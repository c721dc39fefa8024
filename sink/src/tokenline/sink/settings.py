"""Typed, frozen settings of the sink (environment prefix ``TOKENLINE_``).

``TOKENLINE_DATABASE_URL`` is the only one without a default. :func:`load_settings` validates
everything at once and raises :class:`~tokenline.sink.errors.SinkConfigError` listing every
problem.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tokenline.schemas.kafka_security import KafkaSecurity, Mechanism, SecurityProtocol
from tokenline.sink.errors import SinkConfigError

__all__ = ["SinkSettings", "StorageChoice", "load_settings", "sqlalchemy_url"]

StorageChoice = Literal["auto", "timescaledb", "postgresql"]

_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class SinkSettings(BaseSettings):
    """What the sink's schema and workers are configured with."""

    model_config = SettingsConfigDict(env_prefix="TOKENLINE_", frozen=True, extra="ignore")

    database_url: SecretStr = Field(
        description="libpq URL of the database, e.g. postgresql://user:pw@host:5432/tokenline."
    )
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
    bootstrap_servers: str = Field(default="localhost:9092", min_length=1)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: Mechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    kafka_config: dict[str, str] = Field(default_factory=dict)
    """Other librdkafka properties for the confluent-kafka clients (``TOKENLINE_KAFKA_CONFIG``,
    JSON), e.g. ``{"ssl.endpoint.identification.algorithm": "none"}``."""
    group_id: str = Field(default="tokenline-sink", min_length=1, pattern=r"^[\w.-]+$")
    topic_prefix: str = Field(default="", pattern=r"^[\w.-]*$")
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
    db_connect_timeout_s: int = Field(default=5, ge=1)
    metrics_port: int = Field(default=9109, ge=0, le=65_535, description="0 disables.")
    worker_name: str | None = Field(
        default=None,
        pattern=r"^[\w.-]+$",
        description="Names this worker (client id, DLQ records) and makes its group membership "
        "static, so a restarted worker gets its partitions back without a rebalance wait.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(_SCHEMES):
            msg = "must be a PostgreSQL URL (postgresql://...)"
            raise ValueError(msg)
        return value

    def topic(self, name: str) -> str:
        """Return the full name of a topic (with the prefix)."""
        return f"{self.topic_prefix}{name}"

    @model_validator(mode="after")
    def _retry_bounds(self) -> SinkSettings:
        if self.retry_max_ms < self.retry_initial_ms:
            msg = (
                f"retry_max_ms ({self.retry_max_ms}) must be at least "
                f"retry_initial_ms ({self.retry_initial_ms})"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _retention_outlives_refresh(self) -> SinkSettings:
        # A refresh over dropped raw chunks would erase the aggregates of that range.
        if (
            self.raw_retention_days is not None
            and self.raw_retention_days <= self.refresh_lookback_days
        ):
            msg = (
                f"raw_retention_days ({self.raw_retention_days}) must exceed "
                f"refresh_lookback_days ({self.refresh_lookback_days}), or refreshes would "
                "erase aggregates of dropped raw data"
            )
            raise ValueError(msg)
        return self


def load_settings(**overrides: Any) -> SinkSettings:
    """Read settings from the environment, with ``overrides`` (None values ignored) on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        settings = SinkSettings(**given)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise SinkConfigError(problems) from exc
    problems = KafkaSecurity.of(settings).problems()
    if problems:
        raise SinkConfigError(problems)
    return settings


def sqlalchemy_url(database_url: str) -> str:
    """Return ``database_url`` with SQLAlchemy's psycopg 3 driver name."""
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return "postgresql+psycopg://" + database_url.removeprefix(scheme)
    return database_url
