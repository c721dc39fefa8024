"""Tokenline sink: lands priced usage events and rollups in TimescaleDB or PostgreSQL."""

__all__: list[str] = []
