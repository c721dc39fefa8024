"""Pricing events with what repeats from one event to the next worked out once.

An event's normalized model and price entry depend only on (provider, request model,
response model, deployment, region) and on the *price period* of ``occurred_at``: the
interval between two consecutive ``valid_from`` of the table's entries, in which no lookup
can change. :class:`CachedPricer` keeps both answers in bounded LRU caches (a model string
comes from the caller, so an unbounded cache would let anyone grow memory), each entry's
prices in scaled integers (:mod:`~tokenline.processor.pricing.scaled`) for its four cases
(long-context tier or not, batch or not), and each tenant term's exact factor. Its results
are :func:`~tokenline.processor.pricing.engine.price_event`'s, field for field.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias

from tokenline.processor.pricing.engine import (
    USAGE_NOT_REPORTED,
    PricingResult,
    compute_cost,
    find_entry,
    price_event,
    prices_for,
    usage_unknown,
)
from tokenline.processor.pricing.scaled import ScaledFactor, ScaledPrices, scaled_cost

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tokenline.processor.pricing.entry import PriceEntry
    from tokenline.processor.pricing.normalize import Normalizer
    from tokenline.processor.pricing.table import PriceTable
    from tokenline.processor.pricing.terms import TenantAdjustment, Terms
    from tokenline.schemas import Cost, Usage, UsageEvent

__all__ = ["MODELS_CACHED", "CachedPricer", "EntryRates"]

MODELS_CACHED = 8192
"""How many (provider, models, deployment, region, price period) answers are kept."""

_BEGINNING = datetime.min.replace(tzinfo=UTC)


class EntryRates:
    """One entry's prices in scaled integers, for each of its four cases.

    A case whose prices the integer path cannot hold exactly is ``None`` and is priced by
    :func:`~tokenline.processor.pricing.engine.compute_cost`.
    """

    __slots__ = ("_cases", "entry", "threshold")

    def __init__(self, entry: PriceEntry) -> None:
        self.entry = entry
        tier = entry.long_context
        self.threshold = None if tier is None else tier.threshold_tokens
        self._cases = tuple(
            ScaledPrices.of(prices_for(entry, long_context=in_tier, batch=batch))
            for in_tier in (False, True)
            for batch in (False, True)
        )

    def prices(self, *, long_context: bool, batch: bool) -> ScaledPrices | None:
        """The scaled prices of one case (``None``: priced by the Decimal definition)."""
        return self._cases[2 * long_context + batch]

    def cost(
        self,
        usage: Usage,
        batch: bool,
        adjustment: TenantAdjustment | None,
        factor: ScaledFactor | None,
    ) -> Cost:
        """The cost of ``usage``; ``factor`` is ``adjustment``'s (``None``: out of range)."""
        threshold = self.threshold
        in_tier = threshold is not None and (
            usage["input_tokens"]
            + usage["cache_read_input_tokens"]
            + usage["cache_write_input_tokens"]
            > threshold
        )
        prices = self._cases[2 * in_tier + bool(batch)]
        if prices is not None and factor is not None:
            cost = scaled_cost(prices, usage, factor)
            if cost is not None:
                return cost
        return compute_cost(self.entry, usage, batch=batch, adjustment=adjustment)


_Key: TypeAlias = tuple[str, str | None, str | None, str | None, str | None, int]
"""(provider, request model, response model, deployment, region, price period)."""


class _Resolved(NamedTuple):
    canonical: str | None
    rates: EntryRates | None
    reason: str


