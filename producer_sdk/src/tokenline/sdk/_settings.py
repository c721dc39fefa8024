"""SDK settings: keyword arguments or ``TOKENLINE_*`` environment variables.

Components receive a ``Settings`` object and never read ``os.environ`` themselves. The
librdkafka configuration is built in one place, ``producer_config`` (the ``kafka_config``
setting is what it passes through); the HTTP transport's endpoint and headers in one place,
``ingest_config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from tokenline.common import settings as config
from tokenline.common.errors import ConfigError
from tokenline.common.kafka_security import KafkaSecurity

__all__ = [
    "IngestConfig",
    "Settings",
    "connection_config",
    "ingest_config",
    "load_settings",
    "producer_config",
]

_COMPRESSIONS = {"none", "gzip", "snappy", "lz4", "zstd"}


class Settings(config.KafkaClientSettings):
    """Everything the SDK can be told; validated once, frozen afterwards."""

    model_config = SettingsConfigDict(env_prefix="TOKENLINE_", frozen=True, extra="forbid")

    tenant_id: str | None = Field(default=None, min_length=1)
    """Default tenant; ``wrap(client, tenant_id=...)`` may give another per client."""
    project: str | None = None
    service_name: str | None = None

    bootstrap_servers: str | None = None
    topic: str = "llm-usage.raw"
    schema_registry_url: str | None = None
    # Kafka's security and kafka_config (other librdkafka properties): the base class

    transport: Literal["kafka", "http"] = "kafka"
    """``kafka``: produce to the raw topic. ``http``: send to the API's ``POST /v1/usage``
    where Kafka is out of reach (``ingest_url`` and ``ingest_key`` then required)."""
    ingest_url: str | None = None
    """The HTTP API's base URL, e.g. ``https://tokenline.example.com`` (transport ``http``)."""
    ingest_key: SecretStr | None = None
    """An API key with the ingest scope for this tenant (``tokenline api keys create``)."""
    ingest_batch_max: int = Field(default=500, ge=1, le=5_000)
    """Events per ``POST /v1/usage`` at most (the API takes 5,000 by default)."""
    ingest_timeout_ms: int = Field(default=15_000, ge=100)
    """How long one ``POST`` may take; the API itself waits up to 10 s for Kafka."""

    compression: str = "zstd"
    linger_ms: int = Field(default=20, ge=0, le=60_000)
    queue_max_messages: int = Field(default=100_000, ge=1)
    queue_max_kbytes: int = Field(default=65_536, ge=1)
    message_timeout_ms: int = Field(default=30_000, ge=1_000)
    send_interval_ms: int = Field(default=50, ge=1, le=10_000)
    """How often the background sender wakes to build, encode and hand over queued events.

    Each wake takes the GIL from whatever thread runs; waking less often keeps that off the
    callers' LLM calls (at 10 ms, about 200 µs added per call; at 50 ms, about 20 µs).
    ``flush()`` wakes it at once."""

    spool_dir: Path = Path.home() / ".cache" / "tokenline" / "spool"
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096)
    spool_enabled: bool = True

    detect_host: bool = True
    strict: bool = False
    """Re-raise the SDK's own errors instead of logging them (for tests only)."""
    flush_timeout_s: float = Field(default=5.0, ge=0)
    """At exit (or ``close()``): how long to wait for Kafka's acknowledgements before what is
    left goes to the spool."""
    handle_sigterm: bool = True
    """Run the exit path on SIGTERM (then end as SIGTERM would) when the application left
    SIGTERM at its default; Python's own default ends the process without running it."""
    max_tags: int = Field(default=32, ge=0, le=64)  # the processor refuses more than 64
    budget_limits: bool = False
    """Refuse calls over a hard budget limit (``BudgetExceeded``), following the budget-status
    topic in the background; fails open when the status is unknown or stale."""
    budget_status_topic: str = "llm-usage.budget-status"
    budget_stale_s: float = Field(default=30.0, gt=0)
    """Without an evaluator heartbeat for this long, hard limits fail open."""

    @field_validator("compression")
    @classmethod
    def _known_compression(cls, value: str) -> str:
        if value not in _COMPRESSIONS:
            msg = f"must be one of {sorted(_COMPRESSIONS)}"
            raise ValueError(msg)
        return value

    @field_validator("schema_registry_url")
    @classmethod
    def _registry_client_installed(cls, value: str | None) -> str | None:
        if value:
            try:
                import confluent_kafka.schema_registry  # noqa: F401
            except ImportError as exc:
                msg = f"needs the registry extra: pip install 'tokenline-sdk[registry]' ({exc})"
                raise ValueError(msg) from exc
        return value


