"""``tokenline budgets``: manage budgets (database + compacted topic) and run the evaluator."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import click

from tokenline.common.errors import ConfigError
from tokenline.common.ops.exits import CommandFailed, ExitCode

if TYPE_CHECKING:
    from tokenline.processor.budgets.settings import BudgetSettings

__all__ = ["budgets"]

_DB_OPTION = click.option(
    "--database-url",
    envvar="TOKENLINE_DATABASE_URL",
    required=True,
    help="PostgreSQL with the sink's schema (TOKENLINE_DATABASE_URL).",
)


def _settings() -> BudgetSettings:
    from tokenline.processor.budgets.settings import load_budget_settings

    try:
        return load_budget_settings()
    except ConfigError as exc:
        raise CommandFailed(str(exc), ExitCode.CONFIG) from exc


@click.group()
def budgets() -> None:
    """Spending budgets per tenant, project, team or user, and their evaluator."""


@budgets.command("set")
@click.argument("budget_id")
@click.option("--tenant", required=True, help="The tenant (its timezone sets the periods).")
@click.option(
    "--scope",
    default="tenant",
    show_default=True,
    help="tenant, or project:NAME, team:NAME, user:ID.",
)
@click.option("--period", type=click.Choice(["day", "month"]), default="month", show_default=True)
@click.option("--amount", required=True, help="The budget, e.g. 1000.")
@click.option("--currency", default="USD", show_default=True)
@click.option(
    "--thresholds", default="50,80,100", show_default=True, help="Alert at these % of amount."
)
@click.option("--hard-limit", help="Refuse calls (SDKs that enforce it) at this spend.")
@_DB_OPTION
def set_budget(
    *,
    budget_id: str,
    tenant: str,
    scope: str,
    period: str,
    amount: str,
    currency: str,
    thresholds: str,
    hard_limit: str | None,
    database_url: str,
) -> None:
    """Create or change BUDGET_ID and publish it to the budgets topic."""
    from tokenline.processor.budgets import store
    from tokenline.processor.budgets.publish import PublishError, publish
    from tokenline.processor.budgets.validate import budget_row, parse_scope, parse_thresholds

    kind, value = parse_scope(scope)
    row, problems = budget_row(
        budget_id=budget_id,
        tenant_id=tenant,
        scope=kind,
        scope_value=value,
        period=period,
        amount=amount,
        currency=currency,
        thresholds_pct=parse_thresholds(thresholds),
        hard_limit=hard_limit,
    )
    if row is None:
        raise click.UsageError("\n".join(problems))
    settings = _settings()
    with store.connect(database_url) as conn:
        try:
            record = store.upsert(conn, row)
        except store.StoreError as exc:
            raise CommandFailed(str(exc), ExitCode.NOT_FOUND) from exc
    try:
        publish(settings, [record])
    except PublishError as exc:
        raise CommandFailed(f"{exc} (stored; `tokenline budgets publish` retries)") from exc
    click.echo(f"budget {budget_id} version {record['version']} stored and published")


@budgets.command("list")
@click.option("--tenant", help="Only this tenant's.")
@_DB_OPTION
def list_budgets(tenant: str | None, database_url: str) -> None:
    """The stored budgets."""
    from tokenline.processor.budgets import store

    with store.connect(database_url) as conn:
        rows = store.records(conn, tenant_id=tenant)
    for r in rows:
        scope = r["scope"] + (f":{r['scope_value']}" if r["scope_value"] else "")
        hard = f" hard {r['hard_limit']:f}" if r["hard_limit"] is not None else ""
        pcts = ",".join(str(p) for p in r["thresholds_pct"])
        click.echo(
            f"{r['budget_id']}\t{r['tenant_id']}\t{scope}\t{r['period']} ({r['timezone']})\t"
            f"{r['amount']:f} {r['currency']}\t{pcts}%{hard}\tv{r['version']}"
        )


@budgets.command("remove")
@click.argument("budget_id")
@_DB_OPTION
def remove_budget(budget_id: str, database_url: str) -> None:
    """Delete BUDGET_ID and publish its deletion."""
    from tokenline.processor.budgets import store
    from tokenline.processor.budgets.publish import PublishError, publish

    settings = _settings()
    with store.connect(database_url) as conn:
        if not store.delete(conn, budget_id):
            raise CommandFailed(f"no budget {budget_id!r}", ExitCode.NOT_FOUND)
    try:
        publish(settings, [], [budget_id])
    except PublishError as exc:
        raise CommandFailed(str(exc)) from exc
    click.echo(f"budget {budget_id} removed")


@budgets.command("publish")
@_DB_OPTION
def publish_budgets(database_url: str) -> None:
    """Publish every stored budget again (after a failed publish, or to a new cluster)."""
    from tokenline.processor.budgets import store
    from tokenline.processor.budgets.publish import PublishError, publish

    settings = _settings()
    with store.connect(database_url) as conn:
        rows = store.records(conn)
    try:
        publish(settings, rows)
    except PublishError as exc:
        raise CommandFailed(str(exc)) from exc
    click.echo(f"{len(rows)} budgets published")


@budgets.command("run")
def run() -> None:
    """Evaluate budgets from the priced topic until SIGTERM/SIGINT (settings: TOKENLINE_*)."""
    from tokenline.common.kafka_security import librdkafka_config
    from tokenline.common.ops.health import HealthServer
    from tokenline.common.ops.logs import configure_logging
    from tokenline.common.ops.preflight import check_kafka
    from tokenline.processor.budgets.evaluator import Evaluator
    from tokenline.processor.budgets.publish import PublishError, ensure_budget_topics

    settings = _settings()
    configure_logging(settings.log_level, settings.log_format, "budgets")
    check_kafka(librdkafka_config(settings))
    try:
        ensure_budget_topics(settings)
    except PublishError as exc:
        raise CommandFailed(str(exc), ExitCode.CONFIG) from exc
    stop = threading.Event()

    def stopping(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    evaluator = Evaluator(settings)
    port = settings.budgets_metrics_port
    http = (
        HealthServer(evaluator.health, evaluator.metrics.registry, port).start() if port else None
    )
    try:
        evaluator.run(stop)
    finally:
        if http is not None:
            http.close()
