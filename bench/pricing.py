"""Pricing benchmark: µs per event, uncached Decimal against the price book, beside LiteLLM.

    .venv/bin/python bench/pricing.py [--events 5000] [--repeat 9] [--seed 7]

The events are realistic and spread over many models: every chat, responses, completion and
embedding key of LiteLLM's price map for OpenAI, Azure (Global and data zones), Anthropic,
Bedrock (base and regional rates) and Gemini that both Tokenline and LiteLLM price, drawn
with a skew (a few models take most calls, as in production), with usage vectors that have
cache reads on ~40% of calls, 5-minute and 1-hour cache writes, reasoning tokens, batch
requests and long prompts over a tier's threshold; 20 tenants, some with a discount or a
markup, one with dated terms. Each side prices the same vectors with the same price map:

* ``price_event``: normalization, table lookup and the Decimal cost (80 digits, a quantize
  per bucket) for every event; what every event cost before the price book's caches;
* ``PriceBook.price``: cached normalization and lookup, integer arithmetic (warm caches, as
  after the first event of each model; a first pass with empty caches is printed too);
* LiteLLM ``cost_per_token`` (``LITELLM_LOCAL_MODEL_COST_MAP=True`` and the pinned wheel's
  own map as ``litellm.model_cost``, the map the shipped snapshot was converted from), called
  with the name, region and call type the oracle test uses and a prebuilt ``Usage`` object.

Printed: the median over ``repeat`` rounds (the implementations interleaved in each round,
the garbage collector paused while timing) of µs per event, and the ratios (the other's
time / the price book's). Both Tokenline paths must give equal results for every event.
The machine is shared: figures vary from run to run by 10-20%.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.factories import usage_event
from tokenline.processor.pricebook import PriceBook
from tokenline.processor.pricing import (
    Normalizer,
    TenantAdjustment,
    TenantTerms,
    Terms,
    load_snapshot,
    price_event,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

    from tokenline.processor.pricing import PriceTable
    from tokenline.schemas import UsageEvent

# litellm_provider → (Tokenline provider, LiteLLM's custom_llm_provider for the call)
PROVIDERS = {
    "openai": ("openai", "openai"),
    "azure": ("azure_openai", "azure"),
    "anthropic": ("anthropic", "anthropic"),
    "bedrock": ("bedrock", "bedrock"),
    "bedrock_converse": ("bedrock", "bedrock"),
    "gemini": ("gemini", "gemini"),
}
MODES = frozenset({"chat", "responses", "embedding", "completion"})
AZURE_ZONES = ("global-standard", "global", "us-gov", "apac", "eu", "us")
AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


@dataclass(frozen=True)
class Model:
    """One model as an SDK reports it, and as LiteLLM is called for it."""

    provider: str
    litellm_provider: str
    name: str
    region: str | None
    embedding: bool
    threshold: int | None  # the long-context threshold in prompt tokens, if any


def _litellm() -> ModuleType:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    raw = resources.files("litellm").joinpath("model_prices_and_context_window_backup.json")
    litellm.model_cost = json.loads(raw.read_bytes())
    return litellm


def _models(price_map: dict[str, Any], table: PriceTable) -> list[Model]:
    normalizer = Normalizer()
    models = []
    for key, record in price_map.items():
        if not isinstance(record, dict) or record.get("mode") not in MODES:
            continue
        mapping = PROVIDERS.get(str(record.get("litellm_provider")))
        if mapping is None or record.get("input_cost_per_token") is None:
            continue
        provider, litellm_provider = mapping
        name = key.split("/", 1)[1] if key.startswith(f"{record['litellm_provider']}/") else key
        region = None
        if provider == "azure_openai":
            zone, slash, rest = name.partition("/")
            if slash and zone in AZURE_ZONES:
                name, region = rest, zone
        if provider == "bedrock" and name.count("/") == 1 and name.split("/")[0][-1].isdigit():
            region, name = name.split("/")
        if "/" in name:
            continue
        normalized = normalizer.normalize(provider, name, region)
        if not any(table.lookup(provider, i, AT, normalized.region) for i in normalized.lookup_ids):
            continue
        thresholds = sorted(
            int(k.removeprefix("input_cost_per_token_above_").removesuffix("k_tokens")) * 1000
            for k in record
            if k.startswith("input_cost_per_token_above_") and k.endswith("k_tokens")
        )
        embedding = record.get("mode") == "embedding"
        threshold = thresholds[0] if thresholds else None
        models.append(Model(provider, litellm_provider, name, region, embedding, threshold))
    return sorted(set(models), key=lambda m: (m.provider, m.name, m.region or ""))


def _usage(rng: random.Random, model: Model) -> dict[str, Any]:
    """A usage vector shaped like production traffic for ``model``."""
    counts = dict.fromkeys(("input", "read", "w5", "w1", "output", "reasoning"), 0)
    counts["input"] = int(rng.lognormvariate(7.2, 1.0)) + 1
    if not model.embedding:
        counts["output"] = int(rng.lognormvariate(5.5, 0.9)) + 1
        if rng.random() < 0.4:
            counts["read"] = int(rng.lognormvariate(8.0, 1.0))
        if rng.random() < 0.15:
            counts["w5"] = int(rng.lognormvariate(7.0, 1.0))
            if model.provider in ("anthropic", "bedrock") and rng.random() < 0.3:
                counts["w1"] = int(rng.lognormvariate(7.0, 1.0))
        if rng.random() < 0.2:
            counts["reasoning"] = int(rng.lognormvariate(6.5, 1.0))
        if model.threshold is not None and rng.random() < 0.05:
            counts["input"] = model.threshold + rng.randrange(1, 50_000)
    return counts


def _event(model: Model, counts: dict[str, int], tenant: str, batch: bool) -> UsageEvent:
    return usage_event(
        provider=model.provider,
        request_model=model.name,
        response_model=None if model.provider == "bedrock" else model.name,
        region=model.region,
        tenant_id=tenant,
        batch=batch,
        occurred_at=AT + timedelta(seconds=counts["input"] % 3600),
        usage={
            "input_tokens": counts["input"],
            "cache_read_input_tokens": counts["read"],
            "cache_write_input_tokens": counts["w5"] + counts["w1"],
            "cache_write_5m_input_tokens": counts["w5"],
            "cache_write_1h_input_tokens": counts["w1"],
            "output_tokens": counts["output"],
            "reasoning_tokens": counts["reasoning"],
            "provider_total_tokens": None,
            "mismatch": None,
        },
    )


def _litellm_call(model: Model, counts: dict[str, int], batch: bool) -> dict[str, Any]:
    """The arguments of LiteLLM's ``cost_per_token`` for one vector (built before timing)."""
    from litellm.types.utils import (
        CacheCreationTokenDetails,
        CompletionTokensDetailsWrapper,
        PromptTokensDetailsWrapper,
        Usage,
    )

    prompt = counts["input"] + counts["read"] + counts["w5"] + counts["w1"]
    completion = counts["output"] + counts["reasoning"]
    usage = Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetailsWrapper(
            cached_tokens=counts["read"],
            cache_creation_tokens=counts["w5"] + counts["w1"],
            cache_creation_token_details=CacheCreationTokenDetails(
                ephemeral_5m_input_tokens=counts["w5"], ephemeral_1h_input_tokens=counts["w1"]
            ),
        ),
        completion_tokens_details=CompletionTokensDetailsWrapper(
            reasoning_tokens=counts["reasoning"]
        ),
    )
    kwargs: dict[str, Any] = {
        "model": model.name,
        "custom_llm_provider": model.litellm_provider,
        "usage_object": usage,
    }
    if model.region is not None and model.provider == "bedrock":
        kwargs["region_name"] = model.region
    if model.region is not None and model.provider == "azure_openai":
        kwargs["model"] = f"{model.region}/{model.name}"
    if batch:
        kwargs["call_type"] = "retrieve_batch"
    return kwargs


