"""Pricing one usage event: a pure function of the event, the table and the operator's config.

Order of the computation, per bucket: tokens times per-token price (tier prices when the prompt
is over the entry's long-context threshold, batch prices when the event is a batch request)
times (1 + percent / 100) of the tenant's term valid at ``occurred_at``, then quantized to 12
decimal places with ROUND_HALF_EVEN (the Avro ``Cost`` is ``decimal(38,12)``). The total is the
sum of the quantized buckets, so it always equals what the buckets add up to.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import TYPE_CHECKING

from tokenline.processor.pricing.entry import batch_prices
from tokenline.processor.pricing.terms import TenantAdjustment, terms_document

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from tokenline.processor.pricing.entry import BucketPrices, PriceEntry
    from tokenline.processor.pricing.normalize import NormalizedModel, Normalizer
    from tokenline.processor.pricing.table import PriceTable
    from tokenline.processor.pricing.terms import Terms
    from tokenline.schemas import Cost, PricingStatus, Usage, UsageEvent

__all__ = [
    "COST_QUANTUM",
    "PRICING_RULES_VERSION",
    "USAGE_NOT_REPORTED",
    "PricingResult",
    "TenantAdjustment",
    "compute_cost",
    "find_entry",
    "price_event",
    "prices_for",
    "pricing_version_of",
    "prompt_tokens",
    "usage_unknown",
]

COST_QUANTUM = Decimal("1E-12")
_EXACT = Context(prec=80)

PRICING_RULES_VERSION = 4
"""The version of the pricing rules written in code (this engine, the normalizer's rules, the
converter). Part of every ``pricing_version``: bump it with any change of code that can change
a cost, a pricing status or a canonical model, so a replay re-prices what the change affects."""


@dataclass(frozen=True, slots=True)
class PricingResult:
    """The outcome of pricing one event.

    An unpriced result has ``cost`` ``None`` (never zero) and an ``unpriced_reason``.
    """

    status: PricingStatus
    unpriced_reason: str | None
    canonical_model: str | None
    cost: Cost | None
    price_entry_id: str | None
    pricing_version: str
    currency: str = "USD"


USAGE_NOT_REPORTED = "usage_not_reported"


def usage_unknown(event: UsageEvent) -> bool:
    """Whether the provider may have billed tokens that nobody reported.

    ``usage_source`` ``none`` on a call that succeeded, or that failed after output had begun
    (a stream cut mid-way), means the buckets are unknown, not zero: pricing them would say
    the call was free. A call the provider refused before answering (failed, no first token)
    used nothing billable, so its zero usage is priced as the $0 it costs.
    """
    if event["usage_source"] != "none":
        return False
    return event["success"] or event["time_to_first_token_ms"] is not None


def prompt_tokens(usage: Usage) -> int:
    """Tokens that count toward a long-context threshold: every input-side bucket."""
    return (
        usage["input_tokens"] + usage["cache_read_input_tokens"] + usage["cache_write_input_tokens"]
    )


def _select_prices(entry: PriceEntry, usage: Usage, batch: bool) -> BucketPrices:
    """The prices ``usage`` is billed at under ``entry`` (:func:`prices_for` its tier)."""
    tier = entry.long_context
    in_tier = tier is not None and prompt_tokens(usage) > tier.threshold_tokens
    return prices_for(entry, long_context=in_tier, batch=batch)


def prices_for(entry: PriceEntry, *, long_context: bool, batch: bool) -> BucketPrices:
    """The prices of ``entry`` for a request in its long-context tier or not, batch or not.

    A batch request is billed at the batch prices of the tier it falls in. Where a tier has
    no batch prices of its own, the entry's batch discount applies to the tier's prices by
    the provider's rule (:func:`~tokenline.processor.pricing.entry.batch_prices`): every
    bucket for OpenAI and Anthropic; for Gemini on Vertex AI, whose cache and batch
    discounts do not stack, every bucket but a discounted cache read.
    """
    tier = entry.long_context
    if tier is not None and long_context:
        prices = tier.prices
        explicit_batch = tier.batch
    else:
        prices = entry.prices
        explicit_batch = entry.batch
    if not batch:
        return prices
    if explicit_batch is not None:
        return explicit_batch
    factor = entry.batch_rate_factor
    return prices if factor is None else batch_prices(entry.provider, entry.model, prices, factor)


def compute_cost(
    entry: PriceEntry,
    usage: Usage,
    *,
    batch: bool = False,
    adjustment: TenantAdjustment | None = None,
) -> Cost:
    """Cost of ``usage`` under ``entry``, per bucket and total, quantized to 12 places.

    The definition of a cost, in ``Decimal``. Cache writes with a 5m/1h split are priced
    per TTL; tokens the split does not account for (or all of them, without a split) are
    priced at the 5-minute rate. Reasoning tokens are priced at the entry's reasoning rate,
    or the output rate when it has none. Each bucket is computed exactly (80 digits), times
    the tenant's factor, then quantized; the total is the sum of the quantized buckets. A
    price book computes the same figures in scaled integers
    (:mod:`~tokenline.processor.pricing.scaled`).
    """
    prices = _select_prices(entry, usage, batch)
    factor = adjustment.factor if adjustment is not None else Decimal(1)
    write_total = usage["cache_write_input_tokens"]
    write_5m = usage["cache_write_5m_input_tokens"]
    write_1h = usage["cache_write_1h_input_tokens"]
    split_1h = write_1h or 0
    split_5m = write_total - split_1h if write_5m is None else write_5m
    unsplit = max(write_total - split_5m - split_1h, 0)
    with localcontext(_EXACT):
        raw = {
            "input": usage["input_tokens"] * prices.input,
            "cache_read": usage["cache_read_input_tokens"] * prices.cache_read,
            "cache_write": (split_5m + unsplit) * prices.cache_write_5m
            + split_1h * prices.cache_write_1h,
            "output": usage["output_tokens"] * prices.output,
            "reasoning": usage["reasoning_tokens"] * prices.reasoning_rate,
        }
        quantized = {
            name: (value * factor).quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)
            for name, value in raw.items()
        }
        total = sum(quantized.values(), Decimal(0)).quantize(COST_QUANTUM)
    return {
        "input": quantized["input"],
        "cache_read": quantized["cache_read"],
        "cache_write": quantized["cache_write"],
        "output": quantized["output"],
        "reasoning": quantized["reasoning"],
        "total": total,
    }


def pricing_version_of(
    table: PriceTable,
    normalizer: Normalizer,
    adjustments: Mapping[str, Terms] | None = None,
) -> str:
    """The version of everything that can change a cost: 16 hex digits of a sha256.

    Covers the price entries (``table.pricing_version``), the tenant terms, the normalizer's
    maps (``Normalizer.fingerprint``) and :data:`PRICING_RULES_VERSION`; independent of the
    order anything was given in. Compute it once per set of inputs, not per event.
    """
    content = {
        "rules": PRICING_RULES_VERSION,
        "entries": table.pricing_version,
        "terms": {t: terms_document(v) for t, v in sorted((adjustments or {}).items())},
        "maps": normalizer.fingerprint(),
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _adjustment_at(
    adjustments: Mapping[str, Terms] | None, tenant: str, at: datetime
) -> TenantAdjustment | None:
    terms = None if adjustments is None else adjustments.get(tenant)
    return None if terms is None else terms.at(at)


def price_event(
    event: UsageEvent,
    table: PriceTable,
    normalizer: Normalizer,
    adjustments: Mapping[str, Terms] | None = None,
    *,
    pricing_version: str | None = None,
) -> PricingResult:
    """Price ``event`` with the entry valid at its ``occurred_at``.

    The model is normalized first; its lookup ids are tried most specific first. An event
    whose model is unknown, or known only from a later date, is unpriced with a reason. The
    tenant's term valid at ``occurred_at`` adjusts the cost. ``pricing_version`` is what
    :func:`pricing_version_of` gives for the same arguments (a price book passes the one it
    computed once); without it, it is computed here.
    """
    normalized = normalizer.normalize_event(
        event["provider"],
        event["request_model"],
        event["response_model"],
        event["deployment"],
        event["region"],
    )
    version = (
        pricing_version
        if pricing_version is not None
        else pricing_version_of(table, normalizer, adjustments)
    )
    if usage_unknown(event):
        return PricingResult(
            "unpriced", USAGE_NOT_REPORTED, normalized.canonical, None, None, version
        )
    if normalized.canonical is None:
        reason = normalized.unpriced_reason or "unknown_model"
        return PricingResult("unpriced", reason, None, None, None, version)
    entry, reason = find_entry(table, event["provider"], normalized, event["occurred_at"])
    if entry is None:
        return PricingResult("unpriced", reason, normalized.canonical, None, None, version)
    adjustment = _adjustment_at(adjustments, event["tenant_id"], event["occurred_at"])
    cost = compute_cost(entry, event["usage"], batch=event["batch"], adjustment=adjustment)
    return PricingResult(
        "priced", None, normalized.canonical, cost, entry.entry_id, version, entry.currency
    )


def find_entry(
    table: PriceTable, provider: str, normalized: NormalizedModel, at: datetime
) -> tuple[PriceEntry | None, str]:
    """The entry a normalized model is priced with at ``at``, or why there is none.

    Lookup ids are tried most specific first; the reason is the first one that is not
    ``unknown_model`` (a known model without a price then or there), else ``unknown_model``.
    The answer changes only where ``at`` crosses some entry's ``valid_from``.
    """
    reason = "unknown_model"
    for model_id in normalized.lookup_ids:
        found = table.find(provider, model_id, at, normalized.region)
        if found.entry is not None:
            return found.entry, ""
        if found.reason != "unknown_model" and reason == "unknown_model":
            reason = found.reason or reason
    return None, reason
