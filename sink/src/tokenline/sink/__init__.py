"""Tokenline sink: lands priced usage events and their rollups in TimescaleDB or PostgreSQL."""

__all__: list[str] = []
