"""``tokenline alerts``: deliver budget alerts to webhooks (settings from TOKENLINE_*)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from tokenline.common.errors import ConfigError
from tokenline.common.ops.exits import CommandFailed, ExitCode

__all__ = ["alerts"]


@click.command()
@click.option("--check", is_flag=True, help="Validate the settings, report every problem, exit.")
def alerts(check: bool) -> None:
    """Send each alert of the alerts topic to every TOKENLINE_WEBHOOK_URLS webhook.

    JSON or Slack-style bodies (TOKENLINE_WEBHOOK_FORMAT), signed with HMAC-SHA256 under
    TOKENLINE_WEBHOOK_SECRET, retried with doubling backoff; an alert a webhook never took goes
    to the alerts dead-letter topic. Metrics on TOKENLINE_ALERTS_METRICS_PORT.
    """
    from tokenline.processor.budgets.delivery import Delivery
    from tokenline.processor.budgets.settings import load_budget_settings

    try:
        settings = load_budget_settings()
    except ConfigError as exc:
        raise CommandFailed(str(exc), ExitCode.CONFIG) from exc
    if not settings.webhook_urls:
        raise CommandFailed("TOKENLINE_WEBHOOK_URLS: no webhook to deliver to", ExitCode.CONFIG)
    delivery = Delivery(settings)
    if check:
        click.echo(f"settings ok: {delivery.info()}")
        delivery.close()
        return
    from tokenline.common.kafka_security import librdkafka_config
    from tokenline.common.ops.health import HealthServer
    from tokenline.common.ops.logs import configure_logging
    from tokenline.common.ops.preflight import check_kafka
    from tokenline.processor.budgets.publish import ensure_budget_topics

    configure_logging(settings.log_level, settings.log_format, "alerts")
    check_kafka(librdkafka_config(settings))
    ensure_budget_topics(settings)
    port = settings.alerts_metrics_port
    registry = delivery.metrics.registry
    http = HealthServer(delivery.health, registry, port).start() if port else None
    stop = threading.Event()

    def stopping(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    try:
        delivery.run(stop)
    finally:
        if http is not None:
            http.close()
