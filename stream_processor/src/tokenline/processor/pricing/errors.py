"""Errors of the pricing package.

::

    PricingError
    ├── PriceTableError      a price table document is malformed
    ├── OverridesError       an operators' overrides file has problems (all of them listed)
    └── RefreshError         the current LiteLLM price list could not be fetched or converted
"""

from __future__ import annotations

__all__ = ["OverridesError", "PriceTableError", "PricingError", "RefreshError"]


class PricingError(Exception):
    """Root of every error raised by ``tokenline.processor.pricing``."""


class PriceTableError(PricingError):
    """A price table document (JSON) is malformed."""


class OverridesError(PricingError):
    """An overrides file is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class RefreshError(PricingError):
    """The LiteLLM price list could not be fetched or converted."""
