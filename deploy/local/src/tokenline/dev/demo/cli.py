"""``tokenline demo``: click glue over :func:`tokenline.dev.demo.run.run_demo`."""

from __future__ import annotations

from pathlib import Path

import click

from tokenline.dev._proc import ServiceError
from tokenline.dev.demo.run import DemoOptions, run_demo
from tokenline.dev.demo.services import PipelineError


@click.command(name="demo")
@click.option(
    "--rounds",
    type=click.IntRange(1, 10_000),
    default=40,
    show_default=True,
    help="Rounds of traffic (34 wrapped calls each, over three tenants).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Local stack state directory (default: $TOKENLINE_STACK_DIR or ~/.local/state/...).",
)
@click.option("--keep-stack", is_flag=True, help="Leave Kafka and PostgreSQL running afterwards.")
@click.option(
    "--bootstrap-servers",
    "--kafka",
    "bootstrap",
    metavar="HOST:PORT",
    help="Use this Kafka (with --database-url), as every other command names it.",
)
@click.option(
    "--database-url",
    metavar="URL",
    help="Use this PostgreSQL server (with --bootstrap-servers); the demo (re)creates its own "
    "database on it.",
)
def demo(
    rounds: int,
    state_dir: Path | None,
    keep_stack: bool,
    bootstrap: str | None,
    database_url: str | None,
) -> None:
    """Run the whole pipeline on the local stack: traffic, report, price correction, replay."""
    if (bootstrap is None) != (database_url is None):
        msg = "--bootstrap-servers and --database-url go together"
        raise click.UsageError(msg)
    services = (bootstrap, database_url) if bootstrap and database_url else None
    options = DemoOptions(
        rounds=rounds, state_dir=state_dir, keep_stack=keep_stack, services=services
    )
    try:
        run_demo(options)
    except (PipelineError, ServiceError) as exc:
        raise click.ClickException(str(exc)) from exc
