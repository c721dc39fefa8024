"""``tokenline processor``: validate the settings, check Kafka, run the stream processor."""

from __future__ import annotations

import click

from tokenline.common.errors import ConfigError
from tokenline.common.ops.exits import CommandFailed, ExitCode
from tokenline.processor.settings import load_settings

__all__ = ["processor"]


@click.command()
@click.option("--check", is_flag=True, help="Validate the settings, report every problem, exit.")
def processor(check: bool) -> None:
    """Run the stream processor (settings from TOKENLINE_* variables).

    At start it checks that Kafka answers (within 10 s) and exits with one line naming the
    address otherwise; exit codes as in the README's table (2 settings, 3 Kafka).
    """
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise CommandFailed(str(exc), ExitCode.CONFIG) from exc
    if check:
        click.echo(
            f"settings ok: {settings.bootstrap_servers}, topics "
            f"{settings.topic(settings.raw_topic)} -> {settings.topic(settings.priced_topic)}"
        )
        return
    from tokenline.common.kafka_security import librdkafka_config
    from tokenline.common.ops.logs import configure_logging
    from tokenline.common.ops.preflight import check_kafka
    from tokenline.processor.app import run_worker

    configure_logging(settings.log_level, settings.log_format, "processor")
    check_kafka(librdkafka_config(settings))
    run_worker(settings)
