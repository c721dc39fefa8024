"""What a ``UsageRollup``'s measures mean: which add up across records, which is a maximum.

The rollup topic carries deltas and ``usage_rollup_1m`` is added to, so every part that folds
rollups (the sink, the replay, the benchmarks, the tests) reads these names from here.
"""

from __future__ import annotations

__all__ = ["ROLLUP_KEY", "ROLLUP_MAX", "ROLLUP_SUMS"]

ROLLUP_KEY = ("tenant_id", "window_start", "provider", "model")
"""A window: the primary key of ``usage_rollup_1m``."""

ROLLUP_SUMS = (
    "requests",
    "failures",
    "input_tokens",
    "cache_read_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_total",
    "unpriced_count",
    "latency_ms_sum",
)
"""The additive measures: a window's value is the sum of its records'."""

ROLLUP_MAX = "latency_ms_max"
"""The one measure that is a maximum."""
