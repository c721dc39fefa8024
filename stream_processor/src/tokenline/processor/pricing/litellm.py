r"""The base price table: LiteLLM's public model price list, converted.

LiteLLM's ``model_prices_and_context_window.json`` maps its model keys to per-token USD
prices. :func:`convert` keeps the chat, responses and embedding models of the providers
Tokenline meters and turns each key into a :class:`PriceEntry` under the key's normalized
id (see ``normalize``). The shipped snapshot (``data/litellm_snapshot.json``) is that
conversion; regenerate it from a downloaded wheel with::

    pip download --no-deps litellm==<version> -d /tmp/litellm
    cd stream_processor/src/tokenline/processor/pricing/data
    tokenline prices refresh --source /tmp/litellm/litellm-<version>-*.whl \
        --output litellm_snapshot.json

Numbers are read with ``parse_float=Decimal``: no price is ever a float.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

from tokenline.processor.pricing.entry import (
    BucketPrices,
    LongContextTier,
    PriceEntry,
    batch_prices,
)
from tokenline.processor.pricing.errors import RefreshError
from tokenline.processor.pricing.normalize import (
    BEDROCK_REGION_PREFIXES,
    Normalizer,
    without_version,
)
from tokenline.processor.pricing.table import PriceTable

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "BASE_VALID_FROM",
    "LITELLM_PRICES_URL",
    "WHEEL_MEMBER",
    "convert",
    "fetch_current",
    "load_snapshot",
    "read_source",
]

LITELLM_PRICES_URL = (
    "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
)
WHEEL_MEMBER = "litellm/model_prices_and_context_window_backup.json"
# LiteLLM's list has no dates: its prices apply from the start of metering.
BASE_VALID_FROM = datetime(2000, 1, 1, tzinfo=UTC)

# litellm_provider → Tokenline provider. Vertex AI's keys (``vertex_ai`` and every
# ``vertex_ai-*`` value: Gemini, Claude and the partner models Google bills) are Vertex AI's
# price list, never the Gemini API's: LiteLLM's ``custom_llm_provider="vertex_ai"`` accepts any
# ``vertex_ai*`` record and a Gemini API call none of them.
_PROVIDERS = {
    "openai": "openai",
    "azure": "azure_openai",
    "anthropic": "anthropic",
    "bedrock_converse": "bedrock",
    "bedrock": "bedrock",
    "gemini": "gemini",
    "vertex_ai": "vertex_ai",
}
_VERTEX_AI_PREFIX = "vertex_ai-"
_MODES = frozenset({"chat", "responses", "embedding", "completion"})
_TIER_KEY = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")
_KEY_PREFIX = re.compile(r"^[a-z_]+/")
# Batch APIs bill half the on-demand price of every token (OpenAI Batch API, Azure Global
# Batch, Anthropic Message Batches, Bedrock batch inference, Gemini Batch Mode, Vertex AI
# batch inference), cache reads and writes included where a caching multiplier stacks with
# the batch discount; on Vertex AI it does not (see ``entry.batch_prices``).
_BATCH_DISCOUNT = Decimal("0.5")


def _price(record: dict[str, Any], key: str) -> Decimal | None:
    value = record.get(key)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return None


def _bucket_prices(
    record: dict[str, Any], suffix: str, fallback: BucketPrices | None
) -> BucketPrices | None:
    """Prices of the keys ending in ``suffix`` (``""``, ``_above_200k_tokens``, ``_batches``)."""
    input_price = _price(record, f"input_cost_per_token{suffix}")
    if input_price is None:
        return None
    output = _price(record, f"output_cost_per_token{suffix}")
    if output is None:
        output = fallback.output if fallback else Decimal(0)

    def pick(key: str, default: Decimal, inherited: Decimal | None) -> Decimal:
        # A bucket the map prices only on the base keys takes ``fallback``'s price; one it
        # never prices is billed at the input (write) price of these keys, as LiteLLM does.
        found = _price(record, f"{key}{suffix}")
        if found is not None:
            return found
        return inherited if inherited is not None and _price(record, key) is not None else default

    cache_read = pick(
        "cache_read_input_token_cost", input_price, fallback.cache_read if fallback else None
    )
    write_5m = pick(
        "cache_creation_input_token_cost",
        input_price,
        fallback.cache_write_5m if fallback else None,
    )
    write_1h = pick(
        "cache_creation_input_token_cost_above_1hr",
        write_5m,
        fallback.cache_write_1h if fallback else None,
    )
    reasoning = _price(record, f"output_cost_per_reasoning_token{suffix}")
    if reasoning is None and fallback is not None:
        reasoning = fallback.reasoning
    return BucketPrices(input_price, output, cache_read, write_5m, write_1h, reasoning)


def _entry(
    provider: str, model: str, region: str | None, record: dict[str, Any]
) -> PriceEntry | None:
    base = _bucket_prices(record, "", None)
    if base is None:
        return None
    batch_fallback = batch_prices(provider, model, base, _BATCH_DISCOUNT)
    batch = _bucket_prices(record, "_batches", batch_fallback) or batch_fallback
    tier = None
    thresholds = sorted(int(m[1]) for k in record if (m := _TIER_KEY.match(k)))
    if thresholds:
        suffix = f"_above_{thresholds[0]}k_tokens"
        tier_prices = _bucket_prices(record, suffix, base)
        if tier_prices is not None:
            tier = LongContextTier(
                threshold_tokens=thresholds[0] * 1000,
                prices=tier_prices,
                batch=_bucket_prices(
                    record,
                    f"{suffix}_batches",
                    batch_prices(provider, model, tier_prices, _BATCH_DISCOUNT),
                ),
            )
    return PriceEntry(
        entry_id=PriceEntry.make_id(provider, model, BASE_VALID_FROM, region),
        provider=provider,
        model=model,
        valid_from=BASE_VALID_FROM,
        prices=base,
        long_context=tier,
        batch=batch,
        region=region,
    )


_Slot = tuple[str, str | None, str]  # provider, region, model


def _provider(litellm_provider: str) -> str | None:
    if litellm_provider.startswith(_VERTEX_AI_PREFIX):
        return "vertex_ai"
    return _PROVIDERS.get(litellm_provider)


def convert(prices: dict[str, Any], *, source: str, retrieved: date | None = None) -> PriceTable:
    """Convert LiteLLM's price document (numbers already Decimal) into a price table.

    Keys resolve as LiteLLM resolves a model name: when several keys give the same
    provider, region and id, the provider-prefixed key (``gemini/x``, ``bedrock/x``) wins
    over the bare one (``x``), as in LiteLLM's ``get_model_info``, then the key that needs
    the least rewriting, then the smaller key, so the result is deterministic. Bedrock
    versions (``-v1``, ``-v2:0``) of one model share an entry under the id without the
    version only where the map gives every version the same prices; else each version
    keeps its own. Region (``bedrock/eu-central-1/…``) and data-zone (``azure/eu/…``)
    keys become entries scoped to that region. A dated id whose undated canonical id has
    no key of its own also gives the canonical id an entry (the latest snapshot's
    prices), so undated names price too.
    """
    normalizer = Normalizer()
    chosen: dict[_Slot, tuple[tuple[int, int, str], PriceEntry, str]] = {}
    for key, record in prices.items():
        if not isinstance(record, dict):
            continue
        provider = _provider(str(record.get("litellm_provider")))
        if provider is None or record.get("mode") not in _MODES:
            continue
        normalized = normalizer.normalize(provider, key)
        model = normalized.specific
        if model is None or normalized.canonical is None or "/" in model:
            continue
        entry = _entry(provider, model, normalized.region, record)
        if entry is None:
            continue
        bare = key.lower().rsplit("/", 1)[-1]
        rewrites = 0 if bare == model else (1 if bare.endswith(model) else 2)
        rank = (0 if _KEY_PREFIX.match(key) else 1, rewrites, key)
        slot = (provider, normalized.region, model)
        if slot not in chosen or rank < chosen[slot][0]:
            chosen[slot] = (rank, entry, normalized.canonical)
    entries, canonical_of = _merge_versions(chosen)
    for (provider, region, model), canonical in _undated_targets(canonical_of, entries).items():
        template = entries[(provider, region, model)]
        entries[(provider, region, canonical)] = _moved(template, canonical)
    metadata = {
        "source": source,
        "retrieved": (retrieved or datetime.now(UTC).date()).isoformat(),
        "providers": sorted(set(_PROVIDERS.values())),
    }
    return PriceTable(_drop_duplicates(entries), metadata)


def _moved(entry: PriceEntry, model: str) -> PriceEntry:
    return replace(
        entry,
        entry_id=PriceEntry.make_id(entry.provider, model, entry.valid_from, entry.region),
        model=model,
    )


def _same_prices(a: PriceEntry, b: PriceEntry) -> bool:
    return (a.prices, a.long_context, a.batch, a.batch_factor) == (
        b.prices,
        b.long_context,
        b.batch,
        b.batch_factor,
    )


def _merge_versions(
    chosen: dict[_Slot, tuple[tuple[int, int, str], PriceEntry, str]],
) -> tuple[dict[_Slot, PriceEntry], dict[_Slot, str]]:
    """One entry per Bedrock model without its version where all its versions price alike."""
    groups: dict[_Slot, list[_Slot]] = {}
    for slot in chosen:
        provider, region, model = slot
        stripped = without_version(model) if provider == "bedrock" else model
        groups.setdefault((provider, region, stripped), []).append(slot)
    entries: dict[_Slot, PriceEntry] = {}
    canonical_of: dict[_Slot, str] = {}
    for target, members in groups.items():
        found = [chosen[slot][1] for slot in members]
        if all(_same_prices(found[0], other) for other in found[1:]):
            best = min(members, key=lambda slot: chosen[slot][0])
            entries[target] = _moved(chosen[best][1], target[2])
            canonical_of[target] = chosen[best][2]
            continue
        for slot in members:
            entries[slot] = chosen[slot][1]
            canonical_of[slot] = chosen[slot][2]
    return entries, canonical_of


def _undated_targets(
    canonical_of: dict[_Slot, str], entries: dict[_Slot, PriceEntry]
) -> dict[_Slot, str]:
    """For each canonical id without an entry, the latest dated id that names it."""
    latest: dict[_Slot, str] = {}
    for (provider, region, model), canonical in canonical_of.items():
        target = (provider, region, canonical)
        if canonical == model or _is_regional(model) or target in entries:
            continue
        if provider == "bedrock" and without_version(model) != model:
            continue  # a version priced apart names only itself
        if target not in latest or model > latest[target]:
            latest[target] = model
    return {(p, r, model): canonical for (p, r, canonical), model in latest.items()}


def _drop_duplicates(entries: dict[_Slot, PriceEntry]) -> list[PriceEntry]:
    """Drop a Bedrock entry that prices exactly as its more general one.

    A cross-region profile id (``us.x``) is kept only where its prices differ from ``x``'s,
    and a region's entry only where they differ from the base entry.
    """
    kept = []
    for (provider, region, model), entry in entries.items():
        general = None
        if _is_regional(model):
            general = entries.get((provider, region, model.partition(".")[2]))
        elif region is not None and provider == "bedrock":
            general = entries.get((provider, None, model))
        if general is not None and _same_prices(general, entry):
            continue
        kept.append(entry)
    return kept


def _is_regional(model: str) -> bool:
    region, dot, _ = model.partition(".")
    return bool(dot) and region in BEDROCK_REGION_PREFIXES


def read_source(path: Path) -> dict[str, Any]:
    """Read LiteLLM's price JSON from a file, or from inside a downloaded litellm wheel."""
    try:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                raw = wheel.read(WHEEL_MEMBER)
        else:
            raw = path.read_bytes()
        return _parse(raw)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise RefreshError(f"cannot read LiteLLM prices from {path}: {exc}") from exc


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw, parse_float=Decimal)
    except ValueError as exc:
        raise RefreshError(f"LiteLLM price list is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        msg = "LiteLLM price list is not a JSON object"
        raise RefreshError(msg)
    return doc


def fetch_current(url: str = LITELLM_PRICES_URL, *, timeout_s: float = 10.0) -> PriceTable:
    """Fetch LiteLLM's current price list over HTTPS and convert it."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout_s, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = f"cannot fetch LiteLLM prices from {url}: {reason}"
        raise RefreshError(msg) from exc
    return convert(_parse(response.content), source=url)


def load_snapshot() -> PriceTable:
    """The snapshot shipped with the package."""
    data = resources.files("tokenline.processor.pricing").joinpath("data/litellm_snapshot.json")
    return PriceTable.from_json(data.read_bytes())
