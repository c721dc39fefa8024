"""Settings of ``tokenline budgets`` and ``tokenline alerts``: the processor's, plus their own.

The Kafka connection, topic prefix and priced topic are the processor's (same
``TOKENLINE_*`` variables); the rest is added here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from tokenline.common import settings as config
from tokenline.common.kafka_security import KafkaSecurity
from tokenline.processor.budgets.clock import ClockName  # noqa: TC001 - pydantic reads it
from tokenline.processor.budgets.model import RateRule
from tokenline.processor.settings import ProcessorSettings
from tokenline.processor.topics import TopicSpec

__all__ = ["BudgetSettings", "budget_topic_specs", "load_budget_settings", "rate_rule"]

_COMPACT = {"cleanup.policy": "compact"}


class BudgetSettings(ProcessorSettings):
    """What the budget evaluator, the budgets CLI and the alert delivery read."""

    model_config = SettingsConfigDict(env_prefix="TOKENLINE_", frozen=True, extra="ignore")

    budgets_topic: str = "llm-usage.budgets"
    budget_status_topic: str = "llm-usage.budget-status"
    budget_state_topic: str = "llm-usage.budget-state"
    alerts_topic: str = "llm-usage.alerts"
    alerts_dlq_topic: str = "llm-usage.alerts-dlq"
    budgets_group: str = Field(default="tokenline-budgets", pattern=r"^[\w.-]+$")
    alerts_group: str = Field(default="tokenline-alerts", pattern=r"^[\w.-]+$")
    heartbeat_s: int = Field(
        default=5, ge=1, description="How often the evaluator says on the status topic it lives."
    )
    spend_rate_factor: Decimal = Field(
        default=Decimal(3),
        ge=0,
        description="Spend-rate alert: an hour at this many times the mean of the 24 before "
        "it (0 disables).",
    )
    spend_rate_min: Decimal = Field(
        default=Decimal(1), ge=0, description="...and at least this much spend in the hour."
    )
    budgets_clock: ClockName = Field(
        default="wall",
        description="What now is for the evaluator: wall (the system clock) or events (the "
        "latest event time read: periods roll over when the stream reaches the boundary; for "
        "a recorded or simulated stream).",
    )
    budget_retention_days: int = Field(
        default=35,
        ge=1,
        description="The evaluator forgets periods that ended this long ago (checked hourly); "
        "an event of such a period counts nothing.",
    )
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL holding the budgets table (the CLI only)."
    )
    webhook_urls: list[str] = Field(
        default_factory=list, description="Where `tokenline alerts` posts (JSON list)."
    )
    webhook_format: str = Field(default="json", pattern=r"^(json|slack)$")
    webhook_secret: SecretStr | None = Field(
        default=None, description="Key of the X-Tokenline-Signature HMAC-SHA256 of the body."
    )
    webhook_attempts: int = Field(default=5, ge=1, le=20)
    webhook_backoff_ms: int = Field(default=500, ge=1, description="Doubling from this.")
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    alerts_metrics_port: int = Field(default=9110, ge=0, le=65535, description="0 disables.")
    budgets_metrics_port: int = Field(default=9111, ge=0, le=65535, description="0 disables.")
    budgets_kill_at: str | None = Field(
        default=None,
        pattern=r"^(before_commit|after_commit):\d+$",
        description="Fault injection for tests: SIGKILL itself at that point of the Nth "
        "transaction that holds an alert.",
    )


def budget_topic_specs(settings: BudgetSettings, partitions: int) -> list[TopicSpec]:
    """The budget topics; the state topic has the priced topic's ``partitions``."""
    repl = settings.topic_replication
    return [
        TopicSpec(settings.topic(settings.budgets_topic), 1, repl, _COMPACT),
        TopicSpec(settings.topic(settings.budget_status_topic), 1, repl, _COMPACT),
        TopicSpec(settings.topic(settings.budget_state_topic), partitions, repl, _COMPACT),
        TopicSpec(settings.topic(settings.alerts_topic), 1, repl),
        TopicSpec(settings.topic(settings.alerts_dlq_topic), 1, repl),
    ]


def load_budget_settings(**overrides: Any) -> BudgetSettings:
    """Read the settings from the environment (``overrides`` on top); every problem at once."""
    return config.load_or_raise(
        BudgetSettings, overrides, part="processor", checks=lambda s: KafkaSecurity.of(s).problems()
    )


def rate_rule(settings: BudgetSettings) -> RateRule | None:
    """The spend-rate rule, or None when ``spend_rate_factor`` is 0."""
    if not settings.spend_rate_factor:
        return None
    return RateRule(settings.spend_rate_factor, settings.spend_rate_min)
