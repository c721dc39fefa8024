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
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

from tokenline.processor.pricing.entry import BucketPrices, LongContextTier, PriceEntry
from tokenline.processor.pricing.errors import RefreshError
from tokenline.processor.pricing.normalize import BEDROCK_REGION_PREFIXES, Normalizer
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

# litellm_provider → (Tokenline provider, preference when two keys give the same id).
_PROVIDERS = {
    "openai": ("openai", 0),
    "azure": ("azure_openai", 0),
    "anthropic": ("anthropic", 0),
    "bedrock_converse": ("bedrock", 0),
    "bedrock": ("bedrock", 1),
    "gemini": ("gemini", 0),
    "vertex_ai-language-models": ("gemini", 1),
}
_MODES = frozenset({"chat", "responses", "embedding", "completion"})
_TIER_KEY = re.compile(r"^input_cost_per_token_above_(\d+)k_tokens$")


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

    def pick(key: str, default: Decimal) -> Decimal:
        found = _price(record, key)
        return found if found is not None else default

    cache_read = pick(
        f"cache_read_input_token_cost{suffix}", fallback.cache_read if fallback else input_price
    )
    write_5m = pick(
        f"cache_creation_input_token_cost{suffix}",
        fallback.cache_write_5m if fallback else input_price,
    )
    write_1h = pick(
        f"cache_creation_input_token_cost_above_1hr{suffix}",
        fallback.cache_write_1h if fallback else write_5m,
    )
    reasoning = _price(record, f"output_cost_per_reasoning_token{suffix}")
    if reasoning is None and fallback is not None:
        reasoning = fallback.reasoning
    return BucketPrices(input_price, output, cache_read, write_5m, write_1h, reasoning)


def _entry(provider: str, model: str, record: dict[str, Any]) -> PriceEntry | None:
    base = _bucket_prices(record, "", None)
    if base is None:
        return None
    tier = None
    thresholds = sorted(int(m[1]) for k in record if (m := _TIER_KEY.match(k)))
    if thresholds:
        suffix = f"_above_{thresholds[0]}k_tokens"
        tier_prices = _bucket_prices(record, suffix, base)
        if tier_prices is not None:
            tier = LongContextTier(
                threshold_tokens=thresholds[0] * 1000,
                prices=tier_prices,
                batch=_bucket_prices(record, f"{suffix}_batches", None),
            )
    return PriceEntry(
        entry_id=PriceEntry.make_id(provider, model, BASE_VALID_FROM),
        provider=provider,
        model=model,
        valid_from=BASE_VALID_FROM,
        prices=base,
        long_context=tier,
        batch=_bucket_prices(record, "_batches", _batch_fallback(record, base)),
    )


def _batch_fallback(record: dict[str, Any], base: BucketPrices) -> BucketPrices:
    """Batch prices LiteLLM leaves out: the base prices at the batch input discount."""
    batch_input = _price(record, "input_cost_per_token_batches")
    if batch_input is None or not base.input:
        return base
    return base.scaled(batch_input / base.input)


def convert(prices: dict[str, Any], *, source: str, retrieved: date | None = None) -> PriceTable:
    """Convert LiteLLM's price document (numbers already Decimal) into a price table.

    When several keys give the same provider and id (``gemini/x`` and Vertex's ``x``; a
    Bedrock id under ``bedrock`` and ``bedrock_converse``), the preferred LiteLLM provider
    wins (Gemini API over Vertex, Converse over Invoke), then the key that needs the least
    rewriting, then the smaller key, so the result is
    deterministic. A dated id whose undated canonical id has no key of its own also gives the
    canonical id an entry (the latest snapshot's prices), so undated names price too.
    """
    normalizer = Normalizer()
    chosen: dict[tuple[str, str], tuple[tuple[int, int, str], PriceEntry]] = {}
    canonical_of: dict[tuple[str, str], str] = {}
    for key, record in prices.items():
        if not isinstance(record, dict):
            continue
        mapping = _PROVIDERS.get(str(record.get("litellm_provider")))
        if mapping is None or record.get("mode") not in _MODES:
            continue
        provider, preference = mapping
        normalized = normalizer.normalize(provider, key)
        model = normalized.specific
        if model is None or normalized.canonical is None or "/" in model:
            continue
        entry = _entry(provider, model, record)
        if entry is None:
            continue
        rewrites = 0 if key.lower() == model else (1 if key.lower().endswith(model) else 2)
        rank = (preference, rewrites, key)
        slot = (provider, model)
        if slot not in chosen or rank < chosen[slot][0]:
            chosen[slot] = (rank, entry)
            canonical_of[slot] = normalized.canonical
    entries = {slot: entry for slot, (_, entry) in chosen.items()}
    latest: dict[tuple[str, str], str] = {}
    for (provider, model), canonical in canonical_of.items():
        target = (provider, canonical)
        if canonical == model or _is_regional(model) or target in chosen:
            continue
        if target not in latest or model > latest[target]:
            latest[target] = model
    for (provider, canonical), model in latest.items():
        template = entries[(provider, model)]
        entries[(provider, canonical)] = PriceEntry(
            entry_id=PriceEntry.make_id(provider, canonical, BASE_VALID_FROM),
            provider=provider,
            model=canonical,
            valid_from=BASE_VALID_FROM,
            prices=template.prices,
            long_context=template.long_context,
            batch=template.batch,
        )
    metadata = {
        "source": source,
        "retrieved": (retrieved or datetime.now(UTC).date()).isoformat(),
        "providers": sorted({p for p, _ in _PROVIDERS.values()}),
    }
    return PriceTable(_drop_regional_duplicates(entries), metadata)


def _drop_regional_duplicates(entries: dict[tuple[str, str], PriceEntry]) -> list[PriceEntry]:
    """Keep a regional Bedrock id (``us.x``) only where its prices differ from ``x``'s."""
    kept = []
    for (provider, model), entry in entries.items():
        _, _, rest = model.partition(".")
        plain = entries.get((provider, rest)) if _is_regional(model) else None
        if (
            plain is not None
            and plain.prices == entry.prices
            and plain.long_context == entry.long_context
            and plain.batch == entry.batch
        ):
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
