"""Tokenline stream processor: prices, normalizes, enriches and aggregates usage events."""

__all__: list[str] = []
