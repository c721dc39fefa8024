"""Operators' pricing overrides: a YAML file read into prices, tenant adjustments and maps.

Native shape (every section optional)::

    prices:                        # additions or effective-dated replacements
      - provider: openai
        model: gpt-4o              # exact id (normalized like events) or a glob: "gpt-4o*"
        valid_from: 2026-01-01     # date or aware datetime; default 2000-01-01
        unit: per_million          # per_million | per_1k | per_token
        input: "2.50"
        output: "10.00"
        cache_read: "1.25"         # optional, default = input
        cache_write: "3.125"       # or cache_write_5m / cache_write_1h
        reasoning: "10.00"         # optional, default = output rate
        batch_discount_percent: 50 # or batch: {input: ..., output: ...}
        long_context: {threshold_tokens: 200000, input: "5.00", output: "15.00"}
    tenants:
      acme: {discount_percent: 20}   # one term, from the beginning
      reseller: {markup_percent: 5}
      globex:                        # effective-dated terms, chosen by the event's occurred_at
        - effective_from: 2026-01-01 # date (midnight UTC) or aware datetime; absent: the beginning
          discount_percent: 10       # until the next term starts (no effective_to)
        - effective_from: 2026-07-01
          effective_to: 2027-01-01   # optional, exclusive; list price after it
          discount_percent: 15
    azure_deployments: {prod-gpt4o: gpt-4o}
    bedrock_inference_profiles:
      "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc":
        "anthropic.claude-3-5-sonnet-20241022-v2:0"

The token-trackr ``pricing.yaml`` shape is accepted too: top-level provider keys mapping a
model to ``input_per_1k`` / ``output_per_1k``, and ``tenant_overrides: {tenant:
{discount_percent: N}}``. Every problem of a file is reported at once (:class:`OverridesError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from tokenline.processor.pricing.entry import BucketPrices, LongContextTier, PriceEntry, to_decimal
from tokenline.processor.pricing.errors import OverridesError
from tokenline.processor.pricing.litellm import BASE_VALID_FROM
from tokenline.processor.pricing.normalize import Normalizer
from tokenline.processor.pricing.terms import TenantAdjustment, TenantTerms, Terms, term_problems

__all__ = ["Overrides", "load_overrides", "parse_overrides"]

PROVIDERS = ("openai", "azure_openai", "anthropic", "bedrock", "gemini", "vertex_ai", "other")
_UNIT_DIVISOR = {"per_token": Decimal(1), "per_1k": Decimal(1000), "per_million": Decimal(10**6)}


def _exact_decimal(value: object) -> object:
    """Floats (YAML ``0.003``) become Decimal through their shortest repr, never binary."""
    if isinstance(value, float | int | str) and not isinstance(value, bool):
        try:
            return to_decimal(value)
        except (TypeError, ValueError):
            return value
    return value


Money = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0)]
Percent = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0, le=100)]
Markup = Annotated[Decimal, BeforeValidator(_exact_decimal), Field(ge=0)]
ProviderName = Literal[
    "openai", "azure_openai", "anthropic", "bedrock", "gemini", "vertex_ai", "other"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Prices(_Strict):
    input: Money
    output: Money
    cache_read: Money | None = None
    cache_write: Money | None = None
    cache_write_5m: Money | None = None
    cache_write_1h: Money | None = None
    reasoning: Money | None = None


class _Tier(_Prices):
    threshold_tokens: int = Field(gt=0)


class _PriceRow(_Prices):
    provider: ProviderName
    model: str = Field(min_length=1)
    valid_from: date | datetime = BASE_VALID_FROM
    unit: Literal["per_token", "per_1k", "per_million"]
    batch_discount_percent: Percent | None = None
    batch: _Prices | None = None
    long_context: _Tier | None = None


class _Term(_Strict):
    effective_from: date | datetime | None = None
    effective_to: date | datetime | None = None
    discount_percent: Percent | None = None
    markup_percent: Markup | None = None


def _as_list(value: object) -> object:
    """A tenant given as one mapping (the undated form) is a list of one term."""
    return [value] if isinstance(value, dict) else value


_Terms = Annotated[list[_Term], BeforeValidator(_as_list), Field(min_length=1)]


class _TrackrPrice(_Strict):
    input_per_1k: Money
    output_per_1k: Money


class _File(_Strict):
    version: Literal[1] = 1
    prices: list[_PriceRow] = []
    tenants: dict[str, _Terms] = {}
    tenant_overrides: dict[str, _Terms] = {}
    azure_deployments: dict[str, str] = {}
    bedrock_inference_profiles: dict[str, str] = {}
    openai: dict[str, _TrackrPrice] = {}
    azure_openai: dict[str, _TrackrPrice] = {}
    anthropic: dict[str, _TrackrPrice] = {}
    bedrock: dict[str, _TrackrPrice] = {}
    gemini: dict[str, _TrackrPrice] = {}
    vertex_ai: dict[str, _TrackrPrice] = {}
    other: dict[str, _TrackrPrice] = {}


@dataclass(frozen=True)
class Overrides:
    """What an overrides file configures."""

    entries: tuple[PriceEntry, ...] = ()
    adjustments: dict[str, Terms] = field(default_factory=dict)
    """Per tenant: one term (a mapping in the file) or :class:`TenantTerms` (a list)."""
    azure_deployments: dict[str, str] = field(default_factory=dict)
    inference_profiles: dict[str, str] = field(default_factory=dict)

    def normalizer(self) -> Normalizer:
        """A normalizer with this file's Azure deployment and inference-profile maps."""
        return Normalizer(self.azure_deployments, self.inference_profiles)


