"""Typed, frozen settings of the processor (environment prefix ``TOKENLINE_``).

:func:`load_settings` validates everything at once and raises
:class:`~tokenline.common.errors.ConfigError` listing every problem, including unreadable
attribution-rule and overrides files.
"""

from __future__ import annotations

import socket
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from tokenline.common import settings as config
from tokenline.common.kafka_security import KafkaSecurity

__all__ = ["ProcessorSettings", "load_settings"]


class ProcessorSettings(config.ServiceSettings):
    """What the processor is configured with (Kafka's connection and logs: the base class)."""

    model_config = SettingsConfigDict(env_prefix="TOKENLINE_", frozen=True, extra="ignore")

    app_id: str = Field(default="tokenline-processor", min_length=1, pattern=r"^[\w.-]+$")
    raw_topic: str = "llm-usage.raw"
    priced_topic: str = "llm-usage.priced"
    rollup_topic: str = "llm-usage.rollup-1m"
    dlq_topic: str = "llm-usage.dlq"
    prices_topic: str = "llm-usage.prices"
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    create_topics: bool = True
    raw_retention_ms: int | None = Field(
        default=None,
        ge=-1,
        description="retention.ms of the raw topic when the processor creates it (-1: keep "
        "forever); None: the broker's default (often 7 days). Replay re-prices only what the "
        "raw topic still holds.",
    )
    window_seconds: int = Field(default=60, ge=1)
    window_grace_s: int = Field(default=600, ge=0, description="How long late events still count.")
    batch_max_events: int = Field(
        default=5_000, ge=1, description="Raw records priced and committed together at most."
    )
    batch_max_ms: int = Field(
        default=100, ge=1, le=10_000, description="How long a batch waits for more records."
    )
    dedupe_events: int = Field(
        default=200_000,
        ge=0,
        description="Recent event ids remembered so that a duplicate counts once in windows.",
    )
    session_timeout_ms: int = Field(
        default=15_000,
        ge=1_000,
        description="A worker gone this long (not restarted) loses its partitions to others.",
    )
    stuck_s: int = Field(
        default=120,
        ge=10,
        description="The worker exits (for its supervisor to restart it) after this long "
        "without progress in the raw topic's consumer.",
    )
    transaction_timeout_ms: int = Field(
        default=15_000,
        ge=1_000,
        description="A killed worker's open transaction is aborted by the broker after this.",
    )
    metrics_port: int = Field(default=9108, ge=0, le=65535, description="0 disables.")
    web_port: int = Field(default=6066, ge=1, le=65535)
    web_enabled: bool = False
    producer_linger_ms: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="How long the producer gathers records into a batch: fewer, larger writes.",
    )
    producer_compression: Literal["none", "gzip", "lz4", "zstd"] = "lz4"
    max_message_bytes: int = Field(
        default=1_000_000,
        ge=16_384,
        description="The largest record the raw topic's producer sends (its librdkafka "
        "message.max.bytes); a larger priced record is dead-lettered, a larger dead letter cut.",
    )
    data_dir: Path = Path("/tmp/tokenline-processor")  # noqa: S108 - Faust's state, not secrets
    prices_file: Path | None = Field(
        default=None,
        description="Initial prices: overrides YAML (merged over the snapshot) or JSON.",
    )
    attribution_file: Path | None = None
    max_tokens_per_bucket: int = Field(default=10_000_000, ge=1)
    max_future_s: int = Field(default=300, ge=0)
    max_age_s: int = Field(default=7 * 86_400, ge=1)
    mismatch_tolerance: Decimal = Field(default=Decimal("0.05"), ge=0)
    worker_name: str | None = Field(
        default=None,
        pattern=r"^[\w.-]+$",
        description=(
            "Unique per worker and stable across its restarts (default: the host name): its "
            "static group membership and its transactional id."
        ),
    )
    ready_max_lag: int = Field(
        default=1_000_000,
        ge=0,
        description="/readyz fails while the raw topic's lag (all assigned partitions) is above "
        "this; 0 leaves lag out of readiness.",
    )

    def topic(self, name: str) -> str:
        """The full name of a topic (with the prefix)."""
        return f"{self.topic_prefix}{name}"

    @property
    def worker_id(self) -> str:
        """This worker's name: ``worker_name``, else the host name."""
        return self.worker_name or socket.gethostname()

    @property
    def max_future(self) -> timedelta:
        """How far ahead of now an event may claim to have happened."""
        return timedelta(seconds=self.max_future_s)

    @property
    def max_age(self) -> timedelta:
        """How old an event may be."""
        return timedelta(seconds=self.max_age_s)


def _file_problems(settings: ProcessorSettings) -> list[str]:
    from tokenline.processor.enrich import RulesError, load_rules
    from tokenline.processor.pricebook import load_price_book
    from tokenline.processor.pricing import PricingError

    problems: list[str] = []
    if settings.attribution_file is not None:
        try:
            load_rules(settings.attribution_file)
        except RulesError as exc:
            problems.extend(f"TOKENLINE_ATTRIBUTION_FILE: {p}" for p in exc.problems)
    if settings.prices_file is not None:
        try:
            load_price_book(settings.prices_file)
        except PricingError as exc:
            problems.append(f"TOKENLINE_PRICES_FILE: {exc}")
    return problems


def load_settings(cli: dict[str, str] | None = None, **overrides: Any) -> ProcessorSettings:
    """Read settings from the environment, ``overrides`` (None ignored) on top; check files.

    Every problem is found in one pass (:func:`tokenline.common.settings.load`), each named
    by its ``TOKENLINE_*`` variable (and its option in ``cli``, field to option name).
    """
    return config.load_or_raise(
        ProcessorSettings,
        overrides,
        part="processor",
        checks=lambda s: KafkaSecurity.of(s).problems() + _file_problems(s),
        cli=cli,
    )