class CachedPricer:
    """Prices events like ``price_event`` with one table, normalizer and set of terms."""

    __slots__ = (
        "_adjustments",
        "_factors",
        "_max_models",
        "_normalize",
        "_normalizer",
        "_periods",
        "_rates",
        "_resolve",
        "_table",
        "_version",
    )

    def __init__(
        self,
        table: PriceTable,
        normalizer: Normalizer,
        adjustments: Mapping[str, Terms],
        pricing_version: str,
        *,
        max_models: int = MODELS_CACHED,
    ) -> None:
        self._table = table
        self._normalizer = normalizer
        self._adjustments = adjustments
        self._version = pricing_version
        self._max_models = max_models
        self._periods = sorted({entry.valid_from for entry in table})
        self._normalize = lru_cache(maxsize=max_models)(normalizer.normalize_event)
        self._resolve = lru_cache(maxsize=max_models)(self._resolved)
        # Keyed by id, holding the object itself so the id stays its own: entries and terms
        # belong to the table and the terms, so these grow no larger than they are.
        self._rates: dict[int, tuple[PriceEntry, EntryRates]] = {}
        self._factors: dict[int, tuple[TenantAdjustment, ScaledFactor | None]] = {}

    def price(self, event: UsageEvent) -> PricingResult:
        """Price ``event``: the result ``price_event`` gives with the same inputs."""
        at = event["occurred_at"]
        try:
            period = bisect_right(self._periods, at)
        except TypeError:  # a naive time, which an event never has: as price_event does
            inputs = (self._table, self._normalizer, self._adjustments)
            return price_event(event, *inputs, pricing_version=self._version)
        resolved = self._resolve(
            (
                event["provider"],
                event["request_model"],
                event["response_model"],
                event["deployment"],
                event["region"],
                period,
            )
        )
        if usage_unknown(event):
            return PricingResult(
                "unpriced", USAGE_NOT_REPORTED, resolved.canonical, None, None, self._version
            )
        rates = resolved.rates
        if rates is None:
            return PricingResult(
                "unpriced", resolved.reason, resolved.canonical, None, None, self._version
            )
        terms = self._adjustments.get(event["tenant_id"])
        adjustment = None if terms is None else terms.at(at)
        factor = ScaledFactor.ONE if adjustment is None else self._factor(adjustment)
        cost = rates.cost(event["usage"], event["batch"], adjustment, factor)
        entry = rates.entry
        return PricingResult(
            "priced", None, resolved.canonical, cost, entry.entry_id, self._version, entry.currency
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its inputs; the copy starts with empty caches."""
        inputs = (self._table, self._normalizer, self._adjustments, self._version)
        return (_pricer, (*inputs, self._max_models))

    def cached(self) -> tuple[int, int]:
        """How many model answers and normalizations the caches hold now."""
        return self._resolve.cache_info().currsize, self._normalize.cache_info().currsize

    def _resolved(self, key: _Key) -> _Resolved:
        provider, request_model, response_model, deployment, region, period = key
        normalized = self._normalize(provider, request_model, response_model, deployment, region)
        if normalized.canonical is None:
            return _Resolved(None, None, normalized.unpriced_reason or "unknown_model")
        # Every instant of a period finds what its start finds; the first period (before
        # any valid_from) what the earliest instant finds.
        at = self._periods[period - 1] if period else _BEGINNING
        entry, reason = find_entry(self._table, provider, normalized, at)
        if entry is None:
            return _Resolved(normalized.canonical, None, reason)
        return _Resolved(normalized.canonical, self._rates_of(entry), "")

    def _rates_of(self, entry: PriceEntry) -> EntryRates:
        known = self._rates.get(id(entry))
        if known is None or known[0] is not entry:
            known = (entry, EntryRates(entry))
            self._rates[id(entry)] = known
        return known[1]

    def _factor(self, adjustment: TenantAdjustment) -> ScaledFactor | None:
        known = self._factors.get(id(adjustment))
        if known is None or known[0] is not adjustment:
            known = (adjustment, ScaledFactor.of(adjustment.percent))
            self._factors[id(adjustment)] = known
        return known[1]


def _pricer(
    table: PriceTable,
    normalizer: Normalizer,
    adjustments: Mapping[str, Terms],
    pricing_version: str,
    max_models: int,
) -> CachedPricer:
    return CachedPricer(table, normalizer, adjustments, pricing_version, max_models=max_models)
