"""Typed, frozen settings of the sink (environment prefix ``TOKENLINE_``).

``TOKENLINE_DATABASE_URL`` is the only one without a default. :func:`load_settings` validates
everything at once and raises :class:`~tokenline.sink.errors.SinkConfigError` listing every
problem.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(_SCHEMES):
            msg = "must be a PostgreSQL URL (postgresql://...)"
            raise ValueError(msg)
        return value

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
        return SinkSettings(**given)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise SinkConfigError(problems) from exc


def sqlalchemy_url(database_url: str) -> str:
    """Return ``database_url`` with SQLAlchemy's psycopg 3 driver name."""
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return "postgresql+psycopg://" + database_url.removeprefix(scheme)
    return database_url
