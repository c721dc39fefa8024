"""``tokenline dev``: bring the local Kafka + PostgreSQL stack up, down, or report on it."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import click

from tokenline.dev import kafka, stack
from tokenline.dev._proc import ServiceError

_STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State directory (default: $TOKENLINE_STACK_DIR or ~/.local/state/tokenline/stack).",
)


def _env_lines(info: stack.StackInfo) -> list[str]:
    return [
        f"export TOKENLINE_TEST_KAFKA_BOOTSTRAP={shlex.quote(info.kafka_bootstrap or '')}",
        f"export TOKENLINE_TEST_DATABASE_URL={shlex.quote(info.database_url or '')}",
    ]


def _describe(info: stack.StackInfo) -> list[str]:
    lines = [
        f"kafka:      {info.kafka_bootstrap}  (pid {info.kafka_pid})",
        f"postgres:   {info.database_url}  (pid {info.postgres_pid})",
        f"timescale:  {'active' if info.timescale else 'not available'}",
    ]
    if info.kafka:
        lines.append(f"kafka log:  {info.kafka.log_file}")
    if info.postgres:
        lines.append(f"pg log:     {info.postgres.log_file}")
    lines.append(f"state dir:  {info.state_dir}")
    return lines


@click.group(name="dev")
@click.option("-v", "--verbose", is_flag=True, help="Log what the stack does.")
def dev(verbose: bool) -> None:
    """Run a local Kafka broker and PostgreSQL for development and tests."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@dev.command()
@_STATE_DIR
@click.option("--env", "as_env", is_flag=True, help="Print shell export lines for the tests.")
def up(state_dir: Path | None, as_env: bool) -> None:
    """Start Kafka and PostgreSQL (reusing what already runs)."""
    try:
        info = stack.up(state_dir)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_env:
        click.echo("\n".join(_env_lines(info)))
        return
    click.echo("\n".join(_describe(info)))
    reused = f" (reused: {', '.join(info.reused)})" if info.reused else ""
    click.echo(f"ready in {info.elapsed:.1f} s{reused}")


@dev.command()
@_STATE_DIR
def down(state_dir: Path | None) -> None:
    """Stop Kafka and PostgreSQL and delete their data."""
    stack.down(state_dir)
    click.echo("stack stopped; data removed")


@dev.command()
@_STATE_DIR
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; exit 0 only if both run.")
def status(state_dir: Path | None, quiet: bool) -> None:
    """Show whether the stack's services run and answer (exit 1 when they do not)."""
    report = stack.status(state_dir)
    info = report.info
    if quiet:
        raise SystemExit(0 if report.running else 1)
    if info.kafka is None and info.postgres is None:
        click.echo(f"no stack recorded in {info.state_dir}")
        raise SystemExit(1)
    click.echo("\n".join(_describe(info)))
    click.echo(f"kafka running:    {report.kafka_running}")
    click.echo(f"postgres running: {report.postgres_running}")
    if not report.running:
        raise SystemExit(1)


@dev.command()
def jars() -> None:
    """Resolve the Kafka broker jars with Maven into the cache (once; later runs only check)."""
    try:
        libs = kafka.ensure_jars()
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"kafka jars: {libs}")
