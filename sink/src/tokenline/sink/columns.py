"""The measure columns the sink's tables and reports share, named once.

``usage_events``, ``usage_rollup_1m``, ``usage_tenant_daily`` and every report carry the same
token buckets (the contract's ``Usage``: disjoint, input excluding the cache) and the same
cost parts (the contract's ``Cost``, ``cost_`` before each, from ``tokenline.schemas.priced``),
in this order.
"""

from __future__ import annotations

from tokenline.schemas.priced import COST_COLUMNS

__all__ = ["COST_COLUMNS", "TOKEN_COLUMNS"]

TOKEN_COLUMNS = (
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
)