def _hint(where: str) -> str:
    return f" (keyword {where!r} or TOKENLINE_{where.upper()})"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from ``overrides`` over the environment; every problem in one error.

    Each problem names the keyword and the environment variable (``linger_ms: ... (keyword
    'linger_ms' or TOKENLINE_LINGER_MS)``).
    """
    return config.load_or_raise(
        Settings,
        overrides,
        part="Tokenline",
        checks=lambda s: KafkaSecurity.of(s).problems() + _combination_problems(s),
        line=lambda where, message: (
            f"{where or 'settings'}: {message}" + (_hint(where) if where else "")
        ),
    )


def _combination_problems(settings: Settings) -> list[str]:
    """What is wrong with the settings taken together (each field being valid alone)."""
    if settings.transport != "http":
        return []
    problems = []
    url = settings.ingest_url
    if not url:
        problems.append(f"ingest_url: required when transport is http{_hint('ingest_url')}")
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                f"ingest_url: must be an http:// or https:// URL, not {url!r}{_hint('ingest_url')}"
            )
    if settings.ingest_key is None or not settings.ingest_key.get_secret_value().strip():
        problems.append(
            "ingest_key: required when transport is http, an API key with the ingest scope "
            f"(tokenline api keys create --tenant ID --scope ingest){_hint('ingest_key')}"
        )
    if settings.budget_limits and not settings.bootstrap_servers:
        problems.append(
            "budget_limits: follows the budget-status topic on Kafka, so it needs "
            f"bootstrap_servers even with transport http; or turn it off{_hint('budget_limits')}"
        )
    return problems


def connection_config(settings: Settings) -> dict[str, Any]:
    """Where Kafka is and how to reach it (no producer properties): for the SDK's consumer."""
    if not settings.bootstrap_servers:
        raise ConfigError(["bootstrap_servers: required for budget limits"])
    producer_only = {"acks", "linger.ms", "compression.type", "enable.idempotence"}
    conf = {"bootstrap.servers": settings.bootstrap_servers}
    conf.update(KafkaSecurity.of(settings).librdkafka())
    conf.update({k: v for k, v in settings.kafka_config.items() if k not in producer_only})
    return conf


def producer_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka producer configuration: idempotent, acks=all, batched, capped."""
    if not settings.bootstrap_servers:
        raise ConfigError(
            ["bootstrap_servers: required to send to Kafka (TOKENLINE_BOOTSTRAP_SERVERS)"]
        )
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"tokenline-sdk-{settings.service_name or 'app'}",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": settings.linger_ms,
        "compression.type": settings.compression,
        "queue.buffering.max.messages": settings.queue_max_messages,
        "queue.buffering.max.kbytes": settings.queue_max_kbytes,
        "message.timeout.ms": settings.message_timeout_ms,
        # Java, aiokafka and so Faust hash keys with murmur2: tenants land where Faust expects.
        "partitioner": "murmur2_random",
    }
    conf.update(KafkaSecurity.of(settings).librdkafka())
    conf.update(settings.kafka_config)
    return conf


@dataclass(frozen=True)
class IngestConfig:
    """Where the HTTP transport posts and with which headers (the key is in them)."""

    url: str
    headers: dict[str, str] = field(repr=False)
    timeout_s: float
    batch_max: int


def ingest_config(settings: Settings) -> IngestConfig:
    """The HTTP transport's endpoint (``<ingest_url>/v1/usage``), headers and limits."""
    problems = _combination_problems(settings.model_copy(update={"transport": "http"}))
    problems = [p for p in problems if not p.startswith("budget_limits")]
    if problems or settings.ingest_url is None or settings.ingest_key is None:
        raise ConfigError(problems)
    return IngestConfig(
        url=settings.ingest_url.rstrip("/") + "/v1/usage",
        headers={
            "Authorization": f"Bearer {settings.ingest_key.get_secret_value().strip()}",
            "Content-Type": "application/json",
            "User-Agent": f"tokenline-sdk-python ({settings.service_name or 'app'})",
        },
        timeout_s=settings.ingest_timeout_ms / 1000,
        batch_max=settings.ingest_batch_max,
    )
