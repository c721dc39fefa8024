"""``tokenline prices``: look up, validate and refresh the price table."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tokenline.common.ops.exits import CommandFailed, ExitCode
from tokenline.processor.pricing import (
    OverridesError,
    PricingError,
    convert,
    fetch_current,
    load_overrides,
    read_source,
)

if TYPE_CHECKING:
    from tokenline.processor.pricebook import PriceBook

__all__ = ["prices"]

_PROVIDERS = click.Choice(
    ["openai", "azure_openai", "anthropic", "bedrock", "gemini", "vertex_ai", "other"]
)


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def prices() -> None:
    """Show, validate and refresh model prices."""


@prices.command()
@click.argument("provider", type=_PROVIDERS)
@click.argument("model")
@click.option("--at", "at_text", help="ISO date or time (UTC if no offset); default now.")
@click.option("--overrides", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tenant", help="Also show this tenant's term (discount or markup) at that time.")
def show(
    provider: str, model: str, at_text: str | None, overrides: Path | None, tenant: str | None
) -> None:
    """Show the price of MODEL at PROVIDER valid at a date (per million tokens)."""
    try:
        book = _book(overrides)
    except PricingError as exc:
        raise click.ClickException(str(exc)) from exc
    at = _parse_at(at_text)
    normalized = book.normalizer.normalize(provider, model)
    if normalized.canonical is None:
        raise click.ClickException(f"{model}: {normalized.unpriced_reason}")
    for model_id in normalized.lookup_ids:
        entry = book.table.lookup(provider, model_id, at)
        if entry is None:
            continue
        click.echo(f"entry      {entry.entry_id}   (pricing version {book.pricing_version})")
        click.echo(f"canonical  {normalized.canonical}")
        if tenant is not None:
            click.echo(f"tenant     {tenant}: {_term_text(book, tenant, at)}")
        million = 10**6
        for name, value in entry.prices.to_dict().items():
            shown = "= output" if value is None else f"{entry.currency} {_per_m(value, million)}"
            click.echo(f"{name:<15}{shown} / 1M tokens")
        if entry.long_context is not None:
            tier = entry.long_context
            click.echo(
                f"long context above {tier.threshold_tokens} prompt tokens: input "
                f"{_per_m(str(tier.prices.input), million)}, output "
                f"{_per_m(str(tier.prices.output), million)} / 1M tokens"
            )
        return
    raise click.ClickException(f"no price for {provider}/{model} at {at.isoformat()}")


@prices.command()
@click.argument("provider", type=_PROVIDERS)
@click.option("--at", "at_text", help="ISO date or time (UTC if no offset); default now.")
@click.option("--overrides", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def models(provider: str, at_text: str | None, overrides: Path | None) -> None:
    """PROVIDER's models and their prices in force at a date, as JSON (per token)."""
    import json

    from tokenline.processor.pricing.catalog import model_prices

    try:
        book = _book(overrides)
    except PricingError as exc:
        raise click.ClickException(str(exc)) from exc
    found = model_prices(book.table, provider, _parse_at(at_text))
    click.echo(json.dumps({"pricing_version": book.pricing_version, "models": found}, indent=2))


def _term_text(book: PriceBook, tenant: str, at: datetime) -> str:
    terms = book.adjustments.get(tenant)
    term = None if terms is None else terms.at(at)
    if term is None:
        return "list price (no term at that time)"
    kind = "discount" if term.percent < 0 else "markup"
    since = "the beginning" if term.effective_from is None else term.effective_from.isoformat()
    until = "" if term.effective_to is None else f" until {term.effective_to.isoformat()}"
    return f"{abs(term.percent)} % {kind}, from {since}{until} (not in the prices shown)"


def _per_m(value: str, million: int) -> str:
    from decimal import Decimal

    return format((Decimal(value) * million).normalize(), "f")


@prices.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def validate(file: Path) -> None:
    """Validate an overrides YAML file and list every problem at once."""
    try:
        loaded = load_overrides(file)
    except OverridesError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(
        f"{file}: ok ({len(loaded.entries)} prices, {len(loaded.adjustments)} tenants, "
        f"{len(loaded.azure_deployments)} Azure deployments, "
        f"{len(loaded.inference_profiles)} inference profiles)"
    )