def _per_token(value: Decimal | None, divisor: Decimal) -> Decimal | None:
    return None if value is None else value / divisor


def _bucket(prices: _Prices, divisor: Decimal) -> BucketPrices:
    input_price = prices.input / divisor
    write_5m = _per_token(
        prices.cache_write_5m if prices.cache_write_5m is not None else prices.cache_write, divisor
    )
    write_5m = input_price if write_5m is None else write_5m
    write_1h = _per_token(
        prices.cache_write_1h if prices.cache_write_1h is not None else prices.cache_write, divisor
    )
    cache_read = _per_token(prices.cache_read, divisor)
    return BucketPrices(
        input=input_price,
        output=prices.output / divisor,
        cache_read=input_price if cache_read is None else cache_read,
        cache_write_5m=write_5m,
        cache_write_1h=write_5m if write_1h is None else write_1h,
        reasoning=_per_token(prices.reasoning, divisor),
    )


def _valid_from(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _entry_model(provider: str, model: str, normalizer: Normalizer) -> str:
    if any(ch in model for ch in "*?["):
        return model
    return normalizer.normalize(provider, model).specific or model


def _problems(exc: ValidationError, raw: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        loc = list(err["loc"])
        if len(loc) >= 3 and loc[0] in _TENANT_SECTIONS and loc[2] == 0:
            section = raw.get(loc[0])
            if isinstance(section, dict) and isinstance(section.get(loc[1]), dict):
                del loc[2]  # a mapping is validated as a list of one term: name it as written
        if len(loc) >= 2 and loc[-1] in ("date", "datetime"):
            del loc[-1]  # which member of ``date | datetime`` failed says nothing to fix
        where = ".".join(str(p) for p in loc) or "(file)"
        if not any(line.startswith(f"{where}: ") for line in out):
            out.append(f"{where}: {err['msg']}")
    return out


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, except that an impossible date (``2026-13-01``) stays a string.

    PyYAML builds dates while parsing and raises a bare ValueError for one that cannot exist;
    left a string, it is reported by validation with its place in the file, with the rest.
    """


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)  # type: ignore[arg-type]
    except ValueError:
        return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def parse_overrides(text: str, source: str = "<overrides>") -> Overrides:
    """Parse an overrides document; raise :class:`OverridesError` listing every problem."""
    try:
        raw: Any = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        raise OverridesError(source, [f"not valid YAML: {exc}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise OverridesError(source, ["the file must be a mapping at the top level"])
    problems: list[str] = []
    try:
        doc = _File.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_problems(exc, raw))
        raise OverridesError(source, problems) from exc
    entries = [*_price_entries(doc, problems), *_trackr_entries(doc)]
    adjustments = _adjustments(doc, raw, problems)
    seen: set[tuple[str, str, datetime]] = set()
    for entry in entries:
        key = (entry.provider, entry.model, entry.valid_from)
        if key in seen:
            problems.append(f"price for {entry.entry_id} given twice")
        seen.add(key)
    if problems:
        raise OverridesError(source, problems)
    return Overrides(
        entries=tuple(entries),
        adjustments=adjustments,
        azure_deployments=dict(doc.azure_deployments),
        inference_profiles=dict(doc.bedrock_inference_profiles),
    )


def _price_entries(doc: _File, problems: list[str]) -> list[PriceEntry]:
    normalizer = Normalizer()
    entries: list[PriceEntry] = []
    for index, row in enumerate(doc.prices):
        if isinstance(row.valid_from, datetime) and row.valid_from.tzinfo is None:
            problems.append(f"prices.{index}.valid_from: must include a UTC offset")
            continue
        if row.batch is not None and row.batch_discount_percent is not None:
            problems.append(f"prices.{index}: give batch or batch_discount_percent, not both")
            continue
        divisor = _UNIT_DIVISOR[row.unit]
        model = _entry_model(row.provider, row.model, normalizer)
        valid_from = _valid_from(row.valid_from)
        tier = None
        if row.long_context is not None:
            tier_prices = _bucket(row.long_context, divisor)
            tier = LongContextTier(row.long_context.threshold_tokens, tier_prices)
        factor = None
        if row.batch_discount_percent is not None:
            factor = 1 - row.batch_discount_percent / 100
        entries.append(
            PriceEntry(
                entry_id=PriceEntry.make_id(row.provider, model, valid_from),
                provider=row.provider,
                model=model,
                valid_from=valid_from,
                prices=_bucket(row, divisor),
                long_context=tier,
                batch=None if row.batch is None else _bucket(row.batch, divisor),
                batch_factor=factor,
            )
        )
    return entries


def _trackr_entries(doc: _File) -> list[PriceEntry]:
    """Entries of the token-trackr shape: provider -> model -> input_per_1k / output_per_1k."""
    normalizer = Normalizer()
    entries = []
    for provider in PROVIDERS:
        for model_name, price in getattr(doc, provider).items():
            model = _entry_model(provider, model_name, normalizer)
            per_1k = _Prices(input=price.input_per_1k, output=price.output_per_1k)
            entries.append(
                PriceEntry(
                    entry_id=PriceEntry.make_id(provider, model, BASE_VALID_FROM),
                    provider=provider,
                    model=model,
                    valid_from=BASE_VALID_FROM,
                    prices=_bucket(per_1k, _UNIT_DIVISOR["per_1k"]),
                )
            )
    return entries


_TENANT_SECTIONS = ("tenants", "tenant_overrides")


def _adjustments(doc: _File, raw: dict[str, Any], problems: list[str]) -> dict[str, Terms]:
    """Each tenant's terms: a mapping in the file is one term, a list is :class:`TenantTerms`."""
    adjustments: dict[str, Terms] = {}
    seen: set[str] = set()
    for section in _TENANT_SECTIONS:
        for tenant, rows in getattr(doc, section).items():
            path = f"{section}.{tenant}"
            if tenant in seen:
                problems.append(f"{path}: tenant configured twice")
                continue
            seen.add(tenant)
            listed = isinstance(raw[section][tenant], list)
            terms = [
                _term(row, f"{path}.{i}" if listed else path, problems)
                for i, row in enumerate(rows)
            ]
            if any(t is None for t in terms):
                continue
            valid = [t for t in terms if t is not None]
            found = term_problems(valid)
            problems.extend(f"{path}: {p}" for p in found)
            if not found:
                adjustments[tenant] = TenantTerms.of(*valid) if listed else valid[0]
    return adjustments


def _term(row: _Term, path: str, problems: list[str]) -> TenantAdjustment | None:
    given = [v for v in (row.discount_percent, row.markup_percent) if v is not None]
    bad = len(problems)
    if len(given) != 1:
        problems.append(f"{path}: give exactly one of discount_percent, markup_percent")
    bounds = []
    for name in ("effective_from", "effective_to"):
        value = getattr(row, name)
        if isinstance(value, datetime) and value.tzinfo is None:
            problems.append(f"{path}.{name}: must include a UTC offset")
        bounds.append(None if value is None else _valid_from(value))
    if len(problems) > bad:
        return None
    if row.discount_percent is not None:
        return TenantAdjustment.discount(row.discount_percent, *bounds)
    return TenantAdjustment.markup(given[0], *bounds)


def load_overrides(path: Path | str) -> Overrides:
    """Read and parse an overrides YAML file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise OverridesError(str(file), [f"cannot read: {exc.strerror or exc}"]) from exc
    return parse_overrides(text, str(file))
