"""``tokenline processor``: validate the settings and run the stream processor worker."""

from __future__ import annotations

import sys

import click

from tokenline.processor.settings import ConfigError, load_settings

__all__ = ["processor"]


@click.command()
@click.option("--check", is_flag=True, help="Validate the settings, report every problem, exit.")
def processor(check: bool) -> None:
    """Run the stream processor (settings from TOKENLINE_* variables)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if check:
        click.echo(
            f"settings ok: {settings.bootstrap_servers}, topics "
            f"{settings.topic(settings.raw_topic)} -> {settings.topic(settings.priced_topic)}"
        )
        return
    from tokenline.processor.app import run_worker

    run_worker(settings)
