"""Pricing: effective-dated price tables, model normalization and the pure pricing function.

``price_event(event, table, normalizer, adjustments)`` prices one usage event (tenant terms are
effective-dated, :mod:`~tokenline.processor.pricing.terms`); the base table is LiteLLM's price
list (``load_snapshot``), operators add overrides from YAML (``load_overrides``).
"""

from tokenline.processor.pricing.engine import (
    PRICING_RULES_VERSION,
    PricingResult,
    compute_cost,
    price_event,
    pricing_version_of,
    prompt_tokens,
)
from tokenline.processor.pricing.entry import BucketPrices, LongContextTier, PriceEntry, to_decimal
from tokenline.processor.pricing.errors import (
    OverridesError,
    PriceTableError,
    PricingError,
    RefreshError,
)
from tokenline.processor.pricing.litellm import convert, fetch_current, load_snapshot, read_source
from tokenline.processor.pricing.normalize import NormalizedModel, Normalizer
from tokenline.processor.pricing.overrides import Overrides, load_overrides, parse_overrides
from tokenline.processor.pricing.table import PriceTable
from tokenline.processor.pricing.terms import TenantAdjustment, TenantTerms, Terms

__all__ = [
    "PRICING_RULES_VERSION",
    "BucketPrices",
    "LongContextTier",
    "NormalizedModel",
    "Normalizer",
    "Overrides",
    "OverridesError",
    "PriceEntry",
    "PriceTable",
    "PriceTableError",
    "PricingError",
    "PricingResult",
    "RefreshError",
    "TenantAdjustment",
    "TenantTerms",
    "Terms",
    "compute_cost",
    "convert",
    "fetch_current",
    "load_overrides",
    "load_snapshot",
    "parse_overrides",
    "price_event",
    "pricing_version_of",
    "prompt_tokens",
    "read_source",
    "to_decimal",
]