def _terms() -> dict[str, Terms]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return {
        "tenant-00": TenantAdjustment(Decimal(-20)),
        "tenant-01": TenantAdjustment(Decimal("-12.5")),
        "tenant-02": TenantAdjustment(Decimal(5)),
        "tenant-03": TenantTerms.of(
            TenantAdjustment(Decimal(-10), start, datetime(2026, 7, 1, tzinfo=UTC)),
            TenantAdjustment(Decimal(-15), datetime(2026, 7, 1, tzinfo=UTC)),
        ),
    }


def _time(fn: Callable[[], object]) -> float:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    litellm = _litellm()
    table = load_snapshot()
    normalizer = Normalizer()
    terms = _terms()
    book = PriceBook(table, normalizer, terms)
    rng = random.Random(args.seed)
    models = []
    skipped: dict[str, int] = {}
    for model in _models(litellm.model_cost, table):
        probe = _litellm_call(model, _usage(rng, model), batch=False)
        try:
            litellm.cost_per_token(**probe)
        except Exception as exc:  # noqa: BLE001 - a model LiteLLM cannot price is left out
            skipped[type(exc).__name__] = skipped.get(type(exc).__name__, 0) + 1
            continue
        models.append(model)
    rng.shuffle(models)
    weights = [1 / (rank + 1) for rank in range(len(models))]  # Zipf: a few models dominate
    events: list[UsageEvent] = []
    calls: list[dict[str, Any]] = []
    while len(events) < args.events:
        model = rng.choices(models, weights)[0]
        counts = _usage(rng, model)
        batch = rng.random() < 0.05
        tenant = f"tenant-{rng.randrange(20):02d}"
        event = _event(model, counts, tenant, batch)
        if book.price(event).cost is None:
            continue  # a region without a price of its own: nothing to compare
        events.append(event)
        calls.append(_litellm_call(model, counts, batch))
    book = PriceBook(table, normalizer, terms)
    version = book.pricing_version
    for event in events:
        expected = price_event(event, table, normalizer, terms, pricing_version=version)
        assert book.price(event) == expected, event

    def uncached() -> None:
        for event in events:
            price_event(event, table, normalizer, terms, pricing_version=version)

    def cached() -> None:
        for event in events:
            book.price(event)

    def theirs() -> None:
        cost_per_token = litellm.cost_per_token
        for kwargs in calls:
            cost_per_token(**kwargs)

    def cold() -> None:
        fresh = PriceBook(table, normalizer, terms)
        start = time.perf_counter()
        for event in events:
            fresh.price(event)
        seconds.setdefault("cold", []).append(time.perf_counter() - start)

    seconds: dict[str, list[float]] = {}
    for _ in range(args.repeat):
        for name, fn in (("uncached", uncached), ("cached", cached), ("litellm", theirs)):
            seconds.setdefault(name, []).append(_time(fn))
        gc.collect()
        cold()

    def per_event(name: str) -> float:
        return statistics.median(seconds[name]) / len(events) * 1e6

    ours = per_event("cached")
    distinct = len({(e["provider"], e["request_model"], e["region"]) for e in events})
    print(
        f"{len(events)} events over {distinct} models ({len(models)} eligible), "
        f"median of {args.repeat} rounds, µs per event"
    )
    if skipped:
        print(f"models left out, not priced by LiteLLM: {skipped}")
    print(f"{'':40} {'µs/event':>9} {'÷ price book':>13}")
    rows = (
        ("price_event (uncached, Decimal)", per_event("uncached")),
        ("PriceBook.price (warm caches)", ours),
        ("PriceBook.price (first pass, cold)", per_event("cold")),
        ("LiteLLM cost_per_token", per_event("litellm")),
    )
    for label, value in rows:
        print(f"{label:40} {value:9.2f} {value / ours:13.2f}")


if __name__ == "__main__":
    main()
