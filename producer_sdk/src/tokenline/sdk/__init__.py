"""Tokenline producer SDK: meters LLM calls and publishes one usage event per call."""

__all__: list[str] = []