@prices.command()
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@click.option(
    "--source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A downloaded litellm wheel or price JSON instead of fetching over HTTPS.",
)
@click.option("--timeout", "timeout_s", type=float, default=10.0, show_default=True)
def refresh(output: Path | None, source: Path | None, timeout_s: float) -> None:
    """Fetch LiteLLM's current price list and convert it into a price table."""
    try:
        if source is None:
            table = fetch_current(timeout_s=timeout_s)
        else:
            table = convert(read_source(source), source=f"{source.name}:{_member(source)}")
    except PricingError as exc:
        raise click.ClickException(str(exc)) from exc
    text = table.to_json()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {len(table)} entries to {output} (version {table.pricing_version})")


def _member(source: Path) -> str:
    from tokenline.processor.pricing.litellm import WHEEL_MEMBER

    return WHEEL_MEMBER if source.suffix == ".whl" else source.name


@prices.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--bootstrap-servers", help="Kafka bootstrap servers [TOKENLINE_BOOTSTRAP_SERVERS].")
@click.option("--topic", help="Prices topic [TOKENLINE_TOPIC_PREFIX + TOKENLINE_PRICES_TOPIC].")
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True)
@click.option(
    "--base",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Price table JSON (from `prices refresh --output`) to merge FILE over, instead of "
    "the snapshot shipped with this version.",
)
@click.option(
    "--allow-empty",
    is_flag=True,
    help="Publish an overrides file without prices, terms or maps (the bare snapshot).",
)
def publish(
    *,
    file: Path,
    bootstrap_servers: str | None,
    topic: str | None,
    timeout_s: float,
    base: Path | None,
    allow_empty: bool,
) -> None:
    """Publish FILE to the compacted prices topic; every processor applies it live.

    FILE is an overrides YAML file (merged over the shipped snapshot, or over --base, with its
    tenant terms and model maps) or a JSON price-table document. The published document
    replaces the live one whole: overrides in force that FILE does not repeat are dropped.
    """
    from tokenline.common.errors import ConfigError
    from tokenline.common.kafka_security import librdkafka_config
    from tokenline.common.ops.logs import configure_logging
    from tokenline.common.ops.preflight import check_kafka
    from tokenline.processor.pricebook import load_price_book
    from tokenline.processor.publish import PublishError, publish_price_book
    from tokenline.processor.settings import load_settings

    problems: list[str] = []
    try:
        settings = load_settings(
            cli={"bootstrap_servers": "--bootstrap-servers"}, bootstrap_servers=bootstrap_servers
        )
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        book = load_price_book(file, base)
    except PricingError as exc:
        problems.append(f"{file}: {exc}")
    else:
        problems.extend(_empty_problem(file, allow_empty))
    if problems:
        raise CommandFailed(
            f"cannot publish ({len(problems)} problem{'s' if len(problems) > 1 else ''}):\n  "
            + "\n  ".join(problems),
            ExitCode.CONFIG,
        )
    configure_logging(settings.log_level, settings.log_format, "prices")
    check_kafka(
        librdkafka_config(settings),
        setting="--bootstrap-servers or TOKENLINE_BOOTSTRAP_SERVERS",
    )
    name = topic or settings.topic(settings.prices_topic)
    try:
        publish_price_book(book, settings, topic=name, timeout_s=timeout_s)
    except PublishError as exc:
        raise CommandFailed(str(exc), ExitCode.KAFKA) from exc
    click.echo(f"published {len(book.table)} entries (version {book.pricing_version}) to {name}")


def _empty_problem(file: Path, allow_empty: bool) -> list[str]:
    """An overrides file with nothing in it would silently drop every override in force."""
    if allow_empty or file.suffix == ".json":
        return []
    loaded = load_overrides(file)
    if (
        loaded.entries
        or loaded.adjustments
        or loaded.azure_deployments
        or loaded.inference_profiles
    ):
        return []
    return [
        f"{file}: holds no prices, tenant terms or model maps; publishing it would replace the "
        "live table by the bare snapshot and drop every override in force "
        "(--allow-empty to do that on purpose)"
    ]


def _book(file: Path | None) -> PriceBook:
    from tokenline.processor.pricebook import load_price_book

    return load_price_book(file)
