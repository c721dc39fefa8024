"""The demo's price files: the prices it starts with, and the correction it replays with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenline.dev.demo.traffic import UNKNOWN_MODEL

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["write_correction", "write_initial_prices"]

_INITIAL = """\
# Merged over the shipped LiteLLM snapshot.
azure_deployments:
  chat-prod: gpt-4o
"""

_CORRECTION = f"""\
# The fine-tuned model's price, and globex's negotiated discount, both effective
# from the start of the year: every call since then is re-priced by a replay.
azure_deployments:
  chat-prod: gpt-4o
prices:
  - provider: openai
    model: "{UNKNOWN_MODEL}"
    valid_from: 2026-01-01
    unit: per_million
    input: "0.30"
    output: "1.20"
    cache_read: "0.15"
tenants:
  globex: {{discount_percent: 15}}
"""


def write_initial_prices(path: Path) -> Path:
    """Write the prices the demo's processor starts with; return ``path``."""
    path.write_text(_INITIAL, encoding="utf-8")
    return path


def write_correction(path: Path) -> Path:
    """Write the correction the demo publishes and replays with; return ``path``."""
    path.write_text(_CORRECTION, encoding="utf-8")
    return path
